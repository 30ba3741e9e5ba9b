"""Running named experiments: configuration, parameter checks, output directory, metrics.json, figures.

An experiment is a module (in :mod:`neurosim.circuits`, found by :mod:`neurosim.registry`) with ``NAME``,
``DESCRIPTION``, ``DEFAULTS`` (a dict of documented parameters, always including ``backend`` and ``seed``),
``PARAMS`` (the declared type and valid range of every parameter: a dict of :class:`Param`) and
``run(config, out, progress)`` returning a metrics dict.  :func:`run_experiment` resolves the configuration, checks every parameter against ``PARAMS``
*before* anything runs (a bad value raises :class:`ConfigError`, which the command line reports with exit
code 2), writes ``config.json``, runs, and writes ``metrics.json`` atomically:

* success: ``{"status": "ok", ...the experiment's metrics..., "experiment", "wall_time_s", "environment"}``;
* while it runs: ``{"status": "running", "experiment", "started_utc"}`` (written next to ``config.json`` before
  the run starts, so that a directory never shows an earlier run's metrics next to this run's config; a
  run killed with SIGKILL leaves this marker).  The figures an earlier run in the same directory listed
  under ``"figures"`` are removed at the same time, so the PNGs present are always this run's;
* failure, Ctrl-C or SIGTERM: ``{"status": "failed"`` (or ``"interrupted"``), ``"error": {"type", "message", ...}``,
  ``"partial": {...}}`` with what was computed up to the failure -- the training history of every
  simulator that was running (taken from the failing call stack), and whatever the experiment put in
  :func:`partial_results` -- and then the error is raised again.

Declaring parameters::

    from neurosim.experiment import Choice, Float, Int, ListOf

    DEFAULTS = {"backend": "numba", "seed": 0, "epochs": 20, "lr": 0.05, "hidden": [128]}
    PARAMS = {"backend": Choice("numba", "reference"), "seed": Int(ge=0), "epochs": Int(ge=1),
              "lr": Float(gt=0), "hidden": ListOf(Int(ge=1), min_len=1)}

A bound may name another parameter (``Int(ge=0, lt="trials")``); ``also`` admits special values outside
the range (``Int(ge=2, le=52, also=(0,))``: 0 means off); ``check`` is a function that raises
``ValueError`` for what a range cannot say.
"""
from __future__ import annotations

import contextvars
import json
import math
import platform
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .io import write_json_atomic

__all__ = ["Experiment", "ConfigError", "Param", "Int", "Float", "Bool", "Choice", "Str", "ListOf", "parse_value",
           "coerce", "resolve_config", "validate_config", "describe_params", "run_experiment", "partial_results",
           "Terminated", "flatten_metrics"]


@dataclass(frozen=True)
class Experiment:
    """An experiment defined as an object (several can live in one module of :mod:`neurosim.circuits`).

    ``run(config, out, progress)`` returns a metrics dict; ``doc`` is shown by ``neurosim show``;
    ``PARAMS`` declares the type and valid range of every parameter of ``DEFAULTS``.
    """

    NAME: str
    DESCRIPTION: str
    DEFAULTS: dict
    run: Callable
    doc: str = ""
    PARAMS: dict | None = None

    @property
    def __doc__(self):  # noqa: D105 - used by `neurosim show`
        return self.doc


class ConfigError(ValueError):
    """A bad ``--set key=value`` or configuration key."""


# ------------------------------------------------------------------------------------------ parameter specs
def _fmt_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


class Param:
    """The declared type and valid values of one experiment parameter.

    Parameters
    ----------
    kind : {"int", "float", "bool", "str", "list"}
    ge, gt, le, lt : number or str, optional
        Bounds (``>=``, ``>``, ``<=``, ``<``); a string names another parameter of the experiment.
    choices : sequence or callable, optional
        The allowed values (a callable is evaluated when a value is checked).
    also : tuple
        Values accepted outside the range (e.g. ``0`` meaning "off" or "all").
    item : Param, optional
        Type and range of the items of a list.
    min_len, max_len : int
        Length bounds of a list.
    check : callable, optional
        ``check(value)`` raises ``ValueError`` saying what is wrong (for what a range cannot express).
    requires : (callable, str) or (callable, str, str), optional
        ``(predicate(value, config), text[, error])``: a condition involving other parameters, e.g.
        ``(lambda v, c: v != "spiking" or c["backend"] == "brian2", "spiking needs backend=brian2")``;
        ``text`` is shown by ``neurosim show``, ``error`` (default ``text``) when the condition fails.
    doc : str
        What the valid values mean (shown by ``neurosim show`` after the range).
    refused : dict, optional
        Values that exist but this experiment cannot use, each with the reason (e.g. ``{"brian2": "graph
        circuits have no brian2 mapping"}``): choosing one raises :class:`ConfigError` with the reason.
    """

    def __init__(self, kind: str, *, ge=None, gt=None, le=None, lt=None, choices=None, also=(), item=None,
                 min_len: int = 0, max_len: int | None = None, check=None, requires=None, doc: str = "",
                 refused: dict | None = None):
        if kind not in ("int", "float", "bool", "str", "list"):
            raise ValueError(f"Param: kind must be int, float, bool, str or list, got {kind!r}")
        if ge is not None and gt is not None or le is not None and lt is not None:
            raise ValueError("Param: give at most one lower bound (ge/gt) and one upper bound (le/lt)")
        if kind == "list" and item is None:
            raise ValueError("Param: a list needs item=Param(...) for its items")
        self.kind, self.ge, self.gt, self.le, self.lt = kind, ge, gt, le, lt
        self.choices, self.also, self.item = choices, tuple(also), item
        self.min_len, self.max_len, self.check, self.doc = int(min_len), max_len, check, doc
        self.requires = requires
        self.refused = dict(refused or {})

    def __repr__(self):
        return f"Param({self.describe()!r})"

    # -------------------------------------------------------------- text
    def _choices(self):
        return list(self.choices() if callable(self.choices) else self.choices)

    def _range(self) -> str:
        lo = (self.ge, "[", ">=") if self.ge is not None else (self.gt, "(", ">") if self.gt is not None else None
        hi = (self.le, "]", "<=") if self.le is not None else (self.lt, ")", "<") if self.lt is not None else None
        if lo and hi:
            return f"in {lo[1]}{_fmt_value(lo[0])}, {_fmt_value(hi[0])}{hi[1]}"
        if lo:
            return f"{lo[2]} {_fmt_value(lo[0])}"
        if hi:
            return f"{hi[2]} {_fmt_value(hi[0])}"
        return ""

    def describe(self) -> str:
        """The valid values in words, e.g. ``int >= 1``, ``float in (0, 1]``, ``one of: sgd, adam``."""
        if self.choices is not None:
            try:
                text = "one of: " + ", ".join(_fmt_value(c) for c in self._choices())
            except Exception as e:  # choices that cannot be listed (e.g. a broken target directory)
                text = f"a valid choice ({type(e).__name__} while listing them)"
        elif self.kind == "bool":
            text = "true or false"
        elif self.kind == "list":
            n = ""
            if self.max_len is not None and self.max_len == self.min_len:
                n = f", exactly {self.min_len}"
            elif self.max_len is not None:
                n = f", {self.min_len} to {self.max_len} items"
            elif self.min_len > 0:
                n = f", at least {self.min_len}"
            item = self.item.describe()
            text = f"list of ({item}){n}" if any(c in item for c in ",;(") else f"list of {item}{n}"
        elif self.kind == "str":
            text = self.doc or "text"
            return text + (f"; {self.requires[1]}" if self.requires is not None else "")
        else:
            rng = self._range()
            text = ("number" if self.kind == "float" else self.kind) + (f" {rng}" if rng else "")
            if self.kind == "float" and not rng:
                text = "finite number"
        if self.also:
            text = " or ".join(_fmt_value(a) for a in self.also) + " or " + text
        if self.requires is not None:
            text += f"; {self.requires[1]}"
        if self.refused:  # values refused for the same reason share it ("not numba or reference: ...")
            by_reason: dict = {}
            for v, why in self.refused.items():
                by_reason.setdefault(why, []).append(_fmt_value(v))
            text += "".join(f"; not {' or '.join(vs)}: {why}" for why, vs in by_reason.items())
        return text + (f" ({self.doc})" if self.doc else "")

    # -------------------------------------------------------------- checks
    def coerce(self, key: str, value):
        """``value`` converted to this parameter's type (ints to floats, a scalar to a one-item list);
        raises :class:`ConfigError` naming ``key`` for a value of the wrong type."""
        bad = ConfigError(f"{key}={value!r}: expected {self.describe()}")
        if value is None:
            raise bad
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise bad
            return value
        if self.kind == "int":
            if isinstance(value, bool):
                raise bad
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if not isinstance(value, int):
                try:
                    import numpy as np
                    if isinstance(value, np.integer):
                        return int(value)
                except ImportError:  # pragma: no cover
                    pass
                raise bad
            return value
        if self.kind == "float":
            if isinstance(value, (bool, str, list, tuple, dict)):
                raise bad
            try:
                return float(value)
            except (TypeError, ValueError):
                raise bad from None
        if self.kind == "str":
            if isinstance(value, (list, tuple, dict)):
                raise bad
            return value if isinstance(value, str) else _fmt_value(value)
        vals = list(value) if isinstance(value, (list, tuple)) else [value]
        out = []
        for i, v in enumerate(vals):
            try:
                out.append(self.item.coerce(f"{key}[{i}]", v))
            except ConfigError as e:
                raise ConfigError(f"{key}={value!r}: item {i} ({v!r}): expected {self.item.describe()}") from e
        return out

    def _bound(self, b, cfg):
        if isinstance(b, str):
            if cfg is None or b not in cfg:
                return None
            return cfg[b]
        return b

    def violation(self, value, cfg=None) -> str | None:
        """Why ``value`` (already of the right type) is invalid, or None."""
        if value in self.also and not (isinstance(value, bool) and self.kind != "bool"):
            return None
        if isinstance(value, str) and value in self.refused:
            return f"not available for this experiment: {self.refused[value]}"
        if self.choices is not None:
            try:
                choices = self._choices()
            except Exception as e:
                return f"cannot list the valid choices: {type(e).__name__}: {e}"
            if value not in choices:
                return "not one of: " + ", ".join(_fmt_value(c) for c in choices)
        if self.kind in ("int", "float"):
            if not math.isfinite(value):
                return f"not finite; valid values: {self.describe()}"
            refs, ok = [], True
            for attr, test in (("ge", lambda v, b: v >= b), ("gt", lambda v, b: v > b),
                               ("le", lambda v, b: v <= b), ("lt", lambda v, b: v < b)):
                raw = getattr(self, attr)
                b = self._bound(raw, cfg)
                if b is None:
                    continue
                if isinstance(raw, str):
                    refs.append(f"{raw}={_fmt_value(b)}")
                ok = ok and test(value, b)
            if not ok:
                return f"out of range; valid values: {self.describe()}" + (f" with {', '.join(refs)}" if refs else "")
        if self.kind == "list":
            n = len(value)
            if n < self.min_len or (self.max_len is not None and n > self.max_len):
                return f"{n} item(s); valid values: {self.describe()}"
            for i, v in enumerate(value):
                why = self.item.violation(v, cfg)
                if why is not None:
                    return f"item {i} ({_fmt_value(v)}) is {why}" if why.startswith(("not ", "out of")) \
                        else f"item {i} ({_fmt_value(v)}): {why}"
        if self.check is not None:
            try:
                self.check(value)
            except (ValueError, TypeError, KeyError) as e:
                return str(e.args[0] if e.args else e) or f"not {self.describe()}"
        if self.requires is not None and cfg is not None:
            pred, text = self.requires[0], self.requires[1]
            try:
                ok = pred(value, cfg)
            except (KeyError, TypeError, ValueError):
                ok = True  # the other parameter is checked on its own
            if not ok:
                return self.requires[2] if len(self.requires) > 2 else text
        return None

    def validate(self, key: str, value, cfg=None):
        why = self.violation(value, cfg)
        if why is not None:
            shown = json.dumps(value) if isinstance(value, (list, bool)) else _fmt_value(value)
            raise ConfigError(f"{key}={shown}: {why}")
        return value


def Int(*, ge=None, gt=None, le=None, lt=None, also=(), choices=None, check=None, requires=None, doc="") -> Param:
    """An integer parameter, e.g. ``Int(ge=1)``; ``also=(0,)`` admits 0 outside the range."""
    return Param("int", ge=ge, gt=gt, le=le, lt=lt, also=also, choices=choices, check=check, requires=requires,
                 doc=doc)


def Float(*, ge=None, gt=None, le=None, lt=None, also=(), check=None, requires=None, doc="") -> Param:
    """A finite real parameter, e.g. ``Float(gt=0)`` or ``Float(ge=0, le=1)``."""
    return Param("float", ge=ge, gt=gt, le=le, lt=lt, also=also, check=check, requires=requires, doc=doc)


def Bool(doc="") -> Param:
    return Param("bool", doc=doc)


def Choice(*choices, requires=None, doc="", refused: dict | None = None) -> Param:
    """A string out of ``choices`` (or a callable returning them, evaluated when checked); ``refused`` maps
    values that exist but cannot be used here to the reason (``{"brian2": "why"}``)."""
    if len(choices) == 1 and callable(choices[0]):
        return Param("str", choices=choices[0], requires=requires, doc=doc, refused=refused)
    return Param("str", choices=tuple(choices), requires=requires, doc=doc, refused=refused)


def Str(*, check=None, doc="") -> Param:
    """A free-form string, optionally checked by ``check(value)`` (raises ``ValueError``)."""
    return Param("str", check=check, doc=doc)


def ListOf(item: Param, *, min_len: int = 1, max_len: int | None = None, doc="") -> Param:
    """A list of ``item`` values (at least ``min_len``); a single value is accepted as a one-item list."""
    return Param("list", item=item, min_len=min_len, max_len=max_len, doc=doc)


# ------------------------------------------------------------------------------------------ configuration
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


def parse_param_value(raw: str, spec=None):
    """A ``--set`` / ``--grid`` value of a parameter declared as ``spec`` (a :class:`Param` or None): the text
    itself for a string parameter (so that ``weights:Quantize(6, bound=2.0)`` keeps its comma and ``none`` stays
    the word; a quoted string is unquoted), else :func:`parse_value`."""
    if spec is not None and spec.kind == "str":
        v = parse_value(raw)
        return v if isinstance(v, str) else raw.strip()
    return parse_value(raw)


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


def coerce_param(key: str, value, defaults: dict, params: dict | None = None):
    """``value`` of parameter ``key`` converted to its declared type (``params``) or the type of its default."""
    if params and key in params:
        return params[key].coerce(key, value)
    return coerce(key, value, defaults[key])


def validate_config(cfg: dict, params: dict | None) -> dict:
    """Check every value of ``cfg`` that ``params`` declares; raises :class:`ConfigError` naming the first
    invalid parameter and its valid range."""
    for key, spec in (params or {}).items():
        if key in cfg:
            spec.validate(key, cfg[key], cfg)
    if cfg.get("backend") == "brian2" and not brian2_installed():
        raise ConfigError("backend=brian2: brian2 is not installed; install the extra with "
                          "pip install -e \".[brian2]\" (or pip install brian2), or choose another backend")
    return cfg


def brian2_installed() -> bool:
    """Whether brian2 can be imported (found without importing it)."""
    import importlib.util
    return importlib.util.find_spec("brian2") is not None


def resolve_config(defaults: dict, overrides: dict, params: dict | None = None) -> dict:
    """``defaults`` with ``overrides`` applied (unknown keys and wrong types raise :class:`ConfigError`);
    with ``params`` every value is also checked against its declared range."""
    cfg = dict(defaults)
    for key, value in overrides.items():
        if key not in defaults:
            import difflib
            close = difflib.get_close_matches(key, list(defaults), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown parameter {key!r}{hint}; parameters: {', '.join(sorted(defaults))}")
        cfg[key] = coerce_param(key, value, defaults, params)
    return validate_config(cfg, params)


def params_of(module) -> dict | None:
    """The declared parameters of an experiment (``None`` for one that declares none)."""
    return getattr(module, "PARAMS", None)


def describe_params(module) -> list:
    """``(name, default, valid values)`` of every parameter of an experiment."""
    params = params_of(module) or {}
    return [(k, v, params[k].describe() if k in params else "(not declared)") for k, v in module.DEFAULTS.items()]


# ------------------------------------------------------------------------------------------ partial results
_PARTIAL: contextvars.ContextVar = contextvars.ContextVar("neurosim_partial_results", default=None)


def partial_results() -> dict:
    """A dict the running experiment may fill with what it has finished (e.g. ``partial_results()["seeds"]
    = done``); if the run fails, :func:`run_experiment` writes it into ``metrics.json`` under
    ``partial.reported``.  Outside :func:`run_experiment` it is a fresh dict nobody reads."""
    d = _PARTIAL.get()
    return {} if d is None else d


def _simulator_records(exc: BaseException) -> list:
    """Training histories of the simulators on the failing call stack (innermost last), without duplicates."""
    try:
        from .simulator import History
    except Exception:  # pragma: no cover - the simulator module itself is broken
        return []
    out, seen = [], set()

    def add(h, where, owner):
        if not isinstance(h, History) or id(h) in seen:
            return
        seen.add(id(h))
        data = h.to_json()
        if not data:
            return
        rec = {"where": where, "history": data}
        circ = getattr(owner, "__dict__", {}).get("circuit") or getattr(owner, "__dict__", {}).get("graph")
        if getattr(circ, "name", None):
            rec["circuit"] = circ.name
        n = getattr(owner, "__dict__", {}).get("_n_batches")
        if isinstance(n, int):
            rec["batches_done"] = n
        out.append(rec)

    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        func = f"{frame.f_globals.get('__name__', '?')}.{frame.f_code.co_name}"
        try:
            items = list(frame.f_locals.items())
        except Exception:  # pragma: no cover
            items = []
        for name, v in items:
            where = f"{func} ({name})"
            if isinstance(v, History):
                add(v, where, None)
                continue
            d = getattr(v, "__dict__", None)
            if not isinstance(d, dict):
                continue
            if isinstance(d.get("history"), History):
                add(d["history"], where, v)
            inner = getattr(d.get("sim"), "__dict__", None)
            if isinstance(inner, dict) and isinstance(inner.get("history"), History):
                add(inner["history"], f"{where}.sim", d["sim"])
        tb = tb.tb_next
    return out


def _environment() -> dict:
    import numpy
    env = {"python": platform.python_version(), "numpy": numpy.__version__, "machine": platform.machine()}
    try:
        import numba
        env["numba"] = numba.__version__
    except ImportError:  # pragma: no cover
        pass
    return env


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, SLURM, ``docker stop``) turned into an exception by the command line, so that a
    terminated run ends like Ctrl-C: ``metrics.json`` gets ``"status": "interrupted"`` and the partial results."""

    def __init__(self, signum: int = 15):
        import signal
        self.signum = int(signum)
        try:
            name = signal.Signals(self.signum).name
        except ValueError:  # pragma: no cover
            name = f"signal {self.signum}"
        super().__init__(f"terminated by {name}")


def _remove_stale_figures(out: Path) -> None:
    """Remove the files an earlier run in ``out`` listed under ``"figures"`` and ``"report"`` in its
    ``metrics.json`` (plain file names inside ``out`` only; a failed run left an earlier run's report beside its
    own failed metrics), and that ``metrics.json`` itself."""
    stale = out / "metrics.json"
    if not stale.exists():
        return
    try:
        old = json.loads(stale.read_text())
    except (OSError, ValueError):
        old = None
    names = []
    for key in ("figures", "report"):
        v = old.get(key) if isinstance(old, dict) else None
        names += [v] if isinstance(v, str) else v if isinstance(v, list) else []
    for name in names:
        if isinstance(name, str) and name and Path(name).name == name:
            try:
                (out / name).unlink()
            except FileNotFoundError:
                pass
    stale.unlink()


def _failure_record(module, exc: BaseException, reported: dict, wall: float) -> dict:
    error = {"type": type(exc).__name__, "message": str(exc) or type(exc).__name__}
    if isinstance(exc, Terminated):
        error["signal"] = exc.signum
    for attr in ("step", "population", "batch"):  # DivergenceError: where the run diverged
        if hasattr(exc, attr):
            error[attr] = getattr(exc, attr)
    error["traceback"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    partial = {}
    sims = _simulator_records(exc)
    if sims:
        partial["simulators"] = sims
    if reported:
        partial["reported"] = dict(reported)
    return {"status": "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", "experiment": module.NAME,
            "error": error, "partial": partial, "wall_time_s": wall, "environment": _environment()}


def run_experiment(module, overrides: dict | None = None, out=None, progress: bool = True) -> dict:
    """Run an experiment module with ``overrides`` applied to its ``DEFAULTS``; returns its metrics.

    Every parameter is checked against the module's ``PARAMS`` first (:class:`ConfigError`, nothing
    written).  ``metrics.json`` gets ``"status": "ok"``; when the run raises (or is interrupted) it gets
    ``"status": "failed"`` / ``"interrupted"``, the error and the partial results, and the error propagates.
    """
    cfg = resolve_config(module.DEFAULTS, overrides or {}, params_of(module))
    out = Path(out) if out is not None else Path("results") / module.NAME
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_figures(out)  # never leave an earlier run's metrics or figures next to this run's config
    write_json_atomic(out / "metrics.json", {"status": "running", "experiment": module.NAME,
                                             "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    write_json_atomic(out / "config.json", {"experiment": module.NAME, **cfg})
    reported: dict = {}
    token = _PARTIAL.set(reported)
    t0 = time.perf_counter()
    try:
        metrics = dict(module.run(cfg, out, progress=progress))
    except BaseException as exc:
        try:
            write_json_atomic(out / "metrics.json", _failure_record(module, exc, reported, time.perf_counter() - t0))
        except Exception:  # noqa: S110 - never hide the run's own error behind a failure to describe it
            pass
        raise
    finally:
        _PARTIAL.reset(token)
    metrics = {"status": "ok", **metrics}
    metrics.setdefault("experiment", module.NAME)
    metrics["wall_time_s"] = time.perf_counter() - t0
    metrics["environment"] = _environment()
    write_json_atomic(out / "metrics.json", metrics)
    return metrics


# ------------------------------------------------------------------------------------------ reading metrics
#: top-level keys that describe the run rather than measure something
BOOKKEEPING = ("status", "experiment", "environment", "figures", "report", "error", "partial")


def flatten_metrics(metrics: dict, *, lists: bool = False, skip=BOOKKEEPING, prefix: str = "") -> dict:
    """Nested metrics as ``{"pc.min_correct_output": value}`` (dotted keys, in order).

    Scalars (numbers, strings, booleans) are kept; ``None`` (a non-finite number in JSON) is dropped;
    lists are dropped, or kept as values when ``lists=True`` and every item is a scalar.  Top-level keys
    in ``skip`` are left out.
    """
    out = {}
    for k, v in metrics.items():
        if not prefix and k in skip:
            continue
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten_metrics(v, lists=lists, skip=(), prefix=key + "."))
        elif isinstance(v, (list, tuple)):
            if lists and all(isinstance(x, (int, float, str, bool)) for x in v):
                out[key] = list(v)
        elif isinstance(v, bool) or isinstance(v, str):
            out[key] = v
        elif isinstance(v, (int, float)):
            if isinstance(v, float) and not math.isfinite(v):
                continue
            out[key] = v
        else:
            try:
                import numpy as np
                if isinstance(v, np.generic) and np.isfinite(v):
                    out[key] = v.item()
            except (ImportError, TypeError):  # pragma: no cover
                pass
    return out
