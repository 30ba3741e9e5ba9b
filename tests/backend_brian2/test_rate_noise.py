"""Per-read weight noise of a hardware model on layered circuits in brian2's rate network.

A hardware model whose only relaxation effects are ``AdditiveNoise`` / ``MultiplicativeNoise`` on ``reads`` runs on
``backend="brian2"`` (rate mode, numpy target) without the event engine: every weighted synapse reads its weight as
``w (1 + s_m z1) + s_a z2`` with fresh normals at every prediction and feedback read, the host's initial sweep reads
with the same law, and brian2 is seeded per batch by the substrate (:mod:`neurosim.backends.brian2.rate`,
:mod:`neurosim.hardware.substrate`).  The draws differ from the event engine's, so brian2 is compared with the
reference in distribution (the law of one read) and to the order of the noise (training).
"""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim import hardware as hw
from neurosim.errors import UnsupportedError

pytest.importorskip("brian2")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

B2 = {"backend": "brian2", "backend_options": {"mode": "rate"}}
NOISE = hw.HardwareModel(reads=[hw.AdditiveNoise(0.01)], seed=3)


def _runs(sim):
    return int(sim.backend.checkpoint_state()["n_runs"])


def _circuit(kind):
    if kind == "mlp":
        return ns.hierarchy([4, 5, 3], lr=0.05, optimizer=ns.SGD())
    # muPC-like: a multiplier, an identity skip next to a weighted projection, dynamic error units
    return ns.hierarchy([4, 5, 5, 3], lr=0.05, optimizer=ns.SGD(), multipliers=[1.0, 0.5, 0.7],
                        skips=[False, True, False], tau_eps=0.5)


def _data(B=6):
    rng = np.random.default_rng(7)
    return rng.normal(size=(B, 4)), 0.5 * rng.normal(size=(B, 3))


def test_one_read_has_the_law_of_per_weight_noise():
    """input 5 -> output 3 (no bias, output clamped), 3000 identical items, one step: the output's prediction over
    the batch has the standard deviation sqrt(sum_j (s_m^2 W_ij^2 + s_a^2) x_j^2) of per-weight noise
    (MultiplicativeNoise 0.1 and AdditiveNoise 0.05 on every read) and the noiseless mean; brian2 ran it."""
    net = ns.hierarchy([5, 3], bias=False)
    model = hw.HardwareModel(reads=[hw.MultiplicativeNoise(0.1), hw.AdditiveNoise(0.05)], seed=2)
    B = 3000
    X = np.tile([[0.5, -1.0, 2.0, 0.3, -0.7]], (B, 1))
    sim = ns.Simulator(net, seed=0, hardware=model, **B2)
    assert sim.hardware.engine is None and sim.hardware.backend_noise
    r = sim.run(X, np.zeros((B, 3)), steps=1)
    mu = r.mu["output"]
    W = sim.weights["W1"]
    want = np.sqrt((0.1 ** 2 * W ** 2 + 0.05 ** 2) @ X[0] ** 2)
    assert np.all(np.abs(mu.std(axis=0) / want - 1) < 0.08), (mu.std(axis=0), want)
    assert np.all(np.abs(mu.mean(axis=0) - W @ X[0]) < 4 * want / np.sqrt(B))
    assert _runs(sim) == 1
    # the same law in the feedforward start (free output: the output is set to one noisy read on the host)
    y0 = sim.run(X, steps=0).x["output"]
    assert np.all(np.abs(y0.std(axis=0) / want - 1) < 0.08), (y0.std(axis=0), want)
    assert np.all(np.abs(y0.mean(axis=0) - W @ X[0]) < 4 * want / np.sqrt(B))


def test_feedback_reads_are_noisy():
    """The feedback into a hidden population reads its weights with per-read noise.  With a zero input every
    prediction is exactly 0 (no current, nothing to perturb), so one Euler step with the output clamped to ``Y``
    moves the (linear) hidden population to ``h = dt * fb~``, one noisy feedback read of the output error ``Y``:
    mean ``dt W2^T Y``, std ``dt sqrt(sum_i (s_m^2 W2_ij^2 + s_a^2) Y_i^2)``, over 3000 identical items."""
    net = ns.hierarchy([3, 4, 2], phi="linear", bias=False)
    model = hw.HardwareModel(reads=[hw.MultiplicativeNoise(0.2), hw.AdditiveNoise(0.05)], seed=1)
    B = 3000
    X = np.zeros((B, 3))
    Y = np.tile([[1.5, -2.0]], (B, 1))
    sim = ns.Simulator(net, seed=0, hardware=model, **B2)
    h = sim.run(X, Y, steps=1).x["h1"]
    W2 = sim.weights["W2"]
    want = sim.dt * np.sqrt((0.2 ** 2 * W2 ** 2 + 0.05 ** 2).T @ Y[0] ** 2)
    assert np.all(np.abs(h.std(axis=0) / want - 1) < 0.08), (h.std(axis=0), want)
    assert np.all(np.abs(h.mean(axis=0) - sim.dt * W2.T @ Y[0]) < 4 * want / np.sqrt(B))


@pytest.mark.parametrize("kind", ["mlp", "mupc"])
def test_noisy_training_matches_the_reference_in_distribution(kind):
    """Training on a chip with AdditiveNoise(0.01) on every read: brian2 stays within the noise's order (1e-2) of
    the reference backend's event engine (same model and seed, different draws), moves away from brian2's
    noiseless run, and really ran every batch in brian2."""
    net = _circuit(kind)
    X, Y = _data()
    ref = ns.Simulator(net, dt=0.1, seed=0, backend="reference", hardware=NOISE)
    b2 = ns.Simulator(net, dt=0.1, seed=0, hardware=NOISE, **B2)
    quiet = ns.Simulator(net, dt=0.1, seed=0, **B2)
    for sim in (ref, b2, quiet):
        sim.train(X, Y, epochs=2, batch_size=3, steps=4, progress=False)
    assert ref.hardware.engine is not None and b2.hardware.engine is None
    assert _runs(b2) == 4 and b2.hardware.batches == 4
    assert b2.hardware.counts == ref.hardware.counts   # the clock-driven operation counts of the same schedule
    for k, w in ref.weights.items():
        assert np.max(np.abs(b2.weights[k] - w)) < 1e-2, k
    assert max(float(np.max(np.abs(b2.weights[k] - quiet.weights[k]))) for k in quiet.weights) > 1e-6


def test_noisy_reads_with_write_effects_keep_the_write_path():
    """Noise on the reads and a quantised device together: the stored weights stay on the grid."""
    model = hw.HardwareModel(reads=[hw.AdditiveNoise(0.01)], weights=[hw.Quantize(6, bound=1.0)], seed=3)
    X, Y = _data(4)
    sim = ns.Simulator(ns.hierarchy([4, 5, 3], lr=1.0, optimizer=ns.SGD()), seed=0, hardware=model, **B2)
    step = model.weights[0].grid()[0]
    w0 = sim.weights["W1"]
    sim.learn(X, 3 * Y, steps=5)
    w1 = sim.weights["W1"]
    assert not np.array_equal(w1, w0) and _runs(sim) == 1
    np.testing.assert_allclose(w1 / step, np.round(w1 / step), atol=1e-9)


def test_a_noisy_run_is_reproducible():
    """The same simulator setup twice gives identical results (brian2 and the host are seeded per batch by the
    substrate); successive batches draw differently; prediction draws from its own stream."""
    X, Y = _data()
    outs = []
    for _ in range(2):
        sim = ns.Simulator(_circuit("mupc"), dt=0.1, seed=0, hardware=NOISE, **B2)
        h = sim.train(X, Y, epochs=1, batch_size=3, steps=4, progress=False)
        r1 = sim.run(X, Y, steps=3)
        r2 = sim.run(X, Y, steps=3)
        outs.append((sim.weights, h["loss"], r1.x["h1"], r2.x["h1"], sim.predict(X)))
    (w, loss, a1, a2, p), (w_, loss_, b1, b2_, p_) = outs
    for k in w:
        np.testing.assert_array_equal(w[k], w_[k])
    assert loss == loss_
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(p, p_)
    assert not np.array_equal(a1, a2)   # a new batch, new draws


def test_what_needs_the_event_engine_or_another_brian2_mode_is_refused():
    """Per-read noise in spiking mode, on cpp_standalone or with Heun, brian2's backprop with noisy reads, and
    everything else that changes the relaxation (event coding, signal sites, Mismatch on reads) are refused when
    the simulator is built (or when the run or training starts, for per-call settings), naming the reason and the
    fix; nothing ran."""
    net = _circuit("mlp")
    with pytest.raises(UnsupportedError, match=r"mode='spiking'.*per-read noise.*mode='rate' and target='numpy'"):
        ns.Simulator(net, backend="brian2", hardware=NOISE, backend_options={"mode": "spiking"})
    with pytest.raises(UnsupportedError, match=r"target='cpp_standalone'.*per-read noise.*backend='numba'"):
        ns.Simulator(net, backend="brian2", hardware=NOISE, backend_options={"target": "cpp_standalone"})
    for model in (hw.HardwareModel(coding="event"), hw.HardwareModel(values=[hw.Quantize(8)]),
                  hw.HardwareModel(reads=[hw.AdditiveNoise(0.01), hw.Mismatch(0.1, per="synapse")])):
        with pytest.raises(UnsupportedError, match="backend 'brian2' has no event-driven hardware engine"):
            ns.Simulator(net, backend="brian2", hardware=model)
    with pytest.raises(UnsupportedError, match=r"per-read noise with integrator 'euler' only, not 'heun'"):
        ns.Simulator(net, hardware=NOISE, integrator="heun", **B2)
    sim = ns.Simulator(net, seed=0, hardware=NOISE, **B2)
    w0 = sim.weights
    X, Y = _data()
    with pytest.raises(UnsupportedError, match=r"per-read noise with integrator='euler' only"):
        sim.run(X, Y, steps=3, integrator="heun")
    with pytest.raises(UnsupportedError, match=r"algorithm 'bp' with per-read noise.*algorithm 'pc'"):
        sim.train(X, Y, algorithm="bp", progress=False)
    with pytest.raises(UnsupportedError, match="algorithm 'pc' or 'bp', not 'ipc'"):
        sim.train(X, Y, algorithm="ipc", progress=False)
    assert _runs(sim) == 0 and sim.hardware.batches == 0
    for k, w in sim.weights.items():
        np.testing.assert_array_equal(w, w0[k])


def _draws(net):
    """The brian2 operations of a rate network (contained ones included) whose code draws normals."""
    objs = [c for o in net.net.objects for c in [o, *getattr(o, "contained_objects", [])]]
    return [c.name for c in objs if "randn" in str(getattr(c, "abstract_code", ""))]


def test_noiseless_networks_have_no_noise_code():
    """A model without per-read noise (or a zero std) builds the plain network: no draws, no noise variables."""
    X, Y = _data()
    for model in (None, hw.HardwareModel(reads=[hw.AdditiveNoise(0.0)])):
        sim = ns.Simulator(_circuit("mlp"), seed=0, hardware=model, **B2)
        sim.run(X, Y, steps=2)
        net = sim.backend._net
        assert not net.noisy and net._noisy_syn == []
        assert _draws(net) == []
    sim = ns.Simulator(_circuit("mlp"), seed=0, hardware=NOISE, **B2)
    sim.run(X, Y, steps=2)
    net = sim.backend._net
    assert net.noisy and len(net._noisy_syn) == 2
    assert len(_draws(net)) == 2
