"""Live progress of a run: a terminal bar, periodic plain lines in logs, a final summary with reasons.

One :class:`RunProgress` per compress step.  The driver calls :meth:`RunProgress.shard` when a
shard is committed (or lost) and :meth:`RunProgress.resumed` for shards done by an earlier run.

* On a terminal (stderr is a TTY, not inside a Prefect flow run): a ``rich`` progress bar with
  images done/total, images/s, bytes saved so far, failures so far and the ETA.
* Otherwise (logs, cron, Prefect workers): one plain line every ``interval_s`` seconds and at the
  end, to the given sink (stderr, or the Prefect run logger under Prefect).
* :meth:`RunProgress.summary_lines` names every failure reason with its count and an example.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from recodec.errors import reason_of

Sink = Callable[[str], None]


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def in_prefect_run() -> bool:
    """Whether this code runs inside a Prefect flow or task run."""
    try:
        from prefect.context import FlowRunContext, TaskRunContext

        return FlowRunContext.get() is not None or TaskRunContext.get() is not None
    except Exception:
        return False


def default_sink() -> Sink:
    """Where plain progress lines go: the Prefect run logger in a run, else stderr."""
    if in_prefect_run():
        try:
            from prefect.logging import get_run_logger

            logger = get_run_logger()
            return logger.info
        except Exception:
            pass
    return lambda line: print(line, file=sys.stderr, flush=True)


class RunProgress:
    """Counts of one compress step, shown as a bar or as periodic lines."""

    def __init__(self, total: int, *, sink: Sink | None = None, interval_s: float = 30.0,
                 bar: bool | None = None) -> None:
        self.total = total
        self.done = self.resumed_images = self.ok = self.failed = self.skipped = 0
        self.saved_bytes = 0
        self.reasons: Counter[str] = Counter()
        self.examples: dict[str, str] = {}
        self.sink = sink or default_sink()
        self.interval_s = interval_s
        self.t0 = self._last = time.monotonic()
        use_bar = bar if bar is not None else (sys.stderr.isatty() and not in_prefect_run()
                                               and not os.environ.get("RECODEC_NO_BAR"))
        self._bar = self._start_bar() if use_bar else None

    def _start_bar(self) -> Any:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("[bold]recodec"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("{task.fields[rate]} img/s  saved {task.fields[saved]}  "
                                  "failed {task.fields[failed]}"),
                       TimeRemainingColumn(), transient=False)
        bar.start()
        self._task = bar.add_task("images", total=self.total, rate="-", saved="0 B", failed=0)
        return bar

    @property
    def rate(self) -> float:
        """Images per second processed by this run (resumed shards excluded)."""
        elapsed = time.monotonic() - self.t0
        return (self.done - self.resumed_images) / elapsed if elapsed > 0 else 0.0

    def eta_s(self) -> float | None:
        """Seconds left at the current rate."""
        return (self.total - self.done) / self.rate if self.rate > 0 else None

    def resumed(self, images: int) -> None:
        """Images of a shard committed by an earlier run."""
        self.done += images
        self.resumed_images += images
        self._show()

    def shard(self, *, ok: int = 0, failed: int = 0, skipped: int = 0, saved_bytes: int = 0,
              errors: list[str] | None = None) -> None:
        """Counts of one finished shard; ``errors`` are ``"key: reason: message"`` lines."""
        self.ok, self.failed, self.skipped = self.ok + ok, self.failed + failed, self.skipped + skipped
        self.done += ok + failed + skipped
        self.saved_bytes += saved_bytes
        for line in errors or []:
            key, _, error = line.partition(": ")
            reason = reason_of(error) or "unknown"
            self.reasons[reason] += 1
            self.examples.setdefault(reason, key)
        self._show()

    def line(self) -> str:
        """One plain progress line."""
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return (f"[recodec] images {self.done}/{self.total} ({pct:.0f}%), {self.rate:.2f} img/s, "
                f"saved {_fmt_bytes(self.saved_bytes)}, failed {self.failed}, ETA {_fmt_eta(self.eta_s())}")

    def _show(self, force: bool = False) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, rate=f"{self.rate:.2f}",
                             saved=_fmt_bytes(self.saved_bytes), failed=self.failed)
            return
        now = time.monotonic()
        if force or now - self._last >= self.interval_s:
            self._last = now
            self.sink(self.line())

    def close(self) -> None:
        """Stop the bar (or print the last line) and print the final summary."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        else:
            self._show(force=True)
        for line in self.summary_lines():
            self.sink(line)

    def summary_lines(self) -> list[str]:
        """The final summary: totals and every failure reason with its count and one example."""
        elapsed = time.monotonic() - self.t0
        lines = [f"[recodec] done: {self.done - self.resumed_images} images this run in {elapsed:.1f}s "
                 f"({self.ok} ok, {self.failed} failed, {self.skipped} skipped; {self.resumed_images} resumed), "
                 f"saved {_fmt_bytes(self.saved_bytes)}"]
        for reason, n in self.reasons.most_common():
            lines.append(f"[recodec]   failed {n} x {reason} (e.g. {self.examples[reason]})")
        return lines

    def as_dict(self) -> dict[str, Any]:
        """Counts for the run summary and the Prefect artifact."""
        return {"failure_reasons": dict(self.reasons.most_common()), "failure_examples": dict(self.examples),
                "images_per_second": round(self.rate, 3)}


def summary_markdown(summary: dict[str, Any], report_url: str | None = None) -> str:
    """A run summary as a Markdown table (the Prefect artifact), failure reasons included."""
    rows = [("images", summary.get("images")), ("ok", summary.get("ok")), ("failed", summary.get("failed")),
            ("skipped", summary.get("skipped")), ("this run", summary.get("images_this_run")),
            ("bytes before (ok)", summary.get("bytes_before")), ("bytes after (ok)", summary.get("bytes_after")),
            ("ratio", None if summary.get("ratio") is None else f"{summary['ratio']:.2f}x"),
            ("images/s", summary.get("images_per_second"))]
    delta = summary.get("delta") or {}
    if delta:
        rows += [(f"delta {k}", delta.get(k)) for k in ("new", "changed", "retry", "disappeared")]
    lines = [f"## recodec run `{summary.get('run_id')}`", "", f"job `{summary.get('job_key')}`, codec "
             f"`{summary.get('codec')}` -> `{summary.get('dst')}`", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {'-' if v is None else v} |" for k, v in rows]
    reasons = summary.get("failure_reasons") or {}
    if reasons:
        lines += ["", "| failure reason | images | example |", "|---|---|---|"]
        lines += [f"| {r} | {n} | `{summary['failure_examples'][r]}` |" for r, n in reasons.items()]
    if report_url:
        lines += ["", f"[Savings report]({report_url})"]
    return "\n".join(lines)
