"""``Simulator.directions`` and ``Simulator.step`` on layered circuits, public API only.

Oracles: ``bp`` is minus a central finite-difference gradient of the feedforward loss
``0.5 * sum((Y - yhat)^2) / B`` (output precision 1); ``fpa`` (eta = 1) and ``zil`` equal ``bp`` (exact backprop);
``pc`` is the Hebbian term ``eps_post^T phi(x_pre) / B`` (bias: ``sum(eps_post) / B``) at the state ``sim.run``
reaches with the target clamped; ``step`` is one batch of ``train``.
"""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim import activations as act
from neurosim.errors import DivergenceError

SIZES = [3, 5, 4, 2]
BACKENDS = ["reference", "numba"]


def _rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)) / (1e-30 + np.max(np.abs(b))))


def _data(B=6, seed=1, n_in=SIZES[0], n_out=SIZES[-1]):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, n_in)), rng.normal(size=(B, n_out))


def _sim(backend="reference", seed=0, **kw):
    sim_kw = {k: kw.pop(k) for k in ("integrator", "dt", "probes", "dtype") if k in kw}
    net = ns.hierarchy(SIZES, phi="tanh", **kw)
    return ns.Simulator(net, backend=backend, seed=seed, **{"dt": 0.1, **sim_kw})


def _loss(sim, X, Y):
    return 0.5 * np.sum((Y - sim.predict(X)) ** 2) / X.shape[0]


def _fd_gradient(sim, X, Y, h=1e-6):
    """Central finite differences of the feedforward loss with respect to every weight and bias."""
    out = {}
    for key, W in sim.weights.items():
        G = np.zeros_like(W)
        for idx in np.ndindex(W.shape):
            for sgn in (1, -1):
                Wp = W.copy()
                Wp[idx] += sgn * h
                sim.load_weights({key: Wp})
                G[idx] += sgn * _loss(sim, X, Y) / (2 * h)
            sim.load_weights({key: W})
        out[key] = G
    return out


# ------------------------------------------------------------------------------------------ directions
@pytest.mark.parametrize("backend", BACKENDS)
def test_bp_directions_are_minus_the_loss_gradient(backend):
    sim = _sim(backend)
    X, Y = _data()
    D = sim.directions(X, Y, "bp")
    G = _fd_gradient(sim, X, Y)
    assert list(D) == list(sim.weights) == ["W1", "W1.b", "W2", "W2.b", "W3", "W3.b"]
    for k in D:
        assert D[k].shape == sim.weights[k].shape, k
        assert _rel(D[k], -G[k]) < 1e-6, k
    # a wrong sign or scale is caught
    assert _rel(D["W2"], G["W2"]) > 1.0 and _rel(2 * D["W2"], -G["W2"]) > 0.5


@pytest.mark.parametrize("backend", BACKENDS)
def test_fpa_with_eta_one_and_zil_equal_bp(backend):
    sim = _sim(backend)
    X, Y = _data()
    bp = sim.directions(X, Y, "bp")
    for algo, opts in (("fpa", {"eta": 1.0}), ("fpa", None), ("zil", None), ("zil", {"gamma": 1.0})):
        D = sim.directions(X, Y, algo, opts)
        assert list(D) == list(bp), algo
        for k in bp:
            assert _rel(D[k], bp[k]) < 1e-10, (algo, k)
    # and not exact off their exact settings (the comparison can fail)
    D = sim.directions(X, Y, "fpa", {"eta": 0.5})
    assert _rel(D["W1"], bp["W1"]) > 1e-3
    D = sim.directions(X, Y, "zil", {"gamma": 0.5})
    assert _rel(D["W1"], bp["W1"]) > 1e-3


def _hebbian_at(sim, res):
    """``eps_post^T phi(x_pre) / B`` and ``sum(eps_post) / B`` at the final state of the RelaxResult ``res``."""
    pops = res.populations
    B = res.x[pops[0]].shape[0]
    phis = ["linear"] + ["tanh"] * (len(pops) - 2)
    out = {}
    for k in range(1, len(pops)):
        eps = res.eps[pops[k]]
        out[f"W{k}"] = eps.T @ act.phi(phis[k - 1], res.x[pops[k - 1]]) / B
        out[f"W{k}.b"] = eps.sum(axis=0) / B
    return out


PC_CASES = {  # name: (hierarchy / Simulator settings, directions kwargs)
    "plain": (dict(), dict(steps=12)),
    "tau_x-precision": (dict(tau_x=1.7, precision=0.8, output_precision=1.6), dict(steps=12)),
    "dt": (dict(tau_x=2.0), dict(steps=9, dt=0.3)),
    "heun": (dict(integrator="heun"), dict(steps=10)),
    "tau_eps": (dict(tau_eps=0.5), dict(steps=10)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(PC_CASES))
def test_pc_directions_are_the_hebbian_term_at_the_relaxed_state(backend, case):
    net_kw, kw = PC_CASES[case]
    X, Y = _data()
    sim = _sim(backend, **dict(net_kw))
    D = sim.directions(X, Y, "pc", **kw)
    ref = _sim(backend, **dict(net_kw))
    res = ref.run(X, Y, mode="clamp", **kw)
    H = _hebbian_at(ref, res)
    assert list(D) == list(H) == list(sim.weights)
    for k in H:
        assert _rel(D[k], H[k]) < 1e-10, (k, _rel(D[k], H[k]))
    # the relaxation moved the state: the Hebbian term differs from the one at the feedforward state
    H0 = _hebbian_at(ref, ref.run(X, Y, steps=0, mode="clamp"))
    assert _rel(H["W1"], H0["W1"]) > 1e-4


def test_pc_directions_follow_the_step_counting_convention():
    """``convention="song2024"`` counts ``steps`` as Song et al.'s T iterations: the state after T - 1 updates."""
    X, Y = _data()
    sim = _sim(tau_x=1.5)
    song = sim.directions(X, Y, "pc", {"convention": "song2024"}, steps=10)
    ours = sim.directions(X, Y, "pc", steps=9)
    other = sim.directions(X, Y, "pc", steps=10)
    for k in ours:
        assert _rel(song[k], ours[k]) < 1e-12, k
    assert _rel(other["W1"], ours["W1"]) > 1e-4


def test_strict_directions_equal_pc_at_tau_one():
    X, Y = _data()
    sim = _sim()
    pc = sim.directions(X, Y, "pc", steps=8, dt=0.2)
    strict = sim.directions(X, Y, "strict", {"eta": 0.2, "n": 8})
    for k in pc:
        assert _rel(strict[k], pc[k]) < 1e-10, k


@pytest.mark.parametrize("backend", BACKENDS)
def test_directions_change_nothing(backend):
    sim = _sim(backend)
    X, Y = _data()
    sim.train(X, Y, epochs=1, batch_size=3, steps=4, progress=False)
    w0 = sim.weights
    h0 = {k: list(v) for k, v in sim.history.items()}
    opt0 = [np.array(getattr(sim.backend, a)) for a in ("mW", "mb", "opt_t")]
    for algo in ("bp", "pc", "fpa", "zil", "strict"):
        sim.directions(X, Y, algo)
        for k, v in w0.items():
            assert np.array_equal(sim.weights[k], v), (algo, k)
    assert {k: list(v) for k, v in sim.history.items()} == h0
    for a, v in zip((sim.backend.mW, sim.backend.mb, sim.backend.opt_t), opt0):
        assert np.array_equal(a, v)


def test_ipc_and_graph_only_options_are_refused():
    sim = _sim()
    X, Y = _data()
    with pytest.raises(ValueError, match="'ipc' updates the weights at every step"):
        sim.directions(X, Y, "ipc")
    with pytest.raises(ValueError, match="result=True"):
        sim.directions(X, Y, "bp", result=True)
    with pytest.raises(ValueError, match="no option"):
        sim.directions(X, Y, "fpa", {"gamma": 1.0})
    with pytest.raises(ValueError, match="unknown algorithm|no algorithm|available"):
        sim.directions(X, Y, "nope")


# ------------------------------------------------------------------------------------------ step
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("algorithm", ["pc", "bp"])
def test_step_equals_one_batch_of_train(backend, algorithm):
    X, Y = _data(B=5)
    a, b = _sim(backend), _sim(backend)
    w_init = a.weights
    h = a.train(X, Y, epochs=1, batch_size=5, shuffle=False, steps=7, algorithm=algorithm, progress=False)
    res = b.step(X, Y, algorithm, steps=7)
    for k, v in a.weights.items():
        assert _rel(b.weights[k], v) < 1e-12, k
        assert _rel(v, w_init[k]) > 1e-6, k   # the batch did learn
    np.testing.assert_allclose(0.5 * np.mean(np.sum((Y - res.y0) ** 2, axis=1)), h["loss"][0], rtol=1e-12)
    np.testing.assert_allclose(res.energy[-1].sum(), h["energy"][0], rtol=1e-12)
    assert len(b.history["loss"]) == 0   # step does not extend the training history
    # the next step continues the optimiser (momentum) as train's second epoch does
    a.train(X, Y, epochs=1, batch_size=5, shuffle=False, steps=7, algorithm=algorithm, progress=False)
    b.step(X, Y, algorithm, steps=7)
    for k, v in a.weights.items():
        assert _rel(b.weights[k], v) < 1e-12, k


@pytest.mark.parametrize("algorithm", ["pc", "bp", "fpa", "zil"])
def test_step_without_learning_leaves_the_weights(algorithm):
    sim = _sim()
    X, Y = _data()
    w0 = sim.weights
    opt0 = np.array(sim.backend.opt_t)
    res = sim.step(X, Y, algorithm, steps=6, learn=False)
    assert res.y0.shape == Y.shape
    for k, v in w0.items():
        assert np.array_equal(sim.weights[k], v), k
    assert np.array_equal(sim.backend.opt_t, opt0)
    sim.step(X, Y, algorithm, steps=6)
    assert not np.array_equal(sim.weights["W1"], w0["W1"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_step_divergence_raises_and_keeps_the_records(backend):
    sim = _sim(backend, probes=[ns.Probe("h1", "x"), ns.Probe("h2", "energy")])
    X, Y = _data()
    sim.set_weights("W3", W=1e200 * np.ones((2, 4)))
    with np.errstate(all="ignore"), pytest.raises(DivergenceError) as e:
        sim.step(X, Y, steps=10)
    assert e.value.step >= 0
    assert len(sim.data["h1.x"]) >= 1 and len(sim.data["h2.energy"]) >= 1
    assert len(sim.history["loss"]) == 0


def test_step_refuses_free_mode():
    sim = _sim()
    X, Y = _data()
    with pytest.raises(ValueError, match="'clamp' or 'nudge'"):
        sim.step(X, Y, mode="free")


def test_step_records_weight_norm_probes_as_train_does():
    probes = [ns.Probe("W2", "weight_norm", every=2), ns.Probe("h1", "x", every=3)]
    X, Y = _data(B=4)
    a, b = _sim(probes=probes), _sim(probes=probes)
    a.train(X, Y, epochs=5, batch_size=4, shuffle=False, steps=6, progress=False)
    for _ in range(5):
        b.step(X, Y, steps=6)
    b.step(X, Y, steps=6, learn=False)   # no training batch: no weight_norm record
    assert len(a.data["W2.weight_norm"]) == 2
    for name in ("W2.weight_norm", "h1.x"):
        n = len(a.data[name])
        assert n > 0
        assert np.array_equal(b.data.steps(name)[:n], a.data.steps(name)), name
        np.testing.assert_allclose(b.data[name][:n], a.data[name], rtol=1e-12, atol=0)
    assert len(b.data["W2.weight_norm"]) == 2


@pytest.mark.parametrize("algorithm", ["bp", "fpa", "zil", "pc"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_directions_follow_the_rule_batch_reduction(backend, algorithm):
    """With ``batch_reduction="sum"`` the direction is what one plain-SGD step applies, divided by lr: the batch
    sum (B times the mean of a "mean" rule) -- for bp as for the Hebbian schedules."""
    X, Y = _data(B=6)
    lr = 0.125
    sims = {red: _sim(backend, lr=lr, optimizer=ns.SGD(), batch_reduction=red) for red in ("mean", "sum")}
    d = {red: s.directions(X, Y, algorithm, steps=5) for red, s in sims.items()}
    for k in d["mean"]:
        assert _rel(d["sum"][k], X.shape[0] * d["mean"][k]) < 1e-10, k
    s = sims["sum"]
    w0 = s.weights
    s.step(X, Y, algorithm, steps=5)
    w1 = s.weights
    for k in w0:
        assert _rel((w1[k] - w0[k]) / lr, d["sum"][k]) < 1e-8, k


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("algorithm", ["pc", "strict", "fpa", "zil"])
def test_directions_with_output_options_are_what_step_applies(backend, algorithm):
    """With output_precision / beta and compensate=True, train scales the Hebbian term by pi_L / (beta lambda):
    directions returns that scaled direction (it returned the unscaled one, 10x too small for lambda = 0.1), so
    that one plain-SGD step moves the weights by lr * direction; compensate=False gives the raw term."""
    X, Y = _data()
    for opts, factor in (({"output_precision": 0.1}, 10.0), ({"beta": 0.5}, 2.0),
                         ({"output_precision": 0.1, "compensate": False}, 1.0)):
        sim = _sim(backend, lr=0.1, optimizer=ns.SGD())
        w0 = sim.weights
        D = sim.directions(X, Y, algorithm, opts)
        raw = sim.directions(X, Y, algorithm, {**opts, "compensate": False})
        sim.step(X, Y, algorithm=algorithm, options=opts)
        for k in w0:
            assert _rel(sim.weights[k] - w0[k], 0.1 * D[k]) < 1e-9, (opts, k)
            assert _rel(D[k], factor * raw[k]) < 1e-12, (opts, k)


def test_strict_refuses_heun_as_the_graph_form_does():
    """strict takes Euler steps by definition; with integrator='heun' the layered form ran Euler silently."""
    X, Y = _data()
    sim = _sim(integrator="heun")
    with pytest.raises(ValueError, match=r"algorithm 'strict' takes Euler steps.*integrator='euler'"):
        sim.directions(X, Y, "strict")
    with pytest.raises(ValueError, match=r"algorithm 'strict' takes Euler steps.*integrator='euler'"):
        sim.step(X, Y, algorithm="strict")
    w0 = sim.weights
    for k, v in w0.items():
        assert np.array_equal(sim.weights[k], v)


@pytest.mark.parametrize("algorithm,opt", [("fpa", "eta"), ("strict", "eta"), ("pc", "beta"), ("fpa", "output_precision")])
def test_numeric_options_refuse_strings_and_bools(algorithm, opt):
    X, Y = _data()
    sim = _sim()
    for bad in ("1", True):
        with pytest.raises(ValueError, match=rf"algorithm '{algorithm}': option '{opt}' must be a number, got"):
            sim.directions(X, Y, algorithm, {opt: bad})


@pytest.mark.parametrize("backend", BACKENDS)
def test_directions_have_the_weights_dtype(backend):
    """A float32 simulator's directions are float32 like its weights (bp, fpa and zil computed them in float64 and
    returned float64 on layered circuits, float32 on graphs), and equal the float64 simulator's to float32
    rounding."""
    X, Y = _data()
    for algorithm in ("bp", "pc", "strict", "fpa", "zil"):
        d32 = _sim(backend, dtype="float32").directions(X, Y, algorithm)
        d64 = _sim(backend).directions(X, Y, algorithm)
        assert set(d32) == set(d64)
        for k in d64:
            assert d32[k].dtype == np.float32 and d64[k].dtype == np.float64, (algorithm, k)
            assert _rel(d32[k], d64[k]) < 1e-4, (algorithm, k)
