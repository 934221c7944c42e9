"""Parquet manifests and reconcile verdicts: schemas, atomic part commits, readers, DuckDB.

Where the parts live under DST is :mod:`recodec.layout`'s business (see docs/manifest.md).

A part is written to ``staging`` and becomes visible only when it is *committed*
(moved to its final name), following Ray Data's Datasink protocol:
``start -> write -> commit``, and ``cleanup`` on failure.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from recodec.layout import new_staging_path, parts_dir
from recodec.storage import atomic_write, full_url, move_if_absent, url_to_fs
from recodec.vocabulary import METRICS

#: 2 added timings, peak rule, content, georef, task_* columns and ``dest_key``; 3 the generative
#: decoder columns and the reconcile ``check`` (docs/manifest.md).
SCHEMA_VERSION = 3

MANIFEST_SCHEMA = pa.schema(
    [
        ("schema_version", pa.int16()),
        ("run_id", pa.string()),
        ("job_key", pa.string()),
        ("shard_id", pa.int64()),
        ("source_uri", pa.string()),
        ("source_key", pa.string()),
        ("source_bytes", pa.int64()),
        ("source_etag", pa.string()),
        ("source_format", pa.string()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("bands", pa.int64()),
        ("dtype", pa.string()),
        ("bit_depth", pa.int64()),
        ("codec", pa.string()),
        ("codec_params", pa.string()),
        ("codec_version", pa.string()),
        ("container", pa.string()),
        ("target", pa.string()),
        ("max_error_bound", pa.float64()),
        ("max_error_relative", pa.float64()),
        ("attempts", pa.int64()),
        ("search", pa.string()),
        ("dest_uri", pa.string()),
        ("dest_key", pa.string()),
        ("dest_bytes", pa.int64()),
        ("dest_sha256", pa.string()),
        *[(m.name, pa.list_(pa.float64()) if m.per_band else pa.float64()) for m in METRICS],
        ("metric_peak_rule", pa.string()),
        ("task_model_sha256", pa.string()),
        ("encode_seconds", pa.float64()),
        ("decode_seconds", pa.float64()),
        ("read_seconds", pa.float64()),
        ("metrics_seconds", pa.float64()),
        ("hash_seconds", pa.float64()),
        ("write_seconds", pa.float64()),
        ("decoded_sha256", pa.string()),
        # generative decoders (docs/generative.md): null/false for an exact decoder
        ("generative", pa.bool_()),
        ("decoder", pa.string()),
        ("plain_psnr", pa.float64()),
        # content kept or changed on purpose (docs/manifest.md#content)
        ("source_frames", pa.int64()),
        ("orientation", pa.int16()),
        ("photometric", pa.string()),
        ("content_actions", pa.list_(pa.string())),
        ("icc", pa.string()),
        ("icc_sha256", pa.string()),
        ("nodata", pa.float64()),
        ("alpha_band", pa.int64()),
        ("mask_sha256", pa.string()),
        ("crs", pa.string()),
        ("geotransform", pa.list_(pa.float64())),
        ("georef", pa.string()),
        ("sidecar_uri", pa.string()),
        ("sidecar_sha256", pa.string()),
        ("source_warnings", pa.list_(pa.string())),
        ("device", pa.string()),
        ("worker", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)

RECONCILE_SCHEMA = pa.schema(
    [
        ("schema_version", pa.int16()),
        ("check_id", pa.string()),
        ("run_id", pa.string()),
        ("job_key", pa.string()),
        ("shard_id", pa.int64()),
        ("source_uri", pa.string()),
        ("dest_uri", pa.string()),
        ("verdict", pa.string()),
        ("check", pa.string()),
        ("detail", pa.string()),
        ("encoder_worker", pa.string()),
        ("worker", pa.string()),
        ("checked_at", pa.timestamp("us", tz="UTC")),
    ]
)

STATUSES = ("ok", "failed", "skipped")
VERDICTS = ("ok", "missing", "size_mismatch", "sha256_mismatch", "decode_failed", "pixels_mismatch",
            "target_not_met", "mask_changed", "viewer_mismatch", "georef_missing",
            "task_model_error", "output_collision", "metrics_mismatch")


def to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows (dicts) to a table of exactly ``schema``; missing keys become nulls."""
    cols = {name: [row.get(name) for row in rows] for name in schema.names}
    return pa.Table.from_pydict(cols, schema=schema)


def table_bytes(table: pa.Table) -> bytes:
    """Serialise a table as one Parquet file in memory (zstd)."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


class PartSink:
    """Write Parquet parts under DST so that readers only ever see committed, complete parts.

    ``start()`` returns a staging path; ``write()`` puts the whole part there in one atomic
    write; ``commit()`` moves it to its final name; ``cleanup()`` removes the staging object
    after a failure.  A crash between write and commit leaves only a staging object, which no
    reader globs, and the next run re-does the shard.
    """

    def __init__(self, dst_url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.fs, self.root = url_to_fs(dst_url, storage_options)

    def start(self) -> str:
        """Reserve a unique staging path."""
        return new_staging_path(self.root)

    def write(self, staging: str, table: pa.Table) -> None:
        """Write the complete part to its staging path."""
        atomic_write(self.fs, staging, table_bytes(table))

    def commit(self, staging: str, final: str) -> bool:
        """Make a staged part visible under its final name unless one is there (commit-if-absent).

        Returns False, and removes the staged part, when another run committed ``final`` first:
        the first committed part of a shard is never replaced.
        """
        if move_if_absent(self.fs, staging, final):
            return True
        self.cleanup(staging)
        return False

    def cleanup(self, staging: str) -> None:
        """Remove a staging object left by a failed write (missing is fine)."""
        try:
            self.fs.rm_file(staging)
        except FileNotFoundError:
            pass

    def write_part(self, table: pa.Table, final: str) -> bool:
        """start -> write -> commit (if absent), with cleanup on failure; False if already committed."""
        staging = self.start()
        try:
            self.write(staging, table)
            return self.commit(staging, final)
        except BaseException:
            self.cleanup(staging)
            raise


def _committed_parts(fs: Any, base: str) -> list[str]:
    if not fs.exists(base):
        return []
    return sorted(p for p in fs.find(base) if p.endswith(".parquet"))


def _read_part(fs: Any, path: str, schema: pa.Schema) -> pa.Table:
    with fs.open(path, "rb") as fh:
        table = pq.read_table(fh)
    # Older schema versions only ever add columns, so missing ones are filled with nulls.
    for name in schema.names:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, schema.field(name).type))
    return table.select(schema.names).cast(schema)


def read_parts(dst_url: str, kind: str, schema: pa.Schema,
               storage_options: dict[str, Any] | None = None, *,
               unreadable: list[str] | None = None) -> pa.Table:
    """Every committed row of ``kind`` ("manifest" or "reconcile") as one Arrow table.

    With ``unreadable``, a part that is not a readable Parquet file is skipped and its path and
    error appended there (reconcile reports it); without, the error is raised.
    """
    fs, root = url_to_fs(dst_url, storage_options)
    tables = []
    for path in _committed_parts(fs, parts_dir(root, kind)):
        try:
            tables.append(_read_part(fs, path, schema))
        except Exception as exc:
            if unreadable is None:
                raise
            unreadable.append(f"{full_url(fs, path)}: {type(exc).__name__}: {exc}")
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables, promote_options="default")


def read_manifest(dst_url: str, storage_options: dict[str, Any] | None = None, *,
                  unreadable: list[str] | None = None) -> pa.Table:
    """All committed manifest rows under DST (unreadable parts: see :func:`read_parts`)."""
    return read_parts(dst_url, "manifest", MANIFEST_SCHEMA, storage_options, unreadable=unreadable)


def read_verdicts(dst_url: str, storage_options: dict[str, Any] | None = None) -> pa.Table:
    """All committed reconcile verdicts under DST."""
    return read_parts(dst_url, "reconcile", RECONCILE_SCHEMA, storage_options)


def newest_per(table: pa.Table, key: str, where: str = "TRUE") -> pa.Table:
    """The newest row (by ``created_at``) per value of ``key`` among rows matching ``where``."""
    if table.num_rows == 0:
        return table
    import duckdb

    con = duckdb.connect()
    con.register("m", table)
    return con.sql(f"SELECT * FROM m WHERE {where} {_newest(key)} ORDER BY {key}").to_arrow_table()


def _newest(key: str) -> str:
    return f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY created_at DESC) = 1"


def connect(dst_url: str, storage_options: dict[str, Any] | None = None, *,
            external_access: bool = False, unreadable: list[str] | None = None) -> Any:
    """A DuckDB connection with views ``manifest``, ``latest`` and ``reconcile`` over DST.

    Parts are read through fsspec and pyarrow (DuckDB's own httpfs would need a network
    download of the extension), then exposed to DuckDB as Arrow tables.  Once the views exist,
    SQL loses file and network access (``read_csv('/etc/passwd')``, ``COPY ... TO``, ``ATTACH``,
    ``INSTALL``) and the setting is locked, unless ``external_access`` is True.  With an
    ``unreadable`` list, damaged parts are left out and named there instead of raising.
    """
    import duckdb

    con = duckdb.connect()
    manifest = read_manifest(dst_url, storage_options, unreadable=unreadable)
    con.register("_manifest", manifest)
    con.register("_reconcile", read_verdicts(dst_url, storage_options))
    con.sql("CREATE VIEW manifest AS SELECT * FROM _manifest")
    con.sql("CREATE VIEW reconcile AS SELECT * FROM _reconcile")
    # latest: what the archive looks like after the last run of each job, one row per source.
    con.sql(f"CREATE VIEW latest AS SELECT * FROM _manifest {_newest('source_uri')}")
    if not external_access:
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")  # the SQL cannot turn it back on
    return con


def iter_batches(table: pa.Table, size: int) -> Iterable[pa.Table]:
    """Slice a table into consecutive batches of at most ``size`` rows."""
    for start in range(0, table.num_rows, size):
        yield table.slice(start, size)
