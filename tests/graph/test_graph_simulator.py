"""Graph circuits on ns.Simulator: lifecycle, errors, energy properties, optimisers, and numba == reference on training runs."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim import graph as ng
from neurosim.graph import Dense, Graph, Input, Param
from neurosim.graph.reference import feedforward


def _data(n_in, n_out, B=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, n_in)), rng.normal(size=(B, n_out))


@pytest.fixture(scope="module")
def digits():
    from neurosim.data import load_digits
    return load_digits(seed=0)


def test_train_history_and_learning(digits):
    g = ng.mlp([64, 32, 10], plasticity=ns.Hebbian(lr=0.05, optimizer=ns.SGD(momentum=0.9)))
    Xtr, Ytr = digits.X_train[:400], digits.Y_train[:400]
    with ns.Simulator(g, backend="numba", seed=0) as sim:
        before = sim.evaluate(digits.X_test, digits.Y_test)
        h = sim.train(Xtr, Ytr, epochs=3, batch_size=32, algorithm="zil", X_test=digits.X_test,
                      Y_test=digits.Y_test, progress=False)
        after = sim.evaluate(digits.X_test, digits.Y_test)
    assert isinstance(h, ns.History)
    n_batches = 3 * 13
    for k in ("loss", "accuracy", "energy", "steps"):
        assert len(h[k]) == n_batches
    for k in ("epoch_loss", "epoch_accuracy", "test_loss", "test_accuracy", "epoch_time"):
        assert len(h[k]) == 3
    assert h["steps"][0] == g.depth
    assert after["loss"] < 0.5 * before["loss"] and after["accuracy"] > 0.8
    assert h["test_accuracy"][-1] == pytest.approx(after["accuracy"])


def test_train_is_identical_on_both_backends(digits):
    plast = ns.Hebbian(lr=0.01, optimizer=ns.Adam(weight_decay=1e-3))
    g = ng.cnn((1, 8, 8), channels=(3,), n_out=10, hidden=(12,), phi="tanh", plasticity=plast,
               name="tiny_cnn")
    X, Y = digits.X_train[:96], digits.Y_train[:96]
    out = {}
    for be in ("reference", "numba"):
        sim = ns.Simulator(g, backend=be, seed=3)
        h = sim.train(X, Y, epochs=2, batch_size=32, algorithm="pc", steps=6, dt=0.2, progress=False)
        out[be] = (h, sim.weights)
    (hr, wr), (hn, wn) = out["reference"], out["numba"]
    assert np.allclose(hn["loss"], hr["loss"], rtol=1e-10)
    assert np.allclose(hn["energy"], hr["energy"], rtol=1e-10)
    assert ng.rel_diff(wn, wr) < 1e-10


def test_predict_evaluate_and_inputs():
    g = ng.rnn(4, 5, 3, steps=3)
    sim = ns.Simulator(g, backend="reference", seed=0)
    X, Y = _data(12, 3, B=7)
    yhat = sim.predict(X, batch_size=3)
    ref = feedforward(sim.plan, sim.backend.params.theta, X)[sim.plan.target]
    assert yhat.shape == (7, 3) and np.allclose(yhat, ref, rtol=1e-14, atol=1e-15)
    # a (B, T, F) sequence array is read flat in time order
    assert np.array_equal(sim.predict(X.reshape(7, 3, 4), batch_size=3), yhat)
    ev = sim.evaluate(X, Y)
    assert ev["loss"] == pytest.approx(0.5 * np.mean(np.sum((Y - yhat) ** 2, axis=1)))
    assert "accuracy" not in ev   # regression targets: no argmax accuracy
    C = np.eye(3)[np.argmax(Y, 1)]   # class-coded targets
    assert sim.evaluate(X, C)["accuracy"] == pytest.approx(np.mean(np.argmax(yhat, 1) == np.argmax(C, 1)))


def test_weights_are_copies_and_round_trip():
    g = ng.mlp([3, 4, 2])
    sim = ns.Simulator(g, backend="reference", seed=0)
    w = sim.weights
    assert set(w) == {"W1", "b1", "W2", "b2"} and w["W1"].shape == (4, 3)
    w["W1"][...] = 7.0
    assert not np.any(sim.weights["W1"] == 7.0)
    sim.load_weights(w)
    assert np.all(sim.weights["W1"] == 7.0)
    with pytest.raises(ValueError, match=r"parameter 'W1' has shape \(4, 3\), got \(3, 4\)"):
        sim.set_weights("W1", np.zeros((3, 4)))
    with pytest.raises(KeyError, match="no parameter 'W9'"):
        sim.set_weights("W9", np.zeros(2))


def test_reset_and_close():
    g = ng.mlp([3, 4, 2], plasticity=ns.Hebbian(lr=0.5))
    sim = ns.Simulator(g, backend="reference", seed=0)
    w0 = sim.weights
    X, Y = _data(3, 2)
    sim.train(X, Y, epochs=1, batch_size=4, algorithm="bp", progress=False)
    assert not np.allclose(sim.weights["W1"], w0["W1"]) and len(sim.history["loss"]) == 2
    sim.reinitialize()
    assert all(np.array_equal(sim.weights[k], w0[k]) for k in w0) and len(sim.history["loss"]) == 0
    assert np.all(sim.backend.params.opt_t == 0)
    sim.close()
    with pytest.raises(RuntimeError, match="closed"):
        sim.predict(X)
    with ns.Simulator(g, backend="reference") as s2:
        s2.predict(X)
    with pytest.raises(RuntimeError, match="closed"):
        s2.run(X, Y)


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_bad_input_is_refused_clearly(backend):
    """Complex, empty, NaN/inf and non-numeric inputs are refused with the argument and the fix named, before
    anything runs (no ComplexWarning cast, no misleading divergence error, no ZeroDivisionError)."""
    import warnings
    g = ng.mlp([3, 4, 2], name="small")
    sim = ns.Simulator(g, backend=backend, seed=0)
    X, Y = _data(3, 2, B=5)
    w0 = sim.weights
    bad = [((X + 0j, Y), r"graph 'small': X holds complex numbers .*np\.real\(X"),
           ((X, Y.astype(complex)), r"graph 'small': Y holds complex numbers"),
           ((X[:0], Y[:0]), r"graph 'small': X has no samples \(shape \(0, 3\)\); pass at least one row"),
           ((np.where(X > 1.0, np.inf, X), Y), r"graph 'small': X contains NaN or inf .*remove or impute"),
           ((np.full(X.shape, "x"), Y), r"graph 'small': X must hold real numbers")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for (Xb, Yb), match in bad:
            for call in (lambda: sim.run(Xb, Yb, steps=2), lambda: sim.step(Xb, Yb, "bp"),
                         lambda: sim.train(Xb, Yb, epochs=1, progress=False), lambda: sim.evaluate(Xb, Yb),
                         lambda: sim.train(X, Y, epochs=1, X_test=Xb, Y_test=Yb, progress=False)):
                with pytest.raises(ValueError, match=match.replace("X ", "X(_test)? ").replace("Y ", "Y(_test)? ")):
                    call()
    assert sim.history["loss"] == [] and all(np.array_equal(sim.weights[k], w0[k]) for k in w0)
    assert sim.predict(X[:0]).shape == (0, 2)


def test_run_mode_follows_the_target_and_reset_keeps_the_parameters():
    g = ng.mlp([3, 4, 2], plasticity=ns.Hebbian(lr=0.5))
    sim = ns.Simulator(g, backend="reference", seed=0)
    X, Y = _data(3, 2, B=4)
    np.testing.assert_array_equal(sim.run(X, Y, steps=3).x["output"], Y)           # Y given: clamped
    free = sim.run(X, steps=3)                                                       # no Y: free
    np.testing.assert_allclose(free.x["output"], sim.predict(X), rtol=1e-12, atol=1e-14)
    sim.train(X, Y, epochs=1, batch_size=4, algorithm="bp", progress=False)
    w = sim.weights
    sim.reset()                         # no state to clear: what was learned stays
    assert all(np.array_equal(sim.weights[k], w[k]) for k in w) and len(sim.history["loss"]) == 1


def test_clear_errors():
    g = ng.mlp([3, 4, 2], name="small")
    with pytest.raises(ns.UnsupportedError, match=r"backend 'brian2' \(mode='spiking'\) cannot run circuits stated as vertices"):
        ns.Simulator(g, backend="brian2", backend_options={"mode": "spiking"})   # rate mode runs graphs
    with pytest.raises(ValueError, match="dt must be finite and > 0"):
        ns.Simulator(g, dt=0.0, backend="reference")
    sim = ns.Simulator(g, backend="reference")
    X, Y = _data(3, 2)
    with pytest.raises(ValueError, match=r"graph 'small': X must have shape \(batch, 3\)"):
        sim.predict(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="a target Y"):
        sim.run(X, None, mode="clamp")
    with pytest.raises(ValueError, match="X has 8 samples but Y has 3"):
        sim.step(X, Y[:3])
    with pytest.raises(ValueError, match="unknown algorithm 'ebp' for graph circuits"):
        sim.step(X, Y, "ebp")
    with pytest.raises(ValueError, match=r"algorithm 'zil' has no option\(s\) \['eta'\]"):
        sim.step(X, Y, "zil", {"eta": 1.0})
    with pytest.raises(ValueError, match="gamma must be finite and > 0"):
        sim.step(X, Y, "zil", {"gamma": -1.0})
    with pytest.raises(ValueError, match="levelling must be 'auto', 'strict' or 'off'"):
        sim.step(X, Y, "zil", {"levelling": "yes"})
    with pytest.raises(ValueError, match="n must be a non-negative int"):
        sim.step(X, Y, "fpa", {"n": -1})
    with pytest.raises(ValueError, match="steps must be a non-negative int"):
        sim.step(X, Y, "pc", steps=-2)
    with pytest.raises(ValueError, match="contains NaN"):
        sim.predict(np.full((2, 3), np.nan))


def test_divergence_is_reported_with_vertex_and_step():
    """A step that is stable for each vertex alone (dt < 2 tau_x / precision, which the Simulator checks)
    diverges through the coupling of a linear network with large weights."""
    g = ng.mlp([3, 6, 6, 2], phi="linear", name="wild")
    sims = [ns.Simulator(g, backend=be, seed=0) for be in ("numba", "reference")]
    for s in sims:
        for k, w in s.weights.items():
            s.set_weights(k, 3.0 * w)
    sim, ref = sims
    X, Y = _data(3, 2)
    with pytest.raises(ns.DivergenceError) as err:
        sim.run(X, 50 * Y, steps=2000, dt=0.5)
    assert err.value.population in sim.plan.v_names and err.value.step > 1
    with pytest.raises(ns.DivergenceError) as err2, np.errstate(all="ignore"):
        ref.run(X, 50 * Y, steps=2000, dt=0.5)
    assert (err2.value.step, err2.value.population) == (err.value.step, err.value.population)


@pytest.mark.parametrize("name", ["rnn", "lstm", "residual"])
def test_pc_relaxation_descends_the_energy(name):
    make = {"rnn": lambda: ng.rnn(3, 5, 2, steps=4), "lstm": lambda: ng.lstm(3, 4, 2, steps=3),
            "residual": lambda: ng.residual(4, 5, 3)}[name]
    g = make()
    sim = ns.Simulator(g, backend="numba", seed=0)
    X, Y = _data(g.n_input, g.n_output)
    res = sim.run(X, Y, steps=200, dt=0.05)
    F = res.total_energy
    assert np.all(np.diff(F) <= 1e-12 * F[0])     # gradient flow with a small step: F never increases
    assert F[-1] < 0.7 * F[0]
    # free relaxation from the feedforward state: already at the minimum F = 0
    free = sim.run(X, steps=20, mode="free")
    assert np.all(free.total_energy == 0.0)


def test_initial_energy_is_the_precision_weighted_loss():
    g = ng.mlp([4, 5, 3], output_precision=2.0)
    sim = ns.Simulator(g, backend="reference", seed=0)
    X, Y = _data(4, 3)
    res = sim.run(X, Y, steps=0)
    yhat = sim.predict(X)
    assert res.total_energy[0] == pytest.approx(2.0 * 0.5 * np.mean(np.sum((Y - yhat) ** 2, axis=1)), rel=1e-14)
    assert np.allclose(res.eps["output"], 2.0 * (Y - yhat))
    assert np.all(res.eps["h1"] == 0.0)
    # BP's initial direction for the output weights is the precision-weighted error times the input
    d = sim.directions(X, Y, "bp")
    a = np.tanh(res.x["h1"])
    assert np.allclose(d["W2"], 2.0 * (Y - yhat).T @ a / X.shape[0], rtol=1e-12)


def test_batch_reduction_and_frozen_parameters():
    mean = ns.Hebbian(lr=0.1)
    s = ns.Hebbian(lr=0.1, batch_reduction="sum")
    V = [Input("x", 3), Dense("h", "x", 4, weights="Wa", bias="ba"), Dense("output", "h", 2, phi="tanh")]
    g1 = Graph(V, "output", plasticity=mean)
    g2 = Graph(V, "output", plasticity=mean, params=[Param("Wa", plasticity=s), Param("ba", plasticity=None)])
    X, Y = _data(3, 2, B=5)
    d1 = ns.Simulator(g1, backend="numba").directions(X, Y, "bp")
    sim2 = ns.Simulator(g2, backend="numba")
    d2 = sim2.directions(X, Y, "bp")
    assert np.allclose(d2["Wa"], 5 * d1["Wa"], rtol=1e-13)
    assert np.allclose(d2["output.W"], d1["output.W"], rtol=1e-13)
    w0 = sim2.weights
    sim2.step(X, Y, "bp")
    w1 = sim2.weights
    assert np.array_equal(w1["ba"], w0["ba"])
    assert np.allclose(w1["Wa"] - w0["Wa"], 0.1 * d2["Wa"], rtol=1e-12)


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_float32_runs_close_to_float64(backend):
    g = ng.lstm(3, 4, 2, steps=3)
    X, Y = _data(9, 2)
    d64 = ns.Simulator(g, backend="numba").directions(X, Y, "zil")
    d32 = ns.Simulator(g, backend=backend, dtype="float32").directions(X, Y, "zil")
    assert all(v.dtype == np.float32 for v in d32.values())
    assert ng.rel_diff(d32, d64) < 1e-4


def test_shared_parameter_update_is_the_sum_over_uses():
    """A kernel shared by two vertices gets the sum of the updates its two unshared copies would get."""
    from neurosim.graph import Conv2d, Sum
    def make(k1, k2):
        V = [Input("img", (3, 5, 5)), Conv2d("a", "img", 3, kernel=3, padding=1, weight=k1, bias=False),
             Conv2d("b", "a", 3, kernel=3, padding=1, phi="tanh", weight=k2, bias=False),
             Sum("s", ("a", "b")), Dense("output", "s", 4, phi="tanh")]
        return Graph(V, "output", name="shared")
    X, Y = _data(75, 4, B=4)
    shared = ns.Simulator(make("K", "K"), backend="numba", seed=0)
    twin = ns.Simulator(make("K1", "K2"), backend="numba", seed=0)
    for k in ("K1", "K2"):
        twin.set_weights(k, shared.weights["K"])
    twin.set_weights("output.W", shared.weights["output.W"])
    for algo in ("bp", "pc", "zil", "fpa"):
        ds, dt_ = shared.directions(X, Y, algo), twin.directions(X, Y, algo)
        assert np.allclose(ds["K"], dt_["K1"] + dt_["K2"], rtol=1e-12, atol=1e-15), algo


def test_image_inputs_must_have_the_input_shape():
    """Only the flat size was checked: (B, 2, 4, 2) passed for a (1, 4, 4) input and was read as other pixels."""
    sim = ns.Simulator(ng.cnn(input_shape=(1, 4, 4), channels=(2,)), backend="reference")
    X = np.random.default_rng(0).normal(size=(3, 1, 4, 4))
    ref = sim.predict(X.reshape(3, -1))
    np.testing.assert_array_equal(sim.predict(X), ref)
    np.testing.assert_array_equal(sim.predict(X[:, 0]), ref)      # (H, W) images of one channel
    for shape in ((3, 2, 4, 2), (3, 1, 2, 8), (3, 4, 4, 1)):
        with pytest.raises(ValueError, match=r"graph 'cnn': X has shape .*, but the input images have shape "
                                             r"\(1, 4, 4\): pass \(batch, 1, 4, 4\) or flat \(batch, 16\)"):
            sim.predict(X.reshape(shape))
