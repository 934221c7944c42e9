"""Prefect flows: they only wire tasks together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import Flow

from recodec.flows.lifecycle import reap_prefect_server

reap_prefect_server()  # a killed driver never leaves its temporary Prefect server running


class RedactingFlow(Flow):  # type: ignore[type-arg]
    """A Prefect flow whose recorded parameters never contain storage credentials.

    Prefect stores every flow run's parameters in its API database (and shows them in its UI);
    storage options can hold S3 keys, so they are replaced by their redacted form there.  The
    run itself still receives the real values.
    """

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


def start_services(ray_address: str | None) -> None:
    """Start Prefect's local API (when no server is configured) and Ray at the same time.

    Without ``PREFECT_API_URL`` Prefect starts a temporary API server in a subprocess on the
    first flow call; importing and starting it takes as long as starting Ray, so the two are
    overlapped here: the server in a thread, Ray in the calling thread.  Both are the same
    singletons the flow then uses (nothing starts twice).
    """
    import threading

    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    from recodec.tasks.workers import ensure_ray

    thread = None
    if not PREFECT_API_URL.value() and PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        def serve() -> None:
            from prefect.server.api.server import SubprocessASGIServer

            SubprocessASGIServer().start()

        thread = threading.Thread(target=serve, name="recodec-prefect-start", daemon=True)
        thread.start()
    ensure_ray(ray_address)
    if thread is not None:
        thread.join()
