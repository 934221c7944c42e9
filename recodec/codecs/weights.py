"""Shipped weights of the learned codecs: pinned, loaded safely, and found again by SHA-256.

Every learned stream (``hyperprior``, ``factorized``, ``rnn``, and the generative views of
the hyperprior's stream) names the SHA-256 of the weights that coded it, and decoding needs
exactly those weights.  A release that ships new weights must still decode the archives that
older releases wrote, so a decoder that meets a stream from other weights looks for them::

    stream header: weights sha256 = S
        |
        +-- the shipped file (pinned in pins.json)        sha == S ?  -> decode
        +-- <weights dir>/retired/*.pt                    sha == S ?  -> decode
        +-- every folder in $RECODEC_WEIGHTS_PATH (*.pt)  sha == S ?  -> decode
        +-- none: DecodeError naming S and where to put the file

``retired/`` holds the weights of earlier releases that the project ships on purpose; an
operator who upgraded can instead keep the old release's weights files in a folder of
``RECODEC_WEIGHTS_PATH``.  A file found this way is trusted only because its SHA-256 equals the
one the stream names, and it is loaded with ``torch.load(weights_only=True)`` like the shipped one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, TypeVar

from recodec.digest import sha256_file
from recodec.errors import CodecError, DecodeError

#: Folders (os.pathsep-separated) searched for weights files that older streams need.
WEIGHTS_PATH_ENV = "RECODEC_WEIGHTS_PATH"
#: Subfolder of a codec's weights folder holding the weights of earlier releases.
RETIRED = "retired"

R = TypeVar("R")

#: SHA-256 of files already hashed, by (path, size, mtime): a search hashes each file once.
_HASHES: dict[tuple[str, int, int], str] = {}


def pinned_sha256(weights: Path, owner: str = "weights") -> str:
    """The SHA-256 pinned for ``weights`` in the ``pins.json`` beside it (``owner`` names it in errors)."""
    pins_path = weights.parent / "pins.json"
    try:
        pins = json.loads(pins_path.read_text())
        return str(pins[weights.name])
    except (OSError, KeyError, ValueError) as exc:
        raise CodecError(f"{owner}: no SHA-256 pin for {weights.name} in {pins_path}") from exc


def write_pinned(state: dict[str, Any], out: Path, fname: str) -> dict[str, Any]:
    """Save ``state`` as ``out/fname`` and record its SHA-256 in ``out/pins.json``: file, path, bytes, sha256."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    torch.save(state, out / fname)
    digest = sha256_file(out / fname)
    pins_path = out / "pins.json"
    pins = json.loads(pins_path.read_text()) if pins_path.exists() else {}
    pins[fname] = digest
    pins_path.write_text(json.dumps(pins, indent=2, sort_keys=True) + "\n")
    return {"file": fname, "path": str(out / fname), "bytes": (out / fname).stat().st_size, "sha256": digest}


def load_pinned(weights: Path, owner: str, *, expected: str | None = None) -> tuple[dict[str, Any], str]:
    """(state, SHA-256 hex) of a weights file that matches its pin (or ``expected``), loaded with
    ``torch.load(weights_only=True)`` (no code runs from the file).  ``owner`` names the codec in errors."""
    import torch

    if not weights.is_file():
        raise CodecError(f"{owner}: weights file {weights} is missing")
    expected = expected or pinned_sha256(weights, owner)
    actual = file_sha256(weights)
    if actual != expected:
        raise CodecError(f"{owner}: {weights.name} has SHA-256 {actual}, pinned {expected}")
    return torch.load(weights, map_location="cpu", weights_only=True), actual


def file_sha256(path: Path) -> str:
    """SHA-256 of ``path``, hashed once per (path, size, modification time)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = sha256_file(path)
    return _HASHES[key]


def search_path(shipped_dir: Path) -> list[Path]:
    """Folders searched for weights by SHA-256: the shipped folder, its ``retired/``, then the env's."""
    extra = [Path(p) for p in os.environ.get(WEIGHTS_PATH_ENV, "").split(os.pathsep) if p]
    return [shipped_dir, shipped_dir / RETIRED, *extra]


def find_weights(sha256_hex: str, shipped_dir: Path, owner: str) -> Path:
    """The ``*.pt`` file whose SHA-256 is ``sha256_hex``, on :func:`search_path`; DecodeError when none is."""
    for folder in search_path(shipped_dir):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.pt")):
            if file_sha256(path) == sha256_hex:
                return path
    raise DecodeError(
        f"{owner}: the stream was coded with weights sha256:{sha256_hex}, which this installation does "
        f"not have; put that weights file (from the recodec release that wrote the stream) in a folder "
        f"named in {WEIGHTS_PATH_ENV}")


def runtime_for(current: R, sha256: bytes, shipped_dir: Path, owner: str,
                load: Callable[[Path, str], R]) -> R:
    """``current`` (a runtime with a ``sha256`` attribute) when it is what the stream names, else
    ``load(path, sha256_hex)`` of the file :func:`find_weights` finds."""
    if sha256 == getattr(current, "sha256"):
        return current
    return load(find_weights(sha256.hex(), shipped_dir, owner), sha256.hex())


__all__ = ["RETIRED", "WEIGHTS_PATH_ENV", "file_sha256", "find_weights", "load_pinned", "pinned_sha256",
           "runtime_for", "search_path", "write_pinned"]
