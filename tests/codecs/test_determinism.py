"""Every built-in codec writes identical bytes across processes, runs and heap states.

Two fresh interpreters encode the same inputs with every codec (raw and GeoTIFF container), in
opposite orders and after different allocations, so that any dependence on uninitialised memory
(LERC's bit stuffer left the last bytes of each band blob to chance) shows as differing hashes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r'''
import hashlib, json, sys
import numpy as np
from recodec.codecs.registry import get_codec
from recodec.container import encode_output, tiff_layout
from recodec.formats.image import Image

reverse, junk = sys.argv[1] == "1", int(sys.argv[2])
keep = [bytearray(np.random.default_rng(junk).integers(1, 255, 300_000 + 97 * i, dtype=np.uint8).tobytes())
        for i in range(junk)]
del keep[::2]
rng = np.random.default_rng(0)
y, x = np.mgrid[0:200, 0:232]
def raster(dtype, bands):
    top = 255 if dtype == "uint8" else 4095
    base = np.stack([(x * (3 + b) + y * 5) % top for b in range(bands)], -1) + rng.normal(0, top / 30, (200, 232, bands))
    return np.clip(base, 0, top).astype(dtype)
images = {f"{d}x{b}": raster(d, b) for d, b in [("uint8", 3), ("uint8", 4), ("uint16", 1), ("uint16", 5)]}
out = {}
names = ["jpeg", "webp", "avif", "jxl", "jpeg2000", "htj2k", "lerc", "png", "zstd-tiff", "factorized", "hyperprior"]
for name in (reversed(names) if reverse else names):
    codec = get_codec(name)
    if not codec.available():
        continue
    for key, arr in images.items():
        if not codec.capabilities.supports(arr.dtype, arr.shape[2]):
            continue
        image = Image(arr, "TIFF", bit_depth=arr.dtype.itemsize * 8)
        for container in ("raw", "geotiff"):
            if container == "geotiff" and tiff_layout(codec, image) is None:
                continue
            data = encode_output(image, codec, {}, container=container, any_tiff_compression=True)
            out[f"{name}/{key}/{container}"] = hashlib.sha256(data).hexdigest()
print(json.dumps(out))
'''


def _hashes(reverse: bool, junk: int) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, "1" if reverse else "0", str(junk)], env=env,
                          capture_output=True, text=True, timeout=600, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_every_builtin_codec_is_byte_identical_across_processes() -> None:
    first, second = _hashes(False, 0), _hashes(True, 7)
    assert first.keys() == second.keys() and len(first) > 20
    assert any(k.startswith("lerc/") for k in first)
    differ = sorted(k for k in first if first[k] != second[k])
    assert not differ
