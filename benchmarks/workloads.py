"""The issue's workloads: online (batch 1, T = 100) and batched (batch 256, T = 20 and 100), numba
against the NumPy reference backend and the measured roofline, in float64 and float32.

float32 is an option of the numba backend; its error is measured here against the float64 reference
on the same batch (relative error of the final energy, max abs error of the updated weights).
"""
from __future__ import annotations

import time

import numpy as np

from . import core

WORKLOADS = [  # (name, batch, T)
    ("online", 1, 100),
    ("batched", 256, 20),
    ("batched", 256, 100),
]


def float32_error(sizes, B, T) -> dict:
    """numba float32 vs the float64 reference on one batch."""
    X, Y = core.make_data(B, sizes, seed=3)
    a = core.simulator(sizes, "numba", "float32")
    b = core.simulator(sizes, "reference", "float64")
    ra = core.train_batch(a, X.astype(np.float32), Y.astype(np.float32), T)
    rb = core.train_batch(b, X, Y, T)
    ea, eb = ra.energy[-1].sum(), rb.energy[-1].sum()
    wa, wb = a.weights, b.weights
    sa, sb = a.state(), b.state()
    return {"energy_rel_err": float(abs(ea - eb) / abs(eb)),
            "weights_max_abs_err": float(max(np.max(np.abs(wa[k] - wb[k])) for k in wb)),
            "x_max_abs_err": float(max(np.max(np.abs(sa[n]["x"] - sb[n]["x"])) for n in sb))}


def run(repeats=7, dtypes=("float64", "float32"), sizes=None, log=print) -> dict:
    sizes = sizes or core.net_sizes()
    rows = []
    first_call = {}
    # every roofline rate first: NumPy's OpenBLAS threads keep spinning for a while after a product and
    # would compete with the kernel's BLAS (SciPy's OpenBLAS, another thread pool) if timed right after
    rates = {(B, sizes[1], dtype): core.matmul_rate(B, sizes[1], dtype) for dtype in dtypes for _, B, _ in WORKLOADS}
    # the one-thread kernel against the one-thread rate (it was divided by BLAS's own, two-thread, rate)
    rates1 = {(B, sizes[1], dtype): core.matmul_rate(B, sizes[1], dtype, threads=1)
              for dtype in dtypes for _, B, _ in WORKLOADS if B > 8}
    loads = {dtype: core.load_rate(dtype) for dtype in dtypes}
    core.settle()
    for dtype in dtypes:
        for name, B, T in WORKLOADS:
            X, Y = core.make_data(B, sizes)
            sims = {"numba": core.simulator(sizes, "numba", dtype), "reference": core.simulator(sizes, "reference", dtype)}
            if B > 8:  # also the kernel with one BLAS thread (robust when other processes share the cores)
                sims["numba_1thread"] = core.simulator(sizes, "numba", dtype, blas_threads=1)
            fns = {k: core.batch_fn(s, X, Y, T) for k, s in sims.items()}
            if dtype not in first_call:  # the first numba call of this dtype compiles or loads the cache
                t0 = time.perf_counter()
                fns["numba"]()
                first_call[dtype] = time.perf_counter() - t0
            key = (B, sizes[1], dtype)
            slow = B * T >= 256 * 100
            # numba's entries are timed each alone right before and right after the reference (the mean of the two
            # medians), never round-robin with it: the reference's products run on NumPy's OpenBLAS, whose workers
            # keep spinning after a product and took a core from the kernel's BLAS (SciPy's OpenBLAS; float32
            # batch 256, T=20: 23.0 ms round-robin against 12-13.5 ms alone)
            nb = {k: f for k, f in fns.items() if k != "reference"}
            block = 2 if slow else 3
            before = {k: core.interleaved({k: f}, repeats, block=block)[k] for k, f in nb.items()}
            core.settle()
            ref = core.interleaved({"reference": fns["reference"]}, 2 if slow else repeats, block=block)
            core.settle()
            after = {k: core.interleaved({k: f}, repeats, block=block)[k] for k, f in nb.items()}
            res = {k: {"median_s": 0.5 * (before[k]["median_s"] + after[k]["median_s"]),
                       "min_s": min(before[k]["min_s"], after[k]["min_s"])} for k in nb}
            res["reference"] = ref["reference"]
            rate = rates[key]
            roof = core.roofline_s(sizes, B, T, rate)
            t_nb, t_ref = res["numba"]["median_s"], res["reference"]["median_s"]
            row = {"workload": name, "batch": B, "T": T, "dtype": dtype, "sizes": sizes,
                   "numba_s": t_nb, "reference_s": t_ref, "numba_min_s": res["numba"]["min_s"],
                   "speedup_vs_reference": t_ref / t_nb,
                   "flops": core.flops(sizes, B, T), "roofline_kind": "GEMV" if B == 1 else "GEMM",
                   "matmul_rate_gflops": rate / 1e9, "roofline_s": roof, "fraction_of_roofline": roof / t_nb,
                   "numba_gflops": core.flops(sizes, B, T) / t_nb / 1e9,
                   "samples_per_s": B / t_nb, "loadavg": core.loadavg()}
            if "numba_1thread" in res:
                t1 = res["numba_1thread"]["median_s"]
                roof1 = core.roofline_s(sizes, B, T, rates1[key])
                row.update(numba_1thread_s=t1, speedup_1thread_vs_reference=t_ref / t1,
                           matmul_rate_1thread_gflops=rates1[key] / 1e9, roofline_1thread_s=roof1,
                           fraction_of_roofline_1thread=roof1 / t1)
            if B == 1:
                lb = core.load_bound_s(sizes, T, loads[dtype])
                row.update(load_rate_gelem=loads[dtype] / 1e9, load_bound_s=lb, fraction_of_load_bound=lb / t_nb)
            if dtype == "float32":
                row["float32_error"] = float32_error(sizes, B, T)
            rows.append(row)
            log(f"  {name:8s} B={B:<4d} T={T:<4d} {dtype}: numba {t_nb * 1e3:8.2f} ms  reference {t_ref * 1e3:8.2f} ms"
                f"  x{t_ref / t_nb:5.1f}  roofline {roof * 1e3:7.2f} ms ({roof / t_nb:4.0%})"
                + (f"  [1 BLAS thread: {row['numba_1thread_s'] * 1e3:.2f} ms, {row['fraction_of_roofline_1thread']:.0%} "
                   "of the one-thread roofline]"
                   if "numba_1thread_s" in row else ""))
    # the rates again after the kernels, each roofline from the better of the two measurements: a rate measured while
    # another user's process held a core reads low (one run's "two-thread" float64 GEMM rate was its one-thread rate,
    # 53 GFLOP/s, and the kernel read "147% of roofline")
    core.settle()
    for key in rates:
        rates[key] = max(rates[key], core.matmul_rate(*key))
    for key in rates1:
        rates1[key] = max(rates1[key], core.matmul_rate(*key, threads=1))
    for dtype in dtypes:
        loads[dtype] = max(loads[dtype], core.load_rate(dtype))
    for row in rows:
        key = (row["batch"], sizes[1], row["dtype"])
        roof = core.roofline_s(sizes, row["batch"], row["T"], rates[key])
        row.update(matmul_rate_gflops=rates[key] / 1e9, roofline_s=roof, fraction_of_roofline=roof / row["numba_s"])
        if "numba_1thread_s" in row:
            roof1 = core.roofline_s(sizes, row["batch"], row["T"], rates1[key])
            row.update(matmul_rate_1thread_gflops=rates1[key] / 1e9, roofline_1thread_s=roof1,
                       fraction_of_roofline_1thread=roof1 / row["numba_1thread_s"])
        if row["batch"] == 1:
            lb = core.load_bound_s(sizes, row["T"], loads[row["dtype"]])
            row.update(load_rate_gelem=loads[row["dtype"]] / 1e9, load_bound_s=lb, fraction_of_load_bound=lb / row["numba_s"])
    log("  rooflines from the better of the rates measured before and after the kernels: "
        + ", ".join(f"B={k[0]} {k[2]} {rates[k] / 1e9:.1f} GFLOP/s" for k in rates))
    return {"rows": rows, "first_numba_call_s": first_call}
