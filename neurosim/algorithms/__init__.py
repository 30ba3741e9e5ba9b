"""Inference-and-learning schedules, selectable by name in ``Simulator.train(algorithm=...)``.

An algorithm is a function ``run_batch(sim, X, Y, spec, options) -> BatchResult`` that reads and updates
the weights held by ``sim.backend`` (``W``, ``b`` and the optimiser state ``mW, vW, mb, vb, opt_t``,
laid out by the :class:`~neurosim.plan.Plan`).  ``"pc"`` (the standard prospective-configuration
schedule) runs inside the backend's own kernel; the others register here.

An algorithm that is written only for some backends declares them (``backends=``, with the reason the others
cannot run it; an entry ``"brian2:rate"`` allows a backend in one ``mode`` only); :func:`check_backend`
refuses any other backend with an
:class:`~neurosim.errors.UnsupportedError` before any work is done, so an algorithm never runs in NumPy on
the host behind a backend's name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import UnsupportedError


@dataclass(frozen=True)
class Algorithm:
    name: str
    description: str
    run_batch: Callable | None  # None: the backend's own relaxation + Hebbian update ("pc")
    options: dict               # documented options and their defaults
    backends: tuple | None = None   # backends that run it themselves (None: every backend, e.g. its own kernel);
                                    # "name:mode" allows a backend in that mode only (e.g. "brian2:rate")
    unsupported_reason: str | dict = ""   # why the other backends cannot (dict: per "name" / "name:mode" key,
                                          # "" for the rest)


_REGISTRY: dict[str, Algorithm] = {}

#: options of the PC schedules that need a backend exposing its precision vector (see ``_common``)
_OUTPUT_OPTION_BACKENDS = ("reference", "numba")


def register(name: str, run_batch: Callable | None, description: str, options: dict | None = None, *,
             backends=None, unsupported_reason: str = ""):
    """Register an algorithm under ``name`` (replacing an earlier registration of the same name).

    ``backends`` lists the backends that run it themselves (None: any backend); an entry ``"name:mode"``
    (e.g. ``"brian2:rate"``) allows that backend only when its ``mode`` is ``mode``.  ``unsupported_reason``
    says why the others cannot (it is the message of the refusal): a string, or a dict from ``"name:mode"``
    or ``"name"`` to the reason, with key ``""`` for any other backend.
    """
    reason = dict(unsupported_reason) if isinstance(unsupported_reason, dict) else unsupported_reason
    _REGISTRY[name] = Algorithm(name, description, run_batch, dict(options or {}),
                                None if backends is None else tuple(backends), reason)


def _backend_label(entry: str) -> str:
    """``"brian2:rate"`` -> ``"'brian2' (mode='rate')"``; ``"numba"`` -> ``"'numba'"``."""
    name, _, mode = entry.partition(":")
    return f"{name!r}" + (f" (mode={mode!r})" if mode else "")


def allows(algo: Algorithm, name: str, mode=None) -> bool:
    """Whether ``algo`` runs on backend ``name`` (in ``mode``, for a backend with modes)."""
    if algo.backends is None:
        return True
    return name in algo.backends or (mode is not None and f"{name}:{mode}" in algo.backends)


def _reason(algo: Algorithm, name: str, mode=None) -> str:
    r = algo.unsupported_reason
    if not isinstance(r, dict):
        return r
    for key in (f"{name}:{mode}", name, ""):
        if key in r:
            return r[key]
    return ""
    return _REGISTRY[name]


def check_backend(algorithm, sim, options: dict | None = None) -> None:
    """Refuse (:class:`~neurosim.errors.UnsupportedError`) a backend that cannot run ``algorithm`` itself.

    Called when ``train`` (or one of the per-batch helpers) starts, before any work: an algorithm that a
    backend cannot run is never run in NumPy on the host in its place.  ``options`` are the algorithm's
    options (the output options of ``pc``/``strict`` and ``strict``'s ``convention="torch2pc"`` need the
    ``reference`` or ``numba`` backend).
    """
    algo = algorithm if isinstance(algorithm, Algorithm) else get(algorithm)
    be = sim.backend
    name = getattr(be, "name", type(be).__name__)
    mode = getattr(be, "mode", None)
    label = f"backend {name!r}" + (f" (mode={mode!r})" if name == "brian2" and mode else "")
    if not allows(algo, name, mode):
        raise UnsupportedError(f"{label} cannot run algorithm {algo.name!r}: {_reason(algo, name, mode)}; run it "
                               f"on backend {' or '.join(_backend_label(b) for b in algo.backends)}")
    sparse = getattr(getattr(sim, "plan", None), "sparse_projections", None)
    if sparse and algo.name not in ("pc", "strict"):
        raise UnsupportedError(f"algorithm {algo.name!r} cannot run circuit {sim.circuit.name!r}: projection(s) "
                               f"{sparse} are sparse projections, and {algo.name!r} runs on the circuit's vertex form "
                               "(numba) or on dense weight matrices (its NumPy schedule); train it with algorithm "
                               "'pc' or 'strict', or drop connectivity= (dense)")
    opts = options or {}
    if algo.name in ("pc", "strict") and name not in _OUTPUT_OPTION_BACKENDS and (
            opts.get("output_precision") is not None or opts.get("beta") not in (None, 1, 1.0)):
        raise UnsupportedError(f"{label} cannot run algorithm {algo.name!r} with the output options "
                               "(output_precision, beta): they replace the output precision and re-weight the "
                               "update in NumPy, which this backend does not expose; use backend 'reference' or "
                               "'numba', or leave those options at None")
    if algo.name == "strict" and name not in _OUTPUT_OPTION_BACKENDS and opts.get("convention") == "torch2pc":
        raise UnsupportedError(f"{label} cannot run algorithm 'strict' with convention='torch2pc': Torch2PC's update "
                               "combines the errors before the last belief step with the beliefs after it, and that "
                               "last step is taken in NumPy from the backend's state, which this backend does not "
                               "expose; use backend 'reference' or 'numba', or convention='neurosim'")


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
