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
