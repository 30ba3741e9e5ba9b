"""Parameter sweeps of an experiment on Dask: a local cluster by default, an existing cluster when asked.

    neurosim sweep hw-precision --grid weight_bits=2,4,8 --grid seed=0,1,2 --set curves=false

A sweep is the Cartesian product of ``--grid key=v1,v2,...`` over an experiment's parameters (values are
parsed and checked against the experiment's defaults before anything starts), plus fixed ``--set``
overrides.  Every point runs :func:`neurosim.experiment.run_experiment` in its own directory
``OUT/points/<name>-<hash>/`` (``point.json``, ``config.json``, ``metrics.json``, figures); the hash covers the
experiment and all overrides, so a point is identified by what it computes.

Crash safety and resume: a point is *finished* once its ``metrics.json`` exists and is valid: a JSON
object with ``"status": "ok"``, the sweep's experiment, a finite ``wall_time_s``, at least one metric and no
NaN or infinity anywhere (a failed run writes ``"status": "failed"``; an empty, truncated or foreign file is
not a result).  The worker writes it atomically at the end of the run, and the client writes it again
(atomically) as soon as the result arrives, so a finished point is on disk at once; a killed worker or a
killed sweep loses only points that were still running, which Dask reschedules (a killed worker) or the
next run computes (a killed sweep).  Re-running the same sweep skips every finished point and recomputes
every other one.

At the end the sweep writes ``OUT/results.csv`` and ``OUT/results.json`` (one row per finished point:
overrides and every scalar metric, nested ones with dotted names such as ``pc.min_correct_output``),
``OUT/<metric>_vs_<key>.png`` for every numeric grid key (mean, and with several seeds the standard
deviation over the grid key ``seed``) and, when the rows carry an energy metric, ``OUT/pareto.png``
(metric vs energy per sample with the Pareto front: the configurations -- grid points but for the seed, at
their means over the seeds -- that no other configuration beats on both).  ``metric``
must be a numeric metric of the rows (an unknown one raises :class:`~neurosim.experiment.ConfigError`
listing those available as soon as one point has finished, which is kept).
"""
from __future__ import annotations

import csv
import hashlib
import itertools
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .config import usable_cores as _cores
from .experiment import ConfigError, coerce_param, flatten_metrics, params_of, parse_param_value, resolve_config
from .io import atomic_write, read_json, write_json_atomic

log = logging.getLogger("neurosim")

__all__ = ["parse_grid", "expand", "point_name", "run_sweep", "SweepResult", "pareto_front"]


# ----------------------------------------------------------------------------------------- grid
def _split_top(raw: str) -> list:
    """Split at commas that are not inside brackets."""
    parts, depth, cur = [], 0, []
    for ch in raw:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def parse_grid(items, defaults: dict, params: dict | None = None) -> dict:
    """``["key=v1,v2", ...]`` -> ``{key: [v1, v2]}`` with values coerced to the declared type of the
    parameter (``params``, see :class:`~neurosim.experiment.Param`) or the type of ``defaults[key]``.

    Commas inside brackets belong to a value (``hidden=[16,16],[32]`` gives two values).  Raises
    :class:`~neurosim.experiment.ConfigError` (one line) for a malformed item, an unknown or repeated key,
    an empty value list, a value of the wrong type or, with ``params``, out of its valid range.
    """
    grid = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--grid expects KEY=V1,V2,..., got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key not in defaults:
            raise ConfigError(f"unknown parameter {key!r} in --grid; parameters: {', '.join(sorted(defaults))}")
        if key in grid:
            raise ConfigError(f"--grid {key!r} is given twice; put all its values in one --grid")
        parts = _split_top(raw)
        if not raw.strip() or any(p == "" for p in parts):
            raise ConfigError(f"--grid {key}=...: empty value in {raw!r}")
        values = [coerce_param(key, parse_param_value(p, (params or {}).get(key)), defaults, params)
                  for p in parts]
        if params and key in params:
            for v in values:
                params[key].validate(key, v)  # alone; ranges relative to other parameters are checked per point
        grid[key] = values
    return grid


def expand(grid: dict) -> list:
    """All points of the grid (Cartesian product, first key slowest), as override dicts."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def point_name(experiment: str, overrides: dict, grid_keys=None) -> str:
    """Directory name of a point: readable ``key=value`` parts of the grid keys and a hash of everything."""
    digest = hashlib.sha1(_canonical({"experiment": experiment, "overrides": overrides}).encode()).hexdigest()[:10]
    keys = list(grid_keys) if grid_keys is not None else sorted(overrides)
    slug = "_".join(f"{k}={_canonical(overrides[k])}" for k in keys if k in overrides)
    slug = re.sub(r"[^A-Za-z0-9._=+-]+", "", slug)[:80]
    return f"{slug}-{digest}" if slug else digest


def _all_finite(obj) -> bool:
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(_all_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_all_finite(v) for v in obj)
    return True


def valid_point(m, experiment: str | None = None) -> str | None:
    """Why the metrics ``m`` of a point are not a finished result, or None when they are.

    A finished point has ``"status": "ok"``, the experiment's name, a finite ``wall_time_s`` >= 0, at least
    one metric besides these, and no NaN or infinity anywhere (``metrics.json`` stores non-finite numbers
    as null; a NaN literal means the file was not written by neurosim).
    """
    if not isinstance(m, dict):
        return f"not a JSON object ({type(m).__name__})"
    if m.get("status") != "ok":
        return f"status {m.get('status')!r}" if "status" in m else "no status"
    if experiment is not None and m.get("experiment") != experiment:
        return f"experiment {m.get('experiment')!r}, not {experiment!r}"
    wt = m.get("wall_time_s")
    if isinstance(wt, bool) or not isinstance(wt, (int, float)) or not math.isfinite(wt) or wt < 0:
        return f"wall_time_s {wt!r}"
    if not any(k not in ("status", "experiment", "environment", "wall_time_s") for k in m):
        return "no metrics"
    if not _all_finite(m):
        return "NaN or infinity in the metrics"
    return None


def _finished(d: Path, experiment: str | None = None):
    """The metrics of a finished point, or None (missing, unreadable or invalid: see :func:`valid_point`)."""
    try:
        m = read_json(d / "metrics.json")
    except (OSError, ValueError):
        return None
    return m if valid_point(m, experiment) is None else None


# ----------------------------------------------------------------------------------------- worker side
def _run_point(experiment, overrides: dict, out_dir: str) -> dict:
    """Run one point on a worker (the experiment's own ``metrics.json`` is written atomically at its end)."""
    from .experiment import run_experiment
    if isinstance(experiment, str):
        from .registry import get
        module = get(experiment)
    else:
        module = experiment
    return run_experiment(module, overrides, out=Path(out_dir), progress=False)


# ----------------------------------------------------------------------------------------- results
@dataclass
class SweepResult:
    """What a sweep produced.

    ``rows`` has one dict per finished point (overrides + scalar metrics + ``point``); ``computed`` and
    ``skipped`` name the points run now and those already finished; ``failed`` maps points to their error.
    """

    out: Path
    experiment: str
    grid: dict
    rows: list
    computed: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    figures: list = field(default_factory=list)
    pareto: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def _scalar(v) -> bool:
    return isinstance(v, (int, float, str, bool)) and not (isinstance(v, float) and not math.isfinite(v))


def pareto_front(points, maximize_y: bool = True) -> list:
    """Indices of the non-dominated points of ``[(x, y), ...]``: minimal x (cost) and maximal y (or minimal
    when ``maximize_y=False``), sorted by x."""
    pts = [(float(x), float(y) if maximize_y else -float(y), i) for i, (x, y) in enumerate(points)]
    pts.sort(key=lambda t: (t[0], -t[1]))
    front, best = [], -math.inf
    for x, y, i in pts:
        if y > best:
            front.append(i)
            best = y
    return front


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _axis_label(name: str) -> str:
    """A metric's name as an axis label, its unit suffix spelt out: ``energy_per_sample_J`` -> ``energy per
    sample (J)``."""
    for suffix, unit in (("_J", "J"), ("_s", "s"), ("_W", "W"), ("_bytes", "bytes")):
        if name.endswith(suffix):
            return f"{name[:-len(suffix)].replace('_', ' ')} ({unit})"
    return name


def _plots(out: Path, grid: dict, rows: list, metric: str, energy_metric: str | None) -> tuple:
    import numpy as np

    from . import plot
    figures, front_rows = [], []
    if not rows or not any(metric in r for r in rows):
        return figures, front_rows
    keys = [k for k in grid if k != "seed"]
    for key in keys:
        vals = sorted({r[key] for r in rows if key in r}, key=lambda v: (v is None, v))
        if len(vals) < 2 or not _numeric(vals):
            continue
        others = [k for k in keys if k != key]
        groups = {}
        for r in rows:
            if metric not in r or not isinstance(r[metric], (int, float)):
                continue
            label = ", ".join(f"{k}={r.get(k)}" for k in others) or metric
            groups.setdefault(label, {}).setdefault(r[key], []).append(float(r[metric]))
        curves = {}
        for label, by_x in groups.items():
            xs = sorted(by_x)
            ys = np.array([np.mean(by_x[x]) for x in xs])
            # the sample standard deviation over seeds (ddof 1, as hw-design-space reports it)
            err = np.array([np.std(by_x[x], ddof=1) if len(by_x[x]) > 1 else 0.0 for x in xs])
            curves[label] = (np.array(xs, dtype=float), ys, err if np.any(err > 0) else None)
        if not curves:
            continue
        pos = [v for v in vals if v > 0]
        logx = len(pos) == len(vals) and max(vals) / min(vals) >= 100
        path = out / f"{metric}_vs_{key}.png"
        n_seeds = len(grid.get("seed", ()))
        ylabel = f"{metric} (mean ± sd over {n_seeds} seeds)" if n_seeds > 1 else metric
        plot.comparison(curves, xlabel=key, ylabel=ylabel, path=path, logx=logx, title=f"{metric} vs {key}")
        figures.append(path.name)
    if energy_metric and any(energy_metric in r for r in rows):
        pts = [(r[energy_metric], r[metric], r) for r in rows
               if isinstance(r.get(energy_metric), (int, float)) and isinstance(r.get(metric), (int, float))
               and r[energy_metric] > 0]
        # the front is over configurations (every grid key but the seed), at their means over the seeds: seeds of
        # one configuration differ in energy in the 7th digit (measured weight writes), and two seeds of one
        # configuration were both "on the front" while the curves showed seed means
        gk = [k for k in grid if k != "seed"]
        configs = {}
        for e, m, r in pts:
            configs.setdefault(tuple(_canonical(r.get(k)) for k in gk), []).append((e, m, r))
        agg = [(float(np.mean([p[0] for p in v])), float(np.mean([p[1] for p in v])), [p[2] for p in v])
               for v in configs.values()]
        if len(agg) >= 2:   # a trade-off needs two configurations (one drew a 'front' of itself)
            from matplotlib.figure import Figure
            front = pareto_front([(e, m) for e, m, _ in agg])
            front_rows = [r for i in front for r in agg[i][2]]
            seeds = max(len(v) for v in configs.values())
            fig = Figure(figsize=(6.4, 4.6))
            ax = fig.add_subplot(1, 1, 1)
            if seeds > 1:
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=10, color="0.75", label="sweep points (seeds)")
            ax.scatter([a[0] for a in agg], [a[1] for a in agg], s=22, color="0.45",
                       label=f"configurations (mean of {seeds} seeds)" if seeds > 1 else "sweep points")
            fx = [agg[i][0] for i in front]
            fy = [agg[i][1] for i in front]
            ax.step(fx, fy, where="post", color="C3", lw=1.8, label="Pareto front")
            ax.scatter(fx, fy, s=40, color="C3", zorder=3)
            for i in front:
                ax.annotate(", ".join(f"{k}={agg[i][2][0].get(k)}" for k in gk), (agg[i][0], agg[i][1]), fontsize=7,
                            xytext=(4, -10), textcoords="offset points")
            if max(p[0] for p in pts) / min(p[0] for p in pts) >= 10:
                ax.set_xscale("log")   # within a decade a log axis has no major tick to label
            ax.set_xlabel(_axis_label(energy_metric))
            ax.set_ylabel(metric)
            ax.set_title(f"{metric} vs {energy_metric}: Pareto front")
            ax.legend(loc="lower right", fontsize=8)
            ax.grid(True, alpha=0.3)
            plot.save(fig, out / "pareto.png")
            figures.append("pareto.png")
    return figures, front_rows


def _write_table(out: Path, rows: list, grid: dict):
    keys = list(grid)
    metric_keys = list({k: None for r in rows for k in r if k not in keys and k != "point"})
    cols = ["point"] + keys + metric_keys
    with atomic_write(out / "results.csv", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            w.writerow([_canonical(r.get(c)) if isinstance(r.get(c), (list, dict)) else r.get(c, "") for c in cols])


# ----------------------------------------------------------------------------------------- driver
def run_sweep(experiment, grid: dict, out, *, fixed: dict | None = None, scheduler: str | None = None,
              client=None, workers: int | None = None, progress: bool = True, callback=None,
              metric: str | None = None, energy_metric: str | None = None, timeout: float = 60.0,
              plots: bool = True, label: str | None = None) -> SweepResult:
    """Run ``experiment`` on every point of ``grid`` in parallel on Dask; finished points are skipped.

    Parameters
    ----------
    experiment : str or module/Experiment
        An experiment name of :mod:`neurosim.registry` (objects must be importable on the workers).
    grid : dict key -> list of values
        From :func:`parse_grid` (or built by hand; values are checked against the defaults).
    out : path
        Sweep directory.
    fixed : dict, optional
        Overrides shared by every point.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); ``"inprocess"``: the points one after
        another in this process, without Dask; default: a local cluster of ``workers`` processes with one
        thread each (default ``min(2, cores)``), closed at the end.  Without Dask installed (and not
        ``"inprocess"``) it raises :class:`~neurosim.experiment.ConfigError` naming the ``distributed`` extra.
    client : distributed.Client, optional
        Use this client (and its cluster) instead.
    progress : bool
        Progress bar over the points.
    label : str, optional
        Name of the sweep on its progress bar (default: the experiment's name).
    callback : callable, optional
        ``callback(overrides, metrics)`` after each finished point has been written.
    metric, energy_metric : str, optional
        Metric of the plots (default ``test_accuracy`` when present) and the cost axis of the Pareto plot
        (default ``energy_per_sample_J`` when present).
    timeout : float
        Seconds to wait for a scheduler connection or local workers.
    plots : bool
        Draw the plots (``results.csv`` and ``results.json`` are always written); ``hw-design-space`` draws its
        own.
    """
    if isinstance(experiment, str):
        from .registry import get
        try:
            module = get(experiment)
        except KeyError as e:
            raise ConfigError(str(e.args[0])) from None
    else:
        module = experiment
    name = module.NAME  # the current spelling (an old underscore name resolves to its hyphenated form)
    fixed = dict(fixed or {})
    for key in fixed:
        if key in grid:
            raise ConfigError(f"parameter {key!r} is both swept (--grid) and fixed (--set)")
    if not grid:
        raise ConfigError("a sweep needs at least one --grid KEY=V1,V2,...")
    points = expand(grid)
    overrides = [{**fixed, **pt} for pt in points]
    for ov in overrides:
        resolve_config(module.DEFAULTS, ov, params_of(module))  # raises ConfigError before anything starts
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"--workers must be a positive int, got {workers!r}")
    out = Path(out)
    (out / "points").mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "sweep.json", {"experiment": name, "grid": grid, "fixed": fixed, "n_points": len(points)})
    ids = [point_name(name, ov, list(grid)) for ov in overrides]
    dirs = {pid: out / "points" / pid for pid in ids}
    result = SweepResult(out=out, experiment=name, grid=grid, rows=[])
    pending = []
    for pid, ov in zip(ids, overrides):
        if _finished(dirs[pid], name) is not None and _same_overrides(dirs[pid], ov):
            result.skipped.append(pid)
        else:
            pending.append((pid, ov))
            write_json_atomic(dirs[pid] / "point.json", {"experiment": name, "overrides": ov, "point": pid})
    def row_of(pid, pt, m):
        row = {"point": pid, **pt}
        flat = flatten_metrics(m, skip=("status", "environment", "figures", "report"))
        row.update({k: v for k, v in flat.items() if _scalar(v) and k not in row})
        return row

    def leaves(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from leaves(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}"

    def check_metric(pid, m):
        """An unknown --metric stops the sweep at its first finished point (it was reported after all of them);
        one the point has, whatever its value there (null when a point diverged), is checked at the end over all
        the rows."""
        available = _numeric_metrics([row_of(pid, {}, m)], grid)
        if metric is not None and metric not in set(leaves(m)):
            shown = ", ".join(available[:40]) + (f", ... ({len(available)} in all)" if len(available) > 40 else "")
            raise ConfigError(f"unknown metric {metric!r} for the plots; numeric metrics of {name}: {shown} (the "
                              f"finished points are kept in {out / 'points'}; run again with another --metric to "
                              "go on from them)")
    done = next(((pid, m) for pid in result.skipped if (m := _finished(dirs[pid], name)) is not None), None)
    if done is not None:
        check_metric(*done)
    if pending:
        first = {}

        def checking(ov, m):
            if not first:
                first["done"] = True
                check_metric(None, m)
            if callback is not None:
                callback(ov, m)
        try:
            _compute(name if isinstance(experiment, str) else module, pending, dirs, result, scheduler, client,
                     workers, progress, checking if metric is not None else callback, timeout,
                     label or f"sweep {name}")
        except KeyboardInterrupt:
            # the points finished so far still get their table (an interrupt after the last point finished lost
            # results.csv; a re-run would have written it), marked as interrupted; then the interrupt goes on
            rows = [row_of(pid, pt, m) for pid, pt in zip(ids, points) if (m := _finished(dirs[pid], name)) is not None]
            _write_table_or_remove(out, rows, grid)
            write_json_atomic(out / "results.json", {"experiment": name, "grid": grid, "fixed": fixed, "rows": rows,
                                                     "failed": result.failed, "interrupted": True,
                                                     "unfinished": len(points) - len(rows) - len(result.failed)})
            raise
    rows = []
    for pid, pt in zip(ids, points):
        m = _finished(dirs[pid], name)
        if m is None:
            continue
        rows.append(row_of(pid, pt, m))
    result.rows = rows
    unknown = None
    _write_table_or_remove(out, rows, grid)
    if rows:
        available = _numeric_metrics(rows, grid)
        if metric is not None and metric not in available:
            unknown = metric
            metric = None
        metric = metric or ("test_accuracy" if "test_accuracy" in available else next(
            (k for k in available if isinstance(rows[0].get(k), float)), None))
        if energy_metric is None and any("energy_per_sample_J" in r for r in rows):
            energy_metric = "energy_per_sample_J"
        if metric and unknown is None and plots:
            result.figures, result.pareto = _plots(out, grid, rows, metric, energy_metric)
    write_json_atomic(out / "results.json", {"experiment": name, "grid": grid, "fixed": fixed, "rows": rows,
                                             "failed": result.failed, "metric": metric, "energy_metric": energy_metric,
                                             "pareto": [r["point"] for r in result.pareto],
                                             "figures": result.figures})
    if unknown is not None:
        names = _numeric_metrics(rows, grid)
        shown = ", ".join(names[:40]) + (f", ... ({len(names)} in all, see results.csv)" if len(names) > 40 else "")
        raise ConfigError(f"unknown metric {unknown!r} for the plots; numeric metrics of {name}: {shown} (the "
                          f"{len(rows)} finished points are kept; re-run with --metric NAME)")
    return result


def _write_table_or_remove(out: Path, rows: list, grid: dict) -> None:
    """``results.csv`` of ``rows``; with no finished point, an earlier sweep's table in ``out`` is removed (it would
    list points of another grid beside this sweep's results.json)."""
    if rows:
        _write_table(out, rows, grid)
    else:
        (out / "results.csv").unlink(missing_ok=True)


def _same_overrides(d: Path, ov: dict) -> bool:
    """Whether the point in ``d`` was run with the overrides ``ov`` (its ``point.json``; the directory name
    already carries a hash of them, this guards against a directory renamed or copied by hand).  A point
    without ``point.json`` counts as the same."""
    try:
        saved = read_json(d / "point.json")
    except (OSError, ValueError):
        return True
    return not isinstance(saved, dict) or _canonical(saved.get("overrides")) == _canonical(ov)


def _numeric_metrics(rows: list, grid: dict) -> list:
    """Names of the numeric columns of the rows (metrics, not grid keys), in first-seen order."""
    names = {}
    for r in rows:
        for k, v in r.items():
            if k != "point" and k not in grid and isinstance(v, (int, float)) and not isinstance(v, bool):
                names.setdefault(k, None)
    return list(names)


#: how to install Dask (the ``distributed`` extra of pyproject.toml)
DASK_HINT = "pip install 'neurosim[distributed]' (or pip install 'dask[distributed]')"


def require_dask(what: str):
    """Import ``dask.distributed``; a missing Dask is a usage error (:class:`ConfigError`, exit status 2)
    naming the extra that installs it."""
    try:
        import dask.distributed as dd
    except ImportError:
        raise ConfigError(f"{what} needs Dask, which is not installed: {DASK_HINT}") from None
    return dd


def default_workers() -> int:
    """Workers of a local cluster by default: one per core, at most 2."""
    return max(1, min(2, _cores()))


def local_cluster(workers: int | None = None, timeout: float = 60.0):
    """``(client, cluster)``: a local Dask cluster of ``workers`` single-threaded worker processes (default
    :func:`default_workers`), its workers ignoring SIGINT (:func:`quiet_workers`).

    Workers log nothing below CRITICAL: a point that fails is reported by the sweep on one line and its whole
    traceback is kept in the point's ``error.json``, so the worker's own "Compute Failed" report (the traceback
    again, as one escaped string) would only repeat it.  More workers than cores is allowed (a user may know
    better) but logged: every point then runs slower, each kernel and BLAS product being CPU-bound."""
    dd = require_dask("a local Dask cluster")
    n = workers or default_workers()
    if n > _cores():
        log.warning("neurosim: %d Dask workers on %d core(s): the points share the cores and each runs slower "
                    "(set --workers %d or fewer)", n, _cores(), _cores())
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Port .* is already in use")   # another cluster's dashboard
        cluster = dd.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.CRITICAL)
    try:
        client = dd.Client(cluster, timeout=timeout)
    except BaseException:
        cluster.close()
        raise
    quiet_workers(client)
    return client, cluster


def _ignore_sigint():
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def quiet_workers(client):
    """Make the worker processes of a local cluster ignore SIGINT: Ctrl-C in a terminal reaches every process of
    the group, and each worker would print its own KeyboardInterrupt traceback; the sweep's process handles the
    interrupt and closes the cluster, which stops the workers.  Best effort (nothing happens if it fails)."""
    try:
        client.run(_ignore_sigint)
    except Exception:  # noqa: BLE001, S110 - cosmetic only
        pass


def _failure(e, tb) -> tuple:
    """``(one-line message, full traceback text)`` of a point's exception ``e`` with traceback ``tb``."""
    import traceback
    try:
        text = "".join(traceback.format_exception(type(e), e, tb))
    except Exception:  # noqa: BLE001 - a traceback that cannot be formatted must not lose the point's error
        text = repr(e)
    # without Python's ^^^^ position markers: a traceback rebuilt from a Dask worker carries code objects whose
    # column positions are not the source's, so its markers pointed at the wrong characters
    text = "".join(ln for ln in text.splitlines(keepends=True) if not re.fullmatch(r"\s*[\^~]+\s*", ln))
    return f"{type(e).__name__}: {e}".splitlines()[0], text


def _record(r, pid, ov, dirs, result, callback):
    """Write the outcome of one point: ``("ok", metrics)`` or ``("failed", (message, traceback))``; a failed
    point's ``error.json`` holds its one-line error and its whole traceback."""
    kind, value = r
    if kind == "failed":
        message, tb = value
        result.failed[pid] = message
        write_json_atomic(dirs[pid] / "error.json", {"point": pid, "overrides": ov, "error": message,
                                                     "traceback": tb})
        return
    write_json_atomic(dirs[pid] / "metrics.json", value)
    err = dirs[pid] / "error.json"
    if err.exists():
        err.unlink()
    result.computed.append(pid)
    if callback is not None:
        callback(ov, value)


def _compute_inprocess(experiment, pending, dirs, result, progress, callback, label):
    """``scheduler="inprocess"``: the points one after another in this process, without Dask."""
    from .progress import progress_bar
    bar = progress_bar(total=len(pending), desc=label, enabled=progress)
    try:
        for pid, ov in pending:
            try:
                r = ("ok", _run_point(experiment, ov, str(dirs[pid])))
            except Exception as e:  # the point failed: recorded, the sweep goes on
                r = ("failed", _failure(e, e.__traceback__))
            _record(r, pid, ov, dirs, result, callback)
            bar.update(1)
    finally:
        bar.close()


def _compute(experiment, pending, dirs, result, scheduler, client, workers, progress, callback, timeout, label):
    if client is None and scheduler == "inprocess":
        return _compute_inprocess(experiment, pending, dirs, result, progress, callback, label)
    dd = require_dask("a sweep on Dask" if client is None else "a sweep")
    Client, as_completed = dd.Client, dd.as_completed
    from .progress import progress_bar
    own_client = own_cluster = None
    try:
        if client is None:
            if scheduler:
                client = own_client = Client(scheduler, timeout=timeout)
            else:
                own_client, own_cluster = local_cluster(workers, timeout)
                client = own_client
        futures = {}
        for pid, ov in pending:
            fut = client.submit(_run_point, experiment, ov, str(dirs[pid]), key=f"neurosim-point-{pid}", pure=False)
            futures[fut] = (pid, ov)
        bar = progress_bar(total=len(futures), desc=label, enabled=progress)
        try:
            for fut in as_completed(list(futures)):
                pid, ov = futures.pop(fut)
                try:
                    r = ("ok", fut.result())
                except Exception as e:  # the point failed (its own error, or its worker died too often)
                    r = ("failed", _failure(e, fut.traceback()))
                _record(r, pid, ov, dirs, result, callback)
                fut.release()
                bar.update(1)
        finally:
            bar.close()
    finally:
        if own_client is not None:
            own_client.close()
        if own_cluster is not None:
            own_cluster.close()
