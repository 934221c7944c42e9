"""The sidecar of a task model: what the model is and how pixels become its input.

``model.pt`` is described by ``model.pt.json`` (or ``model.pt.yaml`` / ``.yml``)::

    {"kind": "segmentation",        # classification | segmentation | dense
     "bands": [0, 1, 2, 3],         # 0-based source bands fed to the model, in this order
     "scale": 0.00392156862745098,  # input = pixel * scale + offset (float32, NCHW);
     "offset": 0.0,                 #   a number, or one per band
     "tile": 256, "overlap": 16}    # model input tiles (0 = the whole image); neighbouring
                                    #   tiles share `overlap` pixels, each keeps its centre

Optional keys: ``name``, ``description``, ``classes`` (names, in logit order),
``batch_size`` (tiles per forward pass, default 16) and ``sha256`` (the model file
must hash to it).  Unknown keys are refused, so a typo is an error, not a default.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recodec.errors import ConfigError

KINDS = ("classification", "segmentation", "dense")
SIDECAR_SUFFIXES = (".json", ".yaml", ".yml")
_REQUIRED = ("kind", "bands", "scale", "offset", "tile", "overlap")
_OPTIONAL = ("name", "description", "classes", "batch_size", "sha256")


@dataclass(frozen=True)
class TaskSpec:
    """A validated sidecar."""

    kind: str
    bands: tuple[int, ...]
    scale: tuple[float, ...]
    offset: tuple[float, ...]
    tile: int
    overlap: int
    batch_size: int = 16
    name: str = ""
    classes: tuple[str, ...] = ()
    sha256: str | None = None

    @property
    def per_pixel(self) -> bool:
        """True for segmentation and dense models (outputs per pixel, stitched across tiles)."""
        return self.kind != "classification"


def sidecar_path(model_path: str | Path) -> Path:
    """The sidecar next to ``model_path``; exactly one of .json, .yaml, .yml must exist."""
    found = [Path(f"{model_path}{s}") for s in SIDECAR_SUFFIXES if Path(f"{model_path}{s}").is_file()]
    if not found:
        raise ConfigError(f"task model {model_path}: no sidecar {model_path}.json (or .yaml) describing it")
    if len(found) > 1:
        raise ConfigError(f"task model {model_path}: several sidecars ({', '.join(p.name for p in found)}); keep one")
    return found[0]


def load_spec(model_path: str | Path) -> TaskSpec:
    """Read and validate the sidecar of ``model_path``."""
    path = sidecar_path(model_path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:
        raise ConfigError(f"task model sidecar {path}: not valid {path.suffix[1:].upper()}: {exc}") from None
    return parse_spec(data, where=str(path))


def parse_spec(data: Any, *, where: str = "sidecar") -> TaskSpec:
    """Validate a sidecar mapping; every error names the field and what it should be."""
    def bad(msg: str) -> ConfigError:
        return ConfigError(f"task model sidecar {where}: {msg}")

    if not isinstance(data, dict):
        raise bad("expected a mapping with keys " + ", ".join(_REQUIRED))
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise bad(f"missing {', '.join(missing)}")
    unknown = sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise bad(f"unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(_REQUIRED + _OPTIONAL)}")
    kind = data["kind"]
    if kind not in KINDS:
        raise bad(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    bands = data["bands"]
    if not isinstance(bands, list) or not bands or not all(_is_int(b) and b >= 0 for b in bands):
        raise bad(f"bands must be a non-empty list of 0-based band indices, not {bands!r}")
    scale = _per_band(data["scale"], len(bands), "scale", bad)
    offset = _per_band(data["offset"], len(bands), "offset", bad)
    if any(s == 0 for s in scale):
        raise bad("scale must not be 0 (the model would see a constant)")
    tile, overlap = data["tile"], data["overlap"]
    if not _is_int(tile) or tile < 0:
        raise bad(f"tile must be an integer >= 0 (0 = whole image), not {tile!r}")
    if not _is_int(overlap) or overlap < 0 or (tile and overlap >= tile) or (not tile and overlap):
        raise bad(f"overlap must be an integer >= 0, below tile, and 0 when tile is 0; got {overlap!r}")
    batch = data.get("batch_size", 16)
    if not _is_int(batch) or batch < 1:
        raise bad(f"batch_size must be an integer >= 1, not {batch!r}")
    classes = data.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise bad("classes must be a list of names")
    digest = data.get("sha256")
    if digest is not None and (not isinstance(digest, str) or len(digest) != 64):
        raise bad("sha256 must be 64 hex digits")
    return TaskSpec(kind, tuple(int(b) for b in bands), scale, offset, int(tile), int(overlap), int(batch),
                    str(data.get("name", "")), tuple(classes), digest.lower() if digest else None)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _per_band(value: Any, n: int, field: str, bad: Any) -> tuple[float, ...]:
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise bad(f"{field} must be a finite number or a list of them, not {value!r}")
    if len(values) not in (1, n):
        raise bad(f"{field} has {len(values)} values for {n} bands")
    return tuple(float(v) for v in (values * n if len(values) == 1 else values))
