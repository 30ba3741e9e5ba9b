"""Graph circuits through the one ``neurosim.Simulator``, public API only.

Oracle: ``ng.mlp([3, 5, 2], phi="tanh")`` is the layered ``ns.hierarchy([3, 5, 2], phi="tanh")`` network (linear
input, ``mu_l = W_l phi(x_{l-1}) + b_l``), so with the same weights and plasticity every public call -- ``run``
(clamp, free, nudge, Heun, init="previous", tol), ``train``, ``step``, ``predict``, ``evaluate``, probes -- must
give the layered numbers (reference backends, float64, to 1e-12).  Then checkpoint resume of a CNN and an LSTM,
and the errors a graph circuit raises.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import neurosim as ns
import neurosim.graph as ng
from neurosim.errors import CheckpointError, DivergenceError

SIZES = [3, 5, 2]
TOL = 1e-12


def _close(a, b, tol=TOL):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.size:
        err = np.max(np.abs(a - b))
        assert err <= tol * (1.0 + np.max(np.abs(b))), err


def _graph_name(layered_key):
    """Layered weight key -> graph parameter name: ``"W1"`` -> ``"W1"``, ``"W1.b"`` -> ``"b1"``."""
    return "b" + layered_key[1:-2] if layered_key.endswith(".b") else layered_key


def _pair(integrator="euler", probes=(), lr=0.05, momentum=0.9, seed=0, dt=0.1):
    """The same network as a layered circuit and as a graph, same weights and plasticity, reference backend."""
    opt = ns.SGD(momentum=momentum)
    lay = ns.Simulator(ns.hierarchy(SIZES, phi="tanh", lr=lr, optimizer=opt), backend="reference", seed=seed,
                       dt=dt, integrator=integrator, probes=probes)
    g = ng.mlp(SIZES, phi="tanh", plasticity=ns.Hebbian(lr=lr, optimizer=opt))
    gs = ns.Simulator(g, backend="reference", seed=seed, dt=dt, integrator=integrator, probes=probes)
    gs.load_weights({_graph_name(k): v for k, v in lay.weights.items()})
    _weights_equal(lay, gs, tol=0.0)
    return lay, gs


def _weights_equal(lay, gs, tol=TOL):
    wl, wg = lay.weights, gs.weights
    assert set(wg) == {_graph_name(k) for k in wl}
    for k, v in wl.items():
        _close(wg[_graph_name(k)], v, tol)


def _data(B=4, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, SIZES[0])), rng.normal(size=(B, SIZES[-1]))


def _same_run(rl, rg):
    assert rg.steps == rl.steps
    assert rg.populations == rl.populations
    _close(rg.energy, rl.energy)
    _close(rg.y0, rl.y0)
    for name in rl.populations:
        _close(rg.x[name], rl.x[name])
        _close(rg.eps[name], rl.eps[name])
        _close(rg.mu[name], rl.mu[name])


# ------------------------------------------------------------------------------------------ graph == layered
RUNS = {  # name: (Simulator integrator, run kwargs)
    "clamp": ("euler", dict(steps=15)),
    "free-zeros": ("euler", dict(steps=15, mode="free", init="zeros")),
    "nudge": ("euler", dict(steps=15, mode="nudge", beta=0.5)),
    "heun": ("heun", dict(steps=15)),
    "heun-nudge-zeros": ("heun", dict(steps=12, mode="nudge", beta=0.3, init="zeros")),
    "tol": ("euler", dict(steps=2000, init="zeros", tol=1e-4, dt=0.3)),
    "dt_decay": ("euler", dict(steps=20, init="zeros", dt=1.2, dt_decay=0.5)),
}


@pytest.mark.parametrize("case", sorted(RUNS))
def test_run_equals_layered(case):
    integrator, kw = RUNS[case]
    lay, gs = _pair(integrator)
    X, Y = _data()
    rl, rg = lay.run(X, Y, **kw), gs.run(X, Y, **kw)
    _same_run(rl, rg)
    if "tol" in kw:   # tol stopped both runs early, at the same step
        assert 0 < rl.steps < kw["steps"]
    # learning at the end of the run updates both alike
    _same_run(lay.run(X, Y, learn=True, **kw), gs.run(X, Y, learn=True, **kw))
    _weights_equal(lay, gs)
    assert not np.allclose(lay.weights["W1"], _pair(integrator)[0].weights["W1"])   # the weights did change


def test_init_previous_continues_from_the_last_state():
    lay, gs = _pair()
    X, Y = _data()
    _same_run(lay.run(X, Y, steps=5), gs.run(X, Y, steps=5))
    rl, rg = lay.run(X, Y, steps=7, init="previous"), gs.run(X, Y, steps=7, init="previous")
    _same_run(rl, rg)
    # the second run did continue: it differs from a run of 7 steps from the feedforward state
    fresh = _pair()[1].run(X, Y, steps=7)
    assert np.max(np.abs(fresh.x["h1"] - rg.x["h1"])) > 1e-6
    st_l, st_g = lay.state, gs.state
    assert set(st_g) == set(st_l)
    for name in st_l:
        for v in ("x", "eps", "mu"):
            _close(st_g[name][v], st_l[name][v])


@pytest.mark.parametrize("algorithm", ["pc", "bp"])
def test_train_two_epochs_equals_layered(algorithm):
    lay, gs = _pair()
    X, Y = _data(B=10, seed=2)
    Xt, Yt = _data(B=5, seed=3)
    kw = dict(epochs=2, batch_size=4, steps=8, algorithm=algorithm, progress=False, X_test=Xt, Y_test=Yt)
    hl, hg = lay.train(X, Y, **kw), gs.train(X, Y, **kw)
    for key in ("loss", "accuracy", "energy", "epoch_loss", "epoch_accuracy", "test_loss", "test_accuracy"):
        assert len(hg[key]) == len(hl[key]), key
        _close(hg[key], hl[key])
    assert hg["steps"] == hl["steps"]
    assert len(hg["epoch_loss"]) == 2 and len(hg["loss"]) == 6
    _weights_equal(lay, gs)
    assert not np.allclose(lay.weights["W2"], _pair()[0].weights["W2"])


@pytest.mark.parametrize("algorithm", ["pc", "bp"])
def test_step_equals_layered(algorithm):
    lay, gs = _pair()
    X, Y = _data()
    for kw in (dict(steps=10), dict(steps=10, mode="nudge", beta=0.4), dict(steps=6, learn=False)):
        if algorithm == "bp" and "mode" in kw:
            continue
        rl = lay.step(X, Y, algorithm, **kw)
        rg = gs.step(X, Y, algorithm, **kw)
        assert rg.steps == rl.steps
        _close(rg.y0, rl.y0)
        _close(rg.energy, rl.energy)
        _weights_equal(lay, gs)
    assert not np.allclose(lay.weights["W1"], _pair()[0].weights["W1"])


def test_predict_and_evaluate_equal_layered():
    lay, gs = _pair()
    X, Y = _data(B=7)
    lay.train(X, Y, epochs=1, batch_size=3, steps=5, progress=False)
    gs.train(X, Y, epochs=1, batch_size=3, steps=5, progress=False)
    _close(gs.predict(X), lay.predict(X))
    _close(gs.predict(X, batch_size=2), lay.predict(X))
    _close(gs.predict(X, relax=True, steps=10, init="zeros"), lay.predict(X, relax=True, steps=10, init="zeros"))
    el, eg = lay.evaluate(X, Y), gs.evaluate(X, Y)
    assert set(eg) == set(el) == {"loss"}   # regression targets: no argmax accuracy
    _close(eg["loss"], el["loss"])
    C = np.eye(Y.shape[1])[np.argmax(Y, 1)]
    el, eg = lay.evaluate(X, C), gs.evaluate(X, C)
    assert set(eg) == set(el) == {"loss", "accuracy"}
    assert eg["accuracy"] == el["accuracy"]
    assert gs.predict(np.zeros((0, 3))).shape == (0, 2)


def test_probes_record_as_on_the_layered_circuit():
    probes = (ns.Probe("h1", "x", item=1), ns.Probe("output", "eps", every=3, item=1),
              ns.Probe("h1", "energy", every=2), ns.Probe("output", "mu", max_records=5, item=1),
              ns.Probe("W2", "weight_norm"))
    lay, gs = _pair(probes=[])
    # the same probes on both (the graph names its weight parameter W2 too)
    lay = ns.Simulator(lay.circuit, backend="reference", seed=0, dt=0.1, probes=probes)
    gs2 = ns.Simulator(gs.circuit, backend="reference", seed=0, dt=0.1, probes=probes)
    gs2.load_weights({_graph_name(k): v for k, v in lay.weights.items()})
    X, Y = _data(B=6)
    _same_run(lay.run(X, Y, steps=9), gs2.run(X, Y, steps=9))
    lay.train(X, Y, epochs=1, batch_size=3, steps=4, progress=False)
    gs2.train(X, Y, epochs=1, batch_size=3, steps=4, progress=False)
    assert set(gs2.data) == set(lay.data) == {p.name for p in probes}
    for p in probes:
        assert len(lay.data[p]) > 0, p.name
        _close(gs2.data[p], lay.data[p])
        assert np.array_equal(gs2.data.steps(p), lay.data.steps(p)), p.name
    assert gs2.data["output.mu"].shape == (5, 2)
    assert gs2.data["h1.x"].shape[1] == 5


def test_step_divergence_keeps_the_records():
    g = ng.mlp(SIZES, phi="tanh", plasticity=ns.Hebbian(lr=0.0))
    sim = ns.Simulator(g, backend="reference", seed=0, dt=0.1, probes=[ns.Probe("h1", "x")])
    sim.set_weights("W2", 1e200 * np.ones((2, 5)))
    X, Y = _data()
    with np.errstate(all="ignore"), pytest.raises(DivergenceError):
        sim.step(X, Y, steps=10)
    assert len(sim.data["h1.x"]) >= 1


# ------------------------------------------------------------------------------------------ checkpoints
def _cnn():
    return ng.cnn(input_shape=(1, 6, 6), channels=(2,), n_out=3, plasticity=ns.Hebbian(lr=0.05,
                  optimizer=ns.SGD(momentum=0.9)))


def _lstm():
    return ng.lstm(2, 3, 2, steps=2, plasticity=ns.Hebbian(lr=0.05, optimizer=ns.Adam()))


GRAPHS = {"cnn": _cnn, "lstm": _lstm}


def _graph_data(g, B=9, seed=4):
    rng = np.random.default_rng(seed)
    sim = ns.Simulator(g, backend="reference")
    X = rng.normal(size=(B, sim.plan.n_input))
    Y = np.eye(sim.plan.n_target)[rng.integers(0, sim.plan.n_target, size=B)]
    return X, Y


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_checkpoint_resume_equals_an_uninterrupted_run(name, tmp_path):
    g = GRAPHS[name]()
    X, Y = _graph_data(g)
    kw = dict(epochs=2, batch_size=4, steps=6, progress=False)
    full = ns.Simulator(g, backend="reference", seed=5)
    h_full = full.train(X, Y, **kw)

    path = tmp_path / "ck.npz"
    first = ns.Simulator(g, backend="reference", seed=5)
    first.train(X, Y, checkpoint=path, callback=lambda sim, epoch: True, **kw)   # killed after epoch 1
    assert len(first.history["epoch_loss"]) == 1 and path.exists()
    assert not np.allclose(first.weights[next(iter(first.weights))], full.weights[next(iter(full.weights))])

    resumed = ns.Simulator(g, backend="reference", seed=5)   # a fresh process re-running the same call
    h_res = resumed.train(X, Y, checkpoint=path, **kw)
    for key in ("loss", "energy", "accuracy", "epoch_loss", "epoch_accuracy"):
        assert len(h_res[key]) == len(h_full[key]), key
        _close(h_res[key], h_full[key])
    assert h_res["steps"] == h_full["steps"]
    assert set(resumed.weights) == set(full.weights)
    for k, v in full.weights.items():
        _close(resumed.weights[k], v)
    # the finished run re-run trains nothing more
    again = ns.Simulator(g, backend="reference", seed=5)
    again.train(X, Y, checkpoint=path, **kw)
    for k, v in full.weights.items():
        _close(again.weights[k], v)


def test_checkpoint_of_another_graph_is_refused(tmp_path):
    X, Y = _graph_data(_cnn())
    sim = ns.Simulator(_cnn(), backend="reference", seed=0)
    sim.train(X, Y, epochs=1, batch_size=4, steps=3, progress=False)
    path = sim.save_checkpoint(tmp_path / "cnn.npz")
    with pytest.raises(CheckpointError, match="different circuit"):
        ns.Simulator(_lstm(), backend="reference").load_checkpoint(path)
    other = ng.cnn(input_shape=(1, 6, 6), channels=(3,), n_out=3)   # same name "cnn", other parameters
    with pytest.raises(CheckpointError, match="different circuit"):
        ns.Simulator(other, backend="reference").load_checkpoint(path)
    layered = ns.Simulator(ns.hierarchy([36, 3]), backend="reference")
    with pytest.raises(CheckpointError):
        layered.load_checkpoint(path)


# ------------------------------------------------------------------------------------------ API and errors
def test_weights_are_the_graph_parameters_and_set_weights_names_them():
    g = _cnn()
    sim = ns.Simulator(g, backend="reference", seed=0)
    w = sim.weights
    assert list(w) == ["conv1.K", "conv1.b", "output.W", "output.b"]
    assert {k: v.shape for k, v in w.items()} == {"conv1.K": (2, 1, 3, 3), "conv1.b": (2,), "output.W": (3, 18),
                                                 "output.b": (3,)}
    w["conv1.K"][...] = 7.0   # a copy
    assert not np.any(sim.weights["conv1.K"] == 7.0)
    sim.set_weights("conv1.K", np.ones((2, 1, 3, 3)))
    assert np.all(sim.weights["conv1.K"] == 1.0)
    with pytest.raises(ValueError, match=r"parameter 'conv1.K' has shape \(2, 1, 3, 3\)"):
        sim.set_weights("conv1.K", np.ones((2, 9)))
    with pytest.raises(ValueError, match="output.W"):
        sim.load_weights({"output.W": np.ones((18, 3))})
    with pytest.raises(ValueError, match="conv1.b"):
        sim.set_weights("conv1.K", b=np.ones(2))
    # NaN is refused as for a layered circuit (it was accepted, and the next run blamed dt)
    with pytest.raises(ValueError, match=r"parameter 'output.W' holds NaN or inf"):
        sim.set_weights("output.W", np.full((3, 18), np.nan))
    # load_weights is all or nothing
    before = sim.weights
    with pytest.raises(ValueError, match=r"parameter 'output.W' has shape"):
        sim.load_weights({"conv1.K": np.zeros((2, 1, 3, 3)), "output.W": np.ones((18, 3))})
    assert all(np.array_equal(before[k], v) for k, v in sim.weights.items())
    # an LSTM's shared parameters appear once
    lw = ns.Simulator(_lstm(), backend="reference").weights
    assert {"Wfh", "Wih", "Wy", "by"} <= set(lw) and lw["Wfh"].shape == (3, 3)


def test_brian2_and_the_event_engine_are_refused_with_the_reason():
    g = _cnn()
    with pytest.raises(ns.UnsupportedError, match="cannot run circuits stated as vertices.*convolutions"):
        ns.Simulator(g, backend="brian2", backend_options={"mode": "spiking"})   # rate mode runs graphs
    from neurosim.hardware import HardwareModel, Quantize
    # the write path, read effects and event coding run on graphs (tests/hardware/test_substrate_graphs.py,
    # tests/graph/test_events.py); transforms of the signal sites need the layered event engine
    with pytest.raises(ns.UnsupportedError, match="signal sites.*event-driven engine.*convolutions"):
        ns.Simulator(g, backend="reference", hardware=HardwareModel(values=[Quantize(6)]))


def test_probe_errors_name_the_vertex():
    g = _cnn()
    with pytest.raises(ValueError, match="no vertex 'conv9'"):
        ns.Simulator(g, backend="reference", probes=[ns.Probe("conv9", "x")])
    with pytest.raises(ValueError, match="vertex 'input' is an input"):
        ns.Simulator(g, backend="reference", probes=[ns.Probe("input", "eps")])
    with pytest.raises(ValueError, match="parameter name"):
        ns.Simulator(g, backend="reference", probes=[ns.Probe("conv9.K", "weight_norm")])
    ns.Simulator(g, backend="reference", probes=[ns.Probe("input", "x"), ns.Probe("conv1.K", "weight_norm")])


def test_image_shaped_input_is_accepted_for_a_cnn():
    g = _cnn()
    sim = ns.Simulator(g, backend="reference", seed=0)
    rng = np.random.default_rng(0)
    img = rng.normal(size=(5, 1, 6, 6))
    Y = np.eye(3)[[0, 1, 2, 0, 1]]
    flat = img.reshape(5, -1)
    _close(sim.predict(img), sim.predict(flat), 0.0)
    r1, r2 = sim.run(img, Y, steps=4), sim.run(flat, Y, steps=4)
    _close(r1.energy, r2.energy, 0.0)
    assert sim.evaluate(img, Y) == sim.evaluate(flat, Y)
    with pytest.raises(ValueError, match=r"input images have shape \(1, 6, 6\).*flat \(batch, 36\)"):
        sim.predict(rng.normal(size=(5, 1, 5, 5)))


def test_graph_simulator_was_removed_and_names_its_replacement():
    with pytest.raises(AttributeError, match=r"GraphSimulator was removed: use neurosim.Simulator\(graph, \.\.\.\)"):
        ng.GraphSimulator
    with pytest.raises(AttributeError, match=r"GraphSimulator was removed: use neurosim.Simulator\(graph"):
        ng.simulator.GraphSimulator
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
        ng.NoSuchThing
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ns.Simulator(ng.mlp(SIZES), backend="reference")   # the one Simulator does not warn


def test_a_misspelt_backend_on_a_graph_circuit_is_unknown_not_unsupported():
    from neurosim import graph as ng
    with pytest.raises(ValueError, match=r"unknown backend 'numbaa'; choose one of \['reference', 'numba', 'brian2'\]"):
        ns.Simulator(ng.rnn(3, 4, 2, 3), backend="numbaa")


def test_bp_directions_ignore_dt_on_graphs_as_on_layered_circuits():
    """directions(algorithm='bp', dt=5.0) was accepted on a layered circuit and refused on the same network as a
    graph ('dt=5.0 is too large for vertex h1') although bp relaxes nothing."""
    from neurosim import graph as ng
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    g = ns.Simulator(ng.mlp([3, 4, 2]), seed=0)
    lay = ns.Simulator(ns.hierarchy([3, 4, 2]), seed=0)
    dg, dl = g.directions(X, Y, "bp", dt=5.0), lay.directions(X, Y, "bp", dt=5.0)
    assert set(dg) and all(np.allclose(dg[k], g.directions(X, Y, "bp")[k], rtol=0, atol=0) for k in dg)
    assert set(dl) and all(np.allclose(dl[k], lay.directions(X, Y, "bp")[k], rtol=0, atol=0) for k in dl)
    with pytest.raises(ValueError, match="too large"):
        g.directions(X, Y, "pc", dt=5.0)   # a relaxing schedule still checks it
