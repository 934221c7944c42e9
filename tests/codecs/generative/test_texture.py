"""Texture-energy side information: the stream extension, the hint's coding, the gains, the GAN codec."""

from __future__ import annotations

import numpy as np
import pytest

from tests.codecs.photos import chelsea_crop

torch = pytest.importorskip("torch")

from recodec.codecs import get_codec  # noqa: E402
from recodec.codecs.generative import texture as T  # noqa: E402
from recodec.codecs.learned import bitstream  # noqa: E402
from recodec.errors import ConfigError, DecodeError  # noqa: E402
from recodec.hfenergy import hf_energy_ratio  # noqa: E402


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return chelsea_crop(100, 120, 96, 128)


def _noise_image(shape: tuple[int, int], amplitude: np.ndarray, seed: int) -> np.ndarray:
    """Mid-gray plus white noise whose amplitude varies per column (float, 0-255)."""
    rng = np.random.default_rng(seed)
    return 128.0 + rng.normal(0, 1, (*shape, 3)) * amplitude[None, :, None]


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1) / 255.0)).float()[None]


# -- the container extension ------------------------------------------------------------------

def test_extensions_round_trip_and_leave_the_plain_stream_alone(photo: np.ndarray) -> None:
    plain = get_codec("hyperprior").encode(photo, quality=2)
    header, tiles = bitstream.unpack(plain)
    assert bitstream.pack(header, tiles) == plain  # no extensions: the bytes format 1 always had
    extended = bitstream.pack(header, tiles, {1: b"abc", 200: b""})
    assert bitstream.parse(extended) == (header, tiles, {1: b"abc", 200: b""})
    assert bitstream.without_extensions(extended) == plain
    assert len(extended) == len(plain) + 2 * 5 + 3
    assert np.array_equal(get_codec("hyperprior").decode(extended), get_codec("hyperprior").decode(plain))


@pytest.mark.parametrize("tail", [b"\x01\x00\x00", b"\x01\x00\x00\x00\x09ab", b"\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00"])
def test_malformed_extensions_are_decode_errors(photo: np.ndarray, tail: bytes) -> None:
    """Truncated records, a length past the end, a repeated tag (CRC recomputed, so only the records are wrong)."""
    import struct
    import zlib

    plain = get_codec("hyperprior").encode(photo, quality=2)
    body = plain[bitstream.HEADER_SIZE:] + tail
    head = plain[:bitstream.HEADER_SIZE - 4] + struct.pack(">I", zlib.crc32(body))
    with pytest.raises(DecodeError, match="extension"):
        bitstream.unpack(head + body)


# -- the hint -------------------------------------------------------------------------------

def test_hint_codes_block_energies_within_the_step(photo: np.ndarray) -> None:
    big = np.concatenate([np.tile(photo, (3, 3, 1)), np.full((288, 100, 3), 90, np.uint8)], axis=1)  # 288 x 484
    hint = T.encode_hint(big)
    assert len(hint) == 2 + 2 * 2 * 3  # a 2 x 2 grid of 256 px blocks, three bands
    block, energies = T.decode_hint(hint, *big.shape[:2])
    exact = T.block_energies(big)
    assert block == T.BLOCK and energies.shape == exact.shape == (2, 2, 3)
    assert np.allclose(energies, exact, rtol=2 ** (0.5 / T.STEP) - 1 + 1e-9)


def test_bad_hints_are_decode_errors(photo: np.ndarray) -> None:
    hint = T.encode_hint(photo)
    with pytest.raises(DecodeError, match="grid"):
        T.decode_hint(hint, 300, 300)  # another image size needs another grid
    with pytest.raises(DecodeError, match="version"):
        T.decode_hint(b"\x09" + hint[1:], *photo.shape[:2])
    with pytest.raises(DecodeError, match="truncated"):
        T.decode_hint(b"", 1, 1)
    with pytest.raises(ConfigError, match="multiple of 64"):
        T.encode_hint(photo, block=100)  # its size could not be recorded


# -- the gains ------------------------------------------------------------------------------

def test_gains_reach_a_reachable_target_and_stop_at_the_bounds() -> None:
    rng = np.random.default_rng(1)
    # As in images: band j of the residual's band k is mostly there for j == k (the bands overlap a little).
    basis = 0.2 * rng.normal(size=(3, 3, 50)) + 2 * np.eye(3)[:, :, None] * rng.normal(size=(3, 1, 50))
    a = rng.normal(size=(3, 50))
    n = 50
    c, d, g = (a * a).sum(1) / n, np.einsum("jn,jkn->jk", a, basis) / n, np.einsum("jkn,jln->jkl", basis, basis) / n

    def energy(alpha: np.ndarray) -> np.ndarray:
        return c + 2 * d @ alpha + np.einsum("k,jkl,l->j", alpha, g, alpha)

    want = np.array([0.6, 1.7, 2.2])
    assert np.allclose(energy(T.solve_gains(c, d, g, energy(want))), energy(want), rtol=1e-6)
    assert np.all(T.solve_gains(c, d, g, np.full(3, 1e6)) == T.MAX_GAIN)  # out of reach above: the cap
    assert np.all(T.solve_gains(c, d, g, np.zeros(3)) >= 0)  # out of reach below: no negative gains


def test_calibration_brings_each_block_to_its_coded_energy() -> None:
    """A 'generator' that adds the same noise everywhere is scaled per block to the original's texture."""
    shape = (256, 768)
    columns = np.arange(shape[1])
    amplitude = np.where(columns < 256, 4.0, np.where(columns < 512, 12.0, 25.0))
    original = np.clip(_noise_image(shape, amplitude, seed=0), 0, 255).round().astype(np.uint8)
    x_mse = np.full((*shape, 3), 128.0)
    view = _noise_image(shape, np.full(shape[1], 10.0), seed=1)  # other noise, one amount everywhere
    hint = T.decode_hint(T.encode_hint(original), *shape)
    out = T.calibrate(_tensor(x_mse), _tensor(view), hint, realism=1.0)
    got = T.block_energies(out[0].permute(1, 2, 0).numpy() * 255.0)
    # Block centres get their own gain; the gains blend towards the neighbours' across each block.
    assert np.allclose(got[0, :, 0], hint[1][0, :, 0], rtol=0.3)
    assert got[0, 0, 0] < got[0, 1, 0] < got[0, 2, 0]
    half = T.calibrate(_tensor(x_mse), _tensor(view), hint, realism=0.5)
    assert T.block_energies(half[0].permute(1, 2, 0).numpy() * 255.0)[0, 2, 0] < got[0, 2, 0]
    flat = T.calibrate(_tensor(x_mse), _tensor(view), hint, realism=0.0)
    # Realism 0 aims at the MSE decode's own (here: no) texture; only the residual's low-pass rest stays.
    assert T.block_energies(flat[0].permute(1, 2, 0).numpy() * 255.0)[0, :, 0].max() < 0.05 * T.block_energies(view).min()


# -- the GAN codec --------------------------------------------------------------------------

def test_gan_streams_carry_the_hint_and_decode_plainly(photo: np.ndarray) -> None:
    gan = get_codec("hyperprior-gan")
    data = gan.encode(photo, quality=1)
    hint = gan.stream_hint(data)
    assert hint == T.encode_hint(photo)
    plain = bitstream.without_extensions(data)
    assert len(data) == len(plain) + 5 + len(hint)  # bpp counts the side information
    assert gan.stream_hint(plain) is None
    assert np.array_equal(get_codec("hyperprior").decode(data), get_codec("hyperprior").decode(plain))


def test_the_hint_brings_the_gan_views_texture_to_the_originals(photo: np.ndarray) -> None:
    """With the shipped generator: the calibrated view's fine band is within 10 % of the original's,
    and a stream without the hint still decodes (the network's own guess)."""
    gan = get_codec("hyperprior-gan").decoder_for({"realism": 1.0})
    data = gan.encode(photo, quality=1)
    calibrated = hf_energy_ratio(photo, gan.decode(data))
    assert 0.9 <= calibrated["fine"] <= 1.1 and 0.8 <= calibrated["mid"] <= 1.25
    guessed = gan.decode(bitstream.without_extensions(data))
    assert guessed.shape == photo.shape
    mse = hf_energy_ratio(photo, get_codec("hyperprior").decode(data))
    assert mse["fine"] < 0.7  # the bar's premise on this crop: the MSE decode is blurred


def test_partial_edge_blocks_get_their_own_gain() -> None:
    """A 300 x 400 image: the 44 px and 144 px edge blocks are interpolated from their own centres."""
    shape = (300, 400)
    amplitude = np.where(np.arange(shape[1]) < 256, 20.0, 5.0)
    original = np.clip(_noise_image(shape, amplitude, seed=2), 0, 255).round().astype(np.uint8)
    x_mse = np.full((*shape, 3), 128.0)
    view = _noise_image(shape, np.full(shape[1], 10.0), seed=3)
    hint = T.decode_hint(T.encode_hint(original), *shape)
    out = T.calibrate(_tensor(x_mse), _tensor(view), hint, realism=1.0)
    got = T.block_energies(out[0].permute(1, 2, 0).numpy() * 255.0)
    assert got.shape == (2, 2, 3)
    assert np.allclose(got[..., 0], hint[1][..., 0], rtol=0.35)


def test_realism_zero_with_the_record_is_still_the_mse_decode(photo: np.ndarray) -> None:
    gan = get_codec("hyperprior-gan")
    data = gan.encode(photo, quality=1)
    assert gan.stream_hint(data) is not None
    assert np.array_equal(gan.decoder_for({"realism": 0.0}).decode(data), get_codec("hyperprior").decode(data))
