"""Residual codec: the contract, the exact bound on every base and layout, the base-drift guard."""

from __future__ import annotations

import numpy as np
import pytest

from recodec.codecs import get_codec
from recodec.formats.bandpack import pack_bands, unpack_bands
from recodec.errors import DecodeError
from tests.codecs.contract import CodecContract, make_image


class TestResidualContract(CodecContract):
    codec_name = "residual"
    lossless_params = {"lossless": True, "trials": 1}
    lossy_params = {"max_error": 2, "trials": 1}


@pytest.mark.parametrize("base", ["jpeg2000", "htj2k"])
@pytest.mark.parametrize("layout", [("uint8", 4), ("uint16", 1), ("uint16", 7), ("int16", 2)])
@pytest.mark.parametrize("bound", [0, 1, 40, 700])
def test_bound_holds_exactly(base: str, layout: tuple[str, int], bound: int) -> None:
    dtype, bands = layout
    info = np.iinfo(dtype)
    rng = np.random.default_rng(bound)
    src = make_image(dtype, bands, seed=bound)
    src[:4, :4] = rng.integers(info.min, info.max, (4, 4, bands), endpoint=True)  # noise at the range edges
    src[0, 0], src[-1, -1] = info.min, info.max
    codec = get_codec("residual")
    out = codec.decode(codec.encode(src, max_error=bound, base=base, trials=2))
    assert out.dtype == src.dtype and out.shape == src.shape
    assert np.abs(out.astype(np.int64) - src.astype(np.int64)).max() <= bound


def test_more_trials_never_grow_the_output() -> None:
    codec, src = get_codec("residual"), make_image("uint16", 3, height=96, width=96)
    sizes = [len(codec.encode(src, max_error=30, trials=t)) for t in (1, 3, 5)]
    assert sizes == sorted(sizes, reverse=True)


def test_a_base_that_decodes_differently_is_refused() -> None:
    """Stands in for a decoder build whose lossy base differs: the bound cannot be vouched for."""
    codec, src = get_codec("residual"), make_image("uint16", 1)
    header, parts = unpack_bands(codec.encode(src, max_error=5, trials=1))
    (meta, base), residual = parts
    forged = pack_bands("residual", header["shape"], header["dtype"], [(dict(meta, digest="0" * 32), base), residual])
    with pytest.raises(DecodeError, match="base decodes differently"):
        codec.decode(forged)
