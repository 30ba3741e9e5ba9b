r"""Physics oracles: what the predictive-coding dynamics must do, derived from the equations (closed
forms, exact ODE solutions, energy descent, fixed points), not from what the code prints.

Model (``neurosim.circuit``): :math:`\mu_l = a W_l \phi(x_{l-1}) + b_l`,
:math:`\varepsilon_l = \pi_l (x_l - \mu_l)`,
:math:`\tau_x \dot x_l = -\varepsilon_l + \phi'(x_l) \odot a W_{l+1}^T \varepsilon_{l+1}`,
:math:`F = \sum_l \tfrac{\pi_l}{2} \lVert x_l - \mu_l \rVert^2` (batch mean).
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import expm

import neurosim as ns
import pc_oracle as oracle

BACKENDS = ["reference", "numba"]


def make_data(seed, B, n_in, n_out):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, n_in)), rng.normal(size=(B, n_out))


def randomise_biases(sim, seed=0, scale=0.3):
    rng = np.random.default_rng(seed)
    for k, v in sim.weights.items():
        if k.endswith(".b"):
            sim.set_weights(k[:-2], b=scale * rng.normal(size=v.shape))


# ----------------------------------------------------------------------------- feedforward initialisation
@pytest.mark.parametrize("backend", BACKENDS)
def test_feedforward_init_zero_hidden_error_and_output_energy(backend):
    pi_out = 2.5
    net = ns.hierarchy([4, 6, 5, 3], phi=["tanh", "sigmoid"], bias=True, precision=0.7, output_precision=pi_out,
                       multipliers=[1.0, 0.8, 1.3])
    sim = ns.Simulator(net, backend=backend, seed=1)
    randomise_biases(sim)
    X, Y = make_data(0, 7, 4, 3)
    W = sim.weights
    # feedforward output by hand
    h1 = X @ W["W1"].T + W["W1.b"]
    h2 = 0.8 * np.tanh(h1) @ W["W2"].T + W["W2.b"]
    yhat = 1.3 * (1.0 / (1.0 + np.exp(-h2))) @ W["W3"].T + W["W3.b"]
    res = sim.run(X, Y, steps=0, mode="clamp")
    assert res.steps == 0
    assert np.all(res.eps["h1"] == 0.0) and np.all(res.eps["h2"] == 0.0)
    np.testing.assert_allclose(res.x["h1"], h1, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.x["h2"], h2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.y0, yhat, rtol=1e-12, atol=1e-14)
    F = pi_out / 2 * np.mean(np.sum((Y - yhat) ** 2, axis=1))
    assert res.total_energy[0] == pytest.approx(F, rel=1e-12)
    names = res.populations
    assert res.energy[0, names.index("h1")] == 0.0 and res.energy[0, names.index("h2")] == 0.0
    np.testing.assert_allclose(res.eps["output"], pi_out * (Y - yhat), rtol=1e-12, atol=1e-14)
    assert sim.energy(X, Y) == pytest.approx(F, rel=1e-12)
    assert sim.energy(X) == 0.0  # output free: every error is zero at the feedforward state


# ----------------------------------------------------------------------------- energy descent
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("integrator", ["euler", "heun"])
def test_energy_never_increases_during_relaxation(backend, integrator):
    net = ns.hierarchy([4, 8, 6, 3], phi="tanh", bias=True, precision=1.3, output_precision=0.6, lr=0.0)
    sim = ns.Simulator(net, backend=backend, seed=2, dt=0.05, integrator=integrator)
    randomise_biases(sim, 1)
    X, Y = make_data(1, 5, 4, 3)
    w0 = sim.weights
    res = sim.run(X, Y, steps=300, mode="clamp")
    F = res.total_energy
    assert F.shape == (301,)
    slack = 1e-12 * max(1.0, F[0])
    assert np.all(np.diff(F) <= slack), f"energy rose by {np.max(np.diff(F)):.3e}"
    assert F[-1] < 0.9 * F[0]  # and it really relaxed
    for k in w0:  # learning off: run() does not touch the weights
        np.testing.assert_array_equal(sim.weights[k], w0[k])
    # every row of res.energy is F of the state reached: check the final one against the oracle
    assert F[-1] == pytest.approx(oracle.total_energy(net, sim.weights, res.x), rel=1e-12)


# ----------------------------------------------------------------------------- linear closed form
@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_equilibrium_closed_form(backend):
    n_in, n_h, n_out = 4, 6, 3
    net = ns.hierarchy([n_in, n_h, n_out], phi="linear", bias=False)
    sim = ns.Simulator(net, backend=backend, seed=3, dt=0.2)
    X, Y = make_data(2, 5, n_in, n_out)
    res = sim.run(X, Y, steps=5000, mode="clamp", tol=1e-12)
    assert res.steps < 5000
    W1, W2 = sim.weights["W1"], sim.weights["W2"]
    y = X @ W1.T @ W2.T
    eps_out = np.linalg.solve(np.eye(n_out) + W2 @ W2.T, (Y - y).T).T
    eps_h = eps_out @ W2
    x_h = X @ W1.T + eps_h
    np.testing.assert_allclose(res.eps["output"], eps_out, rtol=0, atol=1e-8)
    np.testing.assert_allclose(res.eps["h1"], eps_h, rtol=0, atol=1e-8)
    np.testing.assert_allclose(res.x["h1"], x_h, rtol=0, atol=1e-8)
    # equilibrium energy F* = 1/2 (t-y)^T (I + W2 W2^T)^-1 (t-y), batch mean
    F = 0.5 * np.mean(np.sum((Y - y) * eps_out, axis=1))
    assert res.total_energy[-1] == pytest.approx(F, rel=1e-8)


# ----------------------------------------------------------------------------- integrator order
def _exact_linear_state(W1, W2, X, Y, tau_x, T):
    """x_h(T) for tau dx/dt = -(x - W1 s) + W2^T (t - W2 x), from x(0) = W1 s (feedforward)."""
    n_h = W1.shape[0]
    A = -(np.eye(n_h) + W2.T @ W2) / tau_x
    c = (X @ W1.T + Y @ W2) / tau_x          # (B, n_h)
    x_star = np.linalg.solve(-A, c.T).T
    x0 = X @ W1.T
    return x_star + (x0 - x_star) @ expm(A * T).T


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("integrator,dt,order", [("euler", 0.04, 1), ("heun", 0.1, 2)])
def test_integrator_order(backend, integrator, dt, order):
    tau_x, T = 1.5, 1.2
    net = ns.hierarchy([3, 5, 2], phi="linear", bias=False, tau_x=tau_x)
    X, Y = make_data(3, 2, 3, 2)
    errs = []
    for h in (dt, dt / 2, dt / 4):
        sim = ns.Simulator(net, backend=backend, seed=4, dt=h, integrator=integrator)
        n = int(round(T / h))
        res = sim.run(X, Y, steps=n, mode="clamp")
        exact = _exact_linear_state(sim.weights["W1"], sim.weights["W2"], X, Y, tau_x, n * h)
        errs.append(np.max(np.abs(res.x["h1"] - exact)))
    lo, hi = (1.8, 2.2) if order == 1 else (3.6, 4.4)
    for e1, e2 in zip(errs, errs[1:]):
        assert lo <= e1 / e2 <= hi, f"{integrator}: error ratios {errs}"
    assert errs[-1] > 1e-12  # the ratio was measured above rounding error


# ----------------------------------------------------------------------------- error-unit dynamics
@pytest.mark.parametrize("backend", BACKENDS)
def test_error_units_reach_instantaneous_equilibrium(backend):
    kw = dict(phi="tanh", bias=True, precision=1.4, output_precision=0.8)
    dyn = ns.Simulator(ns.hierarchy([3, 5, 4, 2], tau_eps=0.3, **kw), backend=backend, seed=5, dt=0.05)
    ins = ns.Simulator(ns.hierarchy([3, 5, 4, 2], tau_eps=0.0, **kw), backend=backend, seed=5, dt=0.05)
    randomise_biases(dyn, 2)
    randomise_biases(ins, 2)
    X, Y = make_data(4, 4, 3, 2)
    a = dyn.run(X, Y, steps=20000, mode="clamp", tol=1e-9)
    b = ins.run(X, Y, steps=20000, mode="clamp", tol=1e-9)
    assert a.steps < 20000 and b.steps < 20000
    for name in ("h1", "h2"):
        np.testing.assert_allclose(a.x[name], b.x[name], rtol=0, atol=1e-6)
    for name in ("h1", "h2", "output"):
        np.testing.assert_allclose(a.eps[name], b.eps[name], rtol=0, atol=1e-6)
        # at the fixed point the error state equals pi (x - mu)
        pi = 0.8 if name == "output" else 1.4
        np.testing.assert_allclose(a.eps[name], pi * (a.x[name] - a.mu[name]), rtol=0, atol=1e-6)
    assert a.total_energy[-1] == pytest.approx(b.total_energy[-1], rel=1e-6)
    # the transient differs: error units lag (otherwise tau_eps would be ignored)
    assert np.max(np.abs(a.total_energy[:50] - b.total_energy[:50])) > 1e-3


# ----------------------------------------------------------------------------- nudge and free phases
@pytest.mark.parametrize("backend", BACKENDS)
def test_nudge_approaches_clamp_as_beta_grows(backend):
    net = ns.hierarchy([3, 6, 2], phi="tanh", bias=True)
    X, Y = make_data(5, 4, 3, 2)
    sim = ns.Simulator(net, backend=backend, seed=6, dt=0.05)
    randomise_biases(sim, 3)
    clamp = sim.run(X, Y, steps=20000, mode="clamp", tol=1e-10)
    dist = {}
    for beta in (3.0, 30.0):  # dt (1 + beta) < 2 keeps Euler stable on the output
        r = sim.run(X, Y, steps=20000, mode="nudge", beta=beta, tol=1e-10)
        assert r.steps < 20000
        dist[beta] = max(np.max(np.abs(r.x[n] - clamp.x[n])) for n in ("h1", "output"))
        # at the nudged fixed point the output obeys eps_out = beta (t - x_out)
        np.testing.assert_allclose(r.eps["output"], beta * (Y - r.x["output"]), rtol=0, atol=1e-8)
    free = sim.run(X, steps=0, mode="free")
    scale = np.max(np.abs(Y - free.x["output"]))
    assert dist[30.0] < 0.25 * dist[3.0]       # O(1/beta) approach
    assert dist[30.0] < 0.1 * scale


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("integrator", ["euler", "heun"])
def test_free_mode_from_feedforward_stays_put(backend, integrator):
    net = ns.hierarchy([4, 6, 5, 3], phi=["tanh", "leaky_relu"], bias=True, multipliers=[1.0, 0.5, 2.0])
    sim = ns.Simulator(net, backend=backend, seed=7, integrator=integrator)
    randomise_biases(sim, 4)
    X, _ = make_data(6, 5, 4, 3)
    r0 = sim.run(X, steps=0, mode="free")
    r = sim.run(X, steps=100, mode="free")
    assert np.all(r.total_energy == 0.0)
    for name in r.populations:
        np.testing.assert_allclose(r.x[name], r0.x[name], rtol=1e-15, atol=0)
        assert np.all(r.eps[name] == 0.0)
    np.testing.assert_allclose(r.x["output"], sim.predict(X), rtol=1e-15, atol=0)


# ----------------------------------------------------------------------------- Hebbian plasticity
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_hebbian_update_by_hand(backend, reduction):
    lr = 0.1
    mult = [1.0, 0.7]
    net = ns.hierarchy([4, 5, 3], phi="tanh", bias=True, lr=lr, optimizer=ns.SGD(), batch_reduction=reduction, multipliers=mult,
                       precision=1.2, output_precision=0.9)
    sim = ns.Simulator(net, backend=backend, seed=8)
    randomise_biases(sim, 5)
    X, Y = make_data(7, 6, 4, 3)
    w0 = sim.weights
    res = sim.learn(X, Y, steps=30)
    w1 = sim.weights
    B = X.shape[0]
    red = B if reduction == "mean" else 1.0
    # plasticity uses the state the relaxation reached (res.x, res.eps)
    expected = {
        "W1": lr * mult[0] * res.eps["h1"].T @ res.x["input"] / red,
        "W1.b": lr * res.eps["h1"].sum(axis=0) / red,
        "W2": lr * mult[1] * res.eps["output"].T @ np.tanh(res.x["h1"]) / red,
        "W2.b": lr * res.eps["output"].sum(axis=0) / red,
    }
    for k, dW in expected.items():
        assert np.max(np.abs(dW)) > 1e-4
        np.testing.assert_allclose(w1[k] - w0[k], dW, rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sgd_momentum_weight_decay_and_adam_by_hand(backend):
    """Two updates of SGD+momentum+weight decay and of Adam, from the Hebbian direction g = eps^T phi / B."""
    X, Y = make_data(8, 4, 3, 2)
    lr = 0.05
    for opt in (ns.SGD(momentum=0.9, weight_decay=0.01), ns.Adam(beta1=0.8, beta2=0.95, eps=1e-8,
                                                                  weight_decay=0.01)):
        net = ns.hierarchy([3, 2], bias=False, lr=lr, optimizer=opt)  # one projection input -> output
        sim = ns.Simulator(net, backend=backend, seed=9)
        W = sim.weights["W1"]
        m = np.zeros_like(W)
        v = np.zeros_like(W)
        for t in (1, 2):
            sim.learn(X, Y, steps=0)  # no free populations: the state is the feedforward/clamped one
            g = (Y - X @ W.T).T @ X / X.shape[0] - opt.weight_decay * W
            if opt.kind == "sgd":
                m = opt.momentum * m + g
                W = W + lr * m
            else:
                m = opt.beta1 * m + (1 - opt.beta1) * g
                v = opt.beta2 * v + (1 - opt.beta2) * g * g
                W = W + lr * (m / (1 - opt.beta1 ** t)) / (np.sqrt(v / (1 - opt.beta2 ** t)) + opt.eps)
            np.testing.assert_allclose(sim.weights["W1"], W, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- tol stopping
@pytest.mark.parametrize("backend", BACKENDS)
def test_tol_stopping_by_hand(backend):
    net = ns.hierarchy([3, 6, 4, 2], phi="tanh", bias=True)
    sim = ns.Simulator(net, backend=backend, seed=10, dt=0.1)
    randomise_biases(sim, 6)
    X, Y = make_data(9, 5, 3, 2)
    tol, max_steps = 1e-4, 3000
    res = sim.run(X, Y, steps=max_steps, mode="clamp", tol=tol)
    assert 0 < res.steps < max_steps
    assert res.energy.shape[0] == res.steps + 1
    rate = oracle.max_rate(net, sim.weights, res.x, t=Y, mode="clamp")
    assert rate < tol
    # the state one step earlier was not yet below tol (it stopped at the first chance)
    prev = sim.run(X, Y, steps=res.steps - 1, mode="clamp")
    assert oracle.max_rate(net, sim.weights, prev.x, t=Y, mode="clamp") >= tol
    # without tol, the same number of steps gives the same state
    again = sim.run(X, Y, steps=res.steps, mode="clamp")
    for name in res.populations:
        np.testing.assert_array_equal(again.x[name], res.x[name])


# ----------------------------------------------------------------------------- gradient flow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("phi", ["tanh", "sigmoid", "leaky_relu"])
def test_value_dynamics_are_minus_energy_gradient(backend, phi):
    r"""With instantaneous errors, :math:`\tau_x \dot x = -B\, \partial F / \partial x` (F is a batch mean):
    one Euler step from any state equals a finite-difference gradient step on F."""
    net = ns.hierarchy([3, 5, 4, 2], phi=phi, bias=True, precision=1.7, output_precision=0.6, tau_x=2.0,
                       multipliers=[1.0, 1.4, 0.6])
    sim = ns.Simulator(net, backend=backend, seed=11, dt=0.01)
    randomise_biases(sim, 7)
    X, Y = make_data(10, 3, 3, 2)
    rng = np.random.default_rng(12)
    x0 = sim.run(X, Y, steps=0, mode="clamp").x
    x0 = {n: v + (0.5 * rng.normal(size=v.shape) if n in ("h1", "h2") else 0.0) for n, v in x0.items()}
    n_units = sim.plan.n_units
    xs = np.zeros((3, n_units))
    for n, v in x0.items():
        xs[:, sim.plan.units(n)] = v
    sim.backend.set_state(xs, np.zeros_like(xs))
    res = sim.run(X, Y, steps=1, mode="clamp", init="previous")
    W = sim.weights
    h = 1e-6
    for name in ("h1", "h2"):
        grad = np.zeros_like(x0[name])
        for idx in np.ndindex(*grad.shape):
            xp = {n: v.copy() for n, v in x0.items()}
            xm = {n: v.copy() for n, v in x0.items()}
            xp[name][idx] += h
            xm[name][idx] -= h
            grad[idx] = (oracle.total_energy(net, W, xp) - oracle.total_energy(net, W, xm)) / (2 * h)
        dxdt = (res.x[name] - x0[name]) / sim.dt
        np.testing.assert_allclose(dxdt, -X.shape[0] * grad / 2.0, rtol=1e-6, atol=1e-7)


def test_activation_derivatives_match_finite_differences():
    from neurosim import activations as act
    x = np.linspace(-4, 4, 81) + 0.013  # avoid the kink of relu / leaky_relu at exactly 0
    h = 1e-6
    for name in act.names():
        num = (act.phi(name, x + h) - act.phi(name, x - h)) / (2 * h)
        np.testing.assert_allclose(act.dphi(name, x), num, rtol=1e-7, atol=1e-8, err_msg=name)
        np.testing.assert_allclose(act.phi(name, x), oracle.phi(name, x), rtol=1e-14, atol=1e-15, err_msg=name)
    assert act.phi("sigmoid", np.array([-800.0, 800.0])).tolist() == [0.0, 1.0]  # no overflow
