"""The benchmark's plain NumPy loop computes the workload it is compared on (no timing here).

``python -m benchmarks`` times the loop in a process of its own and accepts its time only if its result matches
neurosim's; this checks that match at test time, on a small network, through the loop's command-line entry."""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import core, peers
from benchmarks.numpy_loop import NumpyLoop, main


@pytest.mark.parametrize("B,T", [(1, 7), (5, 3)])
def test_numpy_loop_matches_the_reference(tmp_path, B, T):
    sizes = core.net_sizes(width=12, n_in=6, n_out=3)
    prob, out = tmp_path / "problem.npz", tmp_path / "result.json"
    energy = peers._problem(prob, sizes, B, T, "float64", repeats=2)
    main([str(prob), str(out)])
    res = json.loads(out.read_text())
    assert res["energy_final"] == pytest.approx(energy, rel=1e-12)
    assert res["weights_max_abs_err"] < 1e-14
    assert len(res["times"]) == 2 and res["median_s"] > 0


def test_numpy_loop_moves_the_weights_by_the_reference_update():
    """The comparison is not vacuous: the loop's update is neurosim's, and a different step size is seen."""
    sizes = core.net_sizes(width=12, n_in=6, n_out=3)
    X, Y = core.make_data(4, sizes)
    ref = core.simulator(sizes, "reference", "float64")
    W0 = ref.weights
    core.train_batch(ref, X, Y, 5)
    W1 = ref.weights
    for dt, close in ((core.DT, True), (2 * core.DT, False)):
        loop = NumpyLoop([W0[f"W{i}"] for i in range(1, 4)], X, Y, 5, dt, core.LR)
        loop()
        err = max(np.abs(loop.Ws[i - 1] - W1[f"W{i}"]).max() for i in range(1, 4))
        delta = max(np.abs(W1[f"W{i}"] - W0[f"W{i}"]).max() for i in range(1, 4))
        assert delta > 1e-6
        assert (err < 1e-14 * max(1.0, delta)) == close


def test_one_thread_runs_are_pinned_to_one_core_and_checked(tmp_path, monkeypatch):
    """A one-thread run is pinned to one core: JAX's CPU runtime ran pcx on both cores despite the one-thread
    XLA flags (1.7-1.9 CPU seconds per wall second), which made pcx look faster on 'one thread' than it is.  A
    result that still used more than one core's time is not compared."""
    import os
    import sys
    sizes = core.net_sizes(width=12, n_in=6, n_out=3)
    res = peers.run_peer("numpy_loop", sys.executable, sizes, 3, 4, "float64", 2, one_thread=True)
    assert res["ok"], res
    if hasattr(os, "sched_setaffinity"):
        assert res["cores"] == 1
    free = peers.run_peer("numpy_loop", sys.executable, sizes, 3, 4, "float64", 2, one_thread=False)
    assert free["ok"] and free["cores"] == len(os.sched_getaffinity(0))
    # a result that reports two cores' CPU time per second on 'one thread' is refused
    real = peers.subprocess.run

    def two_cores(argv, **kw):
        r = real(argv, **kw)
        out = argv[-1]
        d = json.loads(open(out).read())
        d["cpu_per_wall"] = 1.8
        open(out, "w").write(json.dumps(d))
        return r
    monkeypatch.setattr(peers.subprocess, "run", two_cores)
    bad = peers.run_peer("numpy_loop", sys.executable, sizes, 3, 4, "float64", 2, one_thread=True)
    assert not bad["ok"] and "not on one thread" in bad["reason"]
    assert peers.run_peer("numpy_loop", sys.executable, sizes, 3, 4, "float64", 2, one_thread=False)["ok"]


def test_the_report_divides_the_one_thread_kernel_by_the_one_thread_roofline():
    """benchmarks/README.md renders from the stored results, and a one-thread kernel's fraction of roofline uses
    the one-thread GEMM rate (it was divided by BLAS's own two-thread rate: 46% where the one-thread rate gives
    about 90%)."""
    from pathlib import Path
    from benchmarks import report
    stored = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "latest.json"
    r = json.loads(stored.read_text())
    assert "## The issue's targets" in report.markdown(r)
    row = {"workload": "batched", "batch": 256, "T": 20, "dtype": "float32", "numba_s": 0.015, "reference_s": 0.1,
           "speedup_vs_reference": 6.7, "roofline_s": 0.012, "roofline_kind": "GEMM", "matmul_rate_gflops": 180.0,
           "fraction_of_roofline": 0.8, "numba_1thread_s": 0.02, "speedup_1thread_vs_reference": 5.0,
           "roofline_1thread_s": 0.018, "matmul_rate_1thread_gflops": 100.0, "fraction_of_roofline_1thread": 0.9}
    text = report.workloads_section({"rows": [row]})
    assert "(GEMM, 1 thread, 100.0 GFLOP/s) | 90% |" in text
    lines = report.checklist({"workloads": {"rows": [row]}})
    assert "1 BLAS thread 90% of the one-thread GEMM roofline" in lines and "T=20 (float32): 80%" in lines
    assert "NOT met" not in lines.split("T=20 (float32)")[1].splitlines()[0]
