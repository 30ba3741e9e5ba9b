"""Inference-and-learning schedules, selectable by name in ``Simulator.train(algorithm=...)``.

An algorithm is a function ``run_batch(sim, X, Y, spec, options) -> BatchResult`` that reads and updates
the weights held by ``sim.backend`` (``W``, ``b`` and the optimiser state ``mW, vW, mb, vb, opt_t``,
laid out by the :class:`~neurosim.plan.Plan`).  ``"pc"`` (the standard prospective-configuration
schedule) runs inside the backend's own kernel; the others register here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Algorithm:
    name: str
    description: str
    run_batch: Callable | None  # None: the backend's own relaxation + Hebbian update ("pc")
    options: dict               # documented options and their defaults


_REGISTRY: dict[str, Algorithm] = {}


def register(name: str, run_batch: Callable | None, description: str, options: dict | None = None):
    """Register an algorithm under ``name`` (replacing an earlier registration of the same name)."""
    _REGISTRY[name] = Algorithm(name, description, run_batch, dict(options or {}))
    return _REGISTRY[name]


def _load_builtin():
    from . import backprop  # noqa: F401  (registers "bp")
    from . import pc  # noqa: F401  (re-registers "pc" with the output options; registers "strict")
    from . import fpa  # noqa: F401  (registers "fpa")
    from . import zil  # noqa: F401  (registers "zil")
    from . import ipc  # noqa: F401  (registers "ipc")


def get(name: str) -> Algorithm:
    _load_builtin()
    if name not in _REGISTRY:
        raise ValueError(f"unknown algorithm {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


register("pc", None, "standard PC / prospective configuration: relax with the target clamped, then one "
                     "Hebbian update")
