"""Bad inputs fail early with a ValueError that names the offending object; diverging runs raise
``ns.DivergenceError`` with the step and population, and keep what was recorded before the failure."""
from __future__ import annotations

import re

import numpy as np
import pytest

import neurosim as ns

BACKENDS = ["reference", "numba"]


def small_net(**kw):
    return ns.hierarchy([3, 4, 2], phi="tanh", **kw)


def layered(pops, errs, projs, clamps, name="c"):
    return ns.Circuit(tuple(pops), tuple(errs), tuple(projs), tuple(clamps), name=name)


# ----------------------------------------------------------------------------- shapes
def test_identity_skip_needs_equal_sizes():
    with pytest.raises(ValueError, match=r"Projection 'W2'.*identity skip.*'h1' has 4 units.*'output' has 2"):
        ns.hierarchy([3, 4, 2], skips=[False, True])


def test_precision_vector_of_wrong_length():
    pops = [ns.ValuePopulation("s", 3), ns.ValuePopulation("y", 2)]
    errs = [ns.ErrorPopulation("eps_y", "y", precision=(1.0, 2.0, 3.0))]
    projs = [ns.Projection("W", "s", "y")]
    with pytest.raises(ValueError, match=r"ErrorPopulation 'eps_y'.*precision has 3 values.*'y' has 2 units"):
        layered(pops, errs, projs, [ns.Clamp("s", "input"), ns.Clamp("y", "target")])


@pytest.mark.parametrize("backend", BACKENDS)
def test_data_with_wrong_number_of_columns(backend):
    sim = ns.Simulator(small_net(), backend=backend)
    X, Y = np.zeros((5, 3)), np.zeros((5, 2))
    with pytest.raises(ValueError, match=r"X must have shape \(batch, 3\), got \(5, 4\)"):
        sim.run(np.zeros((5, 4)), Y, mode="clamp")
    with pytest.raises(ValueError, match=r"Y must have shape \(batch, 2\), got \(5, 3\)"):
        sim.learn(X, np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"X must have shape \(batch, 3\)"):
        sim.predict(np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"X has 5 samples but Y has 4"):
        sim.train(X, np.zeros((4, 2)), progress=False)
    # class labels as a 1-d array: the user's own shape, and the fix
    with pytest.raises(ValueError, match=r"Y must have shape \(batch, 2\), got a 1-d array of shape \(5,\).*"
                                         r"neurosim\.data\.one_hot\(y, 2\)"):
        sim.train(X, np.array([0, 1, 1, 0, 1]), progress=False)
    with pytest.raises(ValueError, match=r"X contains NaN or inf"):
        sim.run(np.full((5, 3), np.nan))
    with pytest.raises(ValueError, match=r"target Y is needed"):
        sim.run(X, mode="clamp")


# ----------------------------------------------------------------------------- declarations
def test_unknown_activation_names_population_and_lists_known():
    with pytest.raises(ValueError) as ei:
        ns.ValuePopulation("hidden", 4, phi="softplusx")
    msg = str(ei.value)
    assert "'hidden'" in msg and "'softplusx'" in msg
    for name in ("linear", "tanh", "sigmoid", "relu", "leaky_relu"):
        assert name in msg
    with pytest.raises(ValueError, match=r"ValuePopulation 'h1'.*unknown activation 'gelu'"):
        ns.hierarchy([3, 4, 2], phi="gelu")


@pytest.mark.parametrize("tau", [-1.0, 0.0, float("nan"), float("inf")])
def test_bad_tau_x(tau):
    with pytest.raises(ValueError, match=r"ValuePopulation 'v'.*tau_x"):
        ns.ValuePopulation("v", 3, tau_x=tau)


@pytest.mark.parametrize("tau", [-0.1, float("nan")])
def test_bad_tau_eps(tau):
    with pytest.raises(ValueError, match=r"ErrorPopulation 'e'.*tau_eps"):
        ns.ErrorPopulation("e", "v", tau_eps=tau)
    ns.ErrorPopulation("e", "v", tau_eps=0.0)  # zero means instantaneous errors: allowed


@pytest.mark.parametrize("prec", [0.0, -1.0, (1.0, -2.0)])
def test_bad_precision(prec):
    with pytest.raises(ValueError, match=r"ErrorPopulation 'e'.*precision"):
        ns.ErrorPopulation("e", "v", precision=prec)


def test_bad_sizes_and_names():
    with pytest.raises(ValueError, match=r"ValuePopulation 'v'.*size"):
        ns.ValuePopulation("v", 0)
    with pytest.raises(ValueError, match=r"ValuePopulation name '1bad'"):
        ns.ValuePopulation("1bad", 3)
    with pytest.raises(ValueError, match=r"Projection 'W'.*self-loops"):
        ns.Projection("W", "a", "a")


@pytest.mark.parametrize("backend", BACKENDS)
def test_dt_too_large_for_value_population(backend):
    net = ns.hierarchy([3, 4, 2], tau_x=0.5, precision=2.0, output_precision=1.0)
    with pytest.raises(ValueError) as ei:
        ns.Simulator(net, dt=0.6, backend=backend)
    msg = str(ei.value)
    assert "'h1'" in msg and "dt=0.6" in msg
    assert "reduce dt or increase tau_x" in msg and "0.5" in msg  # the bound 2 tau_x / precision
    ns.Simulator(net, dt=0.45, backend=backend)  # below the bound: fine
    sim = ns.Simulator(net, dt=0.1, backend=backend)
    with pytest.raises(ValueError, match=r"too large for value population 'h1'"):
        sim.run(np.zeros((2, 3)), dt=0.6)  # a per-run dt is checked too


@pytest.mark.parametrize("backend", BACKENDS)
def test_dt_too_large_for_nudged_target(backend):
    """Nudging adds beta to the stiffness of the target: tau_x dx/dt = -pi (x - mu) + beta (t - x), so
    explicit integration needs dt (pi + beta) / tau_x < 2.  A run that breaks this bound is knowable before
    the first step and must be refused with a ValueError naming the target population, not left to
    oscillate into a DivergenceError hundreds of steps later.

    Currently fails (simulator bug): ``Simulator._spec`` checks dt against tau_x / precision only.
    """
    sim = ns.Simulator(small_net(), dt=0.1, backend=backend)
    X, Y = np.ones((2, 3)), np.ones((2, 2))
    sim.run(X, Y, steps=50, mode="nudge", beta=15.0)  # dt (1 + 15) = 1.6 < 2: fine
    with pytest.raises(ValueError, match=r"'output'.*beta|beta.*'output'"):
        sim.run(X, Y, steps=3000, mode="nudge", beta=50.0)  # dt (1 + 50) = 5.1
    with pytest.raises(ValueError, match=r"'output'.*beta|beta.*'output'"):
        sim.train(X, Y, mode="nudge", beta=50.0, steps=3000, progress=False)


def test_dt_too_large_for_error_population():
    net = ns.hierarchy([3, 4, 2], tau_eps=0.02)
    with pytest.raises(ValueError) as ei:
        ns.Simulator(net, dt=0.1, backend="reference")
    msg = str(ei.value)
    assert "error population 'eps_h1'" in msg and "reduce dt or increase tau_eps" in msg


@pytest.mark.parametrize("backend", BACKENDS)
def test_dt_too_large_for_a_value_unit_with_integrating_error_units(backend):
    """A value unit and its integrating error unit form an oscillating pair: Euler needs dt < tau_x / precision
    (half the bound of instantaneous errors), whatever tau_eps.  dt = 1.5 passed both separate checks (1.5 < 2
    tau_x / precision = 2 and < 2 tau_eps precision = 4) and the run grew to an energy of 1e53 in 400 steps with
    no error; now it is refused, and a step just below the bound relaxes to the equilibrium.  The target's pair
    is checked when a run lets it move (free or nudged), not at construction: clamped, as in training, it never
    integrates."""
    net3 = ns.hierarchy([1, 1, 1], phi="linear", tau_eps=2.0)
    for dt in (1.5, 1.02):
        with pytest.raises(ValueError, match=r"value population 'h1' with its integrating error population "
                                             r"'eps_h1'.*oscillating pair.*needs dt < 1\b.*reduce dt"):
            ns.Simulator(net3, dt=dt, backend=backend)
    net = ns.hierarchy([1, 1], phi="linear", tau_eps=2.0)     # the output's pair alone: the isolated system
    wide = ns.Simulator(net, dt=1.5, backend=backend)
    wide.run(np.ones((1, 1)), np.ones((1, 1)), steps=5)      # clamped: its pair does not integrate
    wide.predict(np.ones((1, 1)))                             # the feedforward prediction takes no step
    with pytest.raises(ValueError, match=r"free target population 'output' with its integrating error units.*"
                                         r"needs dt < 1\b"):
        wide.run(np.ones((1, 1)), steps=5, mode="free")
    with pytest.raises(ValueError, match=r"free target population 'output'"):
        wide.predict(np.ones((1, 1)), relax=True)
    sim = ns.Simulator(net, dt=0.98, backend=backend)
    res = sim.run(np.ones((1, 1)), mode="free", init="zeros", steps=3000)
    assert res.total_energy[-1] < 1e-12 * res.total_energy.max()
    with pytest.raises(ValueError, match=r"oscillating pair"):
        sim.run(np.ones((1, 1)), dt=1.2, steps=5)   # a per-run dt is checked too
    # Heun's region is larger: dt = 1.2 is stable there, and a Heun run is checked with Heun's region
    heun = ns.Simulator(net, dt=1.2, backend=backend, integrator="heun")
    res = heun.run(np.ones((1, 1)), mode="free", init="zeros", steps=3000)
    assert res.total_energy[-1] < 1e-12 * res.total_energy.max()
    with pytest.raises(ValueError, match=r"oscillating pair, whose euler integration"):
        heun.run(np.ones((1, 1)), steps=3, integrator="euler")
    # instantaneous error units keep their bound 2 tau_x / precision
    ns.Simulator(ns.hierarchy([1, 1, 1], phi="linear"), dt=1.5, backend=backend)


def test_pair_growth_is_the_step_matrix_spectral_radius():
    """The pair's growth factor equals the spectral radius of one step's matrix (Euler I + dt A, Heun
    I + dt A + (dt A)^2 / 2), with and without nudging, for slow and fast error units."""
    from neurosim.simulator import _pair_growth
    for integ in ("euler", "heun"):
        for tau_x, tau_e, p, beta in [(1, 2, 1, 0), (1, 0.5, 1, 0), (0.5, 0.3, 2, 0), (2, 5, 0.5, 3.0)]:
            A = np.array([[-beta / tau_x, -1 / tau_x], [1 / tau_e, -1 / (p * tau_e)]])
            for dt in np.linspace(0.01, 3, 60):
                M = np.eye(2) + dt * A + (0.5 * (dt * A) @ (dt * A) if integ == "heun" else 0)
                assert _pair_growth(dt, integ, tau_x, tau_e, [p], beta) == pytest.approx(
                    max(abs(np.linalg.eigvals(M))), rel=1e-9)


def test_dt_too_large_for_graph_vertex_with_integrating_error_units():
    from neurosim import graph as ng
    g = ng.from_circuit(ns.hierarchy([2, 3, 1], phi="linear", tau_eps=2.0))
    with pytest.raises(ValueError, match=r"vertex '.*' with its integrating error units.*oscillating pair"):
        ns.Simulator(g, dt=1.5, backend="reference")
    ns.Simulator(g, dt=0.9, backend="reference")


def test_dt_too_large_for_nudged_target_with_integrating_error_units():
    """Nudging a target whose error units integrate: the pair with beta, checked per run.  Here (tau_eps = 0.05,
    precision 3, dt = 0.27) beta = 3.6 passes the instantaneous bound dt (precision + beta) / tau_x = 1.78 < 2
    and every check without nudging, but the pair with beta grows (its bound is dt < 0.233)."""
    net = ns.hierarchy([2, 3, 1], phi="linear", tau_eps=0.05, precision=3.0, output_precision=3.0)
    sim = ns.Simulator(net, dt=0.27, backend="reference")
    X, Y = np.ones((1, 2)), np.ones((1, 1))
    sim.run(X, Y, steps=5, mode="nudge", beta=1.0)
    with pytest.raises(ValueError, match=r"nudged target population 'output' with its integrating error units.*"
                                         r"beta=3\.6.*needs dt < 0\.23"):
        sim.run(X, Y, steps=5, mode="nudge", beta=3.6)


def test_cycle_is_rejected():
    pops = [ns.ValuePopulation("s", 2), ns.ValuePopulation("a", 3), ns.ValuePopulation("b", 3)]
    errs = [ns.ErrorPopulation("ea", "a"), ns.ErrorPopulation("eb", "b")]
    projs = [ns.Projection("Wsa", "s", "a"), ns.Projection("Wab", "a", "b"), ns.Projection("Wba", "b", "a")]
    with pytest.raises(ValueError, match=r"cycle through \['a', 'b'\]"):
        layered(pops, errs, projs, [ns.Clamp("s", "input")])


def test_cycle_message_names_the_cycle_not_what_lies_downstream():
    """in -> h -> in is the cycle; 'out' (predicted from h) is only downstream of it and was listed too."""
    pops = [ns.ValuePopulation("in", 2), ns.ValuePopulation("h", 3), ns.ValuePopulation("out", 2)]
    errs = [ns.ErrorPopulation("ei", "in"), ns.ErrorPopulation("eh", "h"), ns.ErrorPopulation("eo", "out")]
    projs = [ns.Projection("W1", "in", "h"), ns.Projection("W2", "h", "out"), ns.Projection("W0", "h", "in")]
    with pytest.raises(ValueError, match=r"cycle through \['h', 'in'\] \(h -> in -> h\)"):
        layered(pops, errs, projs, [ns.Clamp("in", "input")])


def test_numpy_integers_are_sizes_and_probe_counts():
    """hierarchy took NumPy integer sizes while ValuePopulation refused np.int64(3)."""
    assert ns.ValuePopulation("a", np.int64(3)).size == 3 and type(ns.ValuePopulation("a", np.int32(3)).size) is int
    p = ns.Probe("a", "x", every=np.int64(2), item=np.int64(1))
    assert (p.every, p.item) == (2, 1) and type(p.item) is int
    for bad in (np.int64(0), True, 2.0):
        with pytest.raises(ValueError, match=r"ValuePopulation 'a'.*size must be a positive int"):
            ns.ValuePopulation("a", bad)


def test_unpredicted_population_must_be_clamped():
    pops = [ns.ValuePopulation("s", 2), ns.ValuePopulation("orphan", 3), ns.ValuePopulation("y", 2)]
    errs = [ns.ErrorPopulation("ey", "y")]
    projs = [ns.Projection("W", "s", "y")]
    with pytest.raises(ValueError, match=r"'orphan' has no incoming projection.*ns.Clamp\('orphan', 'input'\)"):
        layered(pops, errs, projs, [ns.Clamp("s", "input")])


def test_predicted_population_needs_error_population():
    pops = [ns.ValuePopulation("s", 2), ns.ValuePopulation("y", 2)]
    with pytest.raises(ValueError, match=r"'y' is predicted by \['W'\] but has no ErrorPopulation"):
        layered(pops, [], [ns.Projection("W", "s", "y")], [ns.Clamp("s", "input")])


def test_duplicate_names():
    pops = [ns.ValuePopulation("s", 2), ns.ValuePopulation("y", 2)]
    errs = [ns.ErrorPopulation("y", "y")]
    with pytest.raises(ValueError, match=r"name 'y' is used by both a ValuePopulation and a ErrorPopulation"):
        layered(pops, errs, [ns.Projection("W", "s", "y")], [ns.Clamp("s", "input")])
    pops = [ns.ValuePopulation("s", 2), ns.ValuePopulation("s", 2)]
    with pytest.raises(ValueError, match=r"name 's' is used by both"):
        layered(pops, [], [], [ns.Clamp("s", "input")])


def test_unknown_references():
    pops = [ns.ValuePopulation("s", 2), ns.ValuePopulation("y", 2)]
    errs = [ns.ErrorPopulation("ey", "y")]
    with pytest.raises(ValueError, match=r"Projection 'W': post population 'z' does not exist"):
        layered(pops, errs, [ns.Projection("W", "s", "z")], [ns.Clamp("s", "input")])
    with pytest.raises(ValueError, match=r"Clamp: population 'q' does not exist"):
        layered(pops, errs, [ns.Projection("W", "s", "y")], [ns.Clamp("s", "input"), ns.Clamp("q", "target")])
    with pytest.raises(ValueError, match=r"Probe 'nope.x': population 'nope' does not exist"):
        ns.Simulator(small_net(), backend="reference", probes=[ns.Probe("nope", "x")])
    with pytest.raises(ValueError, match=r"Probe 'input.eps'.*no error population"):
        ns.Simulator(small_net(), backend="reference", probes=[ns.Probe("input", "eps")])


def test_unknown_backend_and_options():
    with pytest.raises(ValueError, match=r"unknown backend 'cuda'.*'reference'.*'numba'"):
        ns.Simulator(small_net(), backend="cuda")
    # a missing brian2 is covered by tests/backend_brian2/test_brian2_missing.py
    with pytest.raises(ValueError, match=r"unknown integrator 'rk4'"):
        ns.Simulator(small_net(), backend="reference", integrator="rk4")
    with pytest.raises(ValueError, match=r"dtype must be float64 or float32"):
        ns.Simulator(small_net(), backend="reference", dtype="float16")
    sim = ns.Simulator(small_net(), backend="reference")
    X, Y = np.zeros((2, 3)), np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"mode must be one of"):
        sim.run(X, Y, mode="clamped")
    with pytest.raises(ValueError, match=r"init must be one of"):
        sim.run(X, Y, init="random")
    with pytest.raises(ValueError, match=r"nudge' needs beta > 0"):
        sim.run(X, Y, mode="nudge")
    with pytest.raises(ValueError, match=r"steps must be a non-negative int"):
        sim.run(X, Y, steps=-1)
    with pytest.raises(ValueError, match=r"unknown algorithm 'no_such_algo'; available: .*pc"):
        sim.train(X, Y, algorithm="no_such_algo", progress=False)


# ----------------------------------------------------------------------------- divergence
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.filterwarnings("error::RuntimeWarning")   # the DivergenceError says it, not NumPy's warnings first
def test_divergence_error_names_step_and_population(backend):
    net = ns.hierarchy([3, 5, 2], phi="linear", bias=False)
    probes = [ns.Probe("h1", "x"), ns.Probe("output", "energy")]
    sim = ns.Simulator(net, dt=0.5, backend=backend, probes=probes)
    X, Y = np.random.default_rng(0).normal(size=(3, 3)), np.random.default_rng(1).normal(size=(3, 2))
    # dt passes the per-population check, but these weights make the coupled dynamics unstable
    sim.set_weights("W2", np.full((2, 5), 4.0))
    with pytest.raises(ns.DivergenceError) as ei:
        sim.run(X, Y, steps=5000, mode="clamp")
    e = ei.value
    assert isinstance(e.step, int) and 10 < e.step < 5000
    assert e.population in ("h1", "output")
    assert f"step {e.step}" in str(e) and repr(e.population) in str(e)
    assert e.batch is None
    # what was recorded before the failure is kept
    hx, en = sim.data["h1.x"], sim.data["output.energy"]
    assert len(hx) >= e.step and len(en) >= e.step
    np.testing.assert_array_equal(sim.data.steps("h1.x")[:e.step], np.arange(e.step))
    assert np.all(np.isfinite(hx[:e.step])) and np.all(np.isfinite(en[:e.step]))
    assert np.max(np.abs(hx[e.step - 1])) > 1e100  # and it shows the blow-up


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.filterwarnings("error::RuntimeWarning")   # the DivergenceError says it, not NumPy's warnings first
def test_divergence_at_initialisation(backend):
    sim = ns.Simulator(ns.hierarchy([3, 5, 2], phi="linear", bias=False), backend=backend)
    sim.set_weights("W2", np.full((2, 5), 1e200))
    with pytest.raises(ns.DivergenceError, match=r"step 0 in population 'output'") as ei:
        sim.run(np.ones((2, 3)), np.ones((2, 2)), mode="clamp")
    assert (ei.value.step, ei.value.population) == (0, "output")
    # 'output' is clamped: the message says what naming it means (its error energy overflowed first)
    assert "(the first whose error energy, or value, became non-finite" in str(ei.value)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_training_divergence_keeps_history(backend):
    net = ns.hierarchy([3, 5, 2], phi="linear", bias=True, lr=1e6)
    sim = ns.Simulator(net, backend=backend, probes=[ns.Probe("W1", "weight_norm")])
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(40, 3)), rng.normal(size=(40, 2))
    with pytest.raises(ns.DivergenceError) as ei:
        sim.train(X, Y, epochs=3, batch_size=4, steps=10, progress=False)
    e = ei.value
    assert e.batch is not None and e.batch >= 1
    assert f"training batch {e.batch}" in str(e)
    h = sim.history
    assert len(h["loss"]) == len(h["energy"]) == len(h["steps"]) == e.batch
    assert np.all(np.isfinite(h["loss"]))
    assert len(sim.data["W1.weight_norm"]) == e.batch
    # the simulator is usable again after starting over from the initial weights
    sim.reinitialize()
    assert len(sim.history["loss"]) == 0
    sim.run(X[:4], Y[:4], steps=5, mode="clamp")


def test_beta_without_nudge_mode_is_refused_not_ignored():
    """beta is the nudging strength of mode='nudge'; train(..., beta=0.5) in the default clamp mode gave weights
    identical to beta=0 (a user coming from equilibrium propagation expects beta to turn nudging on)."""
    net = ns.hierarchy([4, 6, 3], phi="tanh")
    sim = ns.Simulator(net, seed=0)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(8, 4)), rng.normal(size=(8, 3))
    for call in (lambda: sim.train(X, Y, epochs=1, beta=0.5, progress=False), lambda: sim.run(X, Y, beta=0.5),
                 lambda: sim.step(X, Y, beta=0.5)):
        with pytest.raises(ValueError, match=r"beta=0.5 is the nudging strength of mode='nudge'.*mode='clamp'"):
            call()
    with pytest.raises(ValueError, match="beta must be a number"):
        sim.run(X, Y, mode="nudge", beta="0.5")
    w0 = sim.weights
    sim.train(X, Y, epochs=1, mode="nudge", beta=0.5, progress=False)   # nudging still works, and moves the weights
    assert max(np.abs(sim.weights[k] - w0[k]).max() for k in w0) > 1e-6


def test_accuracy_only_for_class_coded_targets():
    """evaluate and train report an accuracy only when Y codes classes (two levels, one 'on' unit per row): for
    regression targets the argmax 'accuracy' was reported too (0.48 for random Y)."""
    from neurosim.simulator import class_coded
    rng = np.random.default_rng(0)
    onehot = np.eye(3)[rng.integers(0, 3, size=20)]
    assert class_coded(onehot) and class_coded(2 * onehot - 1) and class_coded(0.1 + 0.8 * onehot)
    assert not class_coded(rng.normal(size=(20, 3))) and not class_coded(onehot[:, :1])
    assert not class_coded(np.ones((4, 3))) and not class_coded(np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]]))
    sim = ns.Simulator(ns.hierarchy([4, 6, 3], phi="tanh"), seed=0)
    X = rng.normal(size=(20, 4))
    assert set(sim.evaluate(X, onehot)) == {"loss", "accuracy"}
    assert set(sim.evaluate(X, rng.normal(size=(20, 3)))) == {"loss"}
    h = sim.train(X, rng.normal(size=(20, 3)), epochs=1, progress=False, X_test=X, Y_test=rng.normal(size=(20, 3)))
    assert h["loss"] and not h["accuracy"] and not h["test_accuracy"] and not h["epoch_accuracy"]
    h = sim.train(X, onehot, epochs=1, progress=False, X_test=X, Y_test=onehot)
    assert h["accuracy"] and h["test_accuracy"]


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_bp_and_predict_refuse_a_nudged_output(backend):
    """bp trained on the loss whatever mode and beta said (weights identical for mode='nudge', beta 0.5 or 5);
    predict/evaluate with mode='nudge' pulled the output toward 0 (there is no target): both refused.  A 0-d
    array is a number."""
    from neurosim import graph as ng
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    for net in (ns.hierarchy([3, 4, 2]), ng.mlp([3, 4, 2])):
        sim = ns.Simulator(net, backend=backend, seed=0)
        with pytest.raises(ValueError, match=r"algorithm 'bp'"):
            sim.train(X, Y, algorithm="bp", mode="nudge", beta=0.5, epochs=1, progress=False)
        with pytest.raises(ValueError, match=r"algorithm 'bp'"):
            sim.step(X, Y, algorithm="bp", mode="nudge", beta=0.5)
        for mode in ("nudge", "clamp"):
            with pytest.raises(ValueError, match=r"predict/evaluate run with the output free"):
                sim.predict(X, relax=True, steps=5, mode=mode, beta=5.0)
            with pytest.raises(ValueError, match=r"predict/evaluate run with the output free"):
                sim.evaluate(X, Y, relax=True, mode=mode)
        sim.train(X, Y, algorithm="bp", epochs=1, progress=False)   # clamp: trains
    sim = ns.Simulator(ns.hierarchy([3, 4, 2]), backend=backend, seed=0)
    assert sim.run(X, Y, mode="nudge", beta=np.array(0.5), steps=3).steps == 3
