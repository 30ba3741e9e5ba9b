"""Ready-made circuits and experiments, built on neurosim's public API.

Each experiment module defines ``NAME``, ``DESCRIPTION``, ``DEFAULTS`` and ``run(config, out, progress)``;
``neurosim run NAME`` runs it.
"""
from __future__ import annotations

import importlib

#: experiment name -> module (relative to this package)
EXPERIMENTS = {
    "digits": "digits",
}


def get(name: str):
    """The experiment module registered under ``name``."""
    if name not in EXPERIMENTS:
        raise KeyError(f"unknown experiment {name!r}; available: {', '.join(sorted(EXPERIMENTS))}")
    return importlib.import_module(f".{EXPERIMENTS[name]}", __name__)


def list_experiments() -> list[tuple[str, str]]:
    """(name, one-line description) of every experiment."""
    return [(n, get(n).DESCRIPTION) for n in sorted(EXPERIMENTS)]
