"""Generative decoders: settings, seeds, realism 0 = MSE decoder, tiling, pinned weights, the HF metric."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.codecs.photos import chelsea_crop

torch = pytest.importorskip("torch")

from recodec.codecs import get_codec  # noqa: E402
from recodec.codecs.generative import decoding as D  # noqa: E402
from recodec.errors import CodecError, ConfigError  # noqa: E402

@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real photo crop (synthetic texture when the devset is missing)."""
    return chelsea_crop(100, 120, 96, 128)


@pytest.fixture(scope="module")
def hyper_stream(photo: np.ndarray) -> bytes:
    return get_codec("hyperprior").encode(photo, quality=1, tile=256)


def test_gan_realism_zero_is_the_mse_decoder(hyper_stream: bytes) -> None:
    gan = get_codec("hyperprior-gan")
    plain = get_codec("hyperprior").decode(hyper_stream)
    assert np.array_equal(gan.decoder_for({"realism": 0.0}).decode(hyper_stream), plain)


def test_same_seed_same_view_and_settings_are_applied(hyper_stream: bytes, photo: np.ndarray) -> None:
    gan = get_codec("hyperprior-gan")
    a = gan.decoder_for({"realism": 1.0, "seed": 3}).decode(hyper_stream)
    assert np.array_equal(a, gan.decoder_for({"realism": 1.0, "seed": 3}).decode(hyper_stream))
    assert gan.decoder_for({"realism": 0.5, "seed": 3}).label().startswith("gan-hyperprior realism=0.5 seed=3 ")
    jr = get_codec("jpeg-restore")
    data = jr.encode(photo, quality=20)
    mean = jr.decoder_for({"steps": 1, "seed": 1}).decode(data)
    assert np.array_equal(mean, jr.decoder_for({"steps": 1, "seed": 2}).decode(data))  # mean view: no noise
    assert "steps=1 seed=1" in jr.decoder_for({"steps": 1, "seed": 1}).label()


def test_stochastic_sampler_depends_on_the_seed_only() -> None:
    torch.manual_seed(0)
    from recodec.codecs.generative.nets import Restorer

    net = Restorer(8).eval()
    torch.nn.init.normal_(net.body.out.weight, std=0.05)  # an untrained net would return y unchanged
    y = torch.rand(1, 3, 40, 36)
    a, b = D.restore(net, y, steps=3, seed=1), D.restore(net, y, steps=3, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, D.restore(net, y, steps=3, seed=2))
    assert torch.equal(D.restore(net, y, steps=1, seed=1), D.restore(net, y, steps=1, seed=9))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="realism"):
        get_codec("hyperprior-gan").decoder_for({"realism": 1.5})
    with pytest.raises(ConfigError):
        get_codec("hyperprior-gan").resolve_params({"realism": -0.1})
    with pytest.raises(ConfigError):
        get_codec("jpeg-restore").resolve_params({"steps": 9})
    with pytest.raises(CodecError, match="steps"):
        D.check_steps(0)


def test_tiles_do_not_change_the_result() -> None:
    torch.manual_seed(0)
    from recodec.codecs.generative.nets import Generator

    net = Generator(8).eval()
    torch.nn.init.normal_(net.body.out.weight, std=0.05)
    x = torch.rand(1, 3, 45, 70)
    noise = torch.randn(1, 2, 45, 70)
    r, rate = torch.ones(1), torch.full((1,), 0.25)
    with torch.no_grad():
        whole = net(x, noise, r, rate)
        tiled = D.tiled(lambda a, b: net(a, b, r, rate), x, noise, tile=32)
    assert torch.allclose(whole, tiled, atol=1e-5)


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    src = D.WEIGHTS_DIR
    shutil.copy(src / "pins.json", tmp_path / "pins.json")
    data = bytearray((src / "restore-jpeg.pt").read_bytes())
    data[-100] ^= 1
    (tmp_path / "restore-jpeg.pt").write_bytes(bytes(data))
    with pytest.raises(CodecError, match="pinned"):
        D.load_net("restore-jpeg", "cpu", tmp_path)
    assert set(json.loads((src / "pins.json").read_text())) == {
        "restore-jpeg.pt", "diffusion-hyperprior.pt", "gan-hyperprior.pt"}
    assert sum((src / name).stat().st_size for name in json.loads((src / "pins.json").read_text())) < 20e6


def test_gray_goes_through_rgb_and_back(photo: np.ndarray) -> None:
    jr = get_codec("jpeg-restore")
    gray = photo.mean(axis=2).astype(np.uint8)
    out = jr.decode(jr.encode(gray, quality=30))
    assert out.shape == (*gray.shape, 1) and out.dtype == np.uint8


def test_hf_energy_ratio() -> None:
    from recodec.hfenergy import BAND_NAMES, hf_energy_ratio

    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(128, 40, (64, 64, 3)), 0, 255).astype(np.uint8)
    same = hf_energy_ratio(img, img)
    assert set(same) == set(BAND_NAMES) and all(abs(v - 1) < 1e-9 for v in same.values())
    from PIL import Image, ImageFilter

    blurred = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(1.5)))
    assert hf_energy_ratio(img, blurred)["fine"] < 0.3
    noisy = np.clip(img + rng.normal(0, 30, img.shape), 0, 255).astype(np.uint8)
    assert hf_energy_ratio(img, noisy)["fine"] > 1.2


def test_the_gan_decoder_is_told_the_streams_rate_point(photo: np.ndarray, monkeypatch) -> None:
    """The generator gets the header's quality, so it can add less texture where the stream has more."""
    from recodec.codecs.generative.nets import Generator, rate_level

    torch.manual_seed(0)
    net = Generator(8).eval()
    torch.nn.init.normal_(net.body.out.weight, std=0.05)
    seen: list[float] = []
    forward = net.forward
    monkeypatch.setattr(net, "forward", lambda x, n, r, rate=None: seen.append(float(rate[0])) or forward(x, n, r, rate))
    monkeypatch.setattr(D, "load_net", lambda name, device="cpu", weights_dir=None: (net, "f" * 64))
    gan = get_codec("hyperprior-gan").decoder_for({"realism": 1.0})
    views = {q: gan.decode(get_codec("hyperprior").encode(photo, quality=q, tile=256)) for q in (1, 5)}
    assert sorted(set(seen)) == [rate_level(1), rate_level(5)] and rate_level(1) == 0.0 < rate_level(5) < 1.0
    plain = get_codec("hyperprior").decode(get_codec("hyperprior").encode(photo, quality=1, tile=256))
    assert not np.array_equal(views[1], plain)
    with pytest.raises(CodecError, match="quality"):
        gan.generate_rgb(plain)  # a rate-conditioned generator refuses to guess the rate


def test_the_rate_input_spans_the_hyperprior_ladder() -> None:
    """RATE_POINTS is the ladder of the hyperprior the generator is pinned to: a longer or shorter
    ladder would shift every stream's rate level away from what it was trained on, so it must fail
    here first."""
    from recodec.codecs.generative.nets import RATE_POINTS, rate_level

    hyper = get_codec("hyperprior-gan")
    hyper.load()  # the ladder's length comes from the pinned weights
    assert hyper.knob.high == RATE_POINTS
    assert rate_level(RATE_POINTS) == 1.0 and rate_level(RATE_POINTS + 3) == 1.0


def test_a_generator_without_the_rate_input_warm_starts_the_new_one() -> None:
    from recodec.codecs.generative.nets import Generator, widen_input

    torch.manual_seed(0)
    old, new = Generator(8, rate_input=False).eval(), Generator(8).eval()
    torch.nn.init.normal_(old.body.out.weight, std=0.05)
    new.load_state_dict(widen_input(old.state_dict(), new))
    x, noise, r = torch.rand(1, 3, 24, 20), torch.randn(1, 2, 24, 20), torch.full((1,), 0.7)
    with torch.no_grad():
        for rate in (0.0, 1.0):  # the new channel starts with zero weights: the old network exactly
            assert torch.equal(new(x, noise, r, torch.full((1,), rate)), old(x, noise, r))
    with pytest.raises(ValueError, match="rate"):
        new(x, noise, r)


RETIRED_HYPERPRIOR = "507e6bda57ed9ce8acb16d58b4e636919e544d6a1e7aaa3cc78b8cc123914d5f"


@pytest.mark.parametrize("name", ["hyperprior-gan", "hyperprior-diffusion"])
def test_generative_codecs_encode_with_the_hyperprior_they_were_trained_on(
        name: str, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hyperprior release that differs from the decoders' pin does not change what they encode with."""
    from recodec.codecs.generative import codecs as G
    from recodec.codecs.learned.bitstream import unpack
    from recodec.codecs.learned.codec import DEFAULT_WEIGHTS
    from recodec.codecs.weights import pinned_sha256

    shipped = pinned_sha256(DEFAULT_WEIGHTS)
    assert unpack(type(get_codec(name))().encode(photo, quality=1, tile=256))[0].weights_sha256.hex() == (
        G.HYPERPRIOR_SHA256)
    monkeypatch.setattr(G, "HYPERPRIOR_SHA256", RETIRED_HYPERPRIOR)  # as if the shipped file were newer
    codec = type(get_codec(name))()
    data = codec.encode(photo, quality=1, tile=256)
    assert unpack(data)[0].weights_sha256.hex() == RETIRED_HYPERPRIOR != shipped
    plain = get_codec("hyperprior").decode(data)  # the plain codec finds the retired file by the header
    assert np.array_equal(codec.plain_decode(data), plain)
    assert not np.array_equal(plain, get_codec("hyperprior").decode(get_codec("hyperprior").encode(
        photo, quality=1, tile=256)))
