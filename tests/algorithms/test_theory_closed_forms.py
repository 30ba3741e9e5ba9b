"""Linear theory (neurosim.theory) against the relaxed numerics of both backends and against independent
derivations: theory.md section 7, statements 1-12 and 30."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim import theory as th
from neurosim.mupc import mupc_network

from algo_helpers import BACKENDS, data


def linear_net(sizes=(5, 6, 7, 6, 4), **kw):
    kw.setdefault("bias", False)
    return ns.hierarchy(list(sizes), phi="linear", **kw)


def with_random_biases(sim, seed=7):
    rng = np.random.default_rng(seed)
    for k, name in enumerate(sim.plan.proj_names):
        if sim.plan.b_off[k] >= 0:
            sim.set_weights(name, b=rng.normal(size=sim.plan.pop_size[sim.plan.proj_post[k]]))
    return sim


def variants():
    """(name, circuit, has biases): plain SP DLN, muPC skips with output precision, biases with precisions."""
    return [
        ("plain", linear_net(), False),
        ("mupc_lambda", mupc_network(5, 6, 4, 4, phi="linear", output_precision=3.0), False),
        ("bias_precision", linear_net(bias=True, precision=0.7, output_precision=0.4), True),
    ]


def relaxed(sim, X, Y, tol=1e-13):
    """Relax with the output clamped, Euler step 1/lambda_max(H_z), until max |dx/dt| < tol."""
    lmax = np.linalg.eigvalsh(th.activity_hessian(th.linear_chain(sim)))[-1]
    return sim.run(X, Y, mode="clamp", steps=100000, dt=1.0 / lmax, tol=tol)


# ---------------------------------------------------------------------------------- statement 1
@pytest.mark.parametrize("backend", BACKENDS)
def test_feedforward_init_has_zero_hidden_errors_and_energy_lambda_loss(backend):
    net = ns.hierarchy([5, 7, 6, 4], phi="tanh", output_precision=2.5)
    X, Y = data(n=9)
    sim = ns.Simulator(net, backend=backend, seed=1)
    res = sim.run(X, Y, steps=0, mode="clamp")
    for h in ("h1", "h2"):
        assert np.all(res.eps[h] == 0.0)
    yhat = sim.predict(X)
    lam_loss = 2.5 * 0.5 * np.mean(np.sum((Y - yhat) ** 2, axis=1))
    assert abs(res.total_energy[0] - lam_loss) <= 1e-14 * lam_loss


# ----------------------------------------------------------------------------- statements 2-5, 9
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,net,bias", variants(), ids=[v[0] for v in variants()])
def test_closed_form_equilibrium_energy_matches_relaxation(backend, name, net, bias):
    """F* = (1/2B) sum r^T S^-1 r (plain, muPC skips + lambda, biases + precisions); GD relaxation with step
    1/lambda_max decreases F monotonically and reaches F* (Rel <= 1e-10) and z* (from H_z z = b)."""
    X, Y = data(n=11)
    sim = ns.Simulator(net, backend=backend, seed=3)
    if bias:
        with_random_biases(sim)
    chain = th.linear_chain(sim)
    Fs = th.equilibrium_energy(chain, X, Y)
    res = relaxed(sim, X, Y)
    E = res.total_energy
    assert np.all(np.diff(E) <= 1e-14 * E[0])                      # monotone
    assert abs(E[-1] - Fs) <= 1e-10 * Fs                            # reaches F*
    assert E[-1] < E[0] and Fs <= E[0]                              # F* <= lambda L (statement 8)
    z = th.split_hidden(chain, th.equilibrium_activities(chain, X, Y))
    for h, v in z.items():
        np.testing.assert_allclose(res.x[h], v, atol=1e-9 * max(1, np.abs(v).max()))
    assert abs(th.energy(chain, X, Y, th.equilibrium_activities(chain, X, Y)) - Fs) <= 1e-12 * Fs
    # steps ~ kappa log(1/tol): the slowest mode contracts by (1 - 1/kappa) per step of 1/lambda_max
    kappa = th.condition_number(chain)
    z0 = np.concatenate(th.feedforward(chain, X)[1:-1], axis=1)
    g0 = np.abs(th.activity_gradient(chain, X, Y, z0)).max()
    assert res.steps <= 1.5 * kappa * np.log(g0 / 1e-13) + 10, (res.steps, kappa)


def test_plain_dln_rescaling_matches_the_paper_formula():
    """Statement 2: S = I + sum_{l=2}^{L} W_{L:l} W_{L:l}^T for a plain DLN (Rel 1e-12)."""
    sim = ns.Simulator(linear_net(), backend="reference", seed=0)
    W = [sim.weights[f"W{l}"] for l in range(1, 5)]
    S = np.eye(4)
    for l in range(2, 5):
        P = np.eye(4)
        for k in range(4, l - 1, -1):
            P = P @ W[k - 1]
        S = S + P @ P.T
    np.testing.assert_allclose(th.equilibrium_rescaling(sim), S, rtol=1e-12, atol=1e-14)
    X, Y = data(n=6)
    r = Y - X @ W[0].T @ W[1].T @ W[2].T @ W[3].T
    F = np.sum(r * np.linalg.solve(S, r.T).T) / (2 * 6)
    assert abs(th.equilibrium_energy(sim, X, Y) - F) <= 1e-12 * F


@pytest.mark.parametrize("name,net,bias", variants(), ids=[v[0] for v in variants()])
def test_activity_hessian_equals_finite_difference_hessian(name, net, bias):
    """Statement 9: the block-tridiagonal H_z equals the Hessian of F(z) by central differences (atol 1e-6)
    and the gradient formula used by the Newton step equals H_z z - b."""
    X, Y = data(n=3)
    sim = ns.Simulator(net, backend="reference", seed=2)
    if bias:
        with_random_biases(sim)
    chain = th.linear_chain(sim)
    H = th.activity_hessian(chain)
    n = H.shape[0]
    z0 = np.random.default_rng(0).normal(size=(1, n))
    x, y = X[:1], Y[:1]
    h = 1e-3
    Hfd = np.zeros((n, n))
    E = np.eye(n) * h
    for i in range(n):
        for j in range(n):
            Hfd[i, j] = (th.energy(chain, x, y, z0 + E[i] + E[j]) - th.energy(chain, x, y, z0 + E[i] - E[j])
                         - th.energy(chain, x, y, z0 - E[i] + E[j]) + th.energy(chain, x, y, z0 - E[i] - E[j])) / (4 * h * h)
    np.testing.assert_allclose(Hfd, H, atol=1e-6)
    np.testing.assert_allclose(H, H.T)
    g = th.activity_gradient(chain, x, y, z0)
    np.testing.assert_allclose(g, z0 @ H.T - th.activity_rhs(chain, x, y), atol=1e-12)


# ---------------------------------------------------------------------------------- statement 6, 7
@pytest.mark.parametrize("name,net,bias", variants(), ids=[v[0] for v in variants()])
def test_one_newton_step_reaches_the_equilibrium(name, net, bias):
    X, Y = data(n=8)
    sim = ns.Simulator(net, backend="reference", seed=4)
    if bias:
        with_random_biases(sim)
    chain = th.linear_chain(sim)
    zs = th.equilibrium_activities(chain, X, Y)
    zn = th.newton_step(chain, X, Y)
    assert np.linalg.norm(zn - zs) <= 1e-12 * np.linalg.norm(zs)
    z_rand = np.random.default_rng(1).normal(size=zs.shape) * 5
    assert np.linalg.norm(th.newton_step(chain, X, Y, z_rand) - zs) <= 1e-12 * np.linalg.norm(zs)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,net,bias", variants(), ids=[v[0] for v in variants()])
def test_envelope_local_update_at_equilibrium_is_gradient_of_closed_form(backend, name, net, bias):
    """Statement 7: the Hebbian update of the relaxed network (SGD, lr = 1) equals -grad F* -- complex-step
    derivative of the closed form (Rel <= 1e-10) and central differences (Rel <= 1e-6)."""
    X, Y = data(n=7)
    net = net.with_plasticity(ns.Hebbian(lr=1.0))
    sim = ns.Simulator(net, backend=backend, seed=5)
    if bias:
        with_random_biases(sim)
    w0 = sim.weights
    chain = th.linear_chain(sim)
    g_env = th.equilibrium_weight_gradients(chain, X, Y)
    lmax = np.linalg.eigvalsh(th.activity_hessian(chain))[-1]
    sim.run(X, Y, mode="clamp", steps=100000, dt=1.0 / lmax, tol=1e-14, learn=True)
    h = 1e-30
    for name_w in w0:
        assert np.linalg.norm((sim.weights[name_w] - w0[name_w]) + g_env[name_w]) <= 1e-9 * np.linalg.norm(g_env[name_w])
        cs = np.zeros_like(w0[name_w])
        fd = np.zeros_like(w0[name_w])
        for idx in np.ndindex(w0[name_w].shape):
            wc = {k: v.astype(complex) for k, v in w0.items()}
            wc[name_w][idx] += 1j * h
            cs[idx] = th.equilibrium_energy(th.linear_chain(sim, weights=wc), X, Y).imag / h
            wp = dict(w0)
            wm = dict(w0)
            wp[name_w] = w0[name_w].copy()
            wm[name_w] = w0[name_w].copy()
            wp[name_w][idx] += 1e-6
            wm[name_w][idx] -= 1e-6
            fd[idx] = (th.equilibrium_energy(th.linear_chain(sim, weights=wp), X, Y)
                       - th.equilibrium_energy(th.linear_chain(sim, weights=wm), X, Y)) / 2e-6
        assert np.linalg.norm(g_env[name_w] - cs) <= 1e-10 * np.linalg.norm(cs)
        assert np.linalg.norm(g_env[name_w] - fd) <= 1e-6 * np.linalg.norm(cs)


# ---------------------------------------------------------------------------------- statements 8, 10
def test_scalar_chain_and_rescaled_mse_properties():
    """Statement 8: F* <= lambda L; scalar output F* = L / s; 2-layer chain F* = (y - w2 w1 x)^2 / (2 (1 + w2^2))."""
    net = ns.hierarchy([1, 1, 1], phi="linear", bias=False)
    sim = ns.Simulator(net, backend="reference")
    sim.set_weights("W1", W=[[0.7]])
    sim.set_weights("W2", W=[[-1.3]])
    X, Y = data(n=5, n_in=1, n_out=1)
    expected = np.mean((Y - 0.7 * -1.3 * X) ** 2) / (2 * (1 + 1.3 ** 2))
    assert abs(th.equilibrium_energy(sim, X, Y) - expected) <= 1e-12 * expected
    deep = ns.Simulator(ns.hierarchy([3, 4, 4, 1], phi="linear", bias=False), backend="reference", seed=1)
    X, Y = data(n=6, n_in=3, n_out=1)
    s = th.equilibrium_rescaling(deep)[0, 0]
    assert abs(th.equilibrium_energy(deep, X, Y) - th.loss(deep, X, Y) / s) <= 1e-12 * th.loss(deep, X, Y)
    for name, net_, _ in variants():
        sim = ns.Simulator(net_, backend="reference", seed=0)
        X, Y = data(n=6)
        assert th.equilibrium_energy(sim, X, Y) <= th.loss(sim, X, Y)


def test_weak_output_precision_limit_slope_one():
    """Statement 10: |F*/lambda - L| / L = O(lambda): slope 1 +- 0.1 on a log-log plot."""
    sim = ns.Simulator(linear_net(), backend="reference", seed=2)
    X, Y = data(n=10)
    L = th.loss(sim, X, Y)
    lams = np.array([1e-2, 1e-3, 1e-4])
    errs = [abs(th.equilibrium_energy(th.linear_chain(sim, output_precision=lam), X, Y) / lam - L) / L for lam in lams]
    slope = np.polyfit(np.log(lams), np.log(errs), 1)[0]
    assert abs(slope - 1.0) <= 0.1, slope


# ------------------------------------------------------------------------------------ statement 30
def test_mupc_linear_rescaling_tends_to_identity_with_width():
    """Statement 30: linear muPC ResNet at fixed depth: ||S - I||_2 decreases with N and is <= 10 L / N for N >= 4L."""
    H = 4
    L = H + 1
    norms = []
    for N in (32, 64, 128):
        sim = ns.Simulator(mupc_network(16, N, H, 8, phi="linear"), backend="reference", seed=0)
        norms.append(np.linalg.norm(th.equilibrium_rescaling(sim) - np.eye(8), 2))
        assert norms[-1] <= 10 * L / N
    assert norms[0] > norms[1] > norms[2]


# ------------------------------------------------------------------------------- statements 11, 12
def test_origin_saddle_is_strict_for_fstar_but_flat_for_the_loss():
    """Statement 11: H >= 2: Hess L(0) = 0 and lambda_min(Hess F*(0)) = -lambda_max(Syy) (Rel 1e-6);
    statement 12: H = 1: lambda_min(F*) < lambda_min(L) < 0."""
    from neurosim.circuits.theory import origin_hessians
    for H in (2, 3):
        hl, hf, syy = origin_hessians(H, width=3, seed=1)
        assert np.abs(hl).max() <= 1e-8
        lf = np.linalg.eigvalsh(hf)[0]
        target = -np.linalg.eigvalsh(syy)[-1]
        assert abs(lf - target) <= 1e-6 * abs(target)
    hl, hf, _ = origin_hessians(1, width=3, seed=1)
    assert np.linalg.eigvalsh(hf)[0] < np.linalg.eigvalsh(hl)[0] < 0


def test_theory_rejects_nonlinear_or_non_chain_circuits():
    with pytest.raises(ValueError, match="population 'h1' has phi='tanh'; use phi='linear'"):
        th.linear_chain(ns.Simulator(ns.hierarchy([3, 4, 2], phi="tanh"), backend="reference"))
    P = ns.ValuePopulation
    skip = ns.Circuit([P("input", 3), P("h1", 3), P("h2", 3), P("out", 3)],
                      [ns.ErrorPopulation(f"e{n}", n) for n in ("h1", "h2", "out")],
                      [ns.Projection("A", "input", "h1"), ns.Projection("B", "h1", "h2"), ns.Projection("C", "h2", "out"),
                       ns.Projection("S", "h1", "out", weights=False, skip=True)],
                      [ns.Clamp("input"), ns.Clamp("out", "target")])
    with pytest.raises(ValueError, match="projection 'S' goes from 'h1' to 'out', skipping layers"):
        th.linear_chain(ns.lower(skip))
    assert th.condition_number(ns.lower(linear_net())) >= 1.0


def test_linear_chain_refuses_unknown_or_misshapen_weight_overrides_and_graphs():
    sim = ns.Simulator(linear_net((4, 5, 3)), backend="reference")
    with pytest.raises(ValueError, match=r"weights has no parameter 'W9'; circuit .* has \['W1', 'W2'\]"):
        th.linear_chain(sim, weights={"W9": np.zeros((2, 2))})
    with pytest.raises(ValueError, match=r"weights\['W1'\] has shape \(2, 2\), but 'W1' of circuit .* has shape \(5, 4\)"):
        th.linear_chain(sim, weights={"W1": np.zeros((2, 2))})
    assert np.all(th.linear_chain(sim, weights={"W1": np.zeros((5, 4))}).A[0] == 0)
    from neurosim import graph as ng
    g = ns.Simulator(ng.mlp([4, 5, 3], phi="linear"), backend="reference")
    with pytest.raises(ns.UnsupportedError, match=r"closed forms take a layered circuit.*ns.hierarchy"):
        th.equilibrium_energy(g, np.ones((2, 4)), np.ones((2, 3)))


def test_closed_forms_refuse_bad_data_as_the_simulator_does():
    """NaN data gave a NaN energy without a word (the Simulator raises a named ValueError); text or complex data and
    wrong shapes are refused with the array named."""
    sim = ns.Simulator(ns.hierarchy([4, 5, 2], phi="linear"), backend="reference", seed=0)
    X, Y = np.ones((3, 4)), np.ones((3, 2))
    assert np.isfinite(th.equilibrium_energy(sim, X, Y))
    with pytest.raises(ValueError, match=r"theory: X holds NaN or inf \(e\.g\. row 1\)"):
        th.equilibrium_energy(sim, np.where(np.arange(12).reshape(3, 4) == 5, np.nan, X), Y)
    with pytest.raises(ValueError, match=r"theory: Y holds NaN or inf"):
        th.loss(sim, X, np.full((3, 2), np.inf))
    with pytest.raises(ValueError, match=r"theory: X holds complex numbers"):
        th.feedforward(sim, X + 1j)
    with pytest.raises(ValueError, match=r"theory: Y must have shape \(3, 2\)"):
        th.equilibrium_activities(sim, X, np.ones((3, 3)))
