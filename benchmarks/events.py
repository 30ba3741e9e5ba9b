"""Event-driven relaxation: wall time against events (the ``hw-event-driven`` workload).

Workload: the relaxation that ``neurosim run hw-event-driven`` times per threshold (``relax_wall_s``): the
64-32-10 tanh PCN on the bundled 8x8 digits (``circuits/_hardware_common.py``), a clamped test batch of 32,
100 Euler steps of 0.1, fixed weights, on the numba event engine at each threshold of the experiment's sweep.
The weights are the experiment's threshold-0 weights (threshold 0 reproduces clock-driven training, so they
are trained here with the clock-driven numba backend: 6 epochs, batch 16, T = 20, seed 0).

Each threshold is timed through the public API (``Simulator.run``) and, in the same call, its kernel alone
(``neurosim.hardware.kernel.event_kernel``); the thresholds are timed round-robin, ``repeats`` rounds after a
compiling call.  Reported per sample (per batch item): events, synaptic ops (weighted ones; identity skips have
none here), median wall time and thread CPU time.  A least-squares line ``time = fixed + slope * ops`` over the
sweep gives the time per synaptic op (slope) and the fixed cost per sample (intercept).

``before`` (``--events-baseline REF``, default ``main``): the same measurement with the neurosim of the git
revision REF (``git archive`` into a temporary directory), in a subprocess alternating with one of the current
tree, so that both see the same machine conditions.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
THRESHOLDS = [0.0, 0.003, 0.01, 0.03, 0.1, 0.3]
BATCH = 32
STEPS = 100


def _weights(cfg):
    """The threshold-0 weights of the experiment, trained clock-driven (the same dynamics)."""
    import neurosim as ns
    from circuits import _hardware_common as C
    Xtr, Ytr, _, _ = C.load(cfg)
    sim = ns.Simulator(C.build(cfg), dt=cfg["dt"], backend="numba", seed=cfg["seed"])
    sim.train(Xtr, Ytr, epochs=cfg["epochs"], batch_size=cfg["batch_size"], steps=cfg["steps"], progress=False)
    return sim.weights


def measure(repeats: int = 15, thresholds=THRESHOLDS) -> dict:
    """Time the relaxation at each threshold in this process (the neurosim first on ``sys.path``)."""
    import neurosim as ns
    from circuits import _hardware_common as C
    from circuits.hardware import EVENT_DEFAULTS, _event_model
    from neurosim.hardware import kernel as K

    cfg = dict(EVENT_DEFAULTS)
    _, _, Xte, Yte = C.load(cfg)
    xb, yb = Xte[:BATCH], Yte[:BATCH]
    W = _weights(cfg)
    chips = {}
    for th in thresholds:
        c = C.chip(cfg, _event_model(cfg, th))
        c.load_weights(W)
        chips[th] = c
    kernel = K.event_kernel
    kt = [0.0, 0.0]

    def timed_kernel(*a):
        t0, c0 = time.perf_counter(), time.thread_time()
        out = kernel(*a)
        kt[0], kt[1] = time.perf_counter() - t0, time.thread_time() - c0
        return out

    K.event_kernel = timed_kernel
    try:
        counts = {}
        for th, c in chips.items():   # compile (or load the cache), and count
            r = c.run(xb, yb, steps=STEPS, mode="clamp")
            counts[th] = (int(r.events.sum() + r.events_init.sum()), int(r.sops.sum() + r.skip_ops.sum()))
        t = {th: {"wall": [], "cpu": [], "kernel_wall": [], "kernel_cpu": []} for th in thresholds}
        for _ in range(repeats):
            for th, c in chips.items():
                t0, c0 = time.perf_counter(), time.thread_time()
                c.run(xb, yb, steps=STEPS, mode="clamp")
                t[th]["wall"].append(time.perf_counter() - t0)
                t[th]["cpu"].append(time.thread_time() - c0)
                t[th]["kernel_wall"].append(kt[0])
                t[th]["kernel_cpu"].append(kt[1])
    finally:
        K.event_kernel = kernel
    rows = []
    for th in thresholds:
        ev, ops = counts[th]
        row = {"threshold": th, "events_per_sample": ev / BATCH, "synaptic_ops_per_sample": ops / BATCH}
        for k, v in t[th].items():
            row[f"{k}_ms_per_sample"] = statistics.median(v) / BATCH * 1e3
        row["wall_ms_per_sample_min"] = min(t[th]["wall"]) / BATCH * 1e3
        rows.append(row)
    return {"rows": rows, "fit": fit(rows), "neurosim_file": ns.__file__, "repeats": repeats, "batch": BATCH,
            "steps": STEPS}


def fit(rows) -> dict:
    """Least-squares ``time = intercept + slope * synaptic ops`` (per sample) for each timing column."""
    ops = np.array([r["synaptic_ops_per_sample"] for r in rows])
    out = {}
    for k in ("wall", "cpu", "kernel_wall", "kernel_cpu"):
        y = np.array([r[f"{k}_ms_per_sample"] for r in rows])
        slope, icpt = np.polyfit(ops, y, 1)
        out[k] = {"ns_per_synaptic_op": float(slope) * 1e6, "fixed_us_per_sample": float(icpt) * 1e3}
    return out


_CODE = """
import json, sys
sys.path.append({root!r})
from benchmarks.events import measure
print("RESULT" + json.dumps(measure(repeats={repeats}, thresholds={thresholds!r})))
"""


def _subprocess(cwd, repeats, thresholds, env_extra=None, timeout=1800):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update(env_extra or {})
    code = _CODE.format(root=str(ROOT), repeats=repeats, thresholds=list(thresholds))
    r = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, env=env,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"events benchmark subprocess failed in {cwd} ({r.returncode}):\n{r.stderr[-3000:]}")
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


def _merge(results):
    """Rows of several runs of one implementation: medians of their per-run medians."""
    rows = []
    for i, r0 in enumerate(results[0]["rows"]):
        row = dict(r0)
        for k in r0:
            if k.endswith("_ms_per_sample") or k == "wall_ms_per_sample_min":
                f = min if k.endswith("_min") else statistics.median
                row[k] = f([r["rows"][i][k] for r in results])
        rows.append(row)
    return {"rows": rows, "fit": fit(rows), "neurosim_file": results[0]["neurosim_file"],
            "repeats": results[0]["repeats"] * len(results)}


def run(repeats=15, rounds=3, baseline="main", thresholds=THRESHOLDS, log=print) -> dict:
    """The current tree and (unless ``baseline`` is None) the revision ``baseline``, each in ``rounds``
    alternating subprocesses of ``repeats`` round-robin rounds."""
    impls = {"after": (str(ROOT), None)}
    tmp = None
    if baseline:
        tmp = tempfile.TemporaryDirectory(prefix="neurosim-events-base-")
        try:
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", baseline, "neurosim", "circuits"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", tmp.name], input=archive, check=True)
            rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", baseline], capture_output=True,
                                 text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError) as e:
            log(f"  no baseline: git revision {baseline!r} of {ROOT} cannot be extracted ({e}); timing this tree only")
            tmp.cleanup()
            tmp, baseline = None, None
        else:
            impls = {"before": (tmp.name, {"NUMBA_CACHE_DIR": os.path.join(tmp.name, "numba_cache")}), **impls}
    res = {k: [] for k in impls}
    try:
        for r in range(rounds):
            for name, (cwd, env) in impls.items():
                log(f"  round {r + 1}/{rounds}: {name}")
                res[name].append(_subprocess(cwd, repeats, thresholds, env))
    finally:
        if tmp is not None:
            tmp.cleanup()
    out = {name: _merge(v) for name, v in res.items()}
    if baseline:
        out["baseline"] = {"ref": baseline, "commit": rev}
        for a, b in zip(out["before"]["rows"], out["after"]["rows"]):
            if (a["events_per_sample"], a["synaptic_ops_per_sample"]) != (b["events_per_sample"],
                                                                          b["synaptic_ops_per_sample"]):
                out.setdefault("count_mismatch", []).append(a["threshold"])
    for name in impls:
        log(table(out[name], name))
    return out


def table(r, name) -> str:
    lines = [f"{name}: threshold | events/sample | synaptic ops/sample | wall ms/sample (median, min) | "
             f"CPU ms/sample | kernel wall ms/sample"]
    for x in r["rows"]:
        lines.append(f"  {x['threshold']:<6g} {x['events_per_sample']:10.1f} {x['synaptic_ops_per_sample']:12.1f} "
                     f"{x['wall_ms_per_sample']:9.4f} {x['wall_ms_per_sample_min']:9.4f} {x['cpu_ms_per_sample']:9.4f} "
                     f"{x['kernel_wall_ms_per_sample']:9.4f}")
    f = r["fit"]
    lines.append(f"  fit (wall): {f['wall']['ns_per_synaptic_op']:.3f} ns per synaptic op + "
                 f"{f['wall']['fixed_us_per_sample']:.1f} us per sample fixed; kernel alone: "
                 f"{f['kernel_wall']['ns_per_synaptic_op']:.3f} ns/op + "
                 f"{f['kernel_wall']['fixed_us_per_sample']:.1f} us")
    return "\n".join(lines)
