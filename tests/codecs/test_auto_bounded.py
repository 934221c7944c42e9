"""``--codec auto`` under a max_abs_error target adds the exact-bound codecs."""

from __future__ import annotations

from recodec.codecs import AUTO_CODECS, expand_codecs
from recodec.job import resolve_candidates
from recodec.target import parse_target


def test_auto_adds_jpegls_and_residual_only_under_an_error_bound() -> None:
    assert not {"jpegls", "residual"} & set(expand_codecs("auto"))
    bounded = expand_codecs("auto", bounded=True)
    assert {"jpegls", "residual", "lerc"} <= set(bounded) and bounded[: len(AUTO_CODECS)] == [
        n for n in AUTO_CODECS if n in bounded]
    assert "jpegls" in resolve_candidates("auto", {}, None, parse_target("max_abs_error<=0.5%"))
    assert "jpegls" not in resolve_candidates("auto", {}, None, parse_target("psnr>=40"))
