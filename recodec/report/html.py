"""Render the report dict as one self-contained HTML page (no external CSS, scripts or images)."""

from __future__ import annotations

from html import escape
from typing import Any

from recodec.report import plots

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{border:1px solid #ccc;border-radius:6px;padding:0.7em 1.2em}
.card b{display:block;font-size:1.6em}img{max-width:100%}.bad{color:#b00}.good{color:#070}"""


def fmt_bytes(n: float | None) -> str:
    """Bytes in decimal units (GB = 10^9, as storage is billed)."""
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.2f} {unit}"
        n /= 1000
    return str(n)


def fmt_usd(x: float) -> str:
    """Dollars: cents for real amounts, significant digits for the tiny ones of small archives."""
    return f"${x:,.2f}" if abs(x) >= 1 or x == 0 else f"${x:.3g}"


def _num(x: Any, spec: str = ",.3f") -> str:
    if x is None:
        return "-"
    return format(x, spec) if isinstance(x, float) else f"{x:,}" if isinstance(x, int) else escape(str(x))


def _table(rows: list[dict[str, Any]], cols: list[tuple[str, str]]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{escape(label)}</th>" for _, label in cols)
    body = []
    for r in rows:
        cells = []
        for key, _ in cols:
            v = r.get(key)
            cells.append(f"<td>{fmt_bytes(v) if key.endswith('bytes') else _num(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


_SAVING_COLS = [("name", "group"), ("images", "images"), ("ok", "ok"), ("failed", "failed"), ("skipped", "skipped"),
                ("source_bytes", "source"), ("output_bytes", "output (ok)"), ("saved_bytes", "saved"),
                ("ratio", "ratio")]


def _img(uri: str | None, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="{uri}">' if uri else f"<p>{escape(alt)}: no data</p>"


def render(r: dict[str, Any]) -> str:
    """The whole page."""
    t, c = r["totals"], r["cost"]
    cards = "".join(f'<div class="card" id="{k}">{escape(label)}<b>{v}</b></div>' for k, label, v in [
        ("total-source", "source bytes", fmt_bytes(t["source_bytes"])),
        ("total-output", "output bytes (ok)", fmt_bytes(t["output_bytes"])),
        ("total-saved", "saved bytes", fmt_bytes(t["saved_bytes"])),
        ("total-ratio", "ratio", _num(t["ratio"], ".2f") + "x"),
        ("total-cost", f"saved per month ({c['storage_class']})", fmt_usd(c["saved_usd_month"])),
        ("total-images", "images", f"{t['images']:,} ({t['ok']:,} ok, {t['failed']:,} failed)"),
    ])
    q = r["quality"]
    qual_rows = [dict(name=m, n=s["n"], min=s["min"], p05=s["p05"], p50=s["p50"], p95=s["p95"], max=s["max"])
                 for m, s in q.items()]
    rec = r["reconcile"]
    rec_ok = set(rec["verdicts"]) <= {"ok"}
    audit = r["audit"]
    audit_html = ("<p>not run (use <code>recodec report --audit</code>)</p>" if not audit.get("run") else
                  f'<p class="{"good" if audit["ok"] else "bad"}">' + ("clean" if audit["ok"] else ", ".join(
                      f"{escape(k)}: {v}" for k, v in audit["violations"].items())) + "</p>")
    cost_rows = [dict(name=k, price=p, saved=c["saved_usd_month_by_class"][k]) for k, p in sorted(c["prices"].items())]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>recodec savings: {escape(r['dst'])}</title>
<style>{_STYLE}</style></head><body>
<h1>Storage savings</h1><p>{escape(r['dst'])} &middot; generated {escape(r['generated_at'])} &middot;
newest row per source</p>
<div class="cards">{cards}</div>
<h2>Savings over time</h2>{_img(plots.savings_over_time(r['by_date']), 'savings over time')}
{_table(r['by_date'], [('day', 'run date'), ('images', 'images'), ('saved_bytes', 'saved'),
                       ('cumulative_saved_bytes', 'cumulative saved')])}
<h2>By codec</h2>{_table(r['by_codec'], _SAVING_COLS)}
<h2>By image class</h2>{_table(r['by_class'], _SAVING_COLS)}
<h2>By prefix (first {r['prefix_levels']} level(s))</h2>{_table(r['by_prefix'], _SAVING_COLS)}
<h2>Quality</h2>{_table(qual_rows, [('name', 'metric'), ('n', 'images'), ('min', 'min'), ('p05', 'p5'),
                                     ('p50', 'median'), ('p95', 'p95'), ('max', 'max')])}
{_img(plots.rd_scatter(r['rd_points']), 'bpp vs PSNR')}
{''.join(_img(plots.histogram(m, s), m + ' histogram') for m, s in q.items())}
<h2>Failures by reason</h2>{_table(r['failures'], [('status', 'status'), ('reason', 'reason'), ('n', 'images'),
                                                   ('example', 'example')])}
<h2>Reconcile</h2><p class="{'good' if rec_ok else 'bad'}">{escape(', '.join(
        f'{k}: {v}' for k, v in rec['verdicts'].items()) or 'no outputs')}; last check {escape(str(rec['last_check']))}</p>
<h2>Audit</h2>{audit_html}
<h2>Cost estimate</h2><p>Price table from the config (USD per GB-month, GB = 10<sup>9</sup> bytes);
defaults are documented in docs/operations.md and never fetched.</p>
{_table(cost_rows, [('name', 'storage class'), ('price', 'USD/GB-month'), ('saved', 'saved USD/month')])}
</body></html>"""
