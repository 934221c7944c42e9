"""Peak memory of one image through read, encode, decode and metrics, as a multiple of its raster.

    PYTHONPATH=. python benchmarks/memory_budget.py [SIZE]

The per-image memory budget (``--max-image-mb``) counts the decoded raster: width x height x
bands x bytes per sample.  This measures, in a fresh process per case, how far the process's
peak RSS grows above its level after imports while one SIZE x SIZE x 3 image goes through the
pipeline's steps, and prints the growth as a multiple of the raster (ratios, not timings).
"""

from __future__ import annotations

import subprocess
import sys

CASE = r'''
import io, os, resource, sys
import numpy as np, tifffile, torch
from recodec.container import decode_output, encode_output
from recodec.formats.source import read_image
from recodec.metrics import compute_metrics
torch.set_num_threads(1)
codec, dtype, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
top = 255 if dtype == "uint8" else 4095
ramp = (np.arange(size, dtype=np.uint32) * 7) % top
arr = np.empty((size, size, 3), dtype)
for k in range(3):
    arr[:, :, k] = (ramp[None, :] * (k + 1) + ramp[:, None]) % top
buf = io.BytesIO(); tifffile.imwrite(buf, arr, photometric="rgb", compression="zlib"); data = buf.getvalue()
raster = arr.nbytes
del arr
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
base = rss(); steps = []
im = read_image(data); steps.append(("read", rss()))
payload = encode_output(im, codec, {}, container="raw"); steps.append(("encode", rss()))
dec = decode_output(payload, codec=codec); steps.append(("decode", rss()))
compute_metrics(im.array, dec, bit_depth=im.bit_depth); steps.append(("metrics", rss()))
print(" | ".join([codec, dtype, f"{raster / 2**20:.0f}"] + [f"{(v - base) / raster:.1f}x" for _, v in steps]))
'''


def main(size: int) -> None:
    """Print one Markdown row per case."""
    print("| codec | dtype | raster MiB | after read | after encode | after decode | after metrics |")
    print("|---|---|---|---|---|---|---|")
    for codec, dtype in (("jpeg", "uint8"), ("jxl", "uint8"), ("jpeg2000", "uint16"), ("lerc", "uint16")):
        out = subprocess.run([sys.executable, "-c", CASE, codec, dtype, str(size)], capture_output=True, text=True,
                             check=True, env={"OMP_NUM_THREADS": "1", **__import__("os").environ})
        print(f"| {out.stdout.strip().splitlines()[-1]} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
