"""The ``recodec`` command line: each command parses its arguments and makes one call."""

from __future__ import annotations

import atexit
import json
import os
import sys
from typing import Any

import click

from recodec.cli_options import config_opt, json_opt, ray_address_opt, task_model_opt, workers_opt
from recodec.errors import RecodecError
from recodec.precision import PRECISIONS

# Prefect gives a temporary API server 20 s to start (audit, reconcile): too short on a loaded
# machine.  Set before Prefect is imported, which reads its settings once; a user's value wins.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


def _file_values(config_file: str | None) -> dict[str, Any]:
    """The YAML file's settings, or none."""
    if not config_file:
        return {}
    from recodec.config import load_config_file

    return load_config_file(config_file)


def _storage_options(config_file: str | None) -> dict[str, Any]:
    return _file_values(config_file).get("storage_options", {})


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
               f"  SSIM {_fmt(s['mean_ssim'], '.4f')}  MS-SSIM {_fmt(s['mean_ms_ssim'], '.4f')}"
               + (f"  task agreement >= {s['min_task_agreement']:.4f}" if s.get("min_task_agreement") is not None
                  else ""))
    click.echo(f"time:   startup {s['startup_seconds']:.1f}s  work {s['work_seconds']:.1f}s"
               + (f"  ({'in this process' if s.get('executor') == 'local' else 'Ray'})" if s.get("executor") else ""))
    if s.get("shards_uncommitted"):
        click.echo(f"warning: {s['shards_uncommitted']} shard(s) could not be committed; run again to complete")
    for reason, n in (s.get("failure_reasons") or {}).items():
        click.echo(f"failed: {n} x {reason} (e.g. {s['failure_examples'][reason]})")
    if s.get("delta"):
        d = s["delta"]
        click.echo(f"delta:  {d['new']} new, {d['changed']} changed, {d['retry']} retried, "
                   f"{d['unchanged']} unchanged, {d['disappeared']} disappeared (reported, nothing deleted)")
    if s.get("shards_leased"):
        click.echo(f"warning: {s['shards_leased']} shard(s) were being done by another run of this job; "
                   "run again once it ends to check they are complete")
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
@click.option("--target", help="Per-image quality target, e.g. 'psnr>=40,ssim>=0.95' or "
              "'max_abs_error<=0.5%' (percent of each image's dynamic range).")
@click.option("--bit-depth", type=int,
              help="Declared sensor bit depth of >8-bit sources: PSNR peak 2**b - 1 "
                   "(default: a narrower header depth, else each image's data range).")
@click.option("--container", type=click.Choice(["auto", "raw", "geotiff"]),
              help="Output container (default auto: GeoTIFF for GeoTIFF sources where possible).")
@click.option("--shard-size", type=int,
              help="Images per shard (default 64, fewer for small jobs so that every worker gets one).")
@workers_opt
@click.option("--executor", type=click.Choice(["auto", "ray", "local"]),
              help="Where the workers run: Ray actors, or one worker in this process (local). Default auto: "
                   "local for a small job (<= 8 images and 64 MiB, no --ray-address), else Ray.")
@click.option("--gpus-per-worker", type=float, help="GPUs per actor when the cluster has GPUs (default 1).")
@ray_address_opt
@click.option("--allow-growth", is_flag=True, default=None, help="Keep outputs larger than their source.")
@click.option("--copy-unchanged", is_flag=True, default=None,
              help="Copy sources left unchanged (no_gain, target_unreachable) verbatim into DST.")
@click.option("--image-timeout", type=float, help="Seconds one image may take before its row fails (default 300).")
@click.option("--first-frame-only", is_flag=True, default=None,
              help="Keep the first frame/page of multi-frame sources (default: fail them 'multiframe').")
@click.option("--accept-warnings", is_flag=True, default=None,
              help="Decoder warnings give ok rows that record them (default: fail 'corrupt_source').")
@click.option("--max-image-mb", type=float,
              help="Memory budget per decoded source raster, W x H x bands x bytes (default 1024).")
@click.option("--retry-failed", is_flag=True, default=None,
              help="On a re-run, also redo sources whose latest row failed with a retryable reason.")
@click.option("--tiff-any-compression", is_flag=True, default=None,
              help="Allow GeoTIFFs in compressions common GDAL builds cannot read (JPEG XL, JPEG 2000).")
@click.option("--cog/--no-cog", default=None,
              help="Cloud-optimised GeoTIFF outputs (overviews in the same codec); default: when the source is a COG.")
@task_model_opt
@config_opt
@json_opt
def run(src: str | None, dst: str | None, codec: str | None, quality: float | None, params: tuple[str, ...],
        target: str | None, bit_depth: int | None, container: str | None, shard_size: int | None,
        workers: int | None, executor: str | None, gpus_per_worker: float | None, ray_address: str | None,
        allow_growth: bool | None, copy_unchanged: bool | None, image_timeout: float | None,
        config_file: str | None, as_json: bool, first_frame_only: bool | None, accept_warnings: bool | None,
        max_image_mb: float | None, retry_failed: bool | None, tiff_any_compression: bool | None,
        cog: bool | None, task_model: str | None) -> None:
    """Recompress every image under SRC into DST (fsspec URLs: paths, file://, s3://).

    Re-running the same job processes only new and changed sources (see docs/operations.md).
    """
    from recodec.config import build_config, parse_params
    from recodec.flows.lifecycle import interruptible, run_checked

    try:
        config = build_config(
            _file_values(config_file),
            dict(src=src, dst=dst, codec=codec, quality=quality, params=parse_params(params) or None,
                 target=target, bit_depth=bit_depth, container=container, shard_size=shard_size, workers=workers,
                 executor=executor, gpus_per_worker=gpus_per_worker, ray_address=ray_address,
                 allow_growth=allow_growth,
                 copy_unchanged=copy_unchanged, image_timeout_s=image_timeout,
                 first_frame_only=first_frame_only, accept_warnings=accept_warnings,
                 max_image_bytes=int(max_image_mb * 2**20) if max_image_mb else None,
                 retry_failed=retry_failed, tiff_any_compression=tiff_any_compression, cog=cog, task_model=task_model),
        )
        summary = interruptible(lambda: run_checked(config), lambda line: click.echo(line, err=True))
    except RecodecError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(summary, default=str, indent=2))
    else:
        print_summary(summary)
    if summary["failed"] or summary.get("shards_uncommitted") or summary.get("shards_leased"):
        sys.exit(1)


@cli.command()
@click.argument("dst")
@workers_opt
@ray_address_opt
@task_model_opt
@config_opt
def reconcile(dst: str, workers: int | None, ray_address: str | None, task_model: str | None,
              config_file: str | None) -> None:
    """Verify every committed ok output under DST; exit 0 only if all verify."""
    from recodec.config import ReconcileConfig, build_config
    from recodec.flows.reconcile import reconcile as reconcile_flow

    try:
        config = build_config(_file_values(config_file), dict(dst=dst, workers=workers, ray_address=ray_address,
                                                                 task_model=task_model),
                              ReconcileConfig)
        result = reconcile_flow(config)  # a refused --task-model is a ConfigError, not a traceback
    except (RecodecError, OSError) as exc:  # missing bucket, no permission: one line
        _fail(exc)
    click.echo(f"reconcile {result['check_id']}: {result['checked']} outputs checked, verdicts "
               + ", ".join(f"{k}={v}" for k, v in sorted(result["verdicts"].items())))
    for f in result["failures"]:
        click.echo(f"  {f['verdict']}: {f['dest_uri']}  {f['detail']}")
    sys.exit(0 if result["ok"] else 1)


@cli.command()
@click.argument("src", required=False)
@click.argument("dst")
@config_opt
@json_opt
def audit(src: str | None, dst: str, config_file: str | None, as_json: bool) -> None:
    """Check DST's invariants (one row per source, outputs intact, no orphans, sources unchanged).

    Exits 1 and lists the violations if any invariant is broken. Give SRC (or set src in the
    config file) to also check that every source is unchanged since it was recorded.
    """
    from recodec.config import AuditConfig, build_config
    from recodec.flows.audit import audit as audit_flow

    try:
        config = build_config(_file_values(config_file), dict(src=src, dst=dst), AuditConfig)
        report = audit_flow(config)
    except (RecodecError, OSError) as exc:  # missing bucket, no permission: one line
        _fail(exc)
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
@config_opt
@click.option("--allow-external-access", is_flag=True,
              help="Let the SQL read and write files and URLs (off: only the three views are reachable).")
def query(dst: str, sql: str, fmt: str, config_file: str | None, allow_external_access: bool) -> None:
    """Run DuckDB SQL over DST's views `manifest`, `latest` and `reconcile`."""
    from recodec.manifest import connect

    try:
        rel = connect(dst, _storage_options(config_file), external_access=allow_external_access).sql(sql)
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
@config_opt
@click.option("--iterations", type=int, help="Progressive (rnn) streams: decode only the first K iterations.")
@click.option("--max-bytes", type=int, help="Progressive (rnn) streams: decode the longest cut of at most N bytes.")
@click.option("--decoder", type=click.Choice(["exact", "gan", "diffusion"]), default="exact", show_default=True,
              help="Hyperprior streams: a generative decoder (may invent detail; docs/generative.md).")
@click.option("--enhance", is_flag=True, help="Any JPEG: the restored view (generative; the file is unchanged).")
@click.option("--realism", type=float, help="--decoder gan: 0 = the MSE decoder .. 1 = full realism (default 1).")
@click.option("--steps", type=int, help="--decoder diffusion / --enhance: sampler steps 1..8 (1 = mean view).")
@click.option("--seed", type=int, help="Generative decoders: noise seed (default 0).")
def decode(file: str, out: str, config_file: str | None, iterations: int | None, max_bytes: int | None,
           decoder: str, enhance: bool, **settings: Any) -> None:
    """Decode FILE written by recodec into OUT (PNG, or TIFF for >8 bits or >4 bands)."""
    import fsspec

    from recodec.container import decode_output, to_viewable

    label = None
    try:
        with fsspec.open(file, "rb", **_storage_options(config_file)) as fh:
            if enhance or decoder != "exact":
                from recodec.codecs.generative.view import decode_view

                array, label = decode_view(fh.read(), "enhance" if enhance else decoder, **settings)
            elif iterations is None and max_bytes is None:
                array = decode_output(fh.read())
            else:
                from recodec.codecs.rnn.codec import decode_progressive

                array = decode_progressive(fh.read(), iterations=iterations, max_bytes=max_bytes)
        data, ext = to_viewable(array)
    except (RecodecError, OSError) as exc:  # a missing or unreadable FILE is one line, not a traceback
        _fail(exc)
    if label is not None and ext == ".png":
        from recodec.codecs.generative.view import mark_png

        data = mark_png(data, label)
    if not out.lower().endswith(ext):
        out += ext
    with fsspec.open(out, "wb") as fh:
        fh.write(data)
    click.echo(f"{out}: {array.shape[1]}x{array.shape[0]}x{array.shape[2]} {array.dtype.name}")
    if label is not None:
        click.echo(f"GENERATED VIEW (may show detail that is not in the file): {label}")


#: The generative decoders' training recipes (recodec.codecs.generative.training.RECIPES).
GENERATIVE_MODELS = ("restore-jpeg", "diffusion-hyperprior", "gan-hyperprior")


@cli.command()
@click.argument("data")
@click.argument("out_dir")
@click.option("--model", type=click.Choice(["factorized", "hyperprior", "rnn", *GENERATIVE_MODELS]),
              help="Default: hyperprior.  Generative decoders (docs/generative.md) train in this process, "
              "resume OUT_DIR/checkpoint.pt and export to OUT_DIR/weights.")
@click.option("--lambda", "lambdas", type=float, multiple=True,
              help="Rate-distortion trade-off per rate point, repeatable (default: the shipped ladder).")
@click.option("--steps", type=int, help="Length of the schedule in optimiser steps (default 10000).")
@click.option("--batch-size", type=int, help="Default 8.")
@click.option("--crop", type=int, help="Random crop side in pixels (default 128).")
@click.option("--lr", type=float, help="Adam learning rate before decay (default 1e-3).  With --resume (rnn): "
              "the schedule restarts at this rate from the resumed step.")
@click.option("--ms-ssim-weight", type=float,
              help="rnn only: add this weight x (1 - MS-SSIM) to every iteration's L1 loss (default 0).")
@click.option("--eval-data", help="Held-out images for the RD points (default: the held-out split of DATA).")
@click.option("--max-eval-images", type=int, default=16, show_default=True)
@click.option("--init-from", help="Checkpoint to fine-tune from (weights only).")
@click.option("--resume", help="Checkpoint to continue: model, optimizer, step, schedule, RNG state.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help="Training autocast precision; auto: bf16 on GPUs and CPUs with native bf16 (AVX-512 BF16, "
              "AMX), else fp32 (the shipped integer decoder is unaffected).")
@click.option("--max-minutes", type=float, help="Wall-clock budget: checkpoint and stop after it.")
@click.option("--threads", type=int, help="torch threads for training.")
@click.option("--local", is_flag=True,
              help="Train in this process, without Prefect or Ray (SIGTERM: checkpoint and stop).")
@ray_address_opt
@click.option("--seed", type=int, help="Default 0.")
def train(data: str, out_dir: str, lambdas: tuple[float, ...], local: bool, **options: Any) -> None:
    """Train a learned codec on the images under DATA; write weights, SHA-256 pin and model card."""
    from recodec.flows.train import train as train_flow
    from recodec.flows.train import train_local

    if options.get("model") in GENERATIVE_MODELS:
        from recodec.codecs.generative.training import train_from_cli

        click.echo(json.dumps(train_from_cli(data, out_dir, options), indent=2, default=str))
        return
    run = train_local if local else train_flow
    result = run(data, out_dir, lambdas=lambdas or None, **options)
    click.echo(json.dumps(result, indent=2, default=str))


@cli.command("train-task")
@click.argument("files", nargs=-1, required=True)
@click.option("--out", "out_dir", required=True, help="Folder for the TorchScript model, sidecar, pin and train.json.")
@click.option("--eval", "eval_files", multiple=True, help="Held-out scene, repeatable (scored, never trained on).")
@click.option("--steps", type=int, default=4000, show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--crop", type=int, default=96, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True, help="torch threads.")
def train_task(files: tuple[str, ...], out_dir: str, eval_files: tuple[str, ...], steps: int, batch_size: int,
               crop: int, seed: int, threads: int) -> None:
    """Train the example task model (water / vegetation / bright mask of R,G,B,NIR scenes) on FILES."""
    from recodec.task.train import train_task_model

    result = train_task_model(files, out_dir, eval_paths=eval_files, steps=steps, batch_size=batch_size,
                              crop=crop, seed=seed, threads=threads)
    click.echo(json.dumps(result, indent=2, default=str))


@cli.command()
@json_opt
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
            "exact_decode": c.exact_decode, "generative": c.generative,
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
            f"lossless {'yes' if r['lossless'] else 'no'}  available {avail}"
            + ("  GENERATIVE decoder (may invent detail; never in auto)" if r["generative"] else ""))


# Scheduled storage-cost commands (retire, report, ...) live in their own module.
import recodec.cli_ops  # noqa: E402,F401


def main() -> None:
    """Console-script entry point."""
    # Nothing may phone home at run time; the user can still override each of these.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    status = [1]  # an uncaught exception exits 1

    def end_now() -> None:
        # Registered first, so it runs after every other exit handler (Ray, Prefect, temp
        # files, logging): then the process ends without tearing the interpreter down module
        # by module, which takes 1-2 s once torch and Prefect are loaded (docs/performance.md).
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe (`| head`) or stream
                pass
        os._exit(status[0])

    atexit.register(end_now)
    try:
        cli(prog_name="recodec")
    except SystemExit as exc:  # click always ends this way
        status[0] = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        raise


if __name__ == "__main__":
    main()
