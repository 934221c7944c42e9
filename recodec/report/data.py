"""The report's numbers: DuckDB aggregates over the manifest and verdict parts (never all rows in Python).

Local DSTs are scanned by DuckDB's own Parquet reader; other stores are read part by part with
only the report's columns (pyarrow over fsspec), so memory is one projected part at a time plus
DuckDB's own (which spills to disk).
"""

from __future__ import annotations

from typing import Any

import pyarrow.parquet as pq

from recodec.layout import parts_dir
from recodec.manifest import MANIFEST_SCHEMA, RECONCILE_SCHEMA
from recodec.storage import protocol_of, url_to_fs

COLUMNS = ["run_id", "job_key", "source_uri", "source_key", "source_bytes", "dtype", "bands", "bit_depth",
           "width", "height", "codec", "container", "dest_uri", "dest_bytes", "bpp", "psnr", "ssim",
           "max_abs_error", "status", "error", "created_at"]
VERDICT_COLUMNS = ["check_id", "run_id", "job_key", "dest_uri", "verdict", "checked_at"]

IMAGE_CLASS = """CASE
    WHEN dtype = 'uint8' AND bands IN (3, 4) THEN '8-bit RGB'
    WHEN dtype = 'uint8' AND bands = 1 THEN '8-bit single'
    WHEN dtype IN ('uint16', 'int16') AND bands = 1 THEN '16-bit single'
    WHEN dtype IN ('uint16', 'int16') AND bands > 1 THEN '16-bit multiband'
    WHEN dtype IS NULL THEN 'unread'
    ELSE concat(dtype, ' x', bands) END"""


def _parts(fs: Any, base: str) -> list[str]:
    return sorted(p for p in fs.find(base) if p.endswith(".parquet")) if fs.exists(base) else []


def _load(con: Any, name: str, fs: Any, paths: list[str], columns: list[str], schema: Any) -> None:
    types = ", ".join(f"{c} {_duck_type(schema.field(c).type)}" for c in columns)
    con.execute(f"CREATE TABLE {name} ({types})")
    if not paths:
        return
    if protocol_of(fs) == "file":
        files = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
        con.execute(f"INSERT INTO {name} SELECT {', '.join(columns)} FROM "
                    f"read_parquet([{files}], union_by_name = true)")
        return
    for path in paths:
        with fs.open(path, "rb") as fh:
            part = pq.read_table(fh, columns=[c for c in columns if c in pq.read_schema(fh).names])  # noqa: F841
        con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM part")


def _duck_type(t: Any) -> str:
    import pyarrow as pa

    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_integer(t):
        return "BIGINT"
    return "VARCHAR"


def connect_report(dst: str, storage_options: dict[str, Any] | None = None) -> Any:
    """DuckDB with tables ``latest`` (newest row per source, report columns) and ``verdicts``."""
    import duckdb

    fs, root = url_to_fs(dst, storage_options)
    con = duckdb.connect()
    con.execute("SET threads = 2")
    _load(con, "rows", fs, _parts(fs, parts_dir(root, "manifest")), COLUMNS, MANIFEST_SCHEMA)
    _load(con, "verdicts", fs, _parts(fs, parts_dir(root, "reconcile")), VERDICT_COLUMNS, RECONCILE_SCHEMA)
    # Materialised once: every aggregate reads it, and the window over all rows is the costly part.
    con.execute("CREATE TABLE latest AS SELECT * FROM rows "
                "QUALIFY row_number() OVER (PARTITION BY source_uri ORDER BY created_at DESC) = 1")
    con.execute("DROP TABLE rows")
    return con


def _records(con: Any, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


_SAVINGS = """count(*) AS images,
    count(*) FILTER (status = 'ok') AS ok,
    count(*) FILTER (status = 'failed') AS failed,
    count(*) FILTER (status = 'skipped') AS skipped,
    coalesce(sum(source_bytes), 0) AS source_bytes,
    coalesce(sum(CASE WHEN status = 'ok' THEN dest_bytes ELSE source_bytes END), 0) AS stored_bytes,
    coalesce(sum(source_bytes - dest_bytes) FILTER (status = 'ok'), 0) AS saved_bytes,
    coalesce(sum(source_bytes) FILTER (status = 'ok'), 0) AS ok_source_bytes,
    coalesce(sum(dest_bytes) FILTER (status = 'ok'), 0) AS output_bytes"""


def totals(con: Any) -> dict[str, Any]:
    """Archive totals over the newest row of each source; ratio is over the ok rows."""
    out = _records(con, f"SELECT {_SAVINGS} FROM latest")[0]
    out["ratio"] = out["ok_source_bytes"] / out["output_bytes"] if out["output_bytes"] else None
    return out


def breakdown(con: Any, expr: str, *, order: str = "saved_bytes DESC", limit: int = 50) -> list[dict[str, Any]]:
    """Savings grouped by a SQL expression over ``latest``."""
    rows = _records(con, f"SELECT {expr} AS name, {_SAVINGS} FROM latest GROUP BY ALL ORDER BY {order} LIMIT {limit}")
    for r in rows:
        r["ratio"] = r["ok_source_bytes"] / r["output_bytes"] if r["output_bytes"] else None
    return rows


def prefix_expr(levels: int) -> str:
    """SQL for the first ``levels`` folders of a source key ('.' for files at the top)."""
    return (f"coalesce(nullif(array_to_string(list_slice(string_split(source_key, '/'), 1, "
            f"least({levels}, len(string_split(source_key, '/')) - 1)), '/'), ''), '.')")


def savings_over_time(con: Any) -> list[dict[str, Any]]:
    """Per run date: images and bytes saved by the rows written that day that are still current."""
    return _records(con, """
        WITH d AS (SELECT CAST(created_at AS DATE) AS day, count(*) AS images,
                          coalesce(sum(source_bytes - dest_bytes) FILTER (status = 'ok'), 0) AS saved_bytes
                   FROM latest GROUP BY ALL)
        SELECT day, images, saved_bytes, sum(saved_bytes) OVER (ORDER BY day) AS cumulative_saved_bytes
        FROM d ORDER BY day""")


def quality(con: Any, bins: int = 30) -> dict[str, Any]:
    """Percentiles and histograms of PSNR, SSIM and max error over ok rows (finite values)."""
    out: dict[str, Any] = {}
    for metric in ("psnr", "ssim", "max_abs_error"):
        where = f"status = 'ok' AND {metric} IS NOT NULL AND isfinite({metric})"
        stats = _records(con, f"""SELECT count(*) AS n, min({metric}) AS min, max({metric}) AS max,
            quantile_cont({metric}, [0.05, 0.5, 0.95]) AS q FROM latest WHERE {where}""")[0]
        hist: list[dict[str, Any]] = []
        if stats["n"]:
            lo, hi = stats["min"], stats["max"]
            width = (hi - lo) / bins if hi > lo else 1.0
            hist = _records(con, f"""SELECT least(floor(({metric} - $lo) / $w), {bins - 1}) AS bin, count(*) AS n
                FROM latest WHERE {where} GROUP BY ALL ORDER BY bin""".replace("$lo", "?").replace("$w", "?"),
                            [lo, width])
            for h in hist:
                h["lo"] = lo + h["bin"] * width
                h["hi"] = h["lo"] + width
        q = stats.pop("q") or [None, None, None]
        stats.update(p05=q[0], p50=q[1], p95=q[2], histogram=hist)
        out[metric] = stats
    return out


def rd_sample(con: Any, n: int = 4000) -> list[dict[str, Any]]:
    """A reproducible sample of (codec, bpp, psnr) points for the rate-distortion scatter."""
    return _records(con, f"""SELECT codec, bpp, psnr FROM latest
        WHERE status = 'ok' AND bpp IS NOT NULL AND psnr IS NOT NULL AND isfinite(psnr)
        USING SAMPLE reservoir({n} ROWS) REPEATABLE (7)""")


def failures(con: Any) -> list[dict[str, Any]]:
    """Failed and skipped rows of the current archive, by reason code."""
    return _records(con, """SELECT status, trim(split_part(error, ':', 1)) AS reason, count(*) AS n,
        any_value(source_key) AS example FROM latest WHERE status <> 'ok' GROUP BY ALL ORDER BY n DESC""")


def reconcile_status(con: Any) -> dict[str, Any]:
    """Verdicts of the newest check of each current output, and outputs never checked."""
    by = _records(con, """
        WITH v AS (SELECT * FROM verdicts
                   QUALIFY row_number() OVER (PARTITION BY dest_uri, run_id, job_key ORDER BY checked_at DESC) = 1)
        SELECT coalesce(v.verdict, 'not_checked') AS verdict, count(*) AS n
        FROM latest l LEFT JOIN v ON v.dest_uri = l.dest_uri AND v.run_id = l.run_id AND v.job_key = l.job_key
        WHERE l.dest_uri IS NOT NULL GROUP BY ALL ORDER BY n DESC""")
    last = con.execute("SELECT max(checked_at) FROM verdicts").fetchone()[0]
    return {"verdicts": {r["verdict"]: r["n"] for r in by}, "last_check": last}
