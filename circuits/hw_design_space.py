r"""``hw-design-space``: a design-space study of training the digits network on chips, as one command.

    neurosim run hw-design-space --out results/ds                 # quick grid, local Dask cluster
    neurosim run hw-design-space --set grid=full --scheduler tcp://host:8786

The study sweeps algorithm x weight bits x event threshold x relaxation steps T (x seeds) and places every
configuration on every target:

* **algorithms**: ``pc`` (clock-driven predictive coding: every unit sends every step), ``event``
  (send-on-delta PC: a unit sends only when its output moved by more than the threshold :math:`\theta`
  since its last event; one point per threshold) and ``bp`` (backprop on the same network; no relaxation,
  so neither T nor :math:`\theta` applies);
* **weight bits** :math:`b`: stored weights quantised to :math:`2^{b-1}-1` levels each side of 0 in
  ``[-weight_bound, weight_bound]`` (``weight_rounding``, stochastic by default), as in ``hw-precision``;
  0 = float64, priced as 32-bit weights;
* each point trains the 64-H-10 tanh network on the bundled 8x8 digits (``epochs`` epochs of minibatch
  SGD: a short training, the same as ``hw-precision``'s) and measures the held-out test accuracy and the
  operation counts of the training (events and synaptic ops as measured by the event engine).

**Train once, map onto every target.**  The accuracy of a point does not depend on the target: the cost model
prices the operations of the same training run, so every point is trained once and its counts are priced on
every target.  Per sample (training: relaxation or forward/backward pass plus the weight update; inference:
without the update):

* targets that state chip resources (Loihi, Loihi 2, SpiNNaker 2, crossbar): PC and event PC through
  :func:`neurosim.hardware.map_circuit` with the measured counts (``counts=``: the activity is the measured
  events over the clock-driven events, 1 for clock-driven PC), which adds routed events, the second stored
  copy of :math:`W^T` (store-transpose chips) and the latency of the busiest core; BP on the same placement:
  the energy of its counts (:func:`~neurosim.hardware.count_bp`) plus the routing of one value and one error
  pass (the mapping's routing energy at T = 2 minus that at T = 1) and the same transpose-copy writes, and the
  latency :math:`t = s\,t_{step} + t_{update}` with :math:`s = 2d` serial steps (forward then backward) at the
  mapped step time (inference: :math:`s = d`);
* targets without chip resources (``cmos45``, a von Neumann accelerator): the operation-count model
  :func:`neurosim.hardware.energy` (precision-scaled by the weight bits) and :func:`neurosim.hardware.latency`.

A point whose weights are wider than a target stores (``weight_bits_max``; float64 counts as 32 bits), or
that does not fit its cores, is listed as "does not fit" with the reason and left out of that target's front.

**Winner.**  Per target and cost (energy or latency per training sample), among the configurations within
``tolerance`` (default 0.01, one point) of the best accuracy on that target, the cheapest wins; ``report.md``
gives its cost, the runner-up's and the best configuration of each other algorithm, and the factors between
them.  With several seeds, accuracy and costs are means over the seeds.

**Resumable.**  The points run on Dask through :func:`neurosim.sweep.run_sweep` (one sweep per algorithm under
``OUT/points/<algorithm>/``; ``scheduler=inprocess`` runs them one after another in this process, without
Dask): each finished point's ``metrics.json`` is written atomically as soon as it arrives, and a re-run skips
every finished point.  A point's directory name carries a hash of all its settings (the grid keys and the
shared ones: epochs, lr, targets, ...), so a re-run into the same ``--out`` with other settings computes new
points; the tables, figures and report are rebuilt at the end of every run from the finished points of the
current settings only.  On Ctrl-C, ``metrics.json``'s ``partial`` lists the finished points and the winners
over them (``report.md`` is rebuilt over them too).
"""
from __future__ import annotations

import csv
import dataclasses
import statistics
from pathlib import Path

from neurosim import hardware as hw
from neurosim import plot
from neurosim.errors import UnsupportedError
from neurosim.experiment import Experiment
from neurosim.io import atomic_write, read_json, write_json_atomic

from . import _hardware_common as C
from . import _params as P

#: the algorithms of the study, in the order of tables and legends
ALGORITHMS = ("pc", "event", "bp")
ALGORITHM_LABELS = {"pc": "PC (clock-driven)", "event": "event-driven PC", "bp": "BP"}
ALGORITHM_COLORS = {"pc": "C0", "event": "C2", "bp": "C1"}

#: the preset grids (an axis given explicitly, e.g. ``--set weight_bits=[8,4]``, replaces the preset's)
GRIDS = {
    "quick": {"algorithms": ["pc", "event", "bp"], "weight_bits": [0, 8, 6, 4], "thresholds": [0.01, 0.03, 0.1],
              "steps": [5, 10, 20], "seeds": [0, 1]},
    "full": {"algorithms": ["pc", "event", "bp"], "weight_bits": [0, 16, 12, 10, 8, 7, 6, 5, 4],
             "thresholds": [0.003, 0.01, 0.03, 0.1, 0.3], "steps": [2, 5, 10, 20, 50], "seeds": [0, 1, 2]},
}

#: the costs of the study: (key, what, base unit)
COSTS = (("energy_training_J", "energy per training sample", "J"),
         ("latency_training_s", "latency per training sample", "s"),
         ("energy_inference_J", "energy per inference", "J"),
         ("latency_inference_s", "latency per inference", "s"))
#: the costs the winners and figures are about
FRONT_COSTS = COSTS[:2]

ALL_TARGETS = ["cmos45", "loihi", "loihi2", "spinnaker2", "crossbar"]

# ============================================================================================ one point
POINT_DEFAULTS = {
    **C.COMMON,
    "figures": False,
    "algorithm": "pc",            # pc | event | bp
    "weight_bits": 0,             # 0: float64 (priced as 32-bit)
    "weight_bound": 0.5,
    "weight_rounding": "stochastic",
    "threshold": 0.0,             # send-on-delta threshold (algorithm = event)
    "targets": list(ALL_TARGETS),
}

POINT_PARAMS = {
    **C.COMMON_PARAMS,
    "algorithm": P.Choice(*ALGORITHMS),
    "weight_bits": C.BITS,
    "weight_bound": P.Float(gt=0),
    "weight_rounding": P.Choice("stochastic", "nearest"),
    "threshold": P.Float(ge=0),
    "targets": P.ListOf(C.TARGET),
}


def point_model(cfg) -> hw.HardwareModel:
    """The substrate of a point: quantised weights (``weight_bits`` > 0) and, for ``event``, send-on-delta
    coding at ``threshold``."""
    weights = ([hw.Quantize(int(cfg["weight_bits"]), bound=cfg["weight_bound"], rounding=cfg["weight_rounding"])]
               if cfg["weight_bits"] > 0 else [])
    if cfg["algorithm"] == "event":
        return hw.HardwareModel(coding="event", threshold=float(cfg["threshold"]), weights=weights, seed=cfg["seed"])
    return hw.HardwareModel(weights=weights, seed=cfg["seed"])


def _has_resources(t) -> bool:
    from neurosim.hardware.mapping import _ANALOG_NEEDS, _DIGITAL_NEEDS
    return all(k in t.resources for k in _DIGITAL_NEEDS) or all(k in t.resources for k in _ANALOG_NEEDS)


def _without_learning(per_sample: hw.OpCounts) -> hw.OpCounts:
    return dataclasses.replace(per_sample, update_macs=0.0, weight_writes=0.0)


def target_costs(circuit, counts: hw.OpCounts, algorithm: str, steps: int, weight_bits: int, target) -> dict:
    """Energy and latency per training sample and per inference of one trained point on ``target`` (see the
    module docstring for the model), plus cores and chips where the target is mapped; or
    ``{"unsupported": reason}`` when the point does not fit the target."""
    t = hw.get_target(target)
    wb = float(weight_bits or 32)
    per = counts.scaled(1.0 / counts.samples)
    inf = _without_learning(per)
    if not _has_resources(t):
        return {"model": "operation counts", "weight_bits": wb,
                "energy_training_J": hw.energy(per, t, weight_bits=wb)["per_sample_J"],
                "energy_inference_J": hw.energy(inf, t, weight_bits=wb)["per_sample_J"],
                "latency_training_s": hw.latency(per, t)["total_s"],
                "latency_inference_s": hw.latency(inf, t)["total_s"]}
    try:
        if algorithm == "bp":
            m1 = hw.map_circuit(circuit, t, steps=1, weight_bits=wb)
            m2 = hw.map_circuit(circuit, t, steps=2, weight_bits=wb)
            # routing per pass: value hops h_v and error hops h_e; m(T) routes (T+1) h_v + T h_e
            route_both = m2.routing_energy_J - m1.routing_energy_J            # h_v + h_e
            route_value = m1.routing_energy_J - route_both                    # h_v
            update_s = m1.latency_training_s - m1.latency_inference_s
            serial = per.serial_steps                                         # 2 d per sample
            m = m1
            out = {"energy_training_J": hw.energy(per, t)["per_sample_J"] + route_both + m1.transpose_write_energy_J,
                   "energy_inference_J": hw.energy(inf, t)["per_sample_J"] + route_value,
                   "latency_training_s": serial * m1.latency_step_s + update_s,
                   "latency_inference_s": serial / 2 * m1.latency_step_s}
        else:
            m = hw.map_circuit(circuit, t, steps=int(steps), weight_bits=wb, counts=counts)
            out = {"energy_training_J": m.energy_training_J, "energy_inference_J": m.energy_inference_J,
                   "latency_training_s": m.latency_training_s, "latency_inference_s": m.latency_inference_s}
    except UnsupportedError as e:
        return {"unsupported": str(e).removeprefix("map_circuit: ")}
    return {"model": "mapped", "weight_bits": wb, **out, "cores": m.cores, "chips": m.chips,
            "activity": m.activity if algorithm != "bp" else 1.0}


def run_point(cfg, out, progress=True) -> dict:
    """Train one configuration and price it on every target."""
    for n in cfg["targets"]:
        hw.get_target(n)
    alg = cfg["algorithm"]
    data = C.load(cfg)
    r = C.train_eval(cfg, point_model(cfg), "bp" if alg == "bp" else "pc", data)
    counts, circuit = r["counts"], r["chip"].circuit
    ps = counts.per_sample()
    clock = hw.count_pc(circuit, cfg["steps"], 1, learn=False)
    metrics = {"algorithm": alg, "weight_bits": cfg["weight_bits"],
               "threshold": cfg["threshold"] if alg == "event" else 0.0,
               "steps": cfg["steps"] if alg != "bp" else 0, "seed": cfg["seed"],
               "test_accuracy": r["test_accuracy"], "test_loss": r["test_loss"],
               "events_per_sample": ps["events"], "synaptic_ops_per_sample": ps["synaptic_ops"],
               "n_train_samples": int(len(data[0])), "epochs": cfg["epochs"],
               "targets": {n: target_costs(circuit, counts, alg, cfg["steps"], cfg["weight_bits"], n)
                           for n in cfg["targets"]}}
    if alg != "bp":
        metrics["activity"] = (ps["events"]) / clock.events
    return metrics


#: one design point (not listed by ``neurosim list``: ``hw-design-space`` runs it on the Dask workers)
DESIGN_POINT = Experiment("hw-design-point", "one point of hw-design-space: train one configuration, price it "
                                             "on every target", POINT_DEFAULTS, run_point, PARAMS=POINT_PARAMS)


# ============================================================================================ the study
SPACE_DEFAULTS = {
    **{k: v for k, v in C.COMMON.items() if k not in ("seed", "steps")},
    "grid": "quick",              # quick | full: the preset axes
    "algorithms": [],             # [] = the preset's; from pc, event, bp
    "weight_bits": [],            # [] = the preset's; 0 = float64
    "thresholds": [],             # [] = the preset's (event-driven PC)
    "steps": [],                  # [] = the preset's (relaxation steps T of PC and event PC)
    "seeds": [],                  # [] = the preset's
    "weight_bound": 0.5,
    "weight_rounding": "stochastic",
    "targets": list(ALL_TARGETS),
    "tolerance": 0.01,            # winner: the cheapest within this accuracy of the best on the target
    "scheduler": "",              # "": local Dask cluster; "inprocess": in this process, no Dask; or an address
    "workers": 0,                 # processes of the local cluster (0: min(2, cores))
}

SPACE_PARAMS = {
    **{k: v for k, v in C.COMMON_PARAMS.items() if k not in ("seed", "steps")},
    "grid": P.Choice(*GRIDS, doc="quick: 104 points (52 configurations x 2 seeds), a few minutes on 2 cores; full: 837 points "
                                  "(279 x 3 seeds)"),
    "algorithms": P.ListOf(P.Choice(*ALGORITHMS), min_len=0, doc="[] = the grid's"),
    "weight_bits": P.ListOf(C.BITS, min_len=0, doc="[] = the grid's; 0 = float64"),
    "thresholds": P.ListOf(P.Float(ge=0), min_len=0, doc="[] = the grid's"),
    "steps": P.ListOf(P.Int(ge=1), min_len=0, doc="[] = the grid's"),
    "seeds": P.ListOf(P.SEED, min_len=0, doc="[] = the grid's"),
    "weight_bound": P.Float(gt=0),
    "weight_rounding": P.Choice("stochastic", "nearest"),
    "targets": P.ListOf(C.TARGET),
    "tolerance": P.Float(ge=0, le=1),
    "scheduler": P.Str(doc="'' = a local Dask cluster, 'inprocess' = one point after another in this process "
                           "(no Dask needed), or tcp://host:port"),
    "workers": P.Int(ge=0, doc="0 = min(2, cores)"),
}

#: parameters every point of the study shares (passed on to each point)
_SHARED = ("backend", "hidden", "phi", "lr", "momentum", "epochs", "batch_size", "dt", "test_fraction", "n_train",
           "n_test", "weight_bound", "weight_rounding", "targets")


def axes(cfg) -> dict:
    """The axes of the study: the preset ``grid`` with every explicitly given axis replacing the preset's."""
    preset = GRIDS[cfg["grid"]]
    return {k: list(cfg[k]) if cfg[k] else list(v) for k, v in preset.items()}


def sweeps(cfg) -> list:
    """``(algorithm, grid, fixed)`` of the sweep of each algorithm (BP has no T and no threshold)."""
    ax = axes(cfg)
    shared = {k: cfg[k] for k in _SHARED}
    out = []
    for alg in ALGORITHMS:
        if alg not in ax["algorithms"]:
            continue
        grid = {"weight_bits": ax["weight_bits"]}
        fixed = {**shared, "algorithm": alg}
        if alg == "event":
            grid["threshold"] = ax["thresholds"]
        if alg == "bp":
            fixed["steps"] = 1    # unused by BP
        else:
            grid["steps"] = ax["steps"]
        grid["seed"] = ax["seeds"]
        out.append((alg, grid, fixed))
    return out


def _client(cfg):
    """``(client, cluster)`` for the study (the cluster is None on an existing scheduler; both None for
    ``scheduler="inprocess"``, which runs the points one after another in this process without Dask).  Without
    Dask installed otherwise: :class:`~neurosim.experiment.ConfigError` (exit status 2) naming the extra."""
    from neurosim.sweep import require_dask
    s = cfg["scheduler"].strip()
    if s == "inprocess":
        return None, None
    dd = require_dask("hw-design-space (scheduler='' or an address; scheduler=inprocess runs without Dask)")
    if s:
        return dd.Client(s, timeout=60), None
    from neurosim.sweep import local_cluster
    return local_cluster(cfg["workers"])


def point_dirs(cfg, out) -> list:
    """The directories of the points of this configuration of the study: ``OUT/points/<algorithm>/points/<id>``
    with the id of :func:`neurosim.sweep.point_name`, whose hash covers every setting of the point (grid keys and
    the shared settings: epochs, lr, targets, ...).  Points of an earlier run with other settings into the same
    ``--out`` have other ids and are neither reused nor reported."""
    from neurosim.sweep import expand, point_name
    out = Path(out)
    return [out / "points" / alg / "points" / point_name(DESIGN_POINT.NAME, {**fixed, **pt}, list(grid))
            for alg, grid, fixed in sweeps(cfg) for pt in expand(grid)]


def finished_points(out, cfg=None) -> list:
    """``(directory, metrics)`` of every finished point of the configuration ``cfg`` under ``out/points``: a
    valid ``metrics.json`` (see :func:`point_dirs` and :func:`neurosim.sweep.valid_point`; one a worker still
    marks "running" is not finished); with ``cfg`` None, every finished point there."""
    from neurosim.sweep import valid_point
    found = []
    dirs = (point_dirs(cfg, out) if cfg is not None
            else [f.parent for f in sorted(Path(out, "points").glob("*/points/*/metrics.json"))])
    for d in dirs:
        try:
            m = read_json(d / "metrics.json")
        except (OSError, ValueError):
            continue
        if valid_point(m, DESIGN_POINT.NAME) is None:
            found.append((d, m))
    return found


def read_points(out, cfg=None) -> list:
    """The metrics of every finished point (see :func:`finished_points`)."""
    return [m for _, m in finished_points(out, cfg)]


def config_label(c) -> str:
    bits = f"{c['weight_bits']}-bit" if c["weight_bits"] else "float64"
    if c["algorithm"] == "bp":
        return f"BP, {bits}"
    if c["algorithm"] == "event":
        return f"event PC θ={c['threshold']:g}, T={c['steps']}, {bits}"
    return f"PC, T={c['steps']}, {bits}"


def configurations(points, targets) -> list:
    r"""Points grouped by configuration (algorithm, weight bits, threshold, T), averaged over their seeds.

    Each configuration: ``algorithm, weight_bits, threshold, steps, config`` (label), ``seeds``,
    ``test_accuracy`` (mean), ``accuracy_sd`` (the sample standard deviation over the seeds,
    :math:`\sqrt{\sum_i (a_i - \bar a)^2 / (n - 1)}`; 0 with one seed) and per target ``targets[name]`` with the mean of each cost
    (or ``unsupported``: the reason, when any seed's point does not fit)."""
    groups = {}
    for p in points:
        key = (p["algorithm"], p["weight_bits"], float(p["threshold"]), p["steps"])
        groups.setdefault(key, []).append(p)
    out = []
    order = {a: i for i, a in enumerate(ALGORITHMS)}
    for key in sorted(groups, key=lambda k: (order.get(k[0], 9), -(k[1] or 99), k[2], k[3])):
        ps = sorted(groups[key], key=lambda p: p["seed"])
        acc = [p["test_accuracy"] for p in ps]
        c = {"algorithm": key[0], "weight_bits": key[1], "threshold": key[2], "steps": key[3],
             "seeds": [p["seed"] for p in ps], "test_accuracy": statistics.fmean(acc),
             "accuracy_sd": statistics.stdev(acc) if len(acc) > 1 else 0.0, "targets": {}}
        c["config"] = config_label(c)
        for n in targets:
            per = [p["targets"].get(n) for p in ps]
            if any(q is None for q in per):
                continue
            bad = [q["unsupported"] for q in per if "unsupported" in q]
            if bad:
                c["targets"][n] = {"unsupported": bad[0]}
                continue
            t = {k: statistics.fmean(q[k] for q in per) for k, _, _ in COSTS}
            for k in ("cores", "chips", "model"):
                if k in per[0]:
                    t[k] = per[0][k]
            c["targets"][n] = t
        out.append(c)
    return out


def _row(c, target, cost):
    t = c["targets"].get(target, {})
    return None if cost not in t else (t[cost], c["test_accuracy"])


def front(configs, target, cost) -> list:
    """The configurations on the Pareto front of accuracy (max) against ``cost`` (min) on ``target``, cheapest
    first (:func:`neurosim.sweep.pareto_front`); configurations that do not fit are left out."""
    from neurosim.sweep import pareto_front
    ok = [c for c in configs if _row(c, target, cost) is not None]
    return [ok[i] for i in pareto_front([_row(c, target, cost) for c in ok])]


def _brief(c, target, cost):
    return {"config": c["config"], "algorithm": c["algorithm"], "test_accuracy": c["test_accuracy"],
            cost: c["targets"][target][cost]}


def winner(configs, target, cost, tolerance) -> dict | None:
    """The cheapest configuration (in ``cost`` on ``target``) among those within ``tolerance`` of the best
    accuracy there (ties: the more accurate), with the runner-up (the next cheapest such configuration) and,
    for every other algorithm, its cheapest configuration within the tolerance (or, when it has none, its most
    accurate one, with ``within_tolerance`` false); ``factor`` = their cost / the winner's.  None when no
    configuration fits the target."""
    ok = [c for c in configs if _row(c, target, cost) is not None]
    if not ok:
        return None
    best = max(c["test_accuracy"] for c in ok)
    cands = sorted((c for c in ok if c["test_accuracy"] >= best - tolerance - 1e-12),
                   key=lambda c: (c["targets"][target][cost], -c["test_accuracy"]))
    w = cands[0]
    wc = w["targets"][target][cost]
    res = {"target": target, "cost": cost, "best_accuracy": best, "tolerance": tolerance,
           "candidates": len(cands), "winner": _brief(w, target, cost), "runner_up": None, "others": {}}
    # within the seed spread: a cheaper configuration left out by less than the accuracy SD (of it or of the best
    # configuration), or the winner itself inside the tolerance by less than that SD
    top = max(ok, key=lambda c: c["test_accuracy"])
    sd = lambda c: max(c.get("accuracy_sd", 0.0), top.get("accuracy_sd", 0.0))   # noqa: E731
    edge = best - tolerance
    res["within_spread"] = sorted({c["config"] for c in ok if c not in cands and c["targets"][target][cost] < wc
                                   and edge - c["test_accuracy"] < sd(c)}
                                  | ({w["config"]} if w is not top and w["test_accuracy"] - edge < sd(w) else set()))
    if len(cands) > 1:
        r = cands[1]
        res["runner_up"] = {**_brief(r, target, cost), "factor": r["targets"][target][cost] / wc}
    for alg in ALGORITHMS:
        if alg == w["algorithm"]:
            continue
        mine = [c for c in cands if c["algorithm"] == alg]
        if mine:
            res["others"][alg] = {**_brief(mine[0], target, cost), "within_tolerance": True,
                                  "factor": mine[0]["targets"][target][cost] / wc}
            continue
        mine = sorted((c for c in ok if c["algorithm"] == alg),
                      key=lambda c: (-c["test_accuracy"], c["targets"][target][cost]))
        if mine:
            res["others"][alg] = {**_brief(mine[0], target, cost), "within_tolerance": False,
                                  "factor": mine[0]["targets"][target][cost] / wc,
                                  "accuracy_gap": best - mine[0]["test_accuracy"]}
    return res


# ------------------------------------------------------------------------------------------------ output
def _unit(values, base):
    """``(scale, unit)``: the SI prefix that puts the median of ``values`` in [1, 1000)."""
    med = statistics.median(values) if values else 1.0
    for f, p in ((1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n")):
        if med >= f:
            return f, p + base
    return 1e-12, "p" + base


def _fmt(v, base):
    f, u = _unit([v], base)
    return f"{v / f:.3g} {u}"


def _describe_winner(w, base, what, tolerance) -> str:
    cost = w["cost"]
    win = w["winner"]
    text = (f"**{win['config']}** (accuracy {win['test_accuracy']:.3f}; best on this target "
            f"{w['best_accuracy']:.3f}; {w['candidates']} configuration(s) within {tolerance * 100:g} accuracy "
            f"point(s)) at "
            f"{_fmt(win[cost], base)} {what}")
    r = w["runner_up"]
    text += (f"; runner-up {r['config']} (accuracy {r['test_accuracy']:.3f}) at {_fmt(r[cost], base)}, "
             f"{r['factor']:.3g}x the winner's" if r else "; no other configuration is within the tolerance")
    if w.get("within_spread"):
        text += (f"; **within the seed spread**: {', '.join(w['within_spread'])} is/are within one sample SD of the "
                 "tolerance edge, so another set of seeds could change this winner")
    for alg, o in w["others"].items():
        name = ALGORITHM_LABELS[alg]
        if o["within_tolerance"]:
            text += (f"; cheapest {name} within the tolerance: {o['config']} (accuracy {o['test_accuracy']:.3f}) "
                     f"at {_fmt(o[cost], base)}, {o['factor']:.3g}x")
        else:
            text += (f"; no {name} configuration is within the tolerance (its most accurate, {o['config']}, reaches "
                     f"{o['test_accuracy']:.3f}, {o['accuracy_gap'] * 100:.1f} points below the best, at "
                     f"{_fmt(o[cost], base)}, {o['factor']:.3g}x)")
    return text + "."


def write_table(configs, targets, out, fronts) -> list:
    """``results.csv``: one row per configuration and target (costs, or the reason it does not fit)."""
    cols = ["target", "config", "algorithm", "weight_bits", "threshold", "steps", "n_seeds", "test_accuracy",
            "accuracy_sd", *[k for k, _, _ in COSTS], "cores", "chips", "on_energy_front", "on_latency_front",
            "fits", "note"]
    rows = []
    for n in targets:
        for c in configs:
            t = c["targets"].get(n)
            if t is None:
                continue
            row = {"target": n, "config": c["config"], "algorithm": c["algorithm"], "weight_bits": c["weight_bits"],
                   "threshold": c["threshold"], "steps": c["steps"], "n_seeds": len(c["seeds"]),
                   "test_accuracy": c["test_accuracy"], "accuracy_sd": c["accuracy_sd"],
                   "fits": "unsupported" not in t, "note": t.get("unsupported", "")}
            for k, _, _ in COSTS:
                row[k] = t.get(k, "")
            row["cores"], row["chips"] = t.get("cores", ""), t.get("chips", "")
            row["on_energy_front"] = any(c is f for f in fronts[n]["energy_training_J"])
            row["on_latency_front"] = any(c is f for f in fronts[n]["latency_training_s"])
            rows.append(row)
    with atomic_write(Path(out) / "results.csv", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return rows


def _spread_note(configs) -> str:
    """The note on the accuracy's spread, from the seeds each configuration has finished (an interrupted run's
    configurations may have fewer than the grid's)."""
    counts = sorted({len(c["seeds"]) for c in configs}) or [0]
    if counts[-1] < 2:
        return ("Accuracy is from one seed: there is no estimate of its spread, so differences of about a point may "
                "be noise.")
    over = (f"the {counts[0]} seeds of a configuration" if len(counts) == 1 else
            f"the finished seeds of a configuration ({counts[0]} to {counts[-1]}; one seed has no SD)")
    return (f"Accuracy is the mean ± the sample standard deviation (SD, n - 1 in the denominator) over {over}, "
            "costs are means over the seeds. Differences smaller than this spread are not "
            "significant: a winner is marked (~) when a cheaper configuration missed the tolerance, or the winner "
            "met it, by less than one SD.")


def _caveats(targets) -> list:
    """Report lines on what the numbers of each target rest on: constants its file marks ``assumed`` and a
    zero timestep latency (then latency is the time of the operations, not a relaxation latency)."""
    lines = []
    for n in targets:
        t = hw.get_target(n)
        assumed = [k for k, (_, ev) in t.sources.items() if ev == "assumed"]
        energies = [k for k, v in t.energy_pJ.items() if v]
        if energies and all(t.sources.get(f"energy.{k}", ("", ""))[1] == "assumed" for k in energies):
            lines.append(f"- **{n}**: every non-zero per-operation energy is an *assumed* constant "
                         f"({', '.join(energies)}: see `neurosim/hardware/targets/{n}.json`), not a published figure "
                         "for this chip, so its energies are placeholders.")
        elif assumed:
            lines.append(f"- {n}: {len(assumed)} constant(s) marked *assumed* in its target file: "
                         f"{', '.join(assumed)}.")
        if t.latency_s.get("timestep", 0.0) == 0.0:
            lines.append(f"- {n}: the time per relaxation step is 0 in its cost model, so its latency is the time "
                         "to execute the operations one after another (operation throughput), not a relaxation "
                         "latency of T steps.")
    return (["Evidence behind the targets' numbers (`hw.targets()[name].sources`):", "", *lines, ""] if lines
            else [])


def report_markdown(configs, targets, winners, fronts, cfg, info) -> str:
    """``report.md``: the winners per target with their margins, then per target the table of configurations."""
    ax = axes(cfg)
    tol = cfg["tolerance"]
    n_done = info.get("n_finished", info["n_points"])
    if n_done < info["n_points"]:   # an interrupted run, or points that failed: the report covers those finished
        extent = (f"{n_done} of {info['n_points']} points finished ({len(configs)} configurations with a finished "
                  f"point; the grid's seeds: {len(ax['seeds'])}); this report covers the finished points only: "
                  "run the same command to finish the rest. Grid: algorithms ")
    else:
        extent = f"{info['n_points']} points ({len(configs)} configurations x {len(ax['seeds'])} seed(s)): algorithms "
    lines = ["# Design space: training the digits network on chips", "",
             f"{extent}"
             f"{', '.join(ALGORITHM_LABELS[a] for a in ALGORITHMS if a in ax['algorithms'])}; weight bits "
             f"{', '.join(str(b) if b else 'float64' for b in ax['weight_bits'])}; event thresholds "
             f"{', '.join(f'{t:g}' for t in ax['thresholds'])}; relaxation steps T {', '.join(map(str, ax['steps']))}. "
             f"Network 64-{'-'.join(map(str, cfg['hidden']))}-10 ({cfg['phi']}), bundled 8x8 digits, "
             f"{info['n_train']} training samples, {cfg['epochs']} epochs of minibatch SGD (batch {cfg['batch_size']}, "
             f"lr {cfg['lr']:g}, momentum {cfg['momentum']:g}): a short training; accuracy is on the held-out "
             f"{info['n_test']} test samples. Weights quantised to the given bits in [-{cfg['weight_bound']:g}, "
             f"{cfg['weight_bound']:g}] ({cfg['weight_rounding']} rounding); float64 weights are priced as 32 "
             "bits.", "",
             "Each point is trained once: its accuracy does not depend on the target, because the cost model prices "
             "the operations of the same training run on every target. Targets with chip resources (cores or "
             "crossbar tiles) are priced through `neurosim.hardware.map_circuit` with the measured event counts "
             "(routing, the stored copy of W^T, the busiest core's latency); BP on the same placement (one value "
             "and one error pass routed, 2 x depth serial steps); `cmos45` (no chip resources) by the operation "
             "counts (`hardware.energy`, precision-scaled, and `hardware.latency`). Costs are per sample at batch "
             "size 1 for the routing and latency, with the measured per-sample operation counts of training at batch "
             f"size {cfg['batch_size']}.", "",
             f"**Winner rule**: per target, among the configurations within {tol * 100:g} accuracy point(s) of the "
             "best "
             "accuracy on that target, the lowest cost per training sample; ties go to the more accurate.", "",
             _spread_note(configs), "", *_caveats(targets), "## Winners", ""]
    for cost, what, base in FRONT_COSTS:
        lines += [f"Lowest {what} (x: cost relative to the winner; for another algorithm its cheapest configuration "
                  "within the tolerance, or its most accurate with the accuracy points it is below the best):", "",
                  "| target | winner | accuracy | " + what + " | runner-up | "
                  + " | ".join(ALGORITHM_LABELS[a] for a in ALGORITHMS) + " |", "|---" * (5 + len(ALGORITHMS)) + "|"]
        for n in targets:
            w = winners[n].get(cost)
            if w is None:
                lines.append(f"| {n} | none fits |" + " |" * (3 + len(ALGORITHMS)))
                continue
            win, r = w["winner"], w["runner_up"]
            cells = [n, f"**{win['config']}**" + (" (~)" if w.get("within_spread") else ""),
                     f"{win['test_accuracy']:.3f}", _fmt(win[cost], base),
                     f"{r['config']}: {r['factor']:.3g}x" if r else "none within the tolerance"]
            for alg in ALGORITHMS:
                o = w["others"].get(alg)
                cells.append("winner" if alg == win["algorithm"] else "-" if o is None else
                             f"{o['factor']:.3g}x ({o['config']})" if o["within_tolerance"] else
                             f"{o['factor']:.3g}x, {o['accuracy_gap'] * 100:.1f} points below ({o['config']})")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if any(w.get("within_spread") for ws in winners.values() for w in ws.values() if w):
        lines += ["(~): the winner is within the seed spread (see the target's section below).", ""]
    for n in targets:
        lines.append(f"### {n}")
        lines.append("")
        any_w = False
        for cost, what, base in FRONT_COSTS:
            w = winners[n].get(cost)
            if w is None:
                continue
            any_w = True
            lines.append(f"- Lowest {what}: " + _describe_winner(w, base, what, tol))
        if not any_w:
            why = next((c["targets"][n]["unsupported"] for c in configs if "unsupported" in c["targets"].get(n, {})),
                       "no point was priced on it")
            lines.append(f"- No configuration fits this target ({why}).")
        lines.append("")
    for n in targets:
        lines += [f"## {n}: every configuration", "",
                  f"Pareto fronts: `pareto_{n}.png`. Front: on the accuracy-vs-energy (E) or "
                  "accuracy-vs-latency (L) Pareto front of training.", "",
                  "| configuration | accuracy | energy / training sample | energy / inference | latency / training "
                  "sample | latency / inference | cores | front |", "|---|---|---|---|---|---|---|---|"]
        reasons = {}
        for c in configs:
            t = c["targets"].get(n)
            if t is None:
                continue
            acc = f"{c['test_accuracy']:.3f}" + (f" ± {c['accuracy_sd']:.3f}" if len(c["seeds"]) > 1 else "")
            if "unsupported" in t:
                mark = reasons.setdefault(t["unsupported"], "abcdefghijklmnopqrstuvwxyz"[len(reasons) % 26])
                lines.append(f"| {c['config']} | {acc} | does not fit ({mark}) | | | | | |")
                continue
            on = "".join(s for s, k in (("E", "energy_training_J"), ("L", "latency_training_s"))
                         if any(c is f for f in fronts[n][k]))
            lines.append(f"| {c['config']} | {acc} | {_fmt(t['energy_training_J'], 'J')} | "
                         f"{_fmt(t['energy_inference_J'], 'J')} | {_fmt(t['latency_training_s'], 's')} | "
                         f"{_fmt(t['latency_inference_s'], 's')} | {t.get('cores', '-')} | {on} |")
        lines.append("")
        if reasons:
            lines += [f"Does not fit ({m}): {why}." for why, m in reasons.items()] + [""]
    if info.get("failed"):
        lines += ["## Failed points", "", "Re-run the same command to retry them.", ""]
        lines += [f"- {k}: {v}" for k, v in sorted(info["failed"].items())]
        lines.append("")
    return "\n".join(lines)


#: marker of each weight width in the Pareto figures (0 = float64)
BIT_MARKERS = {0: "o", 16: "s", 12: "D", 10: "P", 8: "^", 7: "v", 6: "<", 5: ">", 4: "X", 3: "*", 2: "h", 1: "H"}


def _log_ticks(ax, xs):
    """Log x axis whose labelled ticks span the data: limits a little outside the data, labels at 1, 2 and 5
    of each decade (1 only when the data span more than 4 decades), plain numbers."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    lo, hi = min(xs), max(xs)
    ax.set_xlim(lo / 1.35, hi * 1.35)
    subs = (1.0,) if hi / lo > 1e4 else (1.0, 2.0, 5.0)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def pareto_figure(configs, target, path, winners=None) -> bool:
    """Accuracy against energy and against latency per training sample on ``target`` (log x): every
    configuration coloured by algorithm with its marker by weight bits, the Pareto front as a step line
    through ringed, labelled points, and the winner (``winners[cost]``, see :func:`winner`) as a red star.
    False (and nothing written) when no configuration fits the target."""
    from matplotlib.lines import Line2D
    from neurosim.sweep import pareto_front
    panels = [(cost, what, base, [c for c in configs if _row(c, target, cost) is not None])
              for cost, what, base in FRONT_COSTS]
    if not any(p[3] for p in panels):
        return False
    fig, axs = C.fig_axes(figsize=(13.0, 5.2), ncols=2)
    bits = sorted({c["weight_bits"] for c in configs}, key=lambda b: -(b or 99))
    for ax, (cost, what, base, ok) in zip(axs, panels):
        if not ok:
            ax.set_axis_off()
            continue
        xs = [c["targets"][target][cost] for c in ok]
        f, unit = _unit(xs, base)
        for alg in ALGORITHMS:
            for b in bits:
                sel = [c for c in ok if c["algorithm"] == alg and c["weight_bits"] == b]
                if sel:
                    ax.scatter([c["targets"][target][cost] / f for c in sel], [c["test_accuracy"] for c in sel],
                               s=30, marker=BIT_MARKERS.get(b, "o"), color=ALGORITHM_COLORS[alg], alpha=0.85,
                               zorder=2)
        fr = [ok[i] for i in pareto_front([_row(c, target, cost) for c in ok])]
        fx = [c["targets"][target][cost] / f for c in fr]
        fy = [c["test_accuracy"] for c in fr]
        ax.step(fx, fy, where="post", color="black", lw=1.3, zorder=3)
        ax.scatter(fx, fy, s=110, facecolors="none", edgecolors="black", linewidths=1.3, zorder=4)
        for i, c in enumerate(fr):
            ax.annotate(c["config"], (fx[i], fy[i]), fontsize=6.5, xytext=(6, -9 if i % 2 else 4),
                        textcoords="offset points", zorder=5)
        w = (winners or {}).get(cost)
        if w:
            wx = w["winner"][cost] / f
            ax.scatter([wx], [w["winner"]["test_accuracy"]], s=260, marker="*", color="red", edgecolors="black",
                       linewidths=0.6, zorder=6)
            ax.annotate(f"winner: {_fmt(w['winner'][cost], base)}", (wx, w["winner"]["test_accuracy"]),
                        fontsize=7, color="red", xytext=(8, -18), textcoords="offset points", zorder=6)
        ax.set_xscale("log")
        _log_ticks(ax, [x / f for x in xs])
        ax.margins(y=0.08)
        ax.set_xlabel(f"{what} on {target} ({unit})")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{target}: accuracy vs {what.split(' per ')[0]}")
        ax.grid(True, alpha=0.3, which="both")
    handles = [Line2D([], [], color=ALGORITHM_COLORS[a], marker="o", ls="none", label=ALGORITHM_LABELS[a])
               for a in ALGORITHMS if any(c["algorithm"] == a for c in configs)]
    handles += [Line2D([], [], color="0.3", marker=BIT_MARKERS.get(b, "o"), ls="none",
                       label=f"{b}-bit weights" if b else "float64 weights") for b in bits]
    handles.append(Line2D([], [], color="black", marker="o", mfc="none", lw=1.3, label="Pareto front"))
    if winners:
        handles.append(Line2D([], [], color="red", marker="*", mec="black", ms=12, ls="none", label="winner"))
    axs[1].legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    t = hw.get_target(target)
    throughput = (" On this target the time per relaxation step is 0, so latency is the time to execute the "
                  "operations one after another (operation throughput), not a relaxation latency."
                  if t.latency_s.get("timestep", 0.0) == 0.0 else "")
    plot.caption(fig, "Each point is one configuration (colour: algorithm; marker: weight bits; event threshold and "
                      "relaxation steps T in the labels) trained on the digits and priced on this target; "
                      "configurations whose weights the target cannot store are left out. Ringed, labelled points "
                      "joined by the step line are the Pareto front: a configuration is on it when no other "
                      "configuration is at most as costly and at least as accurate with one of the two strictly "
                      "better (of exact ties one is kept). Red star: the winner (the cheapest within the tolerance "
                      "of the best accuracy). Up and to the left is better." + throughput, width=130)
    plot.save(fig, path)
    return True


def build_outputs(points, cfg, out, info) -> dict:
    """Configurations, fronts, winners, ``results.csv``, ``report.md`` and the figures from the finished points;
    returns the metrics of the study."""
    targets = [hw.get_target(n).name for n in cfg["targets"]]
    configs = configurations(points, targets)
    fronts = {n: {cost: front(configs, n, cost) for cost, _, _ in FRONT_COSTS} for n in targets}
    winners = {n: {cost: winner(configs, n, cost, cfg["tolerance"]) for cost, _, _ in FRONT_COSTS} for n in targets}
    write_table(configs, targets, out, fronts)
    with atomic_write(Path(out) / "report.md") as f:
        f.write(report_markdown(configs, targets, winners, fronts, cfg, {**info, "n_finished": len(points)}))
    figures = []
    if cfg["figures"]:
        for n in targets:
            if pareto_figure(configs, n, Path(out) / f"pareto_{n}.png", winners[n]):
                figures.append(f"pareto_{n}.png")
    metrics = {"n_points": info["n_points"], "n_finished": len(points), "n_configurations": len(configs),
               "computed": info["computed"], "skipped": info["skipped"], "failed": len(info.get("failed", {})),
               "best_accuracy": max((c["test_accuracy"] for c in configs), default=0.0),
               "winners": {n: {what.split(" per ")[0]: (w["winner"]["config"] if w else "none fits")
                               for (cost, what, _), w in zip(FRONT_COSTS, (ws[k] for k, _, _ in FRONT_COSTS))}
                           for n, ws in winners.items()},
               "winner_details": [w for ws in winners.values() for w in ws.values() if w is not None],
               "fronts": {n: {cost: [c["config"] for c in fr] for cost, fr in fs.items()} for n, fs in fronts.items()},
               "configurations": configs, "report": ["report.md", "results.csv"]}
    if figures:
        metrics["figures"] = figures
    return metrics


def _record_partial(cfg, out, info):
    """On Ctrl-C: the finished points (how many, where) and, when any, the report over them into
    ``metrics.json``'s ``partial`` (:func:`neurosim.experiment.partial_results`)."""
    from neurosim.experiment import partial_results
    part = partial_results()
    found = finished_points(out, cfg)
    done, points = [d for d, _ in found], [m for _, m in found]
    part.update({"n_points": info["n_points"], "n_finished": len(points), "points_dir": str(Path(out) / "points"),
                 "finished_points": [str(d.relative_to(out)) for d in done]})
    if not points:
        return
    try:
        d = C.load({**cfg, "seed": 0})
        m = build_outputs(points, {**cfg, "figures": False}, out, {**info, "n_train": len(d[0]), "n_test": len(d[2])})
        part.update({"winners": m["winners"], "best_accuracy": m["best_accuracy"],
                     "n_configurations": m["n_configurations"],
                     "report": "report.md and results.csv over the finished points"})
    except Exception as e:  # noqa: BLE001 - the interrupt matters more than a report over a partial grid
        part["report_error"] = f"{type(e).__name__}: {e}"


def _record_partial_shielded(cfg, out, info):
    """:func:`_record_partial` with further SIGINTs ignored while it writes (``timeout -s INT`` signals the process
    and then its whole group, so a second interrupt follows the first at once); the handler is restored after."""
    import signal
    import threading
    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        _record_partial(cfg, out, info)
    except KeyboardInterrupt:
        pass
    finally:
        if main:
            signal.signal(signal.SIGINT, old)


def run_space(cfg, out, progress=True) -> dict:
    from neurosim.sweep import expand, run_sweep
    for n in cfg["targets"]:
        hw.get_target(n)
    plan = sweeps(cfg)
    if not plan:
        raise ValueError("hw-design-space: no algorithm to run; set algorithms to some of pc, event, bp")
    out = Path(out)
    n_points = sum(len(expand(g)) for _, g, _ in plan)
    info = {"n_points": n_points, "computed": 0, "skipped": 0, "failed": {}}
    client, cluster = _client(cfg)
    try:
        for alg, grid, fixed in plan:
            res = run_sweep(DESIGN_POINT, grid, out / "points" / alg, fixed=fixed, client=client, progress=progress,
                            plots=False, scheduler="inprocess" if client is None else None,
                            label=f"hw-design-space: {ALGORITHM_LABELS[alg]} points")
            info["computed"] += len(res.computed)
            info["skipped"] += len(res.skipped)
            info["failed"].update({f"{alg}/{k}": v for k, v in res.failed.items()})
    except KeyboardInterrupt:
        _record_partial_shielded(cfg, out, info)
        raise
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    points = read_points(out, cfg)
    d = C.load({**cfg, "seed": 0})
    info.update(n_train=len(d[0]), n_test=len(d[2]))
    metrics = build_outputs(points, cfg, out, info)
    write_json_atomic(out / "design_space.json", {k: v for k, v in metrics.items()})
    if info["failed"]:
        first = next(iter(info["failed"].items()))
        raise RuntimeError(f"hw-design-space: {len(info['failed'])} point(s) failed, e.g. {first[0]}: {first[1]} "
                           f"(report.md covers the {len(points)} finished points; run the same command to retry)")
    return metrics


EXPERIMENTS = [
    Experiment("hw-design-space",
               "PC vs BP vs event-driven PC x weight bits x threshold x steps on every chip target: Pareto fronts, "
               "winners (Dask, resumable)",
               SPACE_DEFAULTS, run_space, PARAMS=SPACE_PARAMS, doc=__doc__),
]
