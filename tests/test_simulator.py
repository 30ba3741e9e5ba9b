"""Simulator API behaviour: seeding, predict/evaluate, probes, reset, lifecycle, state, weights, train."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns

BACKENDS = ["reference", "numba"]


def net(**kw):
    kw.setdefault("phi", "tanh")
    kw.setdefault("lr", 0.01)
    kw.setdefault("optimizer", ns.SGD())
    return ns.hierarchy([4, 6, 3], **kw)


def dataset(n=24, seed=0, n_in=4, n_out=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    Y = np.eye(n_out)[rng.integers(0, n_out, n)]
    return X, Y


# ----------------------------------------------------------------------------- seeding
@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_same_numbers_different_seed_differs(backend):
    X, Y = dataset()
    sims = [ns.Simulator(net(), backend=backend, seed=s) for s in (3, 3, 4)]
    hs = [s.train(X, Y, epochs=2, batch_size=5, steps=10, progress=False) for s in sims]
    assert hs[0]["loss"] == hs[1]["loss"] and hs[0]["energy"] == hs[1]["energy"]
    for k in sims[0].weights:
        np.testing.assert_array_equal(sims[0].weights[k], sims[1].weights[k])
    assert hs[0]["loss"] != hs[2]["loss"]
    assert not np.allclose(sims[0].weights["W1"], sims[2].weights["W1"])
    # the seed alone fixes the initial weights (sampled by lower())
    np.testing.assert_array_equal(ns.lower(net(), seed=3).W, ns.Simulator(net(), backend=backend, seed=3).plan.W)


def test_shuffle_depends_on_seed_not_on_weights():
    """With shuffle=False training is the plain sequence of learn() calls on consecutive batches."""
    X, Y = dataset(10)
    a = ns.Simulator(net(), backend="reference", seed=1)
    b = ns.Simulator(net(), backend="reference", seed=1)
    h = a.train(X, Y, epochs=1, batch_size=4, steps=7, shuffle=False, progress=False)
    losses = []
    for i in range(0, 10, 4):
        yhat = b.predict(X[i:i + 4])
        losses.append(0.5 * np.mean(np.sum((Y[i:i + 4] - yhat) ** 2, axis=1)))
        r = b.learn(X[i:i + 4], Y[i:i + 4], steps=7)
        assert h["steps"][i // 4] == r.steps == 7
    np.testing.assert_allclose(h["loss"], losses, rtol=1e-12)
    for k in a.weights:
        np.testing.assert_allclose(a.weights[k], b.weights[k], rtol=0, atol=1e-14)
    # epoch loss is the sample-weighted mean of the batch losses (batches of 4, 4, 2)
    assert h["epoch_loss"][0] == pytest.approx((4 * losses[0] + 4 * losses[1] + 2 * losses[2]) / 10, rel=1e-12)


# ----------------------------------------------------------------------------- predict / evaluate
@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_is_feedforward(backend):
    sim = ns.Simulator(ns.hierarchy([4, 6, 5, 3], phi=["tanh", "relu"], multipliers=[1.0, 2.0, 0.5]),
                       backend=backend, seed=2)
    rng = np.random.default_rng(1)
    for k, v in sim.weights.items():
        if k.endswith(".b"):
            sim.set_weights(k[:-2], b=rng.normal(size=v.shape))
    X, _ = dataset(9)
    W = sim.weights
    h1 = X @ W["W1"].T + W["W1.b"]
    h2 = 2.0 * np.tanh(h1) @ W["W2"].T + W["W2.b"]
    y = 0.5 * np.maximum(h2, 0) @ W["W3"].T + W["W3.b"]
    np.testing.assert_allclose(sim.predict(X), y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sim.predict(X, batch_size=2), y, rtol=1e-12, atol=1e-14)
    # the free equilibrium of a layered net is the feedforward pass
    np.testing.assert_allclose(sim.predict(X, relax=True, steps=30), y, rtol=1e-12, atol=1e-14)
    assert sim.predict(X[0]).shape == (1, 3)  # one sample as a 1-d array
    with pytest.raises(TypeError, match="unexpected"):
        sim.predict(X, bogus=1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_evaluate(backend):
    sim = ns.Simulator(net(), backend=backend, seed=0)
    X, Y = dataset(30, seed=5)
    yhat = sim.predict(X)
    ev = sim.evaluate(X, Y)
    assert ev["loss"] == pytest.approx(0.5 * np.mean(np.sum((Y - yhat) ** 2, axis=1)), rel=1e-12)
    assert ev["accuracy"] == pytest.approx(np.mean(np.argmax(yhat, 1) == np.argmax(Y, 1)))
    # a regression target (one column) has no accuracy
    sim1 = ns.Simulator(ns.hierarchy([4, 3, 1]), backend=backend)
    assert set(sim1.evaluate(X, X[:, :1])) == {"loss"}


# ----------------------------------------------------------------------------- probes
@pytest.mark.parametrize("backend", BACKENDS)
def test_probe_shapes_every_and_item(backend):
    probes = [ns.Probe("h1", "x", every=3, item=2), ns.Probe("output", "eps", every=2, item=2),
              ns.Probe("h1", "mu", every=3, item=2), ns.Probe("output", "energy", every=4),
              ns.Probe("h1", "energy", name="Fh")]
    sim = ns.Simulator(net(), backend=backend, probes=probes)
    X, Y = dataset(5)
    res = sim.run(X, Y, steps=12, mode="clamp")
    d = sim.data
    assert d["h1.x"].shape == (5, 6)          # steps 0, 3, 6, 9, 12
    assert d["output.eps"].shape == (7, 3)    # 0, 2, ..., 12
    assert d["h1.mu"].shape == (5, 6)
    assert d["output.energy"].shape == (4, 1)  # 0, 4, 8, 12
    assert d["Fh"].shape == (13, 1)
    np.testing.assert_array_equal(d.steps("h1.x"), [0, 3, 6, 9, 12])
    np.testing.assert_array_equal(d.steps("output.energy"), [0, 4, 8, 12])
    # last records are the final state of sample 2; energies are the rows of res.energy
    np.testing.assert_array_equal(d["h1.x"][-1], res.x["h1"][2])
    np.testing.assert_array_equal(d["h1.mu"][-1], res.mu["h1"][2])
    np.testing.assert_array_equal(d["output.eps"][-1], res.eps["output"][2])
    j = res.populations.index("h1")
    np.testing.assert_array_equal(d["Fh"][:, 0], res.energy[:, j])
    np.testing.assert_array_equal(d[probes[0]], d["h1.x"])  # lookup by Probe object
    assert "h1.x" in d and "nope" not in d
    with pytest.raises(KeyError, match="no probe named 'nope'"):
        d["nope"]
    # a second run continues the global step count
    sim.run(X, Y, steps=12, mode="clamp")
    np.testing.assert_array_equal(d.steps("h1.x"), [0, 3, 6, 9, 12, 13, 16, 19, 22, 25])


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_records_keeps_most_recent(backend):
    probes = [ns.Probe("h1", "x", name="all"), ns.Probe("h1", "x", name="last5", max_records=5),
              ns.Probe("output", "energy", name="E3", max_records=3)]
    sim = ns.Simulator(net(), backend=backend, probes=probes)
    X, Y = dataset(3)
    for _ in range(3):
        sim.run(X, Y, steps=10, mode="clamp")
    full = sim.data["all"]
    assert full.shape == (33, 6)
    np.testing.assert_array_equal(sim.data["last5"], full[-5:])
    np.testing.assert_array_equal(sim.data.steps("last5"), sim.data.steps("all")[-5:])
    assert sim.data["E3"].shape == (3, 1)
    np.testing.assert_array_equal(sim.data.steps("E3"), [30, 31, 32])


@pytest.mark.parametrize("backend", BACKENDS)
def test_weight_norm_probe_during_training(backend):
    sim = ns.Simulator(net(), backend=backend, probes=[ns.Probe("W2", "weight_norm", every=2)])
    X, Y = dataset(24)
    norms = []
    sim.train(X, Y, epochs=1, batch_size=4, steps=5, progress=False,
              callback=lambda s, e: norms.append(np.linalg.norm(s.weights["W2"])))
    wn = sim.data["W2.weight_norm"]
    assert wn.shape == (3, 1)                # 6 batches, every 2nd
    np.testing.assert_array_equal(sim.data.steps("W2.weight_norm"), [2, 4, 6])
    assert wn[-1, 0] == pytest.approx(norms[-1], rel=1e-12)
    assert len(set(wn[:, 0])) == 3           # the weights changed between records
    sim.run(X, Y, steps=5, mode="clamp")     # relaxations do not record weight norms
    assert sim.data["W2.weight_norm"].shape == (3, 1)


def test_probes_from_circuit_and_duplicates():
    c = net().with_probes(ns.Probe("h1", "x"))
    sim = ns.Simulator(c, backend="reference", probes=[ns.Probe("output", "energy")])
    assert set(sim.data.keys()) == {"h1.x", "output.energy"}
    with pytest.raises(ValueError, match="probe names must be unique"):
        ns.Simulator(c, backend="reference", probes=[ns.Probe("h1", "x")])
    with pytest.raises(ValueError, match="same batch item"):
        ns.Simulator(net(), backend="reference", probes=[ns.Probe("h1", "x", item=0), ns.Probe("h1", "eps", item=1)])


# ----------------------------------------------------------------------------- reset, lifecycle, state
@pytest.mark.parametrize("backend", BACKENDS)
def test_reinitialize_restores_initial_weights(backend):
    sim = ns.Simulator(net(optimizer=ns.Adam()), backend=backend, seed=5, probes=[ns.Probe("h1", "x")])
    w0 = sim.weights
    X, Y = dataset(12)
    h1 = dict(sim.train(X, Y, epochs=2, batch_size=4, steps=5, progress=False))
    h1 = {k: list(v) for k, v in h1.items() if k != "epoch_time"}
    assert not np.allclose(sim.weights["W1"], w0["W1"])
    sim.set_weights("W2", np.zeros((3, 6)))
    sim.reinitialize()
    for k in w0:
        np.testing.assert_array_equal(sim.weights[k], w0[k])
    assert sim.history["loss"] == [] and len(sim.data["h1.x"]) == 0 and sim.state == {}
    # optimiser state was cleared too: training again repeats the first history exactly
    h2 = sim.train(X, Y, epochs=2, batch_size=4, steps=5, progress=False)
    for k, v in h1.items():
        assert list(h2[k]) == v, k


@pytest.mark.parametrize("backend", BACKENDS)
def test_reset_clears_state_and_probe_data_but_keeps_what_was_learned(backend):
    """reset() as in Nengo: network state, probe records and their step count go; weights, optimiser
    state and history stay, so training goes on exactly as if reset() had not been called."""
    X, Y = dataset(12)
    kw = dict(batch_size=4, steps=5, progress=False)
    a = ns.Simulator(net(optimizer=ns.SGD(momentum=0.9)), backend=backend, seed=5, probes=[ns.Probe("h1", "x")])
    b = ns.Simulator(net(optimizer=ns.SGD(momentum=0.9)), backend=backend, seed=5)
    a.train(X, Y, epochs=2, **kw)
    b.train(X, Y, epochs=2, **kw)
    w, n_loss = a.weights, len(a.history["loss"])
    a.run(X[:5], Y[:5], steps=4)
    assert len(a.data["h1.x"]) > 0 and a.state != {}
    a.reset()
    for k in w:
        np.testing.assert_array_equal(a.weights[k], w[k])
    assert len(a.history["loss"]) == n_loss
    assert len(a.data["h1.x"]) == 0 and a.state == {}
    # nothing to continue from: init="previous" starts from the feedforward pass, records count from 0 again
    r_prev = a.run(X[:5], Y[:5], steps=4, init="previous")
    np.testing.assert_array_equal(a.data.steps("h1.x"), np.arange(5))
    r_ff = b.run(X[:5], Y[:5], steps=4)
    np.testing.assert_allclose(r_prev.x["h1"], r_ff.x["h1"], rtol=1e-12, atol=1e-14)
    # the momentum buffers were kept: a third epoch matches the simulator that was never reset
    a.train(X, Y, epochs=1, **kw)
    b.train(X, Y, epochs=1, **kw)
    for k in w:
        np.testing.assert_allclose(a.weights[k], b.weights[k], rtol=1e-12, atol=1e-14)
    # clearing only the probe data keeps the state
    a.run(X[:5], Y[:5], steps=4)
    a.data.clear()
    assert len(a.data["h1.x"]) == 0 and a.state != {}


@pytest.mark.parametrize("backend", BACKENDS)
def test_init_previous_after_a_different_batch_size_starts_from_the_feedforward_pass(backend):
    """The state of a batch of 5 cannot seed a batch of 3: the run starts as init="feedforward" does."""
    X, Y = dataset(5)
    sim = ns.Simulator(net(), backend=backend, seed=1)
    fresh = ns.Simulator(net(), backend=backend, seed=1)
    sim.run(X, Y, steps=7)
    with pytest.warns(RuntimeWarning, match="starts from the feedforward pass"):
        r = sim.run(X[:3], 2 * Y[:3], steps=6, init="previous")
    want = fresh.run(X[:3], 2 * Y[:3], steps=6, init="feedforward")
    for name in want.x:
        np.testing.assert_allclose(r.x[name], want.x[name], rtol=1e-12, atol=1e-14, err_msg=name)
    np.testing.assert_allclose(r.energy, want.energy, rtol=1e-12, atol=1e-14)
    # the same batch size does continue from the previous state (the control)
    r2 = sim.run(X[:3], 2 * Y[:3], steps=6, init="previous")
    assert not np.allclose(r2.energy[0], want.energy[0])
    np.testing.assert_allclose(r2.x["h1"][:, :], sim.state["h1"]["x"], rtol=0, atol=0)


def test_probe_data_is_a_mapping():
    import collections.abc
    probes = [ns.Probe("h1", "x"), ns.Probe("output", "energy", name="E")]
    sim = ns.Simulator(net(), backend="reference", probes=probes)
    X, Y = dataset(3)
    sim.run(X, Y, steps=3)
    d = sim.data
    assert isinstance(d, collections.abc.Mapping)
    assert list(d) == ["h1.x", "E"] and len(d) == 2
    items = dict(d.items())
    assert set(items) == {"h1.x", "E"} and items["h1.x"].shape == (4, 6) and items["E"].shape == (4, 1)
    for v, (k, w) in zip(d.values(), d.items()):
        np.testing.assert_array_equal(v, d[k])
        np.testing.assert_array_equal(v, w)
    assert d.get("nope") is None and d.get("E") is not None
    assert d == d and d != sim.data.__class__(probes)


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_clamps_when_a_target_is_given_and_is_free_without(backend):
    X, Y = dataset(4)
    sim = ns.Simulator(net(), backend=backend, seed=3)
    r = sim.run(X, Y, steps=10)
    np.testing.assert_array_equal(r.x["output"], Y)           # clamped to the target
    rc = ns.Simulator(net(), backend=backend, seed=3).run(X, Y, steps=10, mode="clamp")
    np.testing.assert_allclose(r.energy, rc.energy, rtol=1e-12, atol=1e-14)
    f = sim.run(X, steps=10)                                   # free: stays at the feedforward pass
    np.testing.assert_allclose(f.x["output"], sim.predict(X), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(f.total_energy, 0.0, atol=1e-20)
    # free with a target given explicitly ignores it
    f2 = sim.run(X, Y, steps=10, mode="free")
    np.testing.assert_allclose(f2.x["output"], sim.predict(X), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_epochs_counts_epochs_of_this_call_with_or_without_checkpoint(backend, tmp_path):
    X, Y = dataset(12)
    kw = dict(batch_size=4, steps=5, progress=False)
    plain = ns.Simulator(net(), backend=backend, seed=2)
    plain.train(X, Y, epochs=2, **kw)
    plain.train(X, Y, epochs=2, **kw)
    assert len(plain.history["epoch_loss"]) == 4
    ck = tmp_path / "ck.npz"
    with_ck = ns.Simulator(net(), backend=backend, seed=2)
    with_ck.train(X, Y, epochs=2, checkpoint=ck, **kw)
    with_ck.train(X, Y, epochs=2, checkpoint=ck, **kw)     # 2 more, as without a checkpoint
    assert len(with_ck.history["epoch_loss"]) == 4
    for k, w in plain.weights.items():
        np.testing.assert_array_equal(with_ck.weights[k], w)
    # a fresh simulator (a new process) resumes the interrupted call: epochs is that call's total
    stopped = ns.Simulator(net(), backend=backend, seed=2)
    ck2 = tmp_path / "ck2.npz"
    stopped.train(X, Y, epochs=4, checkpoint=ck2, callback=lambda s, e: e == 2, **kw)   # "killed" after 3
    resumed = ns.Simulator(net(), backend=backend, seed=2)
    resumed.train(X, Y, epochs=4, checkpoint=ck2, **kw)
    assert len(resumed.history["epoch_loss"]) == 4
    for k, w in plain.weights.items():
        np.testing.assert_array_equal(resumed.weights[k], w)


def test_defaults_train_the_digits_network_well():
    """README: hierarchy's and train's defaults reach about 93% test accuracy on the bundled digits."""
    from neurosim.data import load_digits
    d = load_digits()
    sim = ns.Simulator(ns.hierarchy([64, 128, 10]), seed=0)
    h = sim.train(d.X_train, d.Y_train, progress=False)
    assert len(h["epoch_loss"]) == 10 and h["steps"][0] == 20
    assert sim.evaluate(d.X_test, d.Y_test)["accuracy"] > 0.9


# ----------------------------------------------------------------------------- bad input
BAD_INPUTS = [
    (lambda X, Y: (X.astype(complex), Y), r"X holds complex numbers .*np\.real\(X\)"),
    (lambda X, Y: (X, Y + 0j), r"Y holds complex numbers"),
    (lambda X, Y: (X[:0], Y[:0]), r"X has no samples \(shape \(0, 4\)\); pass at least one row"),
    (lambda X, Y: (np.where(np.arange(4) == 2, np.nan, X), Y),
     r"X contains NaN or inf \(5 entries, the first at row 0, column 2: nan\); remove or impute"),
    (lambda X, Y: (X, np.where(Y > 0, np.inf, Y)), r"Y contains NaN or inf"),
    (lambda X, Y: (np.full(X.shape, "a"), Y), r"X must hold real numbers, got an array of <U1 \(e\.g\. 'a'\)"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad,match", BAD_INPUTS)
def test_bad_input_is_refused_clearly(backend, bad, match):
    X, Y = dataset(5)
    Xb, Yb = bad(X, Y)
    sim = ns.Simulator(net(), backend=backend)
    w = sim.weights
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no ComplexWarning on the way: a refusal, not a cast
        for call in (lambda: sim.run(Xb, Yb, steps=3), lambda: sim.learn(Xb, Yb, steps=3),
                     lambda: sim.train(Xb, Yb, epochs=1, progress=False), lambda: sim.evaluate(Xb, Yb)):
            with pytest.raises(ValueError, match=match):
                call()
        with pytest.raises(ValueError, match=match.replace("X", "X_test").replace("Y", "Y_test")):
            sim.train(X, Y, epochs=1, X_test=Xb, Y_test=Yb, progress=False)
    assert sim.history["loss"] == []                        # refused before any training
    for k in w:
        np.testing.assert_array_equal(sim.weights[k], w[k])


def test_predict_of_no_samples_is_empty_and_test_data_go_together():
    sim = ns.Simulator(net(), backend="reference")
    X, Y = dataset(5)
    assert sim.predict(X[:0]).shape == (0, 3)
    with pytest.raises(ValueError, match="X_test and Y_test go together"):
        sim.train(X, Y, epochs=1, X_test=X, progress=False)
    with pytest.raises(ValueError, match="X has 5 samples but Y has 4"):
        sim.evaluate(X, Y[:4])


@pytest.mark.parametrize("backend", BACKENDS)
def test_context_manager_closes(backend):
    X, Y = dataset(4)
    with ns.Simulator(net(), backend=backend) as sim:
        sim.run(X, Y, steps=2, mode="clamp")
        assert f"backend={backend!r}" in repr(sim)
    for call in (lambda: sim.run(X, Y), lambda: sim.learn(X, Y), lambda: sim.predict(X),
                 lambda: sim.train(X, Y, progress=False), sim.reset, sim.reinitialize):
        with pytest.raises(RuntimeError, match="closed"):
            call()
    sim.close()  # closing twice is harmless


@pytest.mark.parametrize("backend", BACKENDS)
def test_state(backend):
    sim = ns.Simulator(net(tau_eps=0.3), backend=backend, dt=0.05)
    assert sim.state == {}
    X, Y = dataset(5)
    res = sim.run(X, Y, steps=8, mode="clamp")
    st = sim.state                  # a property, like sim.weights
    assert set(st) == {"input", "h1", "output"}
    for name, size in (("input", 4), ("h1", 6), ("output", 3)):
        for var in ("x", "eps", "mu"):
            assert st[name][var].shape == (5, size)
            np.testing.assert_array_equal(st[name][var], getattr(res, var)[name])
    np.testing.assert_array_equal(st["input"]["x"], X)
    np.testing.assert_array_equal(st["output"]["x"], Y)
    assert np.all(st["input"]["eps"] == 0)
    st["h1"]["x"][:] = 99.0         # a copy
    assert not np.any(sim.state["h1"]["x"] == 99.0)
    # the call form of earlier versions still works, with a DeprecationWarning
    with pytest.warns(DeprecationWarning, match="property"):
        old = sim.state()
    np.testing.assert_array_equal(old["h1"]["x"], res.x["h1"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_weights_and_set_weights(backend):
    sim = ns.Simulator(net(), backend=backend)
    w = sim.weights
    assert set(w) == {"W1", "W1.b", "W2", "W2.b"}
    assert w["W1"].shape == (6, 4) and w["W2"].shape == (3, 6) and w["W2.b"].shape == (3,)
    w["W1"][:] = 7.0  # a copy
    assert not np.any(sim.weights["W1"] == 7.0)
    new = np.arange(18.0).reshape(3, 6)
    sim.set_weights("W2", new, b=np.ones(3))
    np.testing.assert_array_equal(sim.weights["W2"], new)
    np.testing.assert_array_equal(sim.weights["W2.b"], np.ones(3))
    with pytest.raises(ValueError, match=r"projection 'W2': W must have shape \(3, 6\), got \(6, 3\)"):
        sim.set_weights("W2", new.T)
    with pytest.raises(ValueError, match=r"projection 'W1': b must have shape \(6,\), got \(3,\)"):
        sim.set_weights("W1", b=np.ones(3))
    nb = ns.Simulator(net(bias=False), backend=backend)
    with pytest.raises(ValueError, match="has no bias"):
        nb.set_weights("W1", b=np.ones(6))
    with pytest.raises(KeyError, match="no projection 'W9'"):
        sim.set_weights("W9", new)


# ----------------------------------------------------------------------------- train
@pytest.mark.parametrize("backend", BACKENDS)
def test_train_history_keys_and_lengths(backend):
    sim = ns.Simulator(net(), backend=backend, seed=0)
    X, Y = dataset(22)
    Xt, Yt = dataset(10, seed=9)
    h = sim.train(X, Y, epochs=3, batch_size=5, steps=6, X_test=Xt, Y_test=Yt, progress=False)
    assert h is sim.history and isinstance(h, ns.History)
    assert set(h) == set(ns.History.KEYS)
    n_batches = 5  # ceil(22 / 5)
    for k in ("loss", "accuracy", "energy", "steps"):
        assert len(h[k]) == 3 * n_batches, k
    for k in ("epoch_loss", "epoch_accuracy", "test_loss", "test_accuracy", "epoch_time"):
        assert len(h[k]) == 3, k
    assert h.steps == [6] * 15                      # attribute access
    assert all(0.0 <= a <= 1.0 for a in h["accuracy"] + h["epoch_accuracy"] + h["test_accuracy"])
    assert all(e >= 0 for e in h["energy"])
    ev = sim.evaluate(Xt, Yt)
    assert h["test_loss"][-1] == pytest.approx(ev["loss"], rel=1e-12)
    assert h["test_accuracy"][-1] == pytest.approx(ev["accuracy"])
    # training extends the history; a callback returning True stops early
    sim.train(X, Y, epochs=5, batch_size=11, steps=6, progress=False, callback=lambda s, e: e == 1)
    assert len(h["epoch_loss"]) == 5 and len(h["loss"]) == 15 + 2 * 2
    js = h.to_json()
    assert set(js) == set(ns.History.KEYS) and all(isinstance(v, float) for v in js["loss"])
    # training lowers the loss on this easy task
    sim2 = ns.Simulator(net(lr=0.1), backend=backend, seed=0)
    h2 = sim2.train(X, Y, epochs=30, batch_size=11, steps=10, progress=False)
    assert h2["epoch_loss"][-1] < 0.8 * h2["epoch_loss"][0]


def test_train_regression_has_no_accuracy():
    sim = ns.Simulator(ns.hierarchy([4, 5, 1]), backend="reference")
    X, _ = dataset(8)
    h = sim.train(X, X[:, :1], epochs=2, batch_size=4, steps=3, progress=False)
    assert len(h["loss"]) == 4 and h["accuracy"] == [] and h["epoch_accuracy"] == []


def test_train_argument_checks():
    sim = ns.Simulator(net(), backend="reference")
    X, Y = dataset(4)
    with pytest.raises(ValueError, match="training needs mode 'clamp' or 'nudge'"):
        sim.train(X, Y, mode="free", progress=False)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        sim.train(X, Y, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="epochs must be a non-negative int"):
        sim.train(X, Y, epochs=1.5, progress=False)


@pytest.mark.parametrize("limit,width", [(1, 3), (7, 2), (50, 1), (1000, 4)])
def test_probe_records_match_a_naive_bounded_list(limit, width, monkeypatch):
    """The chunked, recycled record store keeps exactly the most recent `limit` rows (and their steps)
    for appends of every size, including ones larger than a chunk and larger than the limit."""
    from neurosim.simulator import _Ring
    monkeypatch.setattr(_Ring, "CHUNK_BYTES", 8 * width * 3)  # 3-row chunks: many chunk boundaries
    rng = np.random.default_rng(limit)
    store, rows, steps, step = _Ring(limit), [], [], 0
    for it in range(60):
        n = int(rng.choice([0, 1, 2, 3, 5, limit, limit + 4]))
        vals = rng.normal(size=(n, width))
        st = np.arange(step, step + n)
        step += n
        store.append(vals, st)
        rows.extend(vals)
        steps.extend(st)
        want = np.array(rows[-limit:]).reshape(-1, width)
        np.testing.assert_array_equal(store.values(width=width), want)
        np.testing.assert_array_equal(store.steps(), np.array(steps[-limit:], dtype=np.int64))
        assert len(store.chunks) <= limit // 3 + 2  # memory stays bounded
        if it == 30:
            store.clear()
            rows, steps = [], []
            assert store.values(width=width).shape == (0, width)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("limit", [4, 25, 10_000])
def test_shared_record_store_equals_per_probe_copies(backend, limit, monkeypatch):
    """Probes that share `every` and `max_records` and cover most units go to one store that the numba
    kernel writes into directly; the records (values and steps) must be those of per-probe copies, over
    runs of different lengths, tol runs, chunk boundaries and the bound."""
    from neurosim import simulator as S
    monkeypatch.setattr(S._Ring, "CHUNK_BYTES", 1)  # a chunk per batch: every boundary is crossed
    names = ["h1", "output"]

    def probes(extra):
        pr = [ns.Probe(n, v, every=2, max_records=limit) for n in names for v in ("x", "eps", "mu")]
        pr += [ns.Probe("h1", "energy", every=2, max_records=limit)]
        if extra:  # a different bound forces per-probe copies
            pr.append(ns.Probe("input", "x", every=2, max_records=limit + 1))
        return pr
    shared = ns.Simulator(net(), backend=backend, probes=probes(False))
    copies = ns.Simulator(net(), backend=backend, probes=probes(True))
    assert shared._shared_rec is not None and copies._shared_rec is None
    X, Y = dataset(5)
    for steps, tol in ((10, None), (3, None), (0, None), (40, 1e-3), (7, None)):
        for sim in (shared, copies):
            sim.run(X, Y, steps=steps, mode="clamp", tol=tol, learn=True)
    for p in probes(False):
        np.testing.assert_array_equal(shared.data[p.name], copies.data[p.name], err_msg=p.name)
        np.testing.assert_array_equal(shared.data.steps(p.name), copies.data.steps(p.name), err_msg=p.name)
        assert shared.data[p.name].shape[0] == min(limit, copies.data[p.name].shape[0])
    shared.data.clear()
    assert shared.data["h1.x"].shape == (0, 6)
    shared.run(X, Y, steps=4, mode="clamp")
    assert shared.data["h1.x"].shape == (min(3, limit), 6)


def test_shared_record_store_keeps_records_of_a_diverging_run():
    sim = ns.Simulator(net(), backend="numba", dt=0.1,
                       probes=[ns.Probe(n, v) for n in ("h1", "output") for v in ("x", "eps", "mu")])
    assert sim._shared_rec is not None
    X, Y = dataset(4)
    with pytest.raises(ns.DivergenceError) as e:
        sim.run(X * 1e300, Y * 1e300, steps=30, mode="clamp")
    n = sim.data["h1.x"].shape[0]
    assert 0 < n <= 31 and sim.data.steps("h1.x")[-1] <= e.value.step


def test_unknown_backend_option_names_the_valid_ones():
    import inspect

    from neurosim.backends import get_backend_class
    net = ns.hierarchy([4, 3, 2])
    for backend, typo, right in (("numba", "blas_thread", "blas_threads"), ("reference", "mode", None)):
        with pytest.raises(ValueError, match=rf"backend '{backend}' has no option\(s\) \['{typo}'\]") as e:
            ns.Simulator(net, backend=backend, backend_options={typo: 1})
        if right is not None:  # the valid options are the keyword arguments of the backend's constructor
            assert right in str(e.value)
            assert right in inspect.signature(get_backend_class(backend).__init__).parameters
        else:
            assert "its options: none" in str(e.value)


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_load_weights_is_all_or_nothing(backend):
    """A dict with one bad entry (wrong shape, NaN, unknown name) changes no weight: W1 was overwritten before
    W2 was refused, leaving the simulator half-loaded.  Entries left out keep their weights."""
    sim = ns.Simulator(ns.hierarchy([3, 4, 2]), backend=backend, seed=0)
    before = sim.weights
    good = {k: v + 1.0 for k, v in before.items()}
    for bad, match in ((dict(good, W2=np.ones((4, 2))), r"'W2': W must have shape \(2, 4\)"),
                       (dict(good, **{"W2.b": np.full(2, np.nan)}), r"'W2': b holds NaN"),
                       (dict(good, W9=np.ones((2, 4))), r"no projection 'W9'")):
        with pytest.raises((ValueError, KeyError), match=match):
            sim.load_weights(bad)
        assert all(np.array_equal(before[k], v) for k, v in sim.weights.items())
    sim.load_weights({"W1": good["W1"]})
    w = sim.weights
    assert np.array_equal(w["W1"], good["W1"]) and np.array_equal(w["W2"], before["W2"])
    with pytest.raises(TypeError, match="dict like sim.weights"):
        sim.load_weights([("W1", good["W1"])])


def test_set_weights_with_a_dict_or_a_bias_key_points_to_load_weights():
    net = ns.hierarchy([4, 3, 2])
    sim = ns.Simulator(net, backend="reference", seed=0)
    w = sim.weights
    with pytest.raises(TypeError, match=r"one projection name.*sim\.load_weights") as e:
        sim.set_weights(w)
    assert "array(" not in str(e.value)          # names the fix instead of printing the arrays
    with pytest.raises(ValueError, match=r"bias of projection 'W1'"):
        sim.set_weights("W1.b", w["W1.b"])
    sim.load_weights({k: v + 1.0 for k, v in w.items()})   # the round trip the message points to
    for k, v in sim.weights.items():
        np.testing.assert_allclose(v, w[k] + 1.0, rtol=0, atol=1e-15)


def test_history_and_batch_result_print_a_summary():
    """repr of a History and of step()'s BatchResult is one short line, not every recorded number."""
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(40, 3)), np.eye(2)[rng.integers(0, 2, 40)]
    sim = ns.Simulator(ns.hierarchy([3, 4, 2]), backend="reference")
    h = sim.train(X, Y, epochs=3, batch_size=8, steps=2, progress=False)
    r = repr(h)
    assert r.startswith("History(epochs=3, batches=15, epoch_loss=") and len(r) < 120
    b = repr(sim.step(X[:8], Y[:8], steps=2))
    assert b.startswith("BatchResult(steps=2, energy=") and len(b) < 120


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_previous_start_of_another_batch_size_warns_once(backend):
    """init='previous' with a state of another batch size starts from the feedforward pass (as documented); it
    did so silently, e.g. for the partial last batch of every epoch.  It warns once per simulator, at the user's
    line; the first run (no state yet) starts from the feedforward pass without a warning, and a run of the
    same size continues from the state."""
    import warnings
    sim = ns.Simulator(ns.hierarchy([3, 4, 2]), backend=backend)
    X, Y = np.linspace(-1, 1, 12).reshape(4, 3), np.ones((4, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = sim.run(X, Y, init="previous", steps=3)
        assert np.array_equal(first.x["h1"], sim.run(X, Y, steps=3).x["h1"])   # = the feedforward start
        cont = sim.run(X, Y, init="previous", steps=3)
        assert not np.allclose(cont.x["h1"], first.x["h1"])                  # continued: 6 steps in all
    with pytest.warns(RuntimeWarning, match=r"init='previous': the last batch left a state of 4 items and this "
                                            r"batch has 2, so it starts from the feedforward pass") as rec:
        sim.run(X[:2], Y[:2], init="previous", steps=3)
    assert rec[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sim.run(X[:3], Y[:3], init="previous", steps=3)    # once per simulator
    other = ns.Simulator(ns.hierarchy([3, 4, 2]), backend=backend)
    with pytest.warns(RuntimeWarning, match="partial last batch"):
        other.train(np.ones((10, 3)), np.ones((10, 2)), batch_size=4, epochs=1, init="previous", progress=False)


def test_a_probe_of_an_item_beyond_the_batch_warns():
    """Probe(item=5) on a batch of 4 recorded nothing without a word; it warns once (the energy probe, which
    has no item, records as before)."""
    import warnings
    probes = [ns.Probe("h1", "x", item=5), ns.Probe("h1", "energy")]
    sim = ns.Simulator(ns.hierarchy([3, 4, 2]), backend="reference", probes=probes)
    with pytest.warns(RuntimeWarning, match=r"probes \['h1.x'\] record batch item 5, and this batch has 4 items"):
        sim.run(np.ones((4, 3)), np.ones((4, 2)), steps=3)
    assert sim.data["h1.x"].shape == (0, 4) and sim.data["h1.energy"].shape[0] == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sim.run(np.ones((4, 3)), np.ones((4, 2)), steps=3)    # once
        sim.run(np.ones((6, 3)), np.ones((6, 2)), steps=3)
    assert sim.data["h1.x"].shape == (4, 4)


def test_a_float32_tolerance_below_its_resolution_warns():
    """float32 with tol=1e-12 silently ran to the step cap; it warns once (float64, and float32 at 1e-5, do not)."""
    import warnings
    X, Y = np.ones((2, 3)), np.ones((2, 2))
    sim = ns.Simulator(ns.hierarchy([3, 4, 2]), backend="reference", dtype="float32")
    with pytest.warns(RuntimeWarning, match=r"tol=1e-12 is below what float32 resolves"):
        sim.run(X, Y, steps=30, tol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sim.run(X, Y, steps=30, tol=1e-12)
        sim.run(X, Y, steps=30, tol=1e-5)
        ns.Simulator(ns.hierarchy([3, 4, 2]), backend="reference").run(X, Y, steps=30, tol=1e-12)
    with pytest.raises(ValueError, match="tol must be >= 0"):
        sim.run(X, Y, steps=3, tol=float("nan"))


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_train_with_previous_starts_keeps_the_training_state_across_the_test_evaluation(backend):
    """The per-epoch evaluation ran a batch of the test set, whose state replaced the training one: every epoch's
    first batch then started from the feedforward pass (and warned, advising a batch size that divides the data,
    which it did)."""
    import warnings
    rng = np.random.default_rng(0)
    X, Y, Xt, Yt = rng.normal(size=(64, 3)), rng.normal(size=(64, 2)), rng.normal(size=(10, 3)), rng.normal(size=(10, 2))
    sim = ns.Simulator(ns.hierarchy([3, 5, 2]), backend=backend, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        sim.train(X, Y, epochs=2, batch_size=16, init="previous", X_test=Xt, Y_test=Yt, progress=False)
    assert sim.state["h1"]["x"].shape == (16, 5)


@pytest.mark.parametrize("backend", ["reference", "numba", "graph-numba"])
def test_state_rows_is_the_state_batch_size(backend):
    """Backend.state_rows (what init='previous' checks every batch, without copying the state) agrees with
    state(): after runs of several sizes, a row-block batch, set_state and reset."""
    import neurosim.graph as ng
    graph = backend.startswith("graph")
    net = ng.from_circuit(ns.hierarchy([3, 4, 2])) if graph else ns.hierarchy([3, 4, 2])
    sim = ns.Simulator(net, backend=backend.split("-")[-1])
    be = sim._backend
    assert be.state_rows() is None and be.state() is None
    for B in (2, 5, 300):
        sim.run(np.ones((B, 3)), np.ones((B, 2)), steps=2)
        assert be.state_rows() == be.state()["x"].shape[0] == B
    st = be.state()
    be.set_state(st["x"][:7], st["eps"][:7])
    assert be.state_rows() == 7
    sim.reset()
    assert be.state_rows() is None
