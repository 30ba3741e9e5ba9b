"""brian2 spiking mode learns the digits circuit from random weights (issue 15, item 1).

Oracle: the same presentations without plasticity (``learn=False``) leave the weights, the loss and the
accuracy exactly where they started and count no weight update; with event-driven plasticity the loss of
the feedforward readout on the training digits falls below half its initial value and the accuracy rises
by at least 0.3 (measured: 6% -> about 60% after 8 updates; the rate model on numba: 56-75% for lr 0.3-0.5).
Event counts per training sample are the batch report's totals over the samples.
"""
from __future__ import annotations

import numpy as np
import pytest

from testkit import require_brian2  # noqa: E402

brian2 = require_brian2()

import neurosim as ns  # noqa: E402
from neurosim.circuits import brian2_experiments as E  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated.*")   # pyparsing names used by brian2 2.9


def test_spiking_training_from_random_weights_learns_and_counts_its_events():
    cfg = dict(E.LEARN_DEFAULTS, n_train=64, batch_size=32, lr=0.5)
    Xtr, Ytr, _, _ = E._digits_inputs(cfg)
    net = ns.hierarchy([64, 16, 10], phi="tanh", lr=cfg["lr"], optimizer=ns.SGD())

    def simulator():
        return ns.Simulator(net, backend="brian2", seed=0, dt=0.1, backend_options=E._spiking_options(cfg))

    # control: the same presentations, plasticity off
    off = simulator()
    w0 = off.weights
    before = off.evaluate(Xtr, Ytr)
    h_off, t_off = E._train_loop(off, Xtr, Ytr, Xtr, Ytr, cfg, 1, 10, spiking=True, learn=False)
    assert h_off["test_loss"][-1] == before["loss"] and h_off["test_accuracy"][-1] == before["accuracy"]
    assert all(np.array_equal(off.weights[k], w0[k]) for k in w0)
    assert t_off["weight_updates"] == 0 and t_off["spikes"] > 0

    sim = simulator()
    hist, tot = E._train_loop(sim, Xtr, Ytr, Xtr, Ytr, cfg, 4, 10, spiking=True)
    assert hist["test_loss"][-1] < 0.5 * before["loss"], (before, hist["test_loss"])
    assert hist["test_accuracy"][-1] >= before["accuracy"] + 0.3, (before, hist["test_accuracy"])

    # per-sample counts: the batch reports' totals over the samples (8 batches of 32)
    r = sim.backend.last_run
    assert tot["samples"] == 8 * 32 and r["batch"] == 32
    assert r["spikes_per_sample"] == pytest.approx(r["spikes"] / 32)
    assert r["synaptic_events_per_sample"] == pytest.approx(r["synaptic_events"] / 32)
    assert sum(tot["spikes_by_channel"].values()) == pytest.approx(tot["spikes"])
    per = E._per_sample(tot, hist)
    assert per["simulated_time_per_training_sample_ms"] == pytest.approx(10 * 0.1 * 20.0)
    assert per["spikes_per_training_sample"] == pytest.approx(tot["spikes"] / 256)
    # plasticity acts only in the learning window (the last quarter): fewer weight updates than error events
    # reaching weighted synapses (each error event of h1 reaches 64 inputs, of the output 16 hidden units)
    ch = tot["spikes_by_channel"]
    assert 0 < tot["weight_updates"] < 64 * ch["eps_h1.e"] + 16 * ch["eps_output.e"]
