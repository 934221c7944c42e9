"""``recodec decode --decoder gan|diffusion`` and ``--enhance``: the generative view of a stored file.

The stored bytes are never changed; the view is marked as generated twice: the command says so,
and the PNG carries a ``tEXt`` chunk ``recodec:decoder`` naming decoder, settings, seed, weights
and device class (a viewer's "properties" shows it).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np

from recodec.errors import ConfigError

#: The tEXt keyword that marks a generated view.
PNG_KEY = b"recodec:decoder"


def generative_codec(data: bytes, decoder: str, settings: dict[str, Any]) -> Any:
    """The generative codec (configured with ``settings``) that views ``data``'s stream with ``decoder``."""
    from recodec.codecs.generative.codecs import DECODERS
    from recodec.codecs.registry import detect_codec, get_codec
    from recodec.errors import DecodeError

    plain = detect_codec(data)
    if plain is None:
        raise DecodeError("no registered codec recognises this stream")
    name = DECODERS.get((plain.name, decoder))
    if name is None:
        known = ", ".join(f"--{'enhance' if d == 'enhance' else 'decoder ' + d} for {c}" for c, d in DECODERS)
        raise ConfigError(f"no {decoder} decoder for {plain.name} streams ({known})")
    codec = get_codec(name)
    given = {k: v for k, v in settings.items() if v is not None}
    unknown = sorted(set(given) - set(codec.decode_params))
    if unknown:
        raise ConfigError(f"{name} takes {', '.join(codec.decode_params)} at decode time, not {', '.join(unknown)}")
    return codec.decoder_for(codec.resolve_params(given))


def decode_view(data: bytes, decoder: str, **settings: Any) -> tuple[np.ndarray, str]:
    """(generated view, its label) of ``data`` with ``decoder`` ("gan", "diffusion" or "enhance")."""
    from recodec.container import decode_output

    codec = generative_codec(data, decoder, settings)
    return decode_output(data, codec=codec), codec.label() + codec.texture_note(data)


def mark_png(png: bytes, label: str) -> bytes:
    """``png`` with a ``tEXt`` chunk ``recodec:decoder = label`` right after IHDR."""
    chunk = PNG_KEY + b"\0" + label.encode("latin-1", "replace")
    packed = struct.pack(">I", len(chunk)) + b"tEXt" + chunk + struct.pack(">I", zlib.crc32(b"tEXt" + chunk))
    ihdr_end = 8 + 4 + 4 + 13 + 4
    return png[:ihdr_end] + packed + png[ihdr_end:]
