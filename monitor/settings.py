"""Load and check monitor/config.yaml.

Offers:
    DEFAULT_CONFIG_PATH   monitor/config.yaml next to this file.
    load_config(path) -> dict with refresh_seconds, stale_after_seconds, max_points_per_curve,
                          smoothing, memory_budget_mb, metric_names (dict) and alerts (thresholds
                          dict, checked against monitor.alerts.DEFAULT_THRESHOLDS).
Raises ConfigError naming the file and key for anything malformed.
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from monitor.alerts import DEFAULT_THRESHOLDS

__all__ = ["DEFAULT_CONFIG_PATH", "ConfigError", "load_config", "display_name"]

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent / "config.yaml"

_DEFAULTS = {
    "refresh_seconds": 5.0,
    "stale_after_seconds": 600.0,
    "max_points_per_curve": 2000,
    "smoothing": 0.8,
    "memory_budget_mb": 768,
    "metric_names": {},
    "alerts": {},
}


class ConfigError(ValueError):
    """A malformed monitor config file."""


def load_config(path: str | Path | None = None) -> dict:
    """Read the YAML config.

    Input:  a path (default monitor/config.yaml).
    Output: a dict with every key of _DEFAULTS filled in.
    """
    path = Path(path) if path else DEFAULT_CONFIG_PATH
    if not path.is_file():
        raise ConfigError(f"config file {path} not found; pass --config PATH or restore monitor/config.yaml")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_DEFAULTS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; known keys: {sorted(_DEFAULTS)}")
    cfg = {**_DEFAULTS, **raw}
    for key in ("refresh_seconds", "stale_after_seconds", "max_points_per_curve", "memory_budget_mb"):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{path}: {key} must be a positive number, got {value!r}")
    smoothing = cfg["smoothing"]
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not 0 <= smoothing < 1:
        raise ConfigError(f"{path}: smoothing must be a number in [0, 1), got {smoothing!r}")
    cfg["max_points_per_curve"] = int(cfg["max_points_per_curve"])
    names = cfg["metric_names"] or {}
    if not isinstance(names, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in names.items()):
        raise ConfigError(f"{path}: metric_names must map verl metric keys to display strings")
    cfg["metric_names"] = names
    alerts = cfg["alerts"] or {}
    if not isinstance(alerts, dict):
        raise ConfigError(f"{path}: alerts must be a mapping of threshold names to numbers")
    bad = sorted(set(alerts) - set(DEFAULT_THRESHOLDS))
    if bad:
        raise ConfigError(f"{path}: unknown alert threshold(s) {bad}; known: {sorted(DEFAULT_THRESHOLDS)}")
    for key, value in alerts.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{path}: alerts.{key} must be a number, got {value!r}")
    cfg["alerts"] = alerts
    return cfg


def display_name(key: str, config: dict) -> str:
    """verl key -> display name from config['metric_names'] (the key itself when unmapped)."""
    return config.get("metric_names", {}).get(key, key)
