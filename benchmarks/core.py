"""Samples/s of PC training, numba vs the NumPy reference, measured in one run.

Workload (performance_notes.md): 64-256-256-10 tanh PCN, input and target clamped, hidden values from
the feedforward pass, T Euler steps (dt = 0.1), one SGD step.  Batch 1 (online) and batch 256.
The JIT is warmed first and its compile time reported separately; figures are medians of repeats.
"""
from __future__ import annotations

import platform
import statistics
import time

import numpy as np

import neurosim as ns
from neurosim.backends.base import RunSpec


def _time_batches(sim, X, Y, spec, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sim.backend.run_batch(X, Y, spec)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(T: int = 100, batches=(1, 256), repeats: int = 7, dtype="float64") -> dict:
    net = ns.hierarchy([64, 256, 256, 10], phi="tanh", lr=1e-3, bias=False)
    rng = np.random.default_rng(0)
    spec = RunSpec(n_steps=T, dt=0.1, learn=True)
    rows = []
    compile_s = None
    for B in batches:
        X = rng.normal(size=(B, 64))
        Y = rng.normal(size=(B, 10))
        row = {"batch": B, "T": T, "dtype": dtype}
        for backend in ("numba", "reference"):
            sim = ns.Simulator(net, dt=0.1, backend=backend, seed=0, dtype=dtype)
            t0 = time.perf_counter()
            sim.backend.run_batch(X, Y, spec)  # warm-up (compiles or loads the cache for numba)
            warm = time.perf_counter() - t0
            if backend == "numba" and compile_s is None:
                compile_s = warm
            reps = repeats if backend == "numba" or B == 1 else max(3, repeats // 2)
            med = _time_batches(sim, X, Y, spec, reps)
            row[f"{backend}_s_per_batch"] = med
            row[f"{backend}_samples_per_s"] = B / med
        row["speedup_numba_vs_reference"] = row["reference_s_per_batch"] / row["numba_s_per_batch"]
        rows.append(row)
    return {"workload": "PC training 64-256-256-10 tanh, T Euler steps, one SGD step", "rows": rows,
            "first_call_s (compile or cache load)": compile_s,
            "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                        "numpy": np.__version__}}


def table(result: dict) -> str:
    lines = ["| batch | T | numba samples/s | reference samples/s | numba / reference |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['batch']} | {r['T']} | {r['numba_samples_per_s']:.0f} | {r['reference_samples_per_s']:.0f} "
                     f"| {r['speedup_numba_vs_reference']:.2f}x |")
    return "\n".join(lines)
