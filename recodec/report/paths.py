"""Where the scheduled job writes its report under DST (recodec's state folder, so audit ignores it)."""

from __future__ import annotations

from typing import Any

from recodec.layout import report_path
from recodec.storage import full_url, url_to_fs


def default_report_path(dst: str, storage_options: dict[str, Any] | None = None) -> str:
    """``DST/_recodec/report/report.html`` as a URL fsspec can open."""
    fs, root = url_to_fs(dst, storage_options)
    return full_url(fs, report_path(root))
