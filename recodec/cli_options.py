"""Option definitions shared by the ``recodec`` commands (the rasterio ``rio/options.py`` pattern).

Each option is defined once here and applied as a decorator; a value left at ``None`` means
"not given", so the YAML file (``--config``) or the defaults decide (defaults < YAML < CLI).
"""

from __future__ import annotations

import click

config_opt = click.option(
    "--config", "config_file", type=click.Path(exists=True, dir_okay=False),
    help="YAML file with any of the run settings and storage_options (command-line flags win).")
workers_opt = click.option(
    "--workers", type=int, help="Ray actors (default: one per cluster CPU, or per GPU).")
ray_address_opt = click.option(
    "--ray-address", help="Join an existing Ray cluster (default: embedded local Ray).")
task_model_opt = click.option(
    "--task-model", help="Local TorchScript model with a sidecar PATH.json whose answers give task_agreement / "
    "task_miou / task_rel_l1 (docs/task.md); never loaded from inside SRC or DST.")
json_opt = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
