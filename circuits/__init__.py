"""Ready-made circuits and experiments, built on neurosim's public API.

Every module in this package that defines ``NAME``, ``DESCRIPTION``, ``DEFAULTS`` and
``run(config, out, progress)`` is an experiment; a module may instead (or also) define ``EXPERIMENTS``, a
list of :class:`neurosim.experiment.Experiment` objects.  ``neurosim run NAME`` runs one.
Modules whose name starts with ``_`` are helpers, not experiments.
"""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from functools import lru_cache


@lru_cache(maxsize=1)
def _registry() -> dict:
    reg = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f".{info.name}", __name__)
        found = []
        if all(hasattr(mod, a) for a in ("NAME", "DESCRIPTION", "DEFAULTS", "run")):
            found.append(mod)
        found.extend(getattr(mod, "EXPERIMENTS", []))
        for exp in found:
            if exp.NAME in reg:
                raise RuntimeError(f"experiment name {exp.NAME!r} is defined twice (in {info.name})")
            reg[exp.NAME] = exp
    return reg


def names() -> list[str]:
    return sorted(_registry())


def _direct(name: str):
    """Fast path: a module named like the experiment (``digits`` -> ``circuits.digits``) that defines it,
    found without importing every other experiment module (keeps `neurosim run` start-up short)."""
    mod_name = name.replace("-", "_")
    if mod_name.startswith("_") or not mod_name.isidentifier():
        return None
    try:
        spec = importlib.util.find_spec(f".{mod_name}", __name__)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    mod = importlib.import_module(f".{mod_name}", __name__)
    if getattr(mod, "NAME", None) == name and all(hasattr(mod, a) for a in ("DESCRIPTION", "DEFAULTS", "run")):
        return mod
    return None


def get(name: str):
    """The experiment registered under ``name`` (a module or an Experiment object)."""
    direct = _direct(name)
    if direct is not None:
        return direct
    reg = _registry()
    if name not in reg:
        raise KeyError(f"unknown experiment {name!r}; available: {', '.join(sorted(reg))}")
    return reg[name]


def list_experiments() -> list[tuple[str, str]]:
    """(name, one-line description) of every experiment."""
    reg = _registry()
    return [(n, reg[n].DESCRIPTION) for n in sorted(reg)]
