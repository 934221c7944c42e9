"""Storage prices for the report's cost estimate: a table in the config, never fetched.

Defaults are list prices in USD per GB-month (GB = 10^9 bytes) of AWS S3 in us-east-1, first
pricing tier, as published in 2024; they are only a starting point.  Put your own in the config::

    report:
      storage_class: STANDARD_IA
      prices: {STANDARD: 0.021, STANDARD_IA: 0.0125, my-nas: 0.004}
"""

from __future__ import annotations

from typing import Any

from recodec.errors import ConfigError

DEFAULT_PRICES: dict[str, float] = {
    "STANDARD": 0.023,
    "INTELLIGENT_TIERING": 0.023,
    "STANDARD_IA": 0.0125,
    "ONEZONE_IA": 0.01,
    "GLACIER_IR": 0.004,
    "GLACIER": 0.0036,
    "DEEP_ARCHIVE": 0.00099,
}
DEFAULT_CLASS = "STANDARD"


def price_table(section: dict[str, Any] | None) -> tuple[dict[str, float], str]:
    """The price table (defaults overlaid by the config's ``report.prices``) and the chosen class."""
    section = dict(section or {})
    prices = dict(DEFAULT_PRICES)
    for name, value in (section.get("prices") or {}).items():
        try:
            prices[str(name)] = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"report.prices.{name}: expected USD per GB-month, got {value!r}") from None
    chosen = str(section.get("storage_class") or DEFAULT_CLASS)
    if chosen not in prices:
        raise ConfigError(f"report.storage_class {chosen!r} has no price; known: {', '.join(sorted(prices))}")
    return prices, chosen


def monthly_cost(nbytes: float, usd_per_gb_month: float) -> float:
    """USD per month to store ``nbytes``."""
    return nbytes / 1e9 * usd_per_gb_month
