"""Texture-energy side information: how much detail the original had, so the GAN decoder adds as much.

A generator that guesses the *amount* of texture from the MSE decode alone misses by a factor of
about 3.5 per patch, whatever it is conditioned on (docs/generative.md, "Would the hyperprior's
scales help?"): at 0.1 bpp the stream does not say whether a smooth decode was cloud or dense
fields.  So the encoder measures it and sends it, as AV1 sends film-grain parameters (Norkin &
Birkbeck 2018) and HEVC its film-grain SEI: a few bytes per block that steer synthesis, never the
pixels of the MSE decode.

Per ``BLOCK`` x ``BLOCK`` block, the encoder codes the mean squared luma band-pass of the original
in each band of :mod:`recodec.hfenergy` (fine, mid, coarse) as one byte of log2 energy in
1/``STEP`` octave steps.  The decoder splits the generator's residual ``v - x_mse`` into the same
bands and scales each band by a gain ``alpha_k`` in [0, ``MAX_GAIN``] so that the block's band
energies reach the target ``E_mse^(1 - realism) * E_coded^realism`` (the realism dial's own
target, ``training.band_target``)::

    encoder:  original -> luma -> DoG bands -> mean energy per block and band -> log2 bytes
    decoder:  x_mse, v = G(x_mse, noise, realism, rate)
              r = v - x_mse = sum_k r_k + r_low                       (DoG bands of each channel)
              alpha = solve E_k(x_mse + sum_k alpha_k r_k) = target_k  (per block, scalars)
              x = x_mse + sum_k A_k r_k + r_low   (A_k: alpha_k interpolated between block centres)

Where the generator added nothing in a band, no gain can invent it; where the MSE decode already
has more energy than the target, the gain stops at 0.  The generator still decides *where*
texture goes; the side information only says how much.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Iterator

import numpy as np

from recodec.errors import ConfigError, DecodeError
from recodec.hfenergy import BAND_NAMES, dog_bands, luma, rgb_tensor

#: Block edge (px) of the coded energies.
BLOCK = 256
#: Context (px) around a block when filtering it: the band of a band reaches 2 x 12 px.
MARGIN = 32
#: Code steps per octave of energy: a code is off by at most 2^(1/16) - 1 = 4.4 %.
STEP = 8
#: log2 of the energy of code 0 (energies below it are coded as 0).
FLOOR = -16.0
#: Largest gain on a band of the generator's residual.
MAX_GAIN = 4.0
VERSION = 1
_HEAD = struct.Struct(">BB")  # version, BLOCK // 64
_BANDS = len(BAND_NAMES)
_PAD = "replicate"  # works on blocks of any size (reflect needs more pixels than the kernel radius)


def grid(height: int, width: int, block: int = BLOCK) -> tuple[int, int]:
    """(rows, columns) of blocks over an image."""
    return math.ceil(height / block), math.ceil(width / block)


def _blocks(height: int, width: int, block: int) -> Iterator[tuple[int, int, slice, slice, slice, slice]]:
    """Per block, row-major: (row, col, rows and cols of the block with context, the block inside that)."""
    for i, top in enumerate(range(0, height, block)):
        for j, left in enumerate(range(0, width, block)):
            t0, l0 = max(0, top - MARGIN), max(0, left - MARGIN)
            t1, l1 = min(height, top + block + MARGIN), min(width, left + block + MARGIN)
            bh, bw = min(block, height - top), min(block, width - left)
            yield (i, j, slice(t0, t1), slice(l0, l1),
                   slice(top - t0, top - t0 + bh), slice(left - l0, left - l0 + bw))


def block_energies(rgb: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """(rows, cols, bands) mean squared luma band-pass per block of (H, W, 3) RGB on the 0-255 scale."""
    return _energies(rgb_tensor(rgb), block)


def _energies(img: Any, block: int) -> np.ndarray:
    """:func:`block_energies` of a (1, 3, H, W) tensor on the 0-255 scale."""
    h, w = img.shape[2:]
    out = np.zeros((*grid(h, w, block), _BANDS))
    for i, j, rs, cs, ri, ci in _blocks(h, w, block):
        bands, _ = dog_bands(luma(img[..., rs, cs]), _PAD)
        out[i, j] = [float((b[..., ri, ci].double() ** 2).mean()) for b in bands]
    return out


def encode_hint(rgb: np.ndarray, block: int = BLOCK) -> bytes:
    """The side information of (H, W, 3) uint8 RGB: version, block size, one byte per block and band."""
    if block % 64 or not 64 <= block <= 255 * 64:
        raise ConfigError(f"texture hint: block must be a multiple of 64 up to {255 * 64}, got {block}")
    energies = block_energies(rgb, block)
    logs = np.log2(np.maximum(energies, 2.0 ** FLOOR))
    codes = np.clip(np.round((logs - FLOOR) * STEP), 0, 255).astype(np.uint8)
    return _HEAD.pack(VERSION, block // 64) + codes.tobytes()


def decode_hint(payload: bytes, height: int, width: int) -> tuple[int, np.ndarray]:
    """(block size, (rows, cols, bands) energies) of a hint for an image of ``height`` x ``width``."""
    if len(payload) < _HEAD.size:
        raise DecodeError("texture hint: truncated")
    version, units = _HEAD.unpack_from(payload)
    if version != VERSION or units == 0:
        raise DecodeError(f"texture hint: unsupported version {version} or block size {units * 64}")
    block = units * 64
    rows, cols = grid(height, width, block)
    codes = np.frombuffer(payload, dtype=np.uint8, offset=_HEAD.size)
    if codes.size != rows * cols * _BANDS:
        raise DecodeError(f"texture hint: {codes.size} codes for a {rows}x{cols} grid of {_BANDS} bands")
    return block, 2.0 ** (codes.reshape(rows, cols, _BANDS).astype(np.float64) / STEP + FLOOR)


def solve_gains(c: np.ndarray, d: np.ndarray, g: np.ndarray, target: np.ndarray, sweeps: int = 40) -> np.ndarray:
    """Gains ``alpha`` in [0, MAX_GAIN] with ``E_j(alpha) = target_j`` where they can reach it.

    ``E_j(alpha) = c_j + 2 sum_k alpha_k d[j, k] + sum_kl alpha_k alpha_l g[j, k, l]`` (energies
    already divided by the pixel count).  Gauss-Seidel: each band's own gain solves its quadratic
    with the others fixed; where the target is out of reach it takes the nearest energy.
    """
    alpha = np.ones(len(c))
    for _ in range(sweeps):
        for k in range(len(c)):
            others = alpha.copy()
            others[k] = 0.0
            a2 = g[k, k, k]
            if a2 <= 1e-12:
                continue  # the generator added nothing in this band: no gain can help
            b = d[k, k] + others @ g[k, k]
            const = c[k] + 2 * others @ d[k] + others @ g[k] @ others - target[k]
            disc = b * b - a2 * const
            x = (-b + math.sqrt(disc)) / a2 if disc >= 0 else -b / a2
            alpha[k] = min(max(x, 0.0), MAX_GAIN)
    return alpha


def _block_terms(m: Any, r: Any, ri: slice, ci: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(c, d, g) of :func:`solve_gains` for one block: ``m`` MSE decode and ``r`` residual with context."""
    import torch

    rk, low = dog_bands(luma(r), _PAD)
    a, _ = dog_bands(luma(m) + low, _PAD)  # what the gains leave alone: the MSE decode and the residual's rest
    nested = [dog_bands(x, _PAD)[0] for x in rk]  # nested[k][j]: band j of residual band k
    a = torch.stack([x[..., ri, ci].flatten() for x in a])                      # (j, n)
    bjk = torch.stack([torch.stack([nested[k][j][..., ri, ci].flatten() for k in range(_BANDS)])
                       for j in range(_BANDS)])                                   # (j, k, n)
    n = a.shape[1]
    a, bjk = a.double(), bjk.double()  # sums over a block in float64: the filtering itself is float32
    return ((a * a).sum(1).numpy() / n, torch.einsum("jn,jkn->jk", a, bjk).numpy() / n,
            torch.einsum("jkn,jln->jkl", bjk, bjk).numpy() / n)


def _gain_maps(gains: np.ndarray, block: int, size: tuple[int, int], rows: slice, cols: slice) -> Any:
    """(1, bands, h, w) gains at the pixels ``rows`` x ``cols`` of an image of ``size``, bilinear
    between block centres (a partial edge block's centre is the middle of its pixels)."""
    import torch

    def weights(idx: slice, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        starts = np.arange(0, length, block)
        centres = (starts + np.minimum(starts + block, length)) / 2
        pos = np.interp(np.arange(idx.start, idx.stop) + 0.5, centres, np.arange(len(centres)))
        lo = np.floor(pos).astype(int)
        return lo, np.minimum(lo + 1, len(centres) - 1), pos - lo

    r0, r1, fr = weights(rows, size[0])
    c0, c1, fc = weights(cols, size[1])
    top = gains[r0][:, c0] * (1 - fc)[None, :, None] + gains[r0][:, c1] * fc[None, :, None]
    bottom = gains[r1][:, c0] * (1 - fc)[None, :, None] + gains[r1][:, c1] * fc[None, :, None]
    maps = top * (1 - fr)[:, None, None] + bottom * fr[:, None, None]
    return torch.from_numpy(np.ascontiguousarray(maps.transpose(2, 0, 1)))[None]


def _apply(m: Any, r: Any, gains: np.ndarray, block: int) -> Any:
    """``m + sum_k A_k r_k + r_low`` on the 0-255 scale, rounded and clamped as the decoder returns it."""
    out = m.clone()
    h, w = m.shape[2:]
    for _, _, rs, cs, ri, ci in _blocks(h, w, block):
        bands, low = dog_bands(r[..., rs, cs], _PAD)
        rows = slice(rs.start + ri.start, rs.start + ri.stop)
        cols = slice(cs.start + ci.start, cs.start + ci.stop)
        maps = _gain_maps(gains, block, (h, w), rows, cols)
        out[..., rows, cols] += low[..., ri, ci] + sum(maps[:, k:k + 1] * bands[k][..., ri, ci] for k in range(_BANDS))
    return out.clamp(0, 255).round()


def calibrate(x_mse: Any, view: Any, hint: tuple[int, np.ndarray], *, realism: float, passes: int = 3) -> Any:
    """``view`` (the generator's output for ``x_mse``, both (1, 3, H, W) in [0, 1]) with the band
    gains that bring each block to the coded texture energy at ``realism``; float32 on ``view``'s device.

    Clamping to the pixel range removes texture in dark and saturated areas, so after the first
    solve each further pass raises the blocks' targets by what clamping took (``passes`` in all).
    """
    block, coded = hint
    h, w = x_mse.shape[2:]
    m, r = x_mse.float().cpu() * 255.0, (view.float().cpu() - x_mse.float().cpu()) * 255.0
    terms = {(i, j): _block_terms(m[..., rs, cs], r[..., rs, cs], ri, ci) for i, j, rs, cs, ri, ci in _blocks(h, w, block)}
    target = np.zeros(coded.shape)
    for (i, j), (c, _, _) in terms.items():
        target[i, j] = np.maximum(c, 1e-12) ** (1 - realism) * np.maximum(coded[i, j], 1e-12) ** realism
    aim = target.copy()
    # Each pass filters the residual's blocks again rather than keeping their bands: kept, they
    # would cost about 75 bytes per pixel for the whole image.
    for step in range(passes):
        gains = np.stack([np.stack([solve_gains(*terms[i, j], aim[i, j]) for j in range(coded.shape[1])])
                          for i in range(coded.shape[0])])
        out = _apply(m, r, gains, block)
        if step + 1 < passes:
            reached = _energies(out.double(), block)
            aim = aim * np.clip(target / np.maximum(reached, 1e-12), 0.25, 4.0)
    return (out / 255.0).float().to(view.device)
