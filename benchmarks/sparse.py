"""Sparse projections at scale: a circuit of 100,000 value units with 10-100 synapses per unit on numba.

Circuit: input (50,000 units, clamped) -> hidden (30,000, tanh) -> output (20,000, target), both projections
``FixedFanIn(k)`` (every hidden and output unit receives k synapses), no biases, SGD; ``nnz = 50,000 k``
synapses.  Swept: the fan-in k (10, 30, 100) and the steps T.

Clock-driven (``Simulator(backend="numba")``, one ``step`` = relax T Euler steps with the target clamped, then
learn; batch 1, and one point at batch 32, T = 20 per fan-in):
    the kernel touches every synapse of a pass once per sample, so the synaptic operations of one batch are
    ``B (2 nnz + 2 T nnz_out)``: the feedforward sweep (every projection once), then per step the output's
    prediction and its feedback into the hidden layer over the output projection (``nnz_out = 20,000 k``; the
    hidden prediction reads only the clamped input, so it is computed once), then the Hebbian update of every
    synapse.  Reported: time per batch (median of repeats), time per synaptic operation, and the exponent of
    time against ``synaptic operations`` (log-log fit over every (k, T) point; 1 = linear in synapses x steps).
Memory:
    bytes of the weights (``W``, and the optimiser's ``mW``/``vW`` of the same size) and of the index vector ``S``
    (int64: CSR indptr + indices, CSC colptr + rows + perm: ``(3 nnz + n_post + n_pre + 2) * 8`` bytes per
    projection), and the growth of the peak RSS of a fresh process from after ``import`` to after building the
    simulator and training one batch (``VmHWM``).
Event-driven (``neurosim.hardware.NumbaEngine``, send-on-delta with threshold theta):
    the engine's own synaptic-operation count (``sops``: each value event of unit j touches its out-synapses,
    each error event of unit i its in-synapses, so sops = events x fan-out summed) over a threshold sweep at
    every k.  The engine also does per-unit work at every evaluation (each unit checks its delta, reads its
    currents, updates its value) that does not depend on the synapses, so the same run with ``theta = inf`` (no
    event at all) is timed in the same rounds; reported: the exponent of the time against sops, the exponent of
    the time beyond the no-event run against sops, its ns per synaptic op, and a linear fit
    ``time = fixed + per_op x sops``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

import neurosim as ns

from . import core

ROOT = Path(__file__).resolve().parents[1]
SIZES = (50_000, 30_000, 20_000)
FAN_IN = (10, 30, 100)
STEPS = (5, 20, 50)
THETAS = (0.1, 0.03, 0.01, 0.003)
BATCH, BATCH_T = 32, 20      # one batched point per fan-in (the transposed (n, B) layout of the sparse products)
QUICK = {"fan_in": (10, 30), "steps": (5, 20), "thetas": (0.1, 0.03)}


def circuit(k: int, sizes=None) -> ns.Circuit:
    """input -> hidden -> output, both projections FixedFanIn(k), tanh hidden, SGD without momentum."""
    sizes = SIZES if sizes is None else sizes
    P = ns.ValuePopulation
    n_in, n_h, n_out = sizes
    heb = ns.Hebbian(lr=0.01, optimizer=ns.SGD())
    return ns.Circuit(
        (P("input", n_in), P("hidden", n_h, "tanh"), P("output", n_out)),
        (ns.ErrorPopulation("eps_hidden", "hidden"), ns.ErrorPopulation("eps_output", "output")),
        (ns.Projection("W1", "input", "hidden", plasticity=heb, connectivity=ns.FixedFanIn(k, seed=1)),
         ns.Projection("W2", "hidden", "output", plasticity=heb, connectivity=ns.FixedFanIn(k, seed=2))),
        (ns.Clamp("input"), ns.Clamp("output", "target")), name=f"sparse-k{k}")


def data(B, sizes=None, seed=0):
    sizes = SIZES if sizes is None else sizes
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, sizes[0])), 0.5 * rng.normal(size=(B, sizes[2]))


def clock_sops(plan, B, T) -> int:
    """Synaptic operations of one clock-driven batch (see the module docstring)."""
    nnz = int(sum(plan.weight_size(k) for k in range(plan.n_proj)))
    nnz_out = plan.weight_size(plan.proj_index("W2"))
    return B * (2 * nnz + 2 * T * nnz_out)


def memory_bytes(plan) -> dict:
    return {"weights": int(plan.W.nbytes), "indices": int(plan.S.nbytes),
            "optimizer_state": int(2 * plan.W.nbytes), "synapses": int(plan.W.size),
            "dense_equivalent_weights": int(8 * sum(a * b for a, b in (plan.weight_shape(k)
                                                                     for k in range(plan.n_proj))))}


_RSS_CHILD = r"""
import json, numpy as np, neurosim as ns
from benchmarks import sparse
def hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
small = ns.Simulator(sparse.circuit({k}, sizes=(200, 120, 80)), backend="numba", seed=0)
small.step(*sparse.data(1, sizes=(200, 120, 80)), steps=1)          # load the compiled kernel
base = hwm_mb()
sim = ns.Simulator(sparse.circuit({k}), backend="numba", seed=0)
sim.step(*sparse.data(1), steps=5)
print(json.dumps({{"rss_after_load_mb": base, "peak_rss_mb": hwm_mb()}}))
"""


def _fit(xs, ys) -> float:
    """Slope of log(ys) against log(xs): the growth exponent."""
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0]) if len(xs) >= 2 else float("nan")


def _linear(xs, ys) -> dict:
    """``time = fixed + per_op * ops`` (least squares): the marginal time of one synaptic operation and the time
    that does not depend on the synapses (per-unit work: errors, value updates, the event checks), and the growth
    exponent of the synaptic part ``time - fixed``."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    if len(xs) < 2:
        return {"per_op_ns": float("nan"), "fixed_ms": float("nan"), "exponent_of_synaptic_part": float("nan")}
    slope, icpt = np.polyfit(xs, ys, 1)
    part = ys - icpt
    exp = _fit(xs, part) if np.all(part > 0) else float("nan")
    return {"per_op_ns": float(slope * 1e9), "fixed_ms": float(icpt * 1e3), "exponent_of_synaptic_part": exp}


def clock_driven(fan_in, steps, repeats, log=print) -> dict:
    rows = []
    for k in fan_in:
        c = circuit(k)
        t0 = time.perf_counter()
        sim = ns.Simulator(c, backend="numba", seed=0)
        build_s = time.perf_counter() - t0
        X, Y = data(1)
        XB, YB = data(BATCH)
        sim.step(X, Y, steps=2)   # warm-up (loads the kernel)
        fns = {(1, T): (lambda T=T: sim.step(X, Y, steps=T)) for T in steps}
        timed = core.interleaved(fns, repeats, block=1)      # the steps round-robin, batch 1
        # the batched point after them (a step of another batch size reallocates the simulator's buffers)
        fns[(BATCH, BATCH_T)] = lambda: sim.step(XB, YB, steps=BATCH_T)
        timed.update(core.interleaved({(BATCH, BATCH_T): fns[(BATCH, BATCH_T)]}, repeats, block=1))
        mem = memory_bytes(sim.plan)
        for B, T in fns:
            t = timed[(B, T)]["median_s"]
            sops = clock_sops(sim.plan, B, T)
            rows.append({"fan_in": k, "T": T, "batch": B, "synapses": mem["synapses"], "median_s": t,
                         "min_s": timed[(B, T)]["min_s"], "sops": sops, "ns_per_sop": t / sops * 1e9,
                         "build_s": build_s, **{f"{a}_bytes": b for a, b in mem.items() if a != "synapses"}})
            log(f"  k={k:<4d} B={B:<3d} T={T:<3d} synapses {mem['synapses']:>9,d}  {t * 1e3:8.1f} ms/batch  "
                f"{t / sops * 1e9:6.2f} ns per synaptic op  (weights {mem['weights'] / 2**20:.1f} MiB, indices "
                f"{mem['indices'] / 2**20:.1f} MiB; dense would be {mem['dense_equivalent_weights'] / 2**30:.1f} GiB)")
        del sim
    batched = [r for r in rows if r["batch"] != 1]
    rows = [r for r in rows if r["batch"] == 1]      # the fits below are over batch 1
    exp = _fit([r["sops"] for r in rows], [r["median_s"] for r in rows])
    exp_syn = {}
    for T in steps:
        pts = [r for r in rows if r["T"] == T]
        exp_syn[T] = _fit([r["synapses"] for r in pts], [r["median_s"] for r in pts])
    exp_T = {}
    for k in fan_in:
        pts = [r for r in rows if r["fan_in"] == k]
        exp_T[k] = _fit([r["T"] for r in pts], [r["median_s"] for r in pts])
    lin = {T: _linear([r["sops"] for r in rows if r["T"] == T], [r["median_s"] for r in rows if r["T"] == T])
           for T in steps}
    log(f"  -> time ~ (synapses x steps)^{exp:.2f}; vs synapses at fixed T: "
        + ", ".join(f"T={T}: ^{v:.2f}" for T, v in exp_syn.items())
        + "; linear fit per T (time = fixed + per_op x ops): "
        + ", ".join(f"T={T}: {v['per_op_ns']:.2f} ns/op + {v['fixed_ms']:.1f} ms" for T, v in lin.items()))
    return {"rows": rows, "batched_rows": batched, "exponent_vs_sops": exp, "exponent_vs_synapses": exp_syn,
            "exponent_vs_T": exp_T, "linear_per_T": lin}


def rss(fan_in, log=print) -> list:
    out = []
    for k in fan_in:
        r = json.loads(core.run_python(_RSS_CHILD.format(k=k), {"PYTHONPATH": str(ROOT)}).strip().splitlines()[-1])
        plan = ns.lower(circuit(k))
        r.update({"fan_in": k, "growth_mb": r["peak_rss_mb"] - r["rss_after_load_mb"],
                  "weights_plus_indices_mb": (plan.W.nbytes + plan.S.nbytes) / 2**20, "synapses": int(plan.W.size)})
        out.append(r)
        log(f"  k={k:<4d} peak RSS growth {r['growth_mb']:7.1f} MB for {r['synapses']:,d} synapses "
            f"(weights + indices {r['weights_plus_indices_mb']:.1f} MB)")
    exp = _fit([r["synapses"] for r in out], [r["growth_mb"] for r in out])
    log(f"  -> peak RSS growth ~ synapses^{exp:.2f}")
    return {"rows": out, "exponent_vs_synapses": exp}


def event_driven(fan_in, thetas, steps, repeats, log=print) -> dict:
    from neurosim.backends.base import RunSpec
    from neurosim.hardware.engine import NumbaEngine
    from neurosim.hardware.nonideal import Device
    rows = []
    X, Y = data(1)
    spec = RunSpec(n_steps=steps, dt=0.1, learn=False)
    for k in fan_in:
        plan = ns.lower(circuit(k))
        dev = Device(ns.hardware.HardwareModel(), plan)
        tables, sig = dev.tables(), dev.read_sigmas
        eng = NumbaEngine(plan)
        res = {}

        def fn(theta):
            def f():
                eng.reset()
                res[theta] = eng.run(X, Y, spec, plan.W, plan.b, tables, sig, theta, theta, 0)
            return f
        eng.run(X, Y, RunSpec(n_steps=1, dt=0.1), plan.W, plan.b, tables, sig, 0.1, 0.1, 0)   # warm-up
        # theta = inf sends nothing: the per-unit work of every evaluation alone, timed in the same rounds
        timed = core.interleaved({th: fn(th) for th in (np.inf,) + tuple(thetas)}, repeats, block=1)
        base = timed[np.inf]["median_s"]
        for th in thetas:
            r = res[th]
            sops = int(r.sops.sum())
            events = int(r.events.sum() + r.events_init.sum())
            t = timed[th]["median_s"]
            rows.append({"fan_in": k, "theta": th, "T": steps, "events": events, "sops": sops,
                         "median_s": t, "no_event_s": base, "event_part_s": t - base,
                         "ns_per_sop": (t - base) / max(sops, 1) * 1e9, "fan_out_per_event": sops / max(events, 1)})
            log(f"  k={k:<4d} theta={th:<6g} {events:>9,d} events x {sops / max(events, 1):5.1f} synapses = "
                f"{sops:>11,d} ops  {t * 1e3:8.1f} ms (without events {base * 1e3:.1f} ms)  "
                f"{(t - base) / max(sops, 1) * 1e9:6.2f} ns per op")
    exp = _fit([r["sops"] for r in rows], [r["median_s"] for r in rows])
    ok = [r for r in rows if r["event_part_s"] > 0]
    exp_part = _fit([r["sops"] for r in ok], [r["event_part_s"] for r in ok])
    lin = _linear([r["sops"] for r in rows], [r["median_s"] for r in rows])
    # the time beyond the no-event run as (cost per event) x events + (cost per synapse) x sops
    A = np.array([[r["events"], r["sops"]] for r in rows], dtype=float)
    (per_event, per_sop), *_ = np.linalg.lstsq(A, np.array([r["event_part_s"] for r in rows]), rcond=None)
    log(f"  -> event-driven time ~ (events x fan-out)^{exp:.2f}; the time beyond the no-event run ~ "
        f"(events x fan-out)^{exp_part:.2f} = {per_event * 1e9:.1f} ns per event + {per_sop * 1e9:.2f} ns per "
        f"synaptic op (least squares); linear fit of the whole time: {lin['per_op_ns']:.2f} ns per synaptic op + "
        f"{lin['fixed_ms']:.1f} ms")
    return {"rows": rows, "exponent_vs_sops": exp, "exponent_event_part_vs_sops": exp_part, "linear": lin,
            "ns_per_event": float(per_event * 1e9), "ns_per_sop": float(per_sop * 1e9)}


def run(repeats=3, quick=False, log=print) -> dict:
    fan_in = QUICK["fan_in"] if quick else FAN_IN
    steps = QUICK["steps"] if quick else STEPS
    thetas = QUICK["thetas"] if quick else THETAS
    out = {"sizes": list(SIZES), "loadavg_start": core.loadavg()}
    log(f"  clock-driven, numba, batch 1: populations {SIZES}, FixedFanIn k in {list(fan_in)}, T in {list(steps)}")
    out["clock"] = clock_driven(fan_in, steps, repeats, log=log)
    log("  memory: peak RSS growth of a fresh process")
    out["memory"] = rss(fan_in, log=log)
    log(f"  event-driven (NumbaEngine), batch 1, T=10, thresholds {list(thetas)}")
    out["event"] = event_driven(fan_in, thetas, 10, repeats, log=log)
    out["loadavg_end"] = core.loadavg()
    return out
