"""The report's plots as PNG data URIs (matplotlib, Agg): savings over time, bpp vs PSNR, histograms."""

from __future__ import annotations

import base64
import io
from typing import Any


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _figure(width: float = 6.4, height: float = 3.4) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def savings_over_time(days: list[dict[str, Any]]) -> str | None:
    """Cumulative bytes saved by run date."""
    if not days:
        return None
    fig, ax = _figure()
    ax.step([d["day"] for d in days], [d["cumulative_saved_bytes"] / 1e9 for d in days], where="post", marker="o")
    ax.set_ylabel("saved (GB, cumulative)")
    ax.set_title("Savings over time")
    fig.autofmt_xdate()
    return _png(fig)


def rd_scatter(points: list[dict[str, Any]]) -> str | None:
    """bpp against PSNR, one colour per codec (a sample of rows)."""
    if not points:
        return None
    fig, ax = _figure()
    for codec in sorted({p["codec"] for p in points}):
        mine = [p for p in points if p["codec"] == codec]
        ax.scatter([p["bpp"] for p in mine], [p["psnr"] for p in mine], s=8, alpha=0.6, label=codec)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("Rate vs quality per codec")
    ax.legend(fontsize="small")
    return _png(fig)


def histogram(metric: str, stats: dict[str, Any]) -> str | None:
    """A quality histogram from DuckDB's bins."""
    hist = stats.get("histogram") or []
    if not hist:
        return None
    fig, ax = _figure(4.2, 2.8)
    ax.bar([h["lo"] for h in hist], [h["n"] for h in hist], width=[h["hi"] - h["lo"] for h in hist], align="edge")
    ax.set_xlabel(metric)
    ax.set_ylabel("images")
    ax.set_title(f"{metric} distribution")
    return _png(fig)
