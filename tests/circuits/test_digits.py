"""The digits experiment (``neurosim run digits``): what its metrics report about time."""
from __future__ import annotations

import time as _time

import pytest

from neurosim.circuits import digits
from neurosim import simulator as simmod
from neurosim.backends.numba.backend import NumbaBackend
from neurosim.experiment import resolve_config


class FakeTime:
    """Stands in for the ``time`` module: ``perf_counter`` reads a clock that only the test advances."""

    def __init__(self):
        self.t = 1000.0

    def perf_counter(self):
        return self.t

    def __getattr__(self, name):
        return getattr(_time, name)


def test_compile_time_is_reported_apart_from_training(tmp_path, monkeypatch):
    """The first kernel call of a process compiles the numba kernels (or loads them from the cache): that
    time is reported as ``compile_s`` and not counted in ``training_time_s`` or ``train_samples_per_s``.
    An injected clock makes the first backend call cost 100 s and every later call 1 ms."""
    clock = FakeTime()
    calls = []
    run_batch = NumbaBackend.run_batch

    def timed_run_batch(self, *a, **k):
        clock.t += 100.0 if not calls else 0.001
        calls.append(a[0].shape[0])
        return run_batch(self, *a, **k)

    monkeypatch.setattr(NumbaBackend, "run_batch", timed_run_batch)
    monkeypatch.setattr(simmod, "time", clock)
    monkeypatch.setattr(digits, "time", clock, raising=False)
    cfg = resolve_config(digits.DEFAULTS, {"epochs": 2, "hidden": [8], "relax_steps_plot": 5})
    m = digits.run(cfg, tmp_path, progress=False)
    assert m["compile_s"] >= 100.0
    # two epochs of ceil(n_train / 16) training batches and one test evaluation each, at 1 ms a call
    n_batches = -(-m["n_train"] // cfg["batch_size"])
    assert m["training_time_s"] == pytest.approx(2 * (n_batches + 1) * 0.001)
    assert m["train_samples_per_s"] == pytest.approx(2 * m["n_train"] / m["training_time_s"])
