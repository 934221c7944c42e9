"""The flows' base class: a Prefect flow that never records storage credentials."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import Flow

from recodec.flows.lifecycle import reap_prefect_server


class RedactingFlow(Flow):  # type: ignore[type-arg]
    """A Prefect flow whose recorded parameters never contain storage credentials.

    Prefect stores every flow run's parameters in its API database (and shows them in its UI);
    storage options can hold S3 keys, so they are replaced by their redacted form there.  The
    run itself still receives the real values.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the flow; a temporary Prefect server it starts gets a reaper (a killed driver leaves none)."""
        from prefect.settings import PREFECT_API_URL

        if not PREFECT_API_URL.value():  # only then does Prefect start (and import) its server
            reap_prefect_server()
        return super().__call__(*args, **kwargs)

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Prefect's serialisation, with every ``storage_options`` mapping redacted."""
        from recodec.storage import redact

        def scrub(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: redact(v) if k == "storage_options" and isinstance(v, dict) else scrub(v)
                        for k, v in value.items()}
            if isinstance(value, list):
                return [scrub(v) for v in value]
            return value

        return scrub(super().serialize_parameters(parameters))


def redacting_flow(name: str) -> Callable[[Callable[..., Any]], RedactingFlow]:
    """Decorator: like ``@flow(name=...)`` but with :class:`RedactingFlow`."""

    def wrap(fn: Callable[..., Any]) -> RedactingFlow:
        return RedactingFlow(fn=fn, name=name, log_prints=False, validate_parameters=False)

    return wrap
