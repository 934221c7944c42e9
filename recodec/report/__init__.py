"""The savings report: ``recodec report DST`` as JSON and as one self-contained HTML page.

::

    DST/_recodec/{manifest,reconcile} --DuckDB aggregates--> build_report() -> dict (JSON)
                                                                  |
                                   plots.py (matplotlib, PNG data URIs) + html.py -> one .html file
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from recodec.report import data
from recodec.report.prices import monthly_cost, price_table


def build_report(dst: str, *, prefix_levels: int = 1, report_config: dict[str, Any] | None = None,
                 audit_src: str | None = None, run_audit: bool = False,
                 storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every number of the report, JSON-able, computed by DuckDB over DST's manifest and verdicts."""
    prices, storage_class = price_table(report_config)
    con = data.connect_report(dst, storage_options)
    totals = data.totals(con)
    price = prices[storage_class]
    cost = {
        "storage_class": storage_class, "usd_per_gb_month": price, "prices": prices,
        "before_usd_month": monthly_cost(totals["source_bytes"], price),
        "after_usd_month": monthly_cost(totals["stored_bytes"], price),
        "saved_usd_month": monthly_cost(totals["saved_bytes"], price),
        "saved_usd_month_by_class": {c: monthly_cost(totals["saved_bytes"], p) for c, p in sorted(prices.items())},
    }
    out: dict[str, Any] = {
        "dst": dst, "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "totals": totals, "cost": cost,
        "by_codec": data.breakdown(con, "coalesce(codec, '-')"),
        "by_prefix": data.breakdown(con, data.prefix_expr(prefix_levels)),
        "by_class": data.breakdown(con, data.IMAGE_CLASS),
        "by_date": data.savings_over_time(con),
        "quality": data.quality(con),
        "failures": data.failures(con),
        "reconcile": data.reconcile_status(con),
        "audit": _audit(audit_src, dst, storage_options) if run_audit else {"run": False},
        "rd_points": data.rd_sample(con),
        "prefix_levels": prefix_levels,
    }
    con.close()
    return out


def _audit(src: str | None, dst: str, storage_options: dict[str, Any] | None) -> dict[str, Any]:
    from collections import Counter

    from recodec.tasks.audit import audit

    report = audit(src, dst, storage_options)
    return {"run": True, "ok": report.ok, "violations": dict(Counter(v["kind"] for v in report.violations)),
            "info": report.info}


def write_json(report: dict[str, Any], path: str, storage_options: dict[str, Any] | None = None) -> None:
    """The report as JSON (the RD sample points left out)."""
    import json

    import fsspec

    slim = {k: v for k, v in report.items() if k != "rd_points"}
    with fsspec.open(path, "w", **(storage_options or {})) as fh:
        json.dump(slim, fh, indent=2, default=str)


def write_html(report: dict[str, Any], path: str, storage_options: dict[str, Any] | None = None) -> None:
    """The report as one self-contained HTML file (plots embedded as PNG data URIs)."""
    import fsspec

    from recodec.report.html import render

    with fsspec.open(path, "w", encoding="utf-8", **(storage_options or {})) as fh:
        fh.write(render(report))
