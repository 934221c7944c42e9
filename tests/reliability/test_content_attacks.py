"""Content attacks through the pipeline: every hostile or content-bearing source gets a row that
keeps its content or says why not, reconcile checks it from the outputs, audit stays clean.

The corpus is built at test time (:mod:`tests.content_corpus`); the table in
docs/reliability.md ("Content attacks") lists each file and the outcome asserted here.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import tifffile

from recodec.tasks.shard import ShardContext
from recodec.tasks.reconcile import check_row
from tests import content_corpus as cc
from tests.reliability.helpers import assert_audit_clean, commit, job_config, prepare_shards, reason, rows_of

GEOKEYS_UTM = (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32618)


def geotiff(array: np.ndarray, nodata: int | None = 0) -> bytes:
    """A GeoTIFF (UTM 18N, 30 m) of a (H, W, S) raster with GDAL_NODATA."""
    tags = [(33550, 12, 3, (30.0, 30.0, 0.0), True), (33922, 12, 6, (0.0, 0.0, 0.0, 500000.0, 4e6, 0.0), True),
            (34735, 3, len(GEOKEYS_UTM), GEOKEYS_UTM, True)]
    if nodata is not None:
        tags.append((42113, 2, 0, str(nodata), True))
    return cc.tiff_bytes(array, photometric="minisblack", planarconfig="contig", extratags=tags)


def corpus() -> dict[str, tuple[bytes, str]]:
    """Key -> (bytes, expected outcome): "ok" or the failure reason."""
    photo = cc.photo(64, 96)
    return {
        "jpeg/truncated-eoi.jpg": (cc.truncated_jpeg(cc.jpeg_bytes(cc.photo(256, 256))), "corrupt_source"),
        "jpeg/damaged-scan.jpg": (cc.damaged_scan_jpeg(cc.jpeg_bytes(cc.photo(256, 256))), "corrupt_source"),
        "jpeg/claims-8000x8000.jpg": (cc.jpeg_claiming(8000, 8000), "implausible_header"),
        "jpeg/cmyk.jpg": (cc.cmyk_jpeg(photo), "cmyk"),
        "jpeg/orientation-6.jpg": (cc.oriented_jpeg(photo, 6), "ok"),
        "png/trailing.png": (cc.png_bytes(photo) + b"junk", "corrupt_source"),
        "png/claims-8000x8000.png": (cc.png_claiming(8000, 8000), "implausible_header"),
        "png/apng.png": (cc.apng_bytes([cc.photo(seed=1), cc.photo(seed=2)]), "multiframe"),
        "png/orientation-8.png": (cc.oriented_png(photo, 8), "ok"),
        "png/one-column.png": (cc.png_bytes(cc.photo(600, 1)[:, :, 0]), "ok"),
        "webp/animated.webp": (cc.animated_webp([cc.photo(seed=1), cc.photo(seed=2)]), "multiframe"),
        "tif/multipage.tif": (cc.multipage_tiff([photo, photo[::-1]]), "multiframe"),
        "tif/band-bomb.tif": (cc.band_bomb_tiff(), "too_large"),
        "tif/truncated.tif": (cc.truncated_tiff(photo[:, :, 0]), "corrupt_source"),
        "tif/miniswhite.tif": (cc.tiff_bytes(photo[:, :, 0], photometric="miniswhite"), "ok"),
        "tif/nodata-scene.tif": (geotiff(cc.masked_raster("uint16", 3)), "ok"),
    }


def run_corpus(src: Path, dst: Path, files: dict[str, tuple[bytes, str]], **config: object) -> dict[str, dict]:
    for key, (data, _) in files.items():
        (src / key).parent.mkdir(parents=True, exist_ok=True)
        (src / key).write_bytes(data)
    spec, shards = prepare_shards(job_config(src, dst, shard_size=1000, **config))
    ctx = ShardContext(spec)
    for shard in shards:
        commit(ctx, ctx.process_shard(shard))
    return {r["source_key"]: r for r in rows_of(dst)}


def test_content_attacks_end_as_kept_or_refused_rows(src: Path, dst: Path) -> None:
    files = corpus()
    rows = run_corpus(src, dst, files, codec="jpeg2000", quality=None, params={"psnr": 40.0})
    outcome = {k: (r["status"] if r["status"] == "ok" else reason(r)) for k, r in rows.items()}
    assert outcome == {k: expected for k, (_, expected) in files.items()}

    oriented = rows["jpeg/orientation-6.jpg"]
    assert (oriented["width"], oriented["height"]) == (64, 96) and oriented["orientation"] == 6
    assert oriented["content_actions"] == ["orientation_applied:6", "metadata_dropped:exif"]
    assert rows["tif/miniswhite.tif"]["content_actions"] == ["miniswhite_inverted"]
    assert rows["tif/miniswhite.tif"]["photometric"] == "miniswhite"
    scene = rows["tif/nodata-scene.tif"]
    # jpeg2000 in a GeoTIFF moved nodata: auto fell back to raw + lossless mask fix-up + PAM sidecar
    assert scene["container"] == "raw" and scene["dest_uri"].endswith(".jp2.rcmk")
    assert scene["georef"] == "sidecar" and scene["crs"] == "EPSG:32618"
    assert scene["geotransform"] == [500000.0, 30.0, 0.0, 4e6, 0.0, -30.0] and scene["nodata"] == 0
    sidecar = Path(scene["sidecar_uri"].removeprefix("file://"))
    assert sidecar.name.endswith(".jp2.rcmk.aux.xml") and b"EPSG:32618" in sidecar.read_bytes()
    for row in rows.values():
        if row["status"] == "ok":
            assert check_row(row) == ("ok", ""), row["source_key"]
    assert_audit_clean(src, dst)


def test_accept_warnings_and_first_frame_only_are_recorded(src: Path, dst: Path) -> None:
    files = {
        "truncated.jpg": (cc.truncated_jpeg(cc.jpeg_bytes(cc.photo(256, 256))), "ok"),
        "apng.png": (cc.apng_bytes([cc.photo(seed=1), cc.photo(seed=2), cc.photo(seed=3)]), "ok"),
    }
    rows = run_corpus(src, dst, files, first_frame_only=True, accept_warnings=True)
    assert all(r["status"] == "ok" for r in rows.values())
    assert "premature end" in rows["truncated.jpg"]["source_warnings"][0]
    assert rows["apng.png"]["content_actions"] == ["first_frame_of:3"] and rows["apng.png"]["source_frames"] == 3
    assert_audit_clean(src, dst)


def test_reconcile_sees_a_changed_mask_and_a_lost_profile(src: Path, dst: Path) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(cc.photo()).save(buf, "PNG", icc_profile=cc.wide_gamut_profile())
    files = {"scene.tif": (geotiff(cc.masked_raster("uint16", 2)), "ok"), "wide.png": (buf.getvalue(), "ok")}
    rows = run_corpus(src, dst, files, codec="png", quality=None)
    scene, wide = rows["scene.tif"], rows["wide.png"]
    assert scene["mask_sha256"] and check_row(scene) == ("ok", "")
    assert wide["icc"] == "carried" and check_row(wide) == ("ok", "")
    assert check_row({**scene, "mask_sha256": "0" * 64})[0] == "mask_changed"
    assert check_row({**wide, "icc_sha256": "0" * 64})[0] == "viewer_mismatch"
    Path(scene["sidecar_uri"].removeprefix("file://")).unlink()
    assert check_row(scene)[0] == "georef_missing"
    white = tifffile_miniswhite_copy(Path(scene["dest_uri"].removeprefix("file://")))
    assert check_row({**scene, "dest_bytes": len(white), "dest_sha256": hashlib.sha256(white).hexdigest()})[0] \
        == "viewer_mismatch"


def tifffile_miniswhite_copy(path: Path) -> bytes:
    """Rewrite an output in place as a MINISWHITE TIFF of the same samples (a viewer would invert it)."""
    from recodec.container import decode_output

    arr = decode_output(path.read_bytes())
    data = cc.tiff_bytes(arr, photometric="miniswhite", planarconfig="contig", extrasamples=(0,) * (arr.shape[2] - 1))
    path.write_bytes(data)
    return data


def test_geotiff_outputs_keep_georeferencing_and_internal_mask(src: Path, dst: Path) -> None:
    arr = cc.masked_raster("uint16", 3)
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tif:
        tif.write(arr, photometric="rgb", extratags=[(33550, 12, 3, (30.0, 30.0, 0.0), True),
                                                     (33922, 12, 6, (0.0, 0.0, 0.0, 5e5, 4e6, 0.0), True),
                                                     (34735, 3, len(GEOKEYS_UTM), GEOKEYS_UTM, True)],
                  metadata=None)
        tif.write(arr[:, :, 0] > 0, subfiletype=4, metadata=None)
    rows = run_corpus(src, dst, {"masked.tif": (buf.getvalue(), "ok")}, codec="lerc", quality=None,
                      params={"max_error": 10.0})
    row = rows["masked.tif"]
    assert row["status"] == "ok" and row["container"] == "geotiff" and row["georef"] == "geotiff"
    out = Path(row["dest_uri"].removeprefix("file://")).read_bytes()
    with tifffile.TiffFile(io.BytesIO(out)) as tif:
        assert 34735 in tif.pages.first.tags
        np.testing.assert_array_equal(tif.pages[1].asarray() != 0, arr[:, :, 0] > 0)
    assert check_row(row) == ("ok", "")
    assert hashlib.sha256(out).hexdigest() == row["dest_sha256"]
    assert_audit_clean(src, dst)
