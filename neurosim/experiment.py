"""Running named experiments: configuration, output directory, metrics.json, figures.

An experiment is a module (in :mod:`circuits`) with ``NAME``, ``DESCRIPTION``, ``DEFAULTS`` (a dict of
documented parameters, always including ``backend`` and ``seed``) and ``run(config, out, progress)``
returning a metrics dict.  :func:`run_experiment` resolves the configuration, writes
``config.json``, runs, and writes ``metrics.json`` atomically.
"""
from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .io import write_json_atomic


@dataclass(frozen=True)
class Experiment:
    """An experiment defined as an object (several can live in one module of :mod:`circuits`).

    ``run(config, out, progress)`` returns a metrics dict; ``doc`` is shown by ``neurosim show``.
    """

    NAME: str
    DESCRIPTION: str
    DEFAULTS: dict
    run: Callable
    doc: str = ""

    @property
    def __doc__(self):  # noqa: D105 - used by `neurosim show`
        return self.doc


class ConfigError(ValueError):
    """A bad ``--set key=value`` or configuration key."""


def parse_value(raw: str):
    """Parse a command-line value: JSON if it parses (numbers, true/false, lists), else a string."""
    low = raw.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, ValueError):
        inner = raw.strip()
        if inner.startswith("[") and inner.endswith("]"):  # [a,b] with unquoted strings
            inner = inner[1:-1]
            return [parse_value(v.strip()) for v in inner.split(",")] if inner.strip() else []
        if "," in raw:
            return [parse_value(v) for v in raw.split(",")]
        return raw


def coerce(key: str, value, default):
    """Coerce ``value`` to the type of ``default`` (int, float, bool, str, list), with a clear error."""
    if default is None or value is None:
        return value
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            raise TypeError
        if isinstance(default, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError
            return value
        if isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError
            return float(value)
        if isinstance(default, (list, tuple)):
            vals = value if isinstance(value, (list, tuple)) else [value]
            if default:
                vals = [coerce(key, v, default[0]) for v in vals]
            return list(vals)
        if isinstance(default, str):
            return str(value)
    except TypeError:
        raise ConfigError(f"{key}={value!r}: expected a {type(default).__name__} like the default {default!r}") from None
    return value


def resolve_config(defaults: dict, overrides: dict) -> dict:
    cfg = dict(defaults)
    for key, value in overrides.items():
        if key not in defaults:
            raise ConfigError(f"unknown parameter {key!r}; parameters: {', '.join(sorted(defaults))}")
        cfg[key] = coerce(key, value, defaults[key])
    return cfg


def run_experiment(module, overrides: dict | None = None, out=None, progress: bool = True) -> dict:
    """Run an experiment module with ``overrides`` applied to its ``DEFAULTS``; returns its metrics."""
    cfg = resolve_config(module.DEFAULTS, overrides or {})
    out = Path(out) if out is not None else Path("results") / module.NAME
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "config.json", {"experiment": module.NAME, **cfg})
    t0 = time.perf_counter()
    metrics = module.run(cfg, out, progress=progress)
    metrics = dict(metrics)
    metrics.setdefault("experiment", module.NAME)
    metrics["wall_time_s"] = time.perf_counter() - t0
    import numba
    import numpy
    metrics["environment"] = {"python": platform.python_version(), "numpy": numpy.__version__,
                              "numba": numba.__version__, "machine": platform.machine()}
    write_json_atomic(out / "metrics.json", metrics)
    return metrics
