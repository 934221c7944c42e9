"""Known third-party log noise that says nothing to a recodec user, filtered at its source.

* tifffile warns ``parsing GDAL_NODATA tag raised ...`` on every page whose nodata text does not
  fit the sample type; recodec parses GDAL_NODATA itself (``imageio``) and records it, so the
  warning is noise.  Only that message is dropped; every other tifffile warning still shows.
* Ray warns on every local start that token authentication is on by default (with how to
  turn it off).  recodec keeps Ray's default, token authentication on, so that one message is
  dropped; Ray's warning that authentication is *off* still shows.
"""

from __future__ import annotations

import logging


class _DropMessages(logging.Filter):
    """Drop records whose message contains one of ``needles``."""

    def __init__(self, *needles: str) -> None:
        super().__init__()
        self.needles = needles

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(n in message for n in self.needles)


def install() -> None:
    """Install the filters (idempotent)."""
    for name, needle in (("tifffile", "GDAL_NODATA"),
                         ("ray._private.authentication.authentication_token_setup",
                          "Token authentication is enabled for this Ray cluster")):
        log = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in log.filters):
            log.addFilter(_DropMessages(needle))
