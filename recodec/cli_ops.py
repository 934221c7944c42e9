"""``recodec`` commands of scheduled storage-cost jobs: retire, report, deploy, estimate, prune, kernels.

Registered on the main group by :mod:`recodec.cli`; each command parses and makes one call.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from recodec.cli import _fail, _storage_options, cli
from recodec.cli_options import json_opt
from recodec.errors import RecodecError


@cli.command()
@click.argument("src")
@click.argument("dst")
@click.option("--trash", help="Move retired sources under this URL (keys kept) instead of deleting them.")
@click.option("--yes", is_flag=True, help="Act. Without it, only say what would be retired (dry run).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML file with storage_options.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def retire(src: str, dst: str, trash: str | None, yes: bool, config_file: str | None, as_json: bool) -> None:
    """Delete (or --trash) sources of SRC whose output in DST is proven: dry run unless --yes.

    A source qualifies only if its latest row is ok, a newer reconcile verdict for that row is ok,
    audit names nothing about it, and it is still the pinned version at the moment of deletion.
    Every action is logged under DST/_recodec/retire/ before it is taken.
    """
    from recodec.tasks.retire import retire as run_retire

    result = run_retire(src, dst, trash=trash, yes=yes, storage_options=_storage_options(config_file))
    if as_json:
        click.echo(json.dumps({"retire_id": result.retire_id, "dry_run": result.dry_run,
                               "candidates": result.candidates, "eligible": result.eligible,
                               "retired": result.retired, "already_retired": result.already_retired,
                               "refused": result.refused, "errors": result.errors}, indent=2))
    else:
        verb = "would retire" if result.dry_run else "retired"
        click.echo(f"retire {result.retire_id}: {result.candidates} sources recorded, "
                   f"{verb} {len(result.eligible if result.dry_run else result.retired)}, "
                   f"already retired {result.already_retired}, refused {len(result.refused)} "
                   + (", ".join(f"{k}={v}" for k, v in sorted(result.counts().items()))))
        for uri, why in sorted(result.refused.items())[:50]:
            click.echo(f"  refused: {uri}  {why}")
        for uri, why in sorted(result.errors.items()):
            click.echo(f"  error: {uri}  {why}")
        if result.dry_run and result.eligible:
            click.echo("dry run: nothing was deleted; add --yes to act")
    sys.exit(1 if result.errors else 0)


@cli.command()
@click.argument("dst")
@click.option("--html", "html_file", help="Write the self-contained HTML report here.")
@click.option("--json", "json_file", help="Write the report's numbers as JSON here ('-' for stdout).")
@click.option("--prefix-levels", type=int, default=1, show_default=True, help="Folder levels of the prefix breakdown.")
@click.option("--audit", "run_audit", is_flag=True, help="Also run audit (reads every output) and report its status.")
@click.option("--src", help="With --audit: SRC, to check sources are unchanged too.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML file with storage_options and a `report:` section (storage_class, prices).")
def report(dst: str, html_file: str | None, json_file: str | None, prefix_levels: int, run_audit: bool,
           src: str | None, config_file: str | None) -> None:
    """Savings report of DST: totals, breakdowns, quality, failures, reconcile/audit status, cost."""
    from recodec.report import build_report, write_html, write_json
    from recodec.report.html import fmt_bytes, fmt_usd

    try:
        rep = build_report(dst, prefix_levels=prefix_levels, report_config=_report_section(config_file),
                           audit_src=src, run_audit=run_audit, storage_options=_storage_options(config_file))
    except RecodecError as exc:
        _fail(exc)
    if html_file:
        write_html(rep, html_file)
    if json_file == "-":
        click.echo(json.dumps({k: v for k, v in rep.items() if k != "rd_points"}, indent=2, default=str))
        return
    if json_file:
        write_json(rep, json_file)
    t, c = rep["totals"], rep["cost"]
    click.echo(f"{dst}: {t['images']} images ({t['ok']} ok, {t['failed']} failed, {t['skipped']} skipped); "
               f"source {fmt_bytes(t['source_bytes'])}, output {fmt_bytes(t['output_bytes'])}, "
               f"saved {fmt_bytes(t['saved_bytes'])}"
               + (f", ratio {t['ratio']:.2f}x" if t["ratio"] else "")
               + f"; {fmt_usd(c['saved_usd_month'])}/month saved at {c['storage_class']}")


def _report_section(config_file: str | None) -> dict[str, Any]:
    if not config_file:
        return {}
    import yaml

    with open(config_file, encoding="utf-8") as fh:
        return (yaml.safe_load(fh) or {}).get("report") or {}


@cli.command()
@click.argument("src", required=False)
@click.argument("dst", required=False)
@click.option("--codec", help="Codec name (see `recodec codecs`).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Codec parameter, repeatable.")
@click.option("--target", help="Per-image quality target, e.g. 'psnr>=40'.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML job config (as for `recodec run`); its storage_options are not deployed.")
@click.option("--name", default="nightly", show_default=True, help="Deployment name (flow storage-job).")
@click.option("--cron", default="0 2 * * *", show_default=True, help="Cron schedule.")
@click.option("--timezone", default="UTC", show_default=True)
@click.option("--work-pool", default="recodec-pool", show_default=True,
              help="Prefect work pool (a process pool is created if missing).")
@click.option("--report-html", help="Where each run writes its report (default DST/_recodec/report/report.html).")
@click.option("--paused", is_flag=True, help="Create the schedule paused.")
def deploy(src: str | None, dst: str | None, codec: str | None, params: tuple[str, ...], target: str | None,
           config_file: str | None, name: str, cron: str, timezone: str, work_pool: str,
           report_html: str | None, paused: bool) -> None:
    """Schedule run -> reconcile -> report on the Prefect server at PREFECT_API_URL."""
    from recodec.config import build_config, load_config_file, parse_params
    from recodec.flows.deploy import deploy_storage_job

    try:
        config = build_config(load_config_file(config_file) if config_file else {},
                              dict(src=src, dst=dst, codec=codec, params=parse_params(params) or None,
                                   target=target))
        out = deploy_storage_job(config.public_dict(), name=name, cron=cron, work_pool=work_pool,
                                 timezone=timezone, report_html=report_html, paused=paused)
    except RecodecError as exc:
        _fail(exc)
    click.echo(json.dumps(out, indent=2))


@cli.command()
@click.argument("dst")
@click.option("--yes", is_flag=True, help="Act. Without it, only say what would be pruned (dry run).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML file with storage_options.")
def prune(dst: str, yes: bool, config_file: str | None) -> None:
    """Delete outputs superseded by a newer job's output once that replacement has reconciled ok."""
    from recodec.tasks.prune import prune as run_prune

    result = run_prune(dst, yes=yes, storage_options=_storage_options(config_file))
    verb = "would prune" if result.dry_run else "pruned"
    click.echo(f"prune {result.prune_id}: {result.superseded} superseded output(s), "
               f"{verb} {len(result.eligible if result.dry_run else result.pruned)}, refused {len(result.refused)}")
    for uri, why in sorted(result.refused.items())[:50]:
        click.echo(f"  refused: {uri}  {why}")


@cli.command()
@click.argument("src")
@click.option("--codec", required=True, help="Codec name, 'auto' or a list (as for `recodec run`).")
@click.option("--quality", type=float, help="1-100 shortcut for codecs whose main knob is a quality.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Codec parameter, repeatable.")
@click.option("--target", help="Per-image quality target, e.g. 'psnr>=40,ssim>=0.95'.")
@click.option("--sample", type=int, default=100, show_default=True, help="Images to code.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random sample.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML job config (storage_options; `report:` section for the price table).")
@click.option("--json", "as_json", is_flag=True, help="Print the estimate as JSON.")
def estimate(src: str, codec: str, quality: float | None, params: tuple[str, ...], target: str | None,
             sample: int, seed: int, config_file: str | None, as_json: bool) -> None:
    """Code a random sample of SRC and extrapolate bytes saved, cost saved and compute time (95% CI)."""
    from recodec.config import build_config, load_config_file, parse_params
    from recodec.report.html import fmt_bytes, fmt_usd
    from recodec.tasks.estimate import estimate as run_estimate

    try:
        config = build_config(load_config_file(config_file) if config_file else {},
                              dict(src=src, dst=src.rstrip("/") + "-estimate", codec=codec, quality=quality,
                                   params=parse_params(params) or None, target=target))
        out = run_estimate(config, sample=sample, seed=seed, report_config=_report_section(config_file))
    except RecodecError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(out, indent=2, default=str))
        return
    s, c, t = out["saved_bytes"], out["saved_usd_per_month"], out["compute_seconds_one_process"]
    click.echo(f"{out['src']}: {out['population_images']} images, {fmt_bytes(out['population_bytes'])}; "
               f"sample {out['sample_images']} ({out['sample_ok']} ok)")
    click.echo(f"saved:   {fmt_bytes(s['estimate'])}  (95% CI {fmt_bytes(s['low'])} .. {fmt_bytes(s['high'])})")
    click.echo(f"cost:    {fmt_usd(c['estimate'])}/month at {out['storage_class']}  "
               f"(95% CI {fmt_usd(c['low'])} .. {fmt_usd(c['high'])})")
    click.echo(f"compute: {t['estimate'] / 3600:.2f} h in one process  "
               f"(95% CI {t['low'] / 3600:.2f} .. {t['high'] / 3600:.2f} h; divide by the workers)")


@cli.command()
@click.option("--build", is_flag=True,
              help="Build the common metric kernels for this machine now (20-30 s of CPU each), "
              "instead of in the background of the first long job.")
@json_opt
def kernels(build: bool, as_json: bool) -> None:
    """List this machine's packaged (ahead-of-time compiled) metric kernels; --build makes them."""
    from recodec.metrics import prepare_kernels

    found = prepare_kernels(build=build)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    for k in found:
        click.echo(f"{k['name']}  {k['bytes'] / 1e6:.1f} MB  {k['path']}")
    if not found:
        click.echo("no packaged kernels yet: metrics run eagerly until a long job (or --build) makes them")
