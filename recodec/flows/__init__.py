"""Prefect flows: they only wire tasks together.

Importing this package does not import Prefect (about 1 s): ``recodec run`` starts Prefect's
temporary API (:mod:`recodec.flows.lifecycle`) before it imports Prefect itself.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """``RedactingFlow`` and ``redacting_flow``, from :mod:`recodec.flows.redacting` on first use."""
    if name in {"RedactingFlow", "redacting_flow"}:
        from recodec.flows import redacting

        return getattr(redacting, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
