"""The ``recodec`` command line: each command parses its arguments and makes one call."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from recodec.errors import RecodecError


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


def _storage_options(config_file: str | None) -> dict[str, Any]:
    if not config_file:
        return {}
    from recodec.config import load_config_file

    return load_config_file(config_file).get("storage_options", {})


def _fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


def _fmt(x: Any, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def print_summary(s: dict[str, Any]) -> None:
    """Print a run summary in a few human-readable lines."""
    click.echo(f"run {s['run_id']}  job {s['job_key']}  codec {s['codec']}  -> {s['dst']}")
    click.echo(f"images: {s['images']}  ok {s['ok']}  failed {s['failed']}  skipped {s['skipped']}"
               f"   (shards {s['shards']}, resumed {s['shards_resumed']}, this run {s['images_this_run']} images)")
    click.echo(f"bytes:  before {_fmt_bytes(s['bytes_before'])}  after {_fmt_bytes(s['bytes_after'])}"
               f"  ratio {_fmt(s['ratio'], '.2f')}x   (ok rows)")
    click.echo(f"mean:   bpp {_fmt(s['mean_bpp'])}  PSNR {_fmt(s['mean_psnr'], '.2f')} dB"
               f"  SSIM {_fmt(s['mean_ssim'], '.4f')}  MS-SSIM {_fmt(s['mean_ms_ssim'], '.4f')}")
    click.echo(f"time:   startup {s['startup_seconds']:.1f}s  work {s['work_seconds']:.1f}s")
    if s.get("shards_uncommitted"):
        click.echo(f"warning: {s['shards_uncommitted']} shard(s) could not be committed; run again to complete")
    for line in s.get("first_errors") or []:
        click.echo(f"  failed: {line}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="recodec")
def cli() -> None:
    """Recompress image archives, record every image in Parquet manifests, and verify it."""


@cli.command()
@click.argument("src", required=False)
@click.argument("dst", required=False)
@click.option("--codec", help="Codec name (see `recodec codecs`).")
@click.option("--quality", type=float, help="1-100 shortcut for codecs whose main knob is a quality.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Codec parameter in its native units, repeatable (e.g. distance=1.5).")
@click.option("--target", help="Per-image quality target, e.g. 'psnr>=40,ssim>=0.95'.")
@click.option("--container", type=click.Choice(["auto", "raw", "geotiff"]),
              help="Output container (default auto: GeoTIFF for GeoTIFF sources where possible).")
@click.option("--shard-size", type=int, help="Images per shard (default 64).")
@click.option("--workers", type=int, help="Ray actors (default: one per cluster CPU, or per GPU).")
@click.option("--gpus-per-worker", type=float, help="GPUs per actor when the cluster has GPUs (default 1).")
@click.option("--ray-address", help="Join an existing Ray cluster (default: embedded local Ray).")
@click.option("--allow-growth", is_flag=True, default=None, help="Keep outputs larger than their source.")
@click.option("--copy-unchanged", is_flag=True, default=None,
              help="Copy sources left unchanged (no_gain, target_unreachable) verbatim into DST.")
@click.option("--image-timeout", type=float, help="Seconds one image may take before its row fails (default 300).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML file with any of these settings and storage_options.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def run(src: str | None, dst: str | None, codec: str | None, quality: float | None, params: tuple[str, ...],
        target: str | None, container: str | None, shard_size: int | None, workers: int | None,
        gpus_per_worker: float | None, ray_address: str | None, allow_growth: bool | None,
        copy_unchanged: bool | None, image_timeout: float | None, config_file: str | None, as_json: bool) -> None:
    """Recompress every image under SRC into DST (fsspec URLs: paths, file://, s3://)."""
    from recodec.config import build_config, load_config_file, parse_params
    from recodec.flows.recompress import recompress

    try:
        config = build_config(
            load_config_file(config_file) if config_file else {},
            dict(src=src, dst=dst, codec=codec, quality=quality, params=parse_params(params) or None,
                 target=target, container=container, shard_size=shard_size, workers=workers,
                 gpus_per_worker=gpus_per_worker, ray_address=ray_address, allow_growth=allow_growth,
                 copy_unchanged=copy_unchanged, image_timeout_s=image_timeout),
        )
        summary = recompress(config)
    except RecodecError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(summary, default=str, indent=2))
    else:
        print_summary(summary)
    if summary["failed"] or summary.get("shards_uncommitted"):
        sys.exit(1)


@cli.command()
@click.argument("dst")
@click.option("--workers", type=int, default=0, help="Ray actors (default: one per cluster CPU).")
@click.option("--ray-address", help="Join an existing Ray cluster.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML file with storage_options.")
def reconcile(dst: str, workers: int, ray_address: str | None, config_file: str | None) -> None:
    """Verify every committed ok output under DST; exit 0 only if all verify."""
    from recodec.flows.reconcile import reconcile as reconcile_flow

    result = reconcile_flow(dst, workers=workers, ray_address=ray_address,
                            storage_options=_storage_options(config_file))
    click.echo(f"reconcile {result['check_id']}: {result['checked']} outputs checked, verdicts "
               + ", ".join(f"{k}={v}" for k, v in sorted(result["verdicts"].items())))
    for f in result["failures"]:
        click.echo(f"  {f['verdict']}: {f['dest_uri']}  {f['detail']}")
    sys.exit(0 if result["ok"] else 1)


@cli.command()
@click.argument("src", required=False)
@click.argument("dst")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML file with storage_options.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def audit(src: str | None, dst: str, config_file: str | None, as_json: bool) -> None:
    """Check DST's invariants (one row per source, outputs intact, no orphans, sources unchanged).

    Exits 1 and lists the violations if any invariant is broken. Give SRC to also check that
    every source is unchanged since it was recorded.
    """
    from recodec.tasks.audit import audit as run_audit

    report = run_audit(src, dst, _storage_options(config_file))
    if as_json:
        click.echo(json.dumps({"ok": report.ok, "violations": report.violations, "info": report.info},
                              indent=2, default=str))
    else:
        click.echo(f"audit {dst}: {len(report.violations)} violation(s); "
                   + ", ".join(f"{k}={v}" for k, v in report.info.items()))
        for v in report.violations:
            click.echo(f"  {v['kind']}: {v['uri']}  {v['detail']}")
    sys.exit(0 if report.ok else 1)


@cli.command()
@click.argument("dst")
@click.argument("sql")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML file with storage_options.")
def query(dst: str, sql: str, fmt: str, config_file: str | None) -> None:
    """Run DuckDB SQL over DST's views `manifest`, `latest` and `reconcile`."""
    from recodec.manifest import connect

    try:
        rel = connect(dst, _storage_options(config_file)).sql(sql)
    except Exception as exc:  # DuckDB's own error text is the useful message here
        _fail(exc)
    if rel is None:
        return
    if fmt == "table":
        click.echo(str(rel))
    elif fmt == "csv":
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(rel.columns)
        writer.writerows(rel.fetchall())
    else:
        cols = rel.columns
        click.echo(json.dumps([dict(zip(cols, r)) for r in rel.fetchall()], default=str, indent=2))


@cli.command()
@click.argument("file")
@click.argument("out")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML file with storage_options.")
def decode(file: str, out: str, config_file: str | None) -> None:
    """Decode FILE written by recodec into OUT (PNG, or TIFF for >8 bits or >4 bands)."""
    import fsspec

    from recodec.imageio import decode_output, to_viewable

    try:
        with fsspec.open(file, "rb", **_storage_options(config_file)) as fh:
            array = decode_output(fh.read())
        data, ext = to_viewable(array)
    except RecodecError as exc:
        _fail(exc)
    if not out.lower().endswith(ext):
        out += ext
    with fsspec.open(out, "wb") as fh:
        fh.write(data)
    click.echo(f"{out}: {array.shape[1]}x{array.shape[0]}x{array.shape[2]} {array.dtype.name}")


@cli.command()
@click.argument("data")
@click.argument("out_dir")
@click.option("--model", type=click.Choice(["factorized", "hyperprior"]), default="hyperprior", show_default=True)
@click.option("--lambda", "lambdas", type=float, multiple=True,
              help="Rate-distortion trade-off per rate point, repeatable (default: the shipped ladder).")
@click.option("--steps", type=int, default=10_000, show_default=True, help="Optimiser steps.")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--crop", type=int, default=128, show_default=True, help="Random crop side in pixels.")
@click.option("--eval-data", help="Held-out images for the RD points (default: the held-out split of DATA).")
@click.option("--init-from", help="Checkpoint to fine-tune from.")
@click.option("--ray-address", help="Train on this Ray cluster (a GPU is used when it has one).")
@click.option("--seed", type=int, default=0, show_default=True)
def train(data: str, out_dir: str, model: str, lambdas: tuple[float, ...], steps: int, batch_size: int,
          crop: int, eval_data: str | None, init_from: str | None, ray_address: str | None, seed: int) -> None:
    """Train a learned codec on the images under DATA; write weights, SHA-256 pin and model card."""
    from recodec.flows.train import train as train_flow

    kwargs: dict[str, Any] = dict(model=model, steps=steps, batch_size=batch_size, crop=crop,
                                  eval_data=eval_data, init_from=init_from, ray_address=ray_address, seed=seed)
    if lambdas:
        kwargs["lambdas"] = lambdas
    result = train_flow(data, out_dir, **kwargs)
    click.echo(json.dumps({k: result[k] for k in ("weights", "sha256", "bytes", "model_card", "steps", "device")},
                          indent=2, default=str))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def codecs(as_json: bool) -> None:
    """List codecs: quality knob, dtypes, band counts, lossless mode and availability."""
    from recodec.codecs import get_codec, list_codecs

    rows = []
    for name in list_codecs():
        try:
            c = get_codec(name)
        except Exception as exc:
            rows.append({"name": name, "available": False, "error": str(exc)})
            continue
        cap, k = c.capabilities, c.knob
        rows.append({
            "name": name, "available": c.available(), "summary": c.summary,
            "knob": k.name, "range": [k.low, k.high], "default": k.default,
            "direction": "higher=better" if k.higher_is_better else "lower=better",
            "dtypes": list(cap.dtypes), "bands": cap.describe_bands(), "lossless": cap.lossless,
            "extension": cap.extension, "params": [p.name for p in c.params], "extra": c.extra,
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        if "knob" not in r:
            click.echo(f"{r['name']:<11} unavailable: {r['error']}")
            continue
        avail = "yes" if r["available"] else f"no (pip install 'recodec[{r['extra']}]')"
        click.echo(
            f"{r['name']:<11} {r['knob']} {r['range'][0]:g}..{r['range'][1]:g} ({r['direction']}, "
            f"default {r['default']:g})  dtypes {','.join(r['dtypes'])}  bands {r['bands']}  "
            f"lossless {'yes' if r['lossless'] else 'no'}  available {avail}")


def main() -> None:
    """Console-script entry point."""
    # Nothing may phone home at run time; the user can still override each of these.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    cli(prog_name="recodec")


if __name__ == "__main__":
    main()
