"""The rnn codec: contract, progressive prefixes, byte budgets, container errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from recodec.codecs.base import Codec
from recodec.codecs.rnn import bitstream
from recodec.codecs.rnn.codec import RnnCodec, decode_progressive
from recodec.errors import CodecUnavailableError, DecodeError
from tests.codecs.contract import CodecContract


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse))


class TestRnnContract(CodecContract):
    """The shared codec contract (iterations=2 keeps it fast)."""

    codec_name = "rnn"
    lossy_params = {"iterations": 2}

    def test_missing_dependency_names_the_extra(self, codec: Codec, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "torch", None)
        fresh = RnnCodec()
        with pytest.raises(CodecUnavailableError, match=r"recodec\[learned\]"):
            fresh.load()
        assert not fresh.available()


def test_every_prefix_is_the_k_iteration_stream(rnn: RnnCodec, photo: np.ndarray) -> None:
    k_max = rnn.knob.high
    full = rnn.encode(photo, iterations=k_max)
    ends = bitstream.chunk_offsets(full)
    assert len(ends) == k_max and ends[-1] == len(full)
    for k in (1, 3):
        assert bitstream.cut(full, k) == rnn.encode(photo, iterations=k)  # causal encoder: a cut IS the k stream
    every = rnn.decode_every_prefix(full)  # one pass, the image after each iteration
    assert len(every) == k_max
    for k in range(1, k_max + 1):
        cut = bitstream.cut(full, k)
        assert bitstream.read_header(cut).iterations == k
        if k in (1, 2, k_max - 1, k_max):
            assert np.array_equal(every[k - 1], rnn.decode(cut))
            assert np.array_equal(every[k - 1], rnn.decode_prefix(full[:ends[k - 1]]))  # raw prefix
    quality = [_psnr(photo, img) for img in every]
    assert quality == sorted(quality), quality  # quality never falls with k
    assert quality[-1] > quality[0] + 1  # and the later iterations do add quality


def test_byte_budget_picks_the_longest_fitting_cut(rnn: RnnCodec, photo: np.ndarray) -> None:
    full = rnn.encode(photo[:48, :64], iterations=4)
    ends = bitstream.chunk_offsets(full)
    for k, end in enumerate(ends, 1):
        for budget in (end, end + 3):
            if budget < len(full) and (k == len(ends) or budget < ends[k]):
                got = rnn.decode_prefix(full, max_bytes=budget)
                assert np.array_equal(got, rnn.decode_prefix(full, iterations=k))
    with pytest.raises(DecodeError):
        rnn.decode_prefix(full, max_bytes=ends[0] - 1)
    assert np.array_equal(decode_progressive(full, iterations=2), rnn.decode_prefix(full, iterations=2))


def test_strict_decode_refuses_a_cut_with_a_stale_header(rnn: RnnCodec, photo: np.ndarray) -> None:
    full = rnn.encode(photo[:32, :32], iterations=3)
    with pytest.raises(DecodeError, match="iteration 3 of 3"):
        rnn.decode(full[:bitstream.chunk_offsets(full)[1]])
    with pytest.raises(DecodeError):
        rnn.decode_prefix(full, iterations=4)
    with pytest.raises(DecodeError, match="progressive"):
        decode_progressive(b"\xff\xd8\xff\xe0" + full[4:], iterations=1)


@pytest.mark.parametrize("shape", [(37, 50), (37, 50, 1)])
def test_gray_round_trip(rnn: RnnCodec, photo: np.ndarray, shape: tuple[int, ...]) -> None:
    gray = photo[:37, :50, 1].reshape(shape)
    out = rnn.decode(rnn.encode(gray, iterations=2))
    assert out.shape == (37, 50, 1)


def test_tiles_are_independent_and_ragged(rnn: RnnCodec, photo: np.ndarray) -> None:
    img = np.concatenate([photo] * 4, axis=0)[:300, :40]
    data = rnn.encode(img, iterations=2, tile=256)
    header, chunks = bitstream.unpack(data)
    assert header.tiles() == 2 and all(len(c) == 2 for c in chunks)
    out = rnn.decode(data)
    alone = rnn.decode(rnn.encode(img[:256], iterations=2, tile=256))
    assert np.array_equal(out[:256], alone)


def test_weights_mismatch_is_refused(rnn: RnnCodec, photo: np.ndarray) -> None:
    data = bytearray(rnn.encode(photo[:32, :32], iterations=1))
    data[5] ^= 1  # first byte of the weights SHA-256
    raw = bytes(data[: bitstream.HEADER_SIZE - 4])
    import struct
    import zlib

    fixed = raw + struct.pack(">I", zlib.crc32(raw)) + bytes(data[bitstream.HEADER_SIZE:])
    with pytest.raises(DecodeError, match="weights"):
        rnn.decode(fixed)


def test_cli_decodes_a_prefix(rnn: RnnCodec, photo: np.ndarray, tmp_path) -> None:
    from click.testing import CliRunner
    from PIL import Image

    from recodec.cli import cli

    full = rnn.encode(photo[:32, :48], iterations=3)
    (tmp_path / "s.rcrn").write_bytes(full)
    for opts, k in ((["--iterations", "2"], 2), (["--max-bytes", str(bitstream.chunk_offsets(full)[0])], 1)):
        res = CliRunner().invoke(cli, ["decode", str(tmp_path / "s.rcrn"), str(tmp_path / "o.png"), *opts])
        assert res.exit_code == 0, res.output
        with Image.open(tmp_path / "o.png") as im:
            assert np.array_equal(np.asarray(im), rnn.decode_prefix(full, iterations=k))
    (tmp_path / "j.bin").write_bytes(b"\xff\xd8\xff" + full[3:])
    res = CliRunner().invoke(cli, ["decode", str(tmp_path / "j.bin"), str(tmp_path / "o.png"), "--iterations", "1"])
    assert res.exit_code != 0 and "progressive" in res.output
