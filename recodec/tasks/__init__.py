"""Tasks: plain functions and Ray actors that take URLs and typed config (no Prefect here)."""
