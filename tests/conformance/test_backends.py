"""Backend conformance suite.

Every backend in ``BACKENDS`` must reproduce the NumPy reference backend (the executable specification)
to ``TOL`` in float64: the same trajectories, energies, probes, step counts, weight updates and
divergence reports, for the same circuit and seed.  The reference itself is checked here against a
naive second implementation of the equations (``tests/pc_oracle.py``) on single steps, and for
determinism (two independent reference simulators agree exactly).

Observed on the development machine: max |numba - reference| about 1e-15 on these circuits (relative to
the magnitude of the compared array); float32 vs float64 about 1e-6 relative after 40 steps.
"""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
import pc_oracle as oracle
from testkit import (OPTIMIZERS, TOL, assert_close, assert_results_equal, assert_weights_equal,  # noqa: F401
                     dag_circuit, data, pair, random_hierarchy)

BACKENDS = ["reference", "numba"]
F32_TOL = 1e-4       # float32 vs float64 reference, relative to max(1, |value|)
ACTIVATIONS = ["linear", "tanh", "sigmoid", "relu", "leaky_relu"]

pytestmark = pytest.mark.parametrize("backend", BACKENDS)


def oracle_trajectory(sim, X, Y, steps, mode, beta, integrator, init="feedforward"):
    """The naive oracle's state after ``steps`` explicit steps from the feedforward (or zero) init."""
    c, W = sim.circuit, sim.weights
    x = oracle.feedforward(c, W, X, Y if mode == "clamp" else None)
    if init == "zeros":
        fixed = set(c.inputs) | ({oracle.target_name(c)} if mode == "clamp" else set())
        x = {n: (v if n in fixed else np.zeros_like(v)) for n, v in x.items()}
    es = oracle.initial_error_state(c, W, x)
    for _ in range(steps):
        x, es = oracle.step(c, W, x, es, sim.dt, Y, mode, beta, integrator)
    return x, es


# ----------------------------------------------------------------------------- single steps vs the naive oracle
@pytest.mark.parametrize("phi", ACTIVATIONS)
@pytest.mark.parametrize("integrator", ["euler", "heun"])
@pytest.mark.parametrize("mode", ["clamp", "free", "nudge"])
def test_single_step_matches_naive_oracle(backend, phi, integrator, mode):
    net = random_hierarchy(3, phi=phi)
    sim = ns.Simulator(net, dt=0.1, backend=backend, seed=5, integrator=integrator)
    X, Y = data(3, 5, sim.plan.n_input, sim.plan.n_target)
    beta = 0.7
    res = sim.run(X, Y, steps=1, mode=mode, beta=beta if mode == "nudge" else 0.0)
    x, _ = oracle_trajectory(sim, X, Y, 1, mode, beta, integrator)
    assert res.steps == 1
    for name in x:
        assert_close(res.x[name], x[name], 1e-12, f"x[{name}]")
    # energy rows: before and after the step, per population
    x0, _ = oracle_trajectory(sim, X, Y, 0, mode, beta, integrator)
    for j, name in enumerate(res.populations):
        e0 = oracle.derivatives(net, sim.weights, x0)[4].get(name, 0.0)
        e1 = oracle.derivatives(net, sim.weights, x)[4].get(name, 0.0)
        assert res.energy[0, j] == pytest.approx(e0, rel=1e-12, abs=1e-14)
        assert res.energy[1, j] == pytest.approx(e1, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("integrator", ["euler", "heun"])
def test_dag_steps_match_naive_oracle(backend, integrator):
    net = dag_circuit()
    sim = ns.Simulator(net, dt=0.1, backend=backend, seed=2, integrator=integrator)
    X, Y = data(7, 4, 5, 4)
    res = sim.run(X, Y, steps=3, mode="clamp")
    x, es = oracle_trajectory(sim, X, Y, 3, "clamp", 0.0, integrator)
    for name in x:
        assert_close(res.x[name], x[name], 1e-12, f"x[{name}]")
    # eps of the dynamic error population is its state, of the others pi (x - mu)
    _, _, eps, mu, _ = oracle.derivatives(net, sim.weights, x, es)
    for name in eps:
        assert_close(res.eps[name], eps[name], 1e-12, f"eps[{name}]")
        assert_close(res.mu[name], mu[name], 1e-12, f"mu[{name}]")


def test_reference_is_deterministic(backend):
    """Two simulators of the same backend, circuit and seed give bit-identical runs."""
    net = random_hierarchy(11, phi="tanh", tau_eps=0.2)
    a, b = ns.Simulator(net, backend=backend, seed=4), ns.Simulator(net, backend=backend, seed=4)
    X, Y = data(11, 6, a.plan.n_input, a.plan.n_target)
    for _ in range(2):
        ra, rb = a.learn(X, Y, steps=20), b.learn(X, Y, steps=20)
        np.testing.assert_array_equal(ra.energy, rb.energy)
    for k, v in a.weights.items():
        np.testing.assert_array_equal(v, b.weights[k])


# ----------------------------------------------------------------------------- whole relaxations vs reference
@pytest.mark.parametrize("phi", ACTIVATIONS)
@pytest.mark.parametrize("tau_eps", [0.0, 0.25])
@pytest.mark.parametrize("steps", [1, 50])
def test_relaxation_matches_reference(backend, phi, tau_eps, steps):
    net = random_hierarchy(1, phi=phi, tau_eps=tau_eps)
    sim, ref = pair(net, backend, seed=9, dt=0.1)
    X, Y = data(1, 7, sim.plan.n_input, sim.plan.n_target)
    assert_results_equal(sim.run(X, Y, steps=steps, mode="clamp"), ref.run(X, Y, steps=steps, mode="clamp"))


@pytest.mark.parametrize("mode", ["clamp", "free", "nudge"])
@pytest.mark.parametrize("integrator", ["euler", "heun"])
@pytest.mark.parametrize("init", ["feedforward", "zeros", "previous"])
def test_modes_integrators_inits(backend, mode, integrator, init):
    net = random_hierarchy(2, phi="tanh", tau_eps=0.25)
    sim, ref = pair(net, backend, seed=3, dt=0.1, integrator=integrator)
    X, Y = data(2, 5, sim.plan.n_input, sim.plan.n_target)
    X2, Y2 = data(22, 5, sim.plan.n_input, sim.plan.n_target)
    kw = dict(steps=50, mode=mode, beta=2.0 if mode == "nudge" else 0.0)
    if init == "previous":  # the state a first batch leaves behind is the start of the second
        assert_results_equal(sim.run(X2, Y2, steps=10, mode="clamp"), ref.run(X2, Y2, steps=10, mode="clamp"))
    a, b = sim.run(X, Y, init=init, **kw), ref.run(X, Y, init=init, **kw)
    assert_results_equal(a, b)
    # "previous" really starts from the previous state (not from the feedforward pass)
    if init == "previous":
        ff = ref.run(X, Y, steps=0, mode=mode, beta=kw["beta"])
        assert abs(b.total_energy[0] - ff.total_energy[0]) > 1e-6


def test_dag_circuit_matches_reference(backend):
    net = dag_circuit()
    sim, ref = pair(net, backend, seed=1, dt=0.1, integrator="heun")
    X, Y = data(5, 6, 5, 4)
    for mode in ("clamp", "free", "nudge"):
        kw = dict(steps=50, mode=mode, beta=1.5 if mode == "nudge" else 0.0)
        assert_results_equal(sim.run(X, Y, **kw), ref.run(X, Y, **kw))
    for _ in range(3):
        assert_results_equal(sim.learn(X, Y, steps=20), ref.learn(X, Y, steps=20))
    assert_weights_equal(sim, ref)


def test_tol_stopping_same_steps(backend):
    net = random_hierarchy(4, phi="tanh", tau_eps=0.2)
    # dt = 0.05: with dynamic error units, Euler at dt = 0.1 oscillates on this circuit (see test_dynamics)
    sim, ref = pair(net, backend, seed=0, dt=0.05)
    X, Y = data(4, 5, sim.plan.n_input, sim.plan.n_target)
    a, b = sim.run(X, Y, steps=2000, mode="clamp", tol=1e-5), ref.run(X, Y, steps=2000, mode="clamp", tol=1e-5)
    assert 5 < b.steps < 2000
    assert_results_equal(a, b)


def test_dt_decay_matches_reference(backend):
    # a dt close to the stability limit makes some steps raise the energy, so dt_decay kicks in
    net = ns.hierarchy([3, 6, 2], phi="tanh", precision=1.0, output_precision=1.0)
    sim, ref = pair(net, backend, seed=0, dt=1.9)
    sim.set_weights("W2", 2.0 * sim.weights["W2"])
    ref.set_weights("W2", 2.0 * ref.weights["W2"])
    X, Y = data(8, 4, 3, 2)
    a = sim.run(X, Y, steps=60, mode="clamp", dt_decay=0.5)
    b = ref.run(X, Y, steps=60, mode="clamp", dt_decay=0.5)
    assert np.any(np.diff(b.total_energy) > 0)  # energy went up at least once: the decay was exercised
    assert_results_equal(a, b)


# ----------------------------------------------------------------------------- plasticity
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_plasticity_matches_reference(backend, opt, reduction):
    net = random_hierarchy(6, phi="tanh", optimizer=OPTIMIZERS[opt], batch_reduction=reduction, lr=0.02)
    sim, ref = pair(net, backend, seed=7, dt=0.1)
    w0 = ref.weights
    for i in range(5):
        X, Y = data(100 + i, 6, sim.plan.n_input, sim.plan.n_target)
        assert_results_equal(sim.learn(X, Y, steps=20), ref.learn(X, Y, steps=20))
    assert_weights_equal(sim, ref)
    assert all(np.max(np.abs(ref.weights[k] - w0[k])) > 1e-4 for k in w0)  # learning happened


def test_train_matches_reference(backend):
    net = random_hierarchy(8, phi="leaky_relu", optimizer=ns.Adam(), lr=0.01)
    sim, ref = pair(net, backend, seed=8, dt=0.1)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, sim.plan.n_input))
    Y = np.eye(sim.plan.n_target)[rng.integers(0, sim.plan.n_target, 20)]
    ha = sim.train(X, Y, epochs=2, batch_size=8, steps=15, progress=False)
    hb = ref.train(X, Y, epochs=2, batch_size=8, steps=15, progress=False)
    for key in ("loss", "energy", "accuracy", "epoch_loss", "epoch_accuracy"):
        assert len(ha[key]) == len(hb[key]) > 0
        assert_close(ha[key], hb[key], TOL, key)
    assert ha["steps"] == hb["steps"]
    assert_weights_equal(sim, ref)
    assert_close(sim.predict(X), ref.predict(X), TOL, "predict")


# ----------------------------------------------------------------------------- probes, state
def test_probes_match_reference(backend):
    probes = [ns.Probe("h1", "x", every=3, item=1), ns.Probe("h2", "eps", every=3, item=1),
              ns.Probe("output", "mu", every=2, item=1), ns.Probe("h2", "energy", every=1),
              ns.Probe("W2", "weight_norm")]
    net = random_hierarchy(9, phi="sigmoid", tau_eps=0.2)
    sim, ref = pair(net, backend, seed=1, dt=0.1, probes=probes)
    X, Y = data(9, 4, sim.plan.n_input, sim.plan.n_target)
    sim.run(X, Y, steps=31, mode="clamp")
    ref.run(X, Y, steps=31, mode="clamp")
    sim.train(X, Y, epochs=2, batch_size=2, steps=10, progress=False)
    ref.train(X, Y, epochs=2, batch_size=2, steps=10, progress=False)
    for p in probes:
        assert len(ref.data[p]) > 0
        assert_close(sim.data[p], ref.data[p], TOL, p.name)
        np.testing.assert_array_equal(sim.data.steps(p), ref.data.steps(p))


def test_state_roundtrip_and_previous(backend):
    """``set_state`` + ``init='previous'`` continues exactly where the state says."""
    net = random_hierarchy(10, phi="tanh", tau_eps=0.25)
    sim, ref = pair(net, backend, seed=0, dt=0.1)
    X, Y = data(10, 3, sim.plan.n_input, sim.plan.n_target)
    rng = np.random.default_rng(3)
    n = sim.plan.n_units
    x0, e0 = rng.normal(size=(3, n)), rng.normal(size=(3, n))
    for s in (sim, ref):
        s.backend.set_state(x0, e0)
    assert_results_equal(sim.run(X, Y, steps=25, mode="free", init="previous"),
                         ref.run(X, Y, steps=25, mode="free", init="previous"))
    st, sr = sim.state, ref.state
    for name in st:
        for var in ("x", "eps", "mu"):
            assert_close(st[name][var], sr[name][var], TOL, f"state {name}.{var}")


def test_probe_item_beyond_batch_is_skipped(backend):
    """A probe on batch item 3 with a batch of 2 records nothing (and does not read out of bounds);
    energy probes still record."""
    probes = [ns.Probe("h1", "x", item=3), ns.Probe("output", "energy")]
    net = ns.hierarchy([3, 4, 2], phi="tanh")
    sim = ns.Simulator(net, backend=backend, seed=0, probes=probes)
    X, Y = data(0, 2, 3, 2)
    sim.run(X, Y, steps=5, mode="clamp")
    assert len(sim.data["h1.x"]) == 0
    assert sim.data["output.energy"].shape == (6, 1)
    X, Y = data(0, 4, 3, 2)
    sim.run(X, Y, steps=5, mode="clamp")
    assert sim.data["h1.x"].shape == (6, 4)


# ----------------------------------------------------------------------------- divergence
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_divergence_reported_like_reference(backend):
    # huge output weights: the output prediction overflows at once (step 0, population 'output')
    net = ns.hierarchy([3, 5, 2], phi="linear", bias=False)
    sim, ref = pair(net, backend, seed=0, dt=0.1)
    X, Y = data(0, 3, 3, 2)
    errs = []
    for s in (sim, ref):
        s.set_weights("W2", np.full((2, 5), 1e200))
        with pytest.raises(ns.DivergenceError) as ei:
            s.run(X, Y, steps=5, mode="clamp")
        errs.append(ei.value)
    assert (errs[0].step, errs[0].population) == (errs[1].step, errs[1].population) == (0, "output")


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_late_divergence_same_step(backend):
    # dt-stable per the population check but unstable weights: the hidden layer oscillates and grows
    net = ns.hierarchy([3, 5, 2], phi="linear", bias=False)
    sim, ref = pair(net, backend, seed=0, dt=0.5)
    X, Y = data(0, 3, 3, 2)
    W2 = 4.0 * np.ones((2, 5))
    errs = []
    for s in (sim, ref):
        s.set_weights("W2", W2)
        with pytest.raises(ns.DivergenceError) as ei:
            s.run(X, Y, steps=5000, mode="clamp")
        errs.append(ei.value)
    assert errs[0].step > 10
    assert (errs[0].step, errs[0].population) == (errs[1].step, errs[1].population)


# ----------------------------------------------------------------------------- float32
@pytest.mark.parametrize("phi", ["tanh", "sigmoid", "leaky_relu"])
def test_float32_close_to_float64(backend, phi):
    net = random_hierarchy(12, phi=phi, tau_eps=0.25, optimizer=ns.SGD(momentum=0.5))
    s32 = ns.Simulator(net, backend=backend, seed=2, dtype="float32")
    s64 = ns.Simulator(net, backend="reference", seed=2)
    X, Y = data(12, 5, s32.plan.n_input, s32.plan.n_target)
    a, b = s32.run(X, Y, steps=40, mode="clamp"), s64.run(X, Y, steps=40, mode="clamp")
    assert a.x["h1"].dtype == np.float32
    assert_results_equal(a, b, tol=F32_TOL)
    for _ in range(3):
        s32.learn(X, Y, steps=20)
        s64.learn(X, Y, steps=20)
    assert_weights_equal(s32, s64, tol=F32_TOL)
    # and float32 is not secretly float64
    diff = max(np.max(np.abs(s32.weights[k] - s64.weights[k])) for k in s64.weights)
    assert diff > 0
