"""The one registry of named experiments: where ``neurosim list/show/run/sweep`` find them.

The library core never imports an experiment module itself: experiments are found through the
entry-point group ``neurosim.experiments``.  Each entry point names a module or a package::

    # pyproject.toml of neurosim (the bundled experiments, the repository's circuits/ folder)
    [project.entry-points."neurosim.experiments"]
    bundled = "neurosim.circuits"

    # pyproject.toml of a lab's own package: its experiments appear in `neurosim list`
    [project.entry-points."neurosim.experiments"]
    mylab = "mylab.experiments"

In a package every submodule whose name does not start with ``_`` is read; a module is an experiment when
it defines ``NAME``, ``DESCRIPTION``, ``DEFAULTS`` and ``run(config, out, progress)``, and it may (also)
list :class:`~neurosim.experiment.Experiment` objects in ``EXPERIMENTS``.  An entry point of the form
``module:attr`` names one Experiment or a list of them.  The bundled package (:data:`BUNDLED`) is always a
source, also where the installed metadata predates the group (a checkout that was not reinstalled).

Experiment names use hyphens (``brian2-bear``).  An old name with underscores (``brian2_bear``) still
resolves, with a one-line deprecation notice on stderr.

Start-up stays short: :func:`get` first tries the submodule named like the experiment (``digits`` ->
``neurosim.circuits.digits``, ``hw-energy`` -> ``..hw_energy``) without importing the other experiment
modules or reading the installed metadata; only a miss reads every source.
"""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from functools import lru_cache

__all__ = ["GROUP", "BUNDLED", "sources", "names", "get", "canonical_name", "list_experiments"]

#: entry-point group of experiment sources
GROUP = "neurosim.experiments"
#: the experiments shipped with neurosim (the repository's top-level ``circuits/`` folder)
BUNDLED = "neurosim.circuits"

_REQUIRED = ("NAME", "DESCRIPTION", "DEFAULTS", "run")


def _is_experiment(obj) -> bool:
    return all(hasattr(obj, a) for a in _REQUIRED)


@lru_cache(maxsize=1)
def sources() -> tuple:
    """``(label, value)`` of every experiment source: the bundled package first, then the entry points of
    :data:`GROUP` in name order (an entry point naming the bundled package again is dropped)."""
    found = [("bundled", BUNDLED)]
    try:
        from importlib.metadata import entry_points
        eps = sorted(entry_points(group=GROUP), key=lambda e: e.name)
    except Exception:  # pragma: no cover - unreadable metadata: the bundled experiments still work
        eps = []
    seen = {BUNDLED}
    for ep in eps:
        if ep.value not in seen:
            seen.add(ep.value)
            found.append((ep.name, ep.value))
    return tuple(found)


def _experiments_of(mod) -> list:
    found = [mod] if _is_experiment(mod) else []
    found.extend(getattr(mod, "EXPERIMENTS", []))
    return found


def _load_source(value: str) -> list:
    """``(where, experiment)`` of every experiment a source provides."""
    modname, _, attr = value.partition(":")
    mod = importlib.import_module(modname.strip())
    if attr:
        obj = mod
        for part in attr.strip().split("."):
            obj = getattr(obj, part)
        items = [obj] if _is_experiment(obj) else list(obj)
        bad = [x for x in items if not _is_experiment(x)]
        if bad:
            raise TypeError(f"experiment source {value!r}: {bad[0]!r} is not an experiment (it needs "
                            f"{', '.join(_REQUIRED)})")
        return [(value, x) for x in items]
    out = [(modname, x) for x in _experiments_of(mod)]
    if hasattr(mod, "__path__"):  # a package: every public submodule
        for info in sorted(pkgutil.iter_modules(mod.__path__), key=lambda i: i.name):
            if info.name.startswith("_"):
                continue
            sub = importlib.import_module(f"{modname}.{info.name}")
            out.extend((sub.__name__, x) for x in _experiments_of(sub))
    return out


@lru_cache(maxsize=1)
def _registry() -> dict:
    reg, where = {}, {}
    for _label, value in sources():
        for loc, exp in _load_source(value):
            name = exp.NAME
            if name in reg:
                if reg[name] is exp:
                    continue
                raise RuntimeError(f"experiment name {name!r} is defined twice (in {where[name]} and {loc}); "
                                   "rename one of them")
            reg[name], where[name] = exp, loc
    return reg


def names() -> list:
    """Every experiment name, sorted."""
    return sorted(_registry())


def list_experiments() -> list:
    """``(name, one-line description)`` of every experiment."""
    reg = _registry()
    return [(n, reg[n].DESCRIPTION) for n in sorted(reg)]


def _direct(name: str):
    """Fast path: the bundled submodule named like the experiment, if it defines it (nothing else imported)."""
    mod_name = name.replace("-", "_")
    if mod_name.startswith("_") or not mod_name.isidentifier():
        return None
    try:
        spec = importlib.util.find_spec(f"{BUNDLED}.{mod_name}")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    mod = importlib.import_module(f"{BUNDLED}.{mod_name}")
    for exp in _experiments_of(mod):
        if exp.NAME == name:
            return exp
    return None


def canonical_name(name: str) -> str:
    """The current spelling of an experiment name: ``brian2_bear`` -> ``brian2-bear`` (names use hyphens)."""
    return name.replace("_", "-")


_NOTIFIED: set = set()


def get(name: str):
    """The experiment registered under ``name`` (a module or an :class:`~neurosim.experiment.Experiment`).

    An old name with underscores resolves to its hyphenated form with a one-line notice on stderr; an
    unknown name raises ``KeyError`` listing the available ones.
    """
    new = canonical_name(name)
    exp = _direct(new)
    if exp is None:
        reg = _registry()
        exp = reg.get(name) or reg.get(new)
        if exp is None:
            import difflib
            close = difflib.get_close_matches(new.lower(), sorted(reg), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise KeyError(f"unknown experiment {name!r}; {hint}available: {', '.join(sorted(reg))}")
    if exp.NAME != name and name not in _NOTIFIED:
        _NOTIFIED.add(name)
        print(f"neurosim: note: the experiment name {name!r} is deprecated; use {exp.NAME!r}", file=sys.stderr)
    return exp
