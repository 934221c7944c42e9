"""Round trips, container, bpp accounting, tiling and error handling of the learned codecs."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest

from recodec.codecs.learned import bitstream
from recodec.errors import CodecError, DecodeError, UnsupportedImageError


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse))


@pytest.mark.parametrize("name", ["hyperprior", "factorized"])
def test_round_trip_rgb(name: str, photo: np.ndarray, request: pytest.FixtureRequest) -> None:
    codec = request.getfixturevalue(name)
    data = codec.encode(photo, quality=4)
    out = codec.decode(data)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert _psnr(photo, out) > 24
    assert codec.sniff(data) and not codec.sniff(b"\xff\xd8\xff" + data[3:])


def test_quality_ladder_is_monotonic(hyperprior, photo: np.ndarray) -> None:
    sizes = [len(hyperprior.encode(photo, quality=q)) for q in range(1, hyperprior.knob.high + 1)]
    assert hyperprior.knob.high >= 4
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


@pytest.mark.parametrize("shape", [(70, 90), (70, 90, 1)])
def test_gray_round_trip(hyperprior, photo: np.ndarray, shape: tuple[int, ...]) -> None:
    gray = photo[:70, :90, 1].reshape(shape)
    out = hyperprior.decode(hyperprior.encode(gray, quality=5))
    assert out.shape == (70, 90, 1) and out.dtype == np.uint8
    assert _psnr(gray.reshape(70, 90, 1), out) > 24


def test_deterministic(hyperprior, photo: np.ndarray) -> None:
    a, b = hyperprior.encode(photo, quality=3), hyperprior.encode(photo, quality=3)
    assert a == b
    assert np.array_equal(hyperprior.decode(a), hyperprior.decode(a))


def test_tiles_with_ragged_edges(hyperprior, photo: np.ndarray) -> None:
    img = np.concatenate([photo, photo[::-1]], axis=0)[:290, :197]  # 2 x 1 tiles of 256, ragged
    data = hyperprior.encode(img, quality=4, tile=256)
    header, tiles = bitstream.unpack(data)
    assert (header.height, header.width, header.tile) == (290, 197, 256)
    assert header.tile_grid() == (2, 1) and len(tiles) == 2
    out = hyperprior.decode(data)
    assert out.shape == img.shape and _psnr(img, out) > 24
    # The first tile decodes exactly as the same pixels coded alone: tiles are independent.
    alone = hyperprior.decode(hyperprior.encode(img[:256], quality=4, tile=256))
    assert np.array_equal(out[:256], alone)


def test_bpp_counts_every_byte(hyperprior, photo: np.ndarray) -> None:
    data = hyperprior.encode(photo, quality=2, tile=256)
    header, tiles = bitstream.unpack(data)
    assert len(data) == bitstream.HEADER_SIZE + sum(4 + len(t) for t in tiles)
    assert data[:4] == b"RCLC" and header.weights_sha256 == hyperprior.runtime.sha256
    bpp = len(data) * 8 / (photo.shape[0] * photo.shape[1])
    assert 0.02 < bpp < 4


@pytest.mark.parametrize("bad", [
    np.zeros((32, 32, 3), dtype=np.uint16),
    np.zeros((32, 32, 3), dtype=np.float32),
    np.zeros((32, 32, 2), dtype=np.uint8),
    np.zeros((32, 32, 4), dtype=np.uint8),
    np.zeros((2, 32, 32, 3), dtype=np.uint8),
])
def test_unsupported_layouts(hyperprior, bad: np.ndarray) -> None:
    with pytest.raises(UnsupportedImageError):
        hyperprior.encode(bad, quality=3)


@pytest.fixture(scope="module")
def stream(hyperprior, photo: np.ndarray) -> bytes:
    return hyperprior.encode(photo[:100, :120], quality=3)


@pytest.mark.timeout(60)
def test_truncated_and_garbage_raise_decode_error(hyperprior, stream: bytes) -> None:
    rng = np.random.default_rng(1)
    cases = [stream[:n] for n in (1, 4, 10, bitstream.HEADER_SIZE, bitstream.HEADER_SIZE + 3, len(stream) - 1)]
    cases += [bytes(rng.integers(0, 256, n, dtype=np.uint8)) for n in (5, 80, 4000)]
    cases += [stream[:4] + bytes(rng.integers(0, 256, 200, dtype=np.uint8))]
    cases.append(stream + b"\0\0\0\0")
    flipped = bytearray(stream)
    flipped[-5] ^= 0x10
    cases.append(bytes(flipped))
    for data in cases:
        with pytest.raises(DecodeError):
            hyperprior.decode(data)


def _with_header_field(stream: bytes, offset: int, fmt: str, value: int) -> bytes:
    data = bytearray(stream)
    struct.pack_into(fmt, data, offset, value)
    return bytes(data)


@pytest.mark.parametrize("offset,fmt,value", [
    (4, ">B", 9),                # format version
    (5, ">B", 7),                # model id
    (38, ">B", 0),               # quality 0
    (38, ">B", 200),             # quality beyond the ladder
    (39, ">B", 2),               # bands
    (40, ">I", 0),               # height
    (44, ">I", 10**9),           # width: decompression bomb
    (48, ">H", 100),             # tile not a multiple of 64
    (50, ">I", 5),               # tile count
])
def test_bad_header_fields(hyperprior, stream: bytes, offset: int, fmt: str, value: int) -> None:
    with pytest.raises(DecodeError):
        hyperprior.decode(_with_header_field(stream, offset, fmt, value))


def test_wrong_weights_hash_is_refused(hyperprior, stream: bytes) -> None:
    other = hashlib.sha256(b"other weights").digest()
    data = stream[:6] + other + stream[38:]
    with pytest.raises(DecodeError, match="weights"):
        hyperprior.decode(data)


def test_factorized_refuses_hyperprior_stream(factorized, stream: bytes) -> None:
    with pytest.raises(DecodeError):
        factorized.decode(stream)


def test_tampered_weights_file_is_refused(tmp_path, hyperprior) -> None:
    import json
    import shutil

    from recodec.codecs.learned.codec import HyperpriorCodec

    weights = tmp_path / "hyperprior.pt"
    shutil.copy(hyperprior.weights, weights)
    (tmp_path / "pins.json").write_text(json.dumps({"hyperprior.pt": "0" * 64}))
    with pytest.raises(CodecError, match="SHA-256"):
        HyperpriorCodec(weights=weights).load()


def test_knob_and_params(hyperprior) -> None:
    from recodec.errors import ConfigError

    assert hyperprior.knob.quality_shortcut is False and hyperprior.knob.higher_is_better
    with pytest.raises(ConfigError):
        hyperprior.resolve_params({}, quality=50)
    with pytest.raises(ConfigError):
        hyperprior.resolve_params({"quality": hyperprior.knob.high + 1})
    assert "weights sha256:" in hyperprior.version()


def test_both_learned_codecs_are_auto_candidates_and_rnn_is_not() -> None:
    """They beat libjpeg-turbo 4:2:0 on held-out photos (docs/learned.md), so --codec auto tries them."""
    from recodec.codecs import expand_codecs

    auto = expand_codecs("auto")
    assert {"hyperprior", "factorized"} <= set(auto) and "rnn" not in auto
    assert auto.index("jpeg") < auto.index("hyperprior") < auto.index("factorized")
