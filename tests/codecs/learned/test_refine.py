"""Encoder-side latent refinement (``refine=``): better RD loss, same stream format and decoder."""

from __future__ import annotations

import numpy as np
import pytest

from recodec.codecs.learned import bitstream
from recodec.codecs.learned.lambdas import DEFAULT_LAMBDAS
from recodec.errors import ConfigError


def _rd_loss(codec, img: np.ndarray, quality: int, refine: int) -> tuple[float, bytes]:
    """The codec's own objective, measured on the file's bytes and the decoded pixels."""
    data = codec.encode(img, quality=quality, refine=refine)
    out = codec.decode(data)
    mse = np.mean((img.astype(np.float64) - out.astype(np.float64)) ** 2) / 255**2
    bpp = 8 * len(data) / (img.shape[0] * img.shape[1])
    return DEFAULT_LAMBDAS[quality - 1] * 255**2 * mse + bpp, data


@pytest.mark.parametrize("name", ["hyperprior", "factorized"])
@pytest.mark.parametrize("quality", [2, 8])
def test_refinement_lowers_the_coded_rd_loss(name: str, quality: int, photo: np.ndarray,
                                             request: pytest.FixtureRequest) -> None:
    codec = request.getfixturevalue(name)
    plain, _ = _rd_loss(codec, photo, quality, 0)
    refined, _ = _rd_loss(codec, photo, quality, 50)
    assert refined < plain * 0.99


def test_refined_stream_is_an_ordinary_stream(hyperprior, photo: np.ndarray) -> None:
    from recodec.codecs.registry import get_codec

    data = hyperprior.encode(photo, quality=5, refine=25)
    assert data == hyperprior.encode(photo, quality=5, refine=25)  # seeded: reproducible encodes
    header, _ = bitstream.unpack(data)
    assert header.quality == 5 and header.model == "hyperprior"
    fresh = get_codec("hyperprior")  # any decoder reads it: the format did not change
    assert np.array_equal(fresh.decode(data), hyperprior.decode(data))
    assert data != hyperprior.encode(photo, quality=5)


def test_refinement_with_ragged_tiles_and_gray(hyperprior, photo: np.ndarray) -> None:
    img = np.concatenate([photo, photo[::-1]], axis=0)[:290, :197]
    data = hyperprior.encode(img, quality=4, tile=256, refine=25)
    assert bitstream.unpack(data)[0].tile_grid() == (2, 1)
    assert hyperprior.decode(data).shape == img.shape
    gray = photo[:70, :90, 1:2]
    assert hyperprior.decode(hyperprior.encode(gray, quality=4, refine=25)).shape == (70, 90, 1)


def test_refinement_autocasts_to_bf16_only_where_the_cpu_has_it(hyperprior, photo: np.ndarray,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Emulated bf16 (AVX2-only CPUs) made refinement about 10x slower than float32."""
    import torch

    from recodec.codecs.learned import refine

    seen: list[bool] = []
    real = torch.autocast

    def spy(*args, **kwargs):
        if kwargs.get("dtype") is torch.bfloat16:
            seen.append(kwargs.get("enabled", True))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "autocast", spy)
    for native in (False, True):
        monkeypatch.setattr(refine, "native_bf16", lambda native=native: native)
        hyperprior.encode(photo[:64, :64], quality=4, refine=25)
        assert seen and set(seen) == {native}
        seen.clear()


def test_refine_accepts_only_listed_iteration_counts(hyperprior, photo: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="refine"):
        hyperprior.encode(photo, quality=4, refine=7)


def test_float_synthesis_is_the_integer_decoder(hyperprior, photo: np.ndarray) -> None:
    """The distortion refinement minimises is the one the integer decoder delivers."""
    import torch

    from recodec.codecs.learned.integer import MEAN_FRAC
    from recodec.codecs.learned.refine import float_synthesis

    rt, q = hyperprior.runtime, 6
    z, index, residual = hyperprior.tile_symbols(rt, photo, q)
    _, mean = rt.hs(torch.from_numpy(z)[None])
    y_fixed = torch.from_numpy(residual)[None] * 2**MEAN_FRAC + mean
    exact = rt.gs(y_fixed, MEAN_FRAC, q).numpy().astype(np.float64)
    inv_gain = (rt.gs.inv_gain[q] * 2.0 ** -rt.gs.inv_gain_frac).float().view(1, -1, 1, 1)
    with torch.no_grad():
        approx = float_synthesis(rt)(y_fixed.float() / 2**MEAN_FRAC * inv_gain)[0].clamp(0, 1) * 255
    h, w = photo.shape[:2]
    diff = np.abs(exact[:, :h, :w] - approx.numpy()[:, :h, :w])
    assert diff.mean() < 0.5 and diff.max() < 4


def test_refine_needs_the_lambda_ladder_of_its_weights(photo: np.ndarray) -> None:
    """The 6-point session-9 file has no lambda per quality of the 9-point ladder: refusing beats guessing."""
    from recodec.codecs.learned.codec import codec_for_weights
    from recodec.errors import CodecError

    old = codec_for_weights("hyperprior", sha256="507e6bda57ed9ce8acb16d58b4e636919e544d6a1e7aaa3cc78b8cc123914d5f")
    assert old.decode(old.encode(photo, quality=3)).shape == photo.shape
    with pytest.raises(CodecError, match="ladder"):
        old.encode(photo, quality=3, refine=25)
