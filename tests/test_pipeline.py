"""The per-image pipeline: one call from source bytes to a measured, hashed encoding (no DST, no Ray)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recodec.config import RunConfig
from recodec.container import decode_output
from recodec.digest import pixel_sha256, sha256_hex
from recodec.errors import TargetUnreachable
from recodec.job import prepare_job
from recodec.pipeline import process_image

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "archive"


def _source() -> bytes:
    return next(p for p in sorted((SAMPLES / "photos").iterdir()) if p.suffix == ".png").read_bytes()


def test_fixed_knob_result_is_measured_on_what_the_decoder_returns() -> None:
    job = prepare_job(RunConfig(src="s", dst="d", codec="jpeg", quality=70))
    result = process_image(_source(), job)
    enc = result.encoded
    assert enc.codec_name == "jpeg" and enc.container == "raw" and enc.params["quality"] == 70
    assert result.dest_sha256 == sha256_hex(enc.payload)
    assert np.array_equal(decode_output(enc.payload, codec=enc.codec), enc.decoded)
    assert result.decoded_sha256 == pixel_sha256(enc.decoded)
    assert 20 < enc.metrics.psnr < 60 and result.bpp == 8 * len(enc.payload) / (result.image.width * result.image.height)
    cols = result.columns()
    assert cols["psnr"] == enc.metrics.psnr and cols["bpp"] == result.bpp and cols["sam"] == enc.metrics.sam


def test_target_search_meets_the_target_or_says_how_close_it_got() -> None:
    job = prepare_job(RunConfig(src="s", dst="d", codec="jpeg", target="psnr>=35"))
    result = process_image(_source(), job)
    assert result.encoded.metrics.psnr >= 35 and result.encoded.attempts > 1
    assert result.encoded.search == {"jpeg": "won"}
    impossible = prepare_job(RunConfig(src="s", dst="d", codec="jpeg", target="psnr>=99"))
    with pytest.raises(TargetUnreachable) as info:
        process_image(_source(), impossible)
    assert info.value.image is not None and info.value.attempts > 0


def _sensor_tiff(max_value: int = 1848) -> bytes:
    from recodec.formats.tiff import write_tiff

    yy, xx = np.mgrid[0:64, 0:72]
    values = (np.sin(xx / 5.0) * np.cos(yy / 7.0) + 1) / 2 * max_value
    return write_tiff(values.astype(np.uint16)[:, :, None], compression="zlib")


def test_sixteen_bit_sensor_data_is_scored_against_its_own_range() -> None:
    # #9 item 8: values of an 11-bit sensor in a 16-bit container get their data range as peak,
    # the same in the fixed-knob path, the target search and the manifest columns.
    source = _sensor_tiff()
    fixed = process_image(source, prepare_job(RunConfig(src="s", dst="d", codec="jxl")))
    cols = fixed.columns()
    assert cols["metric_peak_rule"] == "data_range" and cols["metric_peak"] <= 1848
    searched = process_image(source, prepare_job(RunConfig(src="s", dst="d", codec="jxl", target="psnr>=40")))
    assert searched.encoded.metrics.peak == fixed.encoded.metrics.peak
    assert searched.encoded.metrics.psnr >= 40
    declared = process_image(source, prepare_job(RunConfig(src="s", dst="d", codec="jxl", bit_depth=12)))
    assert (declared.encoded.metrics.peak, declared.encoded.metrics.peak_rule) == (4095.0, "bit_depth")


def test_every_stage_is_timed() -> None:
    result = process_image(_source(), prepare_job(RunConfig(src="s", dst="d", codec="jpeg")))
    cols = result.columns()
    for name in ("read_seconds", "encode_seconds", "decode_seconds", "metrics_seconds", "hash_seconds"):
        assert cols[name] is not None and cols[name] >= 0, name
    assert cols["metrics_seconds"] > 0


def test_one_image_cannot_change_the_next_ones_cog_layout(tmp_path: Path) -> None:
    """The COG decision belongs to its image: another image processed on the same pipeline meanwhile
    (the previous image's abandoned thread finishing, say) must not change this one's layout."""
    from recodec.formats.cog import is_cog
    from recodec.pipeline import Pipeline

    cog_source = (SAMPLES / "aerial" / "aerial_cogeo_jpeg.tif").read_bytes()
    plain_source = (SAMPLES / "landsat" / "l7_RGB.byte.tif").read_bytes()
    pipe = Pipeline(prepare_job(RunConfig(src=str(SAMPLES), dst=str(tmp_path), codec="zstd-tiff").validate()))
    judge = pipe.task_judge
    others: list[bytes] = []

    def plain_image_meanwhile(image: object) -> None:  # runs after the COG decision, before the encode
        pipe.task_judge = judge
        others.append(pipe.process(plain_source).encoded.payload)
        return None

    pipe.task_judge = plain_image_meanwhile  # type: ignore[method-assign]
    payload = pipe.process(cog_source).encoded.payload
    assert not is_cog(others[0]) and is_cog(payload)
