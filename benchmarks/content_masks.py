"""What lossy codecs do to nodata and alpha, and what the lossless mask fix-up costs.

    PYTHONPATH=. python benchmarks/content_masks.py [SCENE.tif ...]

For each masked scene (default: the devset Landsat 7 RGB scene, nodata 0, the NAIP scene
with its 4th band taken as alpha, and a photo with a 0/255 disc alpha) and each lossy codec at
its default knob, it encodes the raw stream, counts the mask violations of the codec alone (nodata samples that became valid, valid
samples that took the nodata value, alpha samples that changed), then encodes through
:func:`recodec.imageio.encode_output` (which appends the fix-up when needed) and reports the
bytes the fix-up adds.  Prints a Markdown table; sizes are exact, no timings.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from recodec.codecs import get_codec
from recodec.container import decode_output, encode_output, mask_spec
from recodec.formats.source import read_image
from recodec.masks import mask_changes, nodata_samples

DEVSET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "devset"
CODECS = ("jpeg", "webp", "avif", "jxl", "jpeg2000", "htj2k", "lerc")


def _counts(src: np.ndarray, dec: np.ndarray, nodata: float | None, alpha: int | None) -> tuple[int, int, int]:
    lost = gained = moved = 0
    if nodata is not None:
        a, b = nodata_samples(src, nodata), nodata_samples(dec, nodata)
        lost, gained = int((a & ~b).sum()), int((~a & b).sum())
    if alpha is not None:
        moved = int((src[:, :, alpha] != dec[:, :, alpha]).sum())
    return lost, gained, moved


def scenes(paths: list[str]) -> list[tuple[str, object]]:
    """(name, Image) of the scenes to measure."""
    if paths:
        return [(Path(p).name, read_image(Path(p).read_bytes())) for p in paths]
    l7 = read_image((DEVSET / "l7_RGB.byte.tif").read_bytes())
    naip = read_image((DEVSET / "naip_m_4709963_se_14_1_20200831.tif").read_bytes())
    naip.alpha_band = 3  # stands in for an RGBA scene: its 4th band must come back exactly
    photo = read_image((DEVSET / "photo_chelsea.png").read_bytes())
    y, x = np.mgrid[0:photo.height, 0:photo.width]
    disc = (((y - photo.height / 2) ** 2 + (x - photo.width / 2) ** 2) < (photo.height / 2.2) ** 2) * 255
    photo.array = np.concatenate([photo.array, disc[:, :, None].astype(np.uint8)], axis=2)
    photo.alpha_band, photo.icc_profile = 3, None
    return [("l7_RGB.byte.tif (nodata 0)", l7), ("NAIP, band 4 as alpha (continuous tone)", naip),
            ("chelsea + disc alpha (0/255)", photo)]


def main(argv: list[str]) -> None:
    """Print the table."""
    print("| scene | codec | nodata -> valid | valid -> nodata | alpha changed | stream bytes | fix-up bytes "
          "| overhead |")
    print("|---|---|---|---|---|---|---|---|")
    for name, image in scenes(argv):
        for codec_name in CODECS:
            codec = get_codec(codec_name)
            if not codec.capabilities.supports(image.dtype, image.bands):
                continue
            raw = codec.encode(image.array)
            decoded = decode_output(raw, codec=codec)
            lost, gained, moved = _counts(image.array, decoded, image.nodata, image.alpha_band)
            data = encode_output(image, codec, {}, container="raw")
            assert mask_changes(image.array, decode_output(data, codec=codec), mask_spec(image)) is None
            extra = len(data) - len(raw)
            print(f"| {name} | {codec_name} | {lost:,} | {gained:,} | {moved:,} | {len(raw):,} | {extra:,} | "
                  f"{100 * extra / len(raw):.1f}% |")


if __name__ == "__main__":
    main(sys.argv[1:])
