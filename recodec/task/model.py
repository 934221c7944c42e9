"""Load a user's TorchScript task model safely and run it, tiled and batched, on one image.

Safety: a TorchScript file is code.  :func:`read_model` accepts only a local file the
user named, refuses one inside SRC or DST (the archive being processed must never
supply code), checks the sidecar's ``sha256`` when it gives one, and returns the bytes:
actors load those bytes (:meth:`TaskModel.from_ref`), never a path of their own.

Dataflow of :meth:`TaskModel.predict`::

    (H, W, S) pixels --bands, * scale + offset--> (C, H, W) float32
        --tiles (tile, overlap; edge-padded when the image is smaller)--> batches (N, C, t, t)
        --model on the actor's device--> logits / values, shape-checked
        classification: argmax per tile            -> (T,) class per tile
        segmentation:   argmax per pixel, stitched -> (H, W) class map
        dense:          values, stitched           -> (C', H, W) float32

Stitching keeps, of each tile, the part nearer its centre than its neighbours' (the
middle of each shared ``overlap``), so tile borders never decide a pixel.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from recodec.errors import ConfigError, TaskModelError
from recodec.task.metrics import TaskMetrics, compare
from recodec.task.spec import TaskSpec, load_spec, sidecar_path


@dataclass(frozen=True)
class TaskModelRef:
    """A task model read by the driver: its bytes, hash and sidecar (picklable, sent to actors)."""

    path: str
    sha256: str
    data: bytes
    spec: TaskSpec


def _local_path(url: str) -> str | None:
    """The local path of ``url``, or None for a remote (object store) URL."""
    if url.startswith("file://"):
        return url[len("file://"):]
    return None if "://" in url else url


def check_model_path(model_path: str, archives: Sequence[str]) -> Path:
    """``model_path`` as a resolved local file, refusing URLs and anything inside an archive root."""
    if _local_path(model_path) is None or model_path.startswith("file://"):
        raise ConfigError(f"--task-model must be a local file path, not the URL {model_path!r}: "
                          "a TorchScript model is code and is loaded only from a file you name")
    path = Path(model_path).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"--task-model {model_path}: no such file")
    for root in archives:
        local = _local_path(root)
        if local is None:
            continue
        base = Path(local).expanduser().resolve()
        for candidate in (path, sidecar_path(path).resolve()):
            if candidate == base or base in candidate.parents:
                raise ConfigError(f"--task-model {model_path}: {candidate} lies inside {root}; a model (code) "
                                  "is never loaded from the archive being processed")
    return path


def read_model(model_path: str, archives: Sequence[str] = ()) -> TaskModelRef:
    """Check the path (see :func:`check_model_path`), read model and sidecar, verify any pinned hash."""
    path = check_model_path(model_path, archives)
    spec = load_spec(path)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if spec.sha256 and spec.sha256 != digest:
        raise ConfigError(f"--task-model {model_path}: SHA-256 {digest} does not match the sidecar's {spec.sha256}")
    return TaskModelRef(str(path), digest, data, spec)


def tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int, int]]:
    """``(start, keep_from, keep_to)`` of each tile along one axis (image coordinates).

    Tiles start every ``tile - overlap`` pixels, the last one flush with the end; each
    keeps the pixels up to the middle of the overlap with its neighbours.  One tile at 0
    when ``tile`` is 0 or not smaller than ``length`` (the caller pads it).
    """
    if tile == 0 or length <= tile:
        return [(0, 0, length)]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride)) + [length - tile]
    bounds = [0] + [(b + a + tile) // 2 for a, b in zip(starts, starts[1:])] + [length]
    return [(s, bounds[i], bounds[i + 1]) for i, s in enumerate(starts)]


class TaskModel:
    """A loaded task model with its sidecar, on one device."""

    def __init__(self, module: Any, spec: TaskSpec, *, device: str = "cpu", sha256: str = "") -> None:
        self.module, self.spec, self.device, self.sha256 = module, spec, device, sha256

    @classmethod
    def from_ref(cls, ref: TaskModelRef, device: str = "cpu") -> "TaskModel":
        """Load the TorchScript bytes the driver read (once per actor)."""
        import torch

        try:
            module = torch.jit.load(io.BytesIO(ref.data), map_location=device)
        except Exception as exc:
            raise TaskModelError(f"{os.path.basename(ref.path)} is not a loadable TorchScript file: "
                                 f"{type(exc).__name__}: {exc}") from exc
        module.eval()
        return cls(module, ref.spec, device=device, sha256=ref.sha256)

    def model_input(self, array: np.ndarray) -> np.ndarray:
        """(C, H, W) float32 model input of an (H, W, S) image, per the sidecar."""
        spec = self.spec
        if max(spec.bands) >= array.shape[2]:
            raise TaskModelError(f"the model reads band {max(spec.bands)} but the image has {array.shape[2]} band(s)")
        x = array[:, :, list(spec.bands)].astype(np.float32)
        x = x * np.asarray(spec.scale, np.float32) + np.asarray(spec.offset, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def predict(self, array: np.ndarray) -> np.ndarray:
        """The model's answer on an (H, W, S) image (see the module docstring for shapes)."""
        x = self.model_input(array)
        _, h, w = x.shape
        spec = self.spec
        rows, cols = tile_spans(h, spec.tile, spec.overlap), tile_spans(w, spec.tile, spec.overlap)
        th, tw = (max(h, spec.tile), max(w, spec.tile)) if spec.tile else (h, w)
        if (th, tw) != (h, w):
            x = np.pad(x, ((0, 0), (0, th - h), (0, tw - w)), mode="edge")
        th, tw = (spec.tile, spec.tile) if spec.tile else (h, w)
        tiles = [(r, c) for r in rows for c in cols]
        out: np.ndarray | None = None
        for first in range(0, len(tiles), spec.batch_size):
            chunk = tiles[first:first + spec.batch_size]
            batch = np.stack([x[:, r[0]:r[0] + th, c[0]:c[0] + tw] for r, c in chunk])
            result = self._forward(batch)
            if spec.kind == "classification":
                out = result if out is None else np.concatenate([out, result])
                continue
            if out is None:
                shape = (h, w) if spec.kind == "segmentation" else (result.shape[1], h, w)
                out = np.zeros(shape, result.dtype)
            for (r, c), res in zip(chunk, result):
                (r0, r1, r2), (c0, c1, c2) = r, c
                out[..., r1:r2, c1:c2] = res[..., r1 - r0:r2 - r0, c1 - c0:c2 - c0]
        assert out is not None
        return out

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """One forward pass; checks the output's shape and values, reduces logits to classes."""
        import torch

        n, _, hh, ww = batch.shape
        try:
            with torch.inference_mode():
                y = self.module(torch.from_numpy(batch).to(self.device))
        except Exception as exc:
            raise TaskModelError(f"the model failed on a {tuple(batch.shape)} input: "
                                 f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
                                 ) from exc
        want = {"classification": "(N, K)", "segmentation": f"(N, K, {hh}, {ww})",
                "dense": f"(N, C, {hh}, {ww})"}[self.spec.kind]
        if not isinstance(y, torch.Tensor) or not y.is_floating_point():
            raise TaskModelError(f"a {self.spec.kind} model must return a float tensor {want}, "
                                 f"got {type(y).__name__} {getattr(y, 'dtype', '')}")
        shape = tuple(y.shape)
        ok = (len(shape) == 2 and shape[0] == n) if self.spec.kind == "classification" else (
            len(shape) == 4 and shape[0] == n and shape[2:] == (hh, ww))
        if not ok or shape[1] < 1:
            raise TaskModelError(f"a {self.spec.kind} model must return {want} for N={n}, got {shape}")
        if not bool(torch.isfinite(y).all()):
            raise TaskModelError("the model returned NaN or infinite values")
        if self.spec.kind == "dense":
            return y.float().cpu().numpy()
        return y.argmax(1).to(torch.int32).cpu().numpy()

    def compare(self, reference: np.ndarray, decoded: np.ndarray, mask: np.ndarray | None = None) -> TaskMetrics:
        """Task metrics of the decoded image against the original's prediction ``reference``."""
        return compare(self.spec.kind, reference, self.predict(decoded), mask)

    def judge(self, original: np.ndarray, nodata: float | None = None) -> Callable[[np.ndarray], dict[str, Any]]:
        """Predict ``original`` once; the returned function gives the task columns of a decoded image."""
        from recodec.metrics import valid_mask

        reference = self.predict(original)
        mask = valid_mask(original, nodata) if self.spec.per_pixel else None

        def measure(decoded: np.ndarray) -> dict[str, Any]:
            return {**self.compare(reference, decoded, mask).as_dict(), "task_model_sha256": self.sha256}

        return measure



def prepare_task_model(model_path: str | None, target: Any, archives: Sequence[str]) -> TaskModelRef | None:
    """Driver-side checks of ``--task-model`` against the job's target; the model read once, trial-loaded.

    ``target`` is a :class:`recodec.target.Target` or None.  A task bound without a model,
    or one the model's kind does not produce (``task_miou`` of a classifier), is a ConfigError.
    """
    from recodec.task.metrics import KIND_METRICS

    bounds = list(target.task_bounds) if target is not None else []
    if model_path is None:
        if bounds:
            raise ConfigError(f"target bound {bounds[0]} needs --task-model (a TorchScript file and its sidecar)")
        return None
    ref = read_model(model_path, archives)
    for bound in bounds:
        if bound.metric not in KIND_METRICS[ref.spec.kind]:
            raise ConfigError(f"target bound {bound}: a {ref.spec.kind} model gives only "
                              f"{', '.join(KIND_METRICS[ref.spec.kind])}")
    try:
        TaskModel.from_ref(ref, "cpu")
    except TaskModelError as exc:
        raise ConfigError(f"--task-model {model_path}: {exc}") from None
    return ref
