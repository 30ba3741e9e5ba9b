"""The prospective-configuration experiments on the brian2 backend: ``neurosim run bear --backend brian2`` runs
the PC rule on brian2 (rate mode: relaxation, inference-rate discount and Hebbian step) and reproduces the
numba headline metrics to the brian2 rate-mode tolerance; the BP baseline runs on numba and metrics.json says so."""
import json

import numpy as np
import pytest

from neurosim.cli import main
from neurosim.experiment import flatten_metrics

pytest.importorskip("brian2")

#: tolerance of the brian2 rate mode against the other backends (tests/backend_brian2/test_rate_mode.py)
TOL = 1e-6
#: 3 training steps, then 0.3 / 0.1 = 3 steps of the learning-rate sweep: 6 PC steps in all
SMALL = ["--set", "iterations=3", "--set", "relax_steps=24", "--set", "lr_sweep=[0.1]", "--set", "sweep_time=0.3"]


def test_bear_on_brian2_reproduces_the_numba_headline_metrics(tmp_path, monkeypatch):
    from neurosim.backends.brian2 import Brian2Backend
    calls = []
    run_batch = Brian2Backend.run_batch

    def counting(self, s, t, spec):
        calls.append(spec.learn)
        return run_batch(self, s, t, spec)
    monkeypatch.setattr(Brian2Backend, "run_batch", counting)

    metrics = {}
    for backend in ("numba", "brian2"):
        out = tmp_path / backend
        assert main(["run", "bear", "--backend", backend, "--out", str(out), "--no-progress", "-q", *SMALL]) == 0
        metrics[backend] = json.loads((out / "metrics.json").read_text())
    assert calls == [True] * 6   # brian2 ran every PC step (relaxation and learning), nothing else
    assert metrics["brian2"]["backends"] == {"pc": "brian2", "bp": "numba"}
    assert "backends" not in metrics["numba"]
    ref = flatten_metrics(metrics["numba"], lists=True)
    got = flatten_metrics(metrics["brian2"], lists=True)
    numeric = {k: v for k, v in ref.items() if k != "wall_time_s" and not isinstance(v, (str, bool))
               and not (isinstance(v, list) and any(isinstance(x, (str, bool)) for x in v))}
    assert {"pc.min_correct_output", "pc.target_alignment_first_step", "bp.min_correct_output"} <= set(numeric)
    for key, value in numeric.items():
        np.testing.assert_allclose(got[key], value, rtol=0, atol=TOL, err_msg=key)
    # the PC and BP numbers differ (the comparison is not between two copies of one rule)
    assert abs(ref["pc.min_correct_output"] - ref["bp.min_correct_output"]) > 0.05
    assert [c["held"] for c in metrics["brian2"]["checks"]] == [c["held"] for c in metrics["numba"]["checks"]]
