"""PC vs backprop: the checkable statements of theory.md section 7 about the schedules (FPA 14-16, strict PC
17-19, Z-IL 20-22, iPC 25-26), each on both backends.  Oracles: backprop gradients of the same network
(``neurosim.algorithms.backprop``), an independent chain backprop with a preconditioned output error
(``algo_helpers.chain_backprop``), and the naive PC equations of ``tests/pc_oracle.py``."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
import pc_oracle as oracle
from neurosim.algorithms import backprop
from neurosim.algorithms.fpa import fpa_updates
from neurosim.algorithms.ipc import ipc_run
from neurosim.algorithms.pc import strict_updates
from neurosim.algorithms.zil import zil_updates
from neurosim.mupc import mupc_network

from algo_helpers import BACKENDS, assert_close, chain_backprop, data, max_rel, mlp, output_jacobians, \
    residual_graph, tau_prec_mlp

pytestmark = pytest.mark.parametrize("backend", BACKENDS)


def _grads(sim, X, Y):
    _, _, gW, gb = backprop.gradients(sim.backend, X, Y)
    return gW, gb


# ------------------------------------------------------------------------------------------ FPA (14-16)
def test_fpa_eta1_exact_after_L_minus_1_steps_and_not_before(backend):
    """Statement 14/15: 5-layer tanh MLP, eta = 1, synchronous: Rel <= 1e-12 at n = L-1 = 4, exactly 1 at n = 3."""
    net = mlp((5, 8, 7, 7, 6, 4))
    X, Y = data(n=10)
    sim = ns.Simulator(net, backend=backend, seed=4)
    g = _grads(sim, X, Y)
    errs = [max_rel(fpa_updates(sim, X, Y, eta=1.0, n=n)[1], g) for n in range(7)]
    assert errs[4] <= 1e-12 and errs[5] <= 1e-12 and errs[6] <= 1e-12   # n = L - 1, and the default n = L
    assert errs[3] == 1.0           # W1's error is still exactly 0 after L - 2 steps
    assert all(e >= 0.99 for e in errs[:4])
    # the default n is the number of weight layers
    assert max_rel(fpa_updates(sim, X, Y)[1], g) <= 1e-12


def test_fpa_exact_on_mupc_resnet_dag_and_with_output_options(backend):
    """Skips/multipliers (muPC), a levelled residual graph, weak targets and output precisions are exact too."""
    X, Y = data(n=7)
    sim = ns.Simulator(mupc_network(5, 6, 4, 4, phi="tanh"), backend=backend, seed=1)
    assert max_rel(fpa_updates(sim, X, Y, n=4)[1], _grads(sim, X, Y)) <= 1e-12
    Xg, Yg = data(n=7, n_in=4, n_out=5)
    g = ns.Simulator(residual_graph(levelled=False), backend=backend, seed=2)   # FPA needs no levelling
    assert max_rel(fpa_updates(g, Xg, Yg, n=2)[1], _grads(g, Xg, Yg)) <= 1e-12
    assert max_rel(fpa_updates(g, Xg, Yg, n=1)[1], _grads(g, Xg, Yg)) >= 1e-2
    # lambda and beta scale the (linear) FPA errors exactly
    gW, gb = _grads(sim, X, Y)
    dW, db = fpa_updates(sim, X, Y, output_precision=0.25, beta=0.1)[1]
    assert max_rel(({k: v / 0.025 for k, v in dW.items()}, {k: v / 0.025 for k, v in db.items()}), (gW, gb)) <= 1e-12


def test_fpa_eta_below_one_converges_eventually(backend):
    """Statement 16: eta = 0.5 reaches 1e-10 by n = 100 in a 5-layer net; the error decays monotonically late."""
    net = mlp((5, 8, 7, 7, 6, 4))
    X, Y = data(n=10)
    sim = ns.Simulator(net, backend=backend, seed=4)
    g = _grads(sim, X, Y)
    ns_ = [5, 10, 15, 20, 30, 40, 60, 80, 100]
    errs = [max_rel(fpa_updates(sim, X, Y, eta=0.5, n=n)[1], g) for n in ns_]
    assert errs[0] > 0.1 and errs[-1] <= 1e-10
    late = [e for e in errs[2:] if e > 1e-13]          # eventual monotone decay down to the rounding floor
    assert len(late) >= 3 and all(b < a for a, b in zip(late, late[1:]))
    e01 = max_rel(fpa_updates(sim, X, Y, eta=0.1, n=20)[1], g)
    assert e01 > 0.5   # Rosenbaum's eta = 0.1, n = 20 is far from converged in a random 5-layer net


# ------------------------------------------------------------------------------------- strict (17-19)
def _precond_grad(sim, X, Y, lam=1.0):
    """(d yhat/d theta)^T S_J^-1 (yhat - y), S_J = I/lam + sum_k J_k J_k^T at the feedforward point."""
    J = output_jacobians(sim, X)
    yhat = backprop.forward(sim.backend, X)[:, sim.plan.units("output")]
    nL = Y.shape[1]
    S = np.eye(nL)[None] / lam + sum(Jk @ Jk.transpose(0, 2, 1) for Jk in J)
    d = np.linalg.solve(S, (yhat - Y)[:, :, None])[:, :, 0]
    return chain_backprop(sim, X, d)


def _strict(sim, X, Y, **kw):
    return strict_updates(sim, X, Y, eta=0.3, n=20000, tol=1e-13, **kw)[1]


def test_strict_weak_target_tends_to_preconditioned_gradient_not_bp(backend):
    """Statement 17: grad F / beta -> (dyhat/dtheta)^T S_J^-1 (yhat - y) with Rel = O(beta) (<= 10 beta); the
    relative error to plain BP stays large."""
    net = mlp((4, 6, 6, 3), bias=True)
    X, Y = data(n=8, n_in=4, n_out=3, seed=3)
    sim = ns.Simulator(net, backend=backend, seed=5)
    pre = _precond_grad(sim, X, Y)
    bp = _grads(sim, X, Y)
    errs_pre, errs_bp = [], []
    for beta in (1e-2, 1e-3):
        dW, db = _strict(sim, X, Y, beta=beta)
        scaled = ({k: v / beta for k, v in dW.items()}, {k: v / beta for k, v in db.items()})
        errs_pre.append(max_rel(scaled, pre))
        errs_bp.append(max_rel(scaled, bp))
        assert errs_pre[-1] <= 10 * beta
    assert errs_pre[1] < 0.2 * errs_pre[0]            # O(beta)
    assert min(errs_bp) > 0.05 and abs(errs_bp[1] - errs_bp[0]) < 0.1 * errs_bp[0]   # a plateau, not BP


def test_strict_weak_output_precision_limit_is_bp(backend):
    """Statement 18 (Whittington & Bogacz): grad F / lambda -> grad L with Rel = O(lambda) (<= 50 lambda, slope 1)."""
    net = mlp((4, 6, 6, 3), bias=True)
    X, Y = data(n=8, n_in=4, n_out=3, seed=3)
    sim = ns.Simulator(net, backend=backend, seed=5)
    bp = _grads(sim, X, Y)
    lams = np.array([1e-1, 1e-2, 1e-3])
    errs = []
    for lam in lams:
        dW, db = _strict(sim, X, Y, output_precision=lam)
        errs.append(max_rel(({k: v / lam for k, v in dW.items()}, {k: v / lam for k, v in db.items()}), bp))
    errs = np.array(errs)
    assert np.all(errs <= 50 * lams)
    slope = np.polyfit(np.log(lams), np.log(errs), 1)[0]
    assert 0.85 <= slope <= 1.15, slope
    # the compensated training step applies exactly that: update = lr * (pi_L / lambda) * direction
    s = ns.Simulator(ns.hierarchy([4, 6, 6, 3], phi="tanh", lr=0.1, optimizer=ns.SGD()), backend=backend, seed=5)
    w0 = s.weights
    s.train(X, Y, epochs=1, batch_size=8, steps=20000, algorithm="strict",
            options={"eta": 0.3, "output_precision": 1e-3}, tol=1e-13, progress=False)
    for k, name in enumerate(s.plan.proj_names):
        assert np.linalg.norm(s.weights[name] - w0[name] + 0.1 * bp[0][k]) <= 0.05 * np.linalg.norm(0.1 * bp[0][k])


def test_strict_single_output_aligns_with_bp(backend):
    """Statement 19: one output unit (and one sample), cos(update, -grad L) -> 1 as beta -> 0."""
    net = mlp((4, 6, 6, 1))
    X, Y = data(n=1, n_in=4, n_out=1, seed=2)
    sim = ns.Simulator(net, backend=backend, seed=2)
    gW, gb = _grads(sim, X, Y)
    g = np.concatenate([-gW[k].ravel() for k in gW] + [-gb[k] for k in gb])
    cos = []
    for beta in (1e-1, 1e-3):
        dW, db = _strict(sim, X, Y, beta=beta)
        d = np.concatenate([dW[k].ravel() for k in gW] + [db[k] for k in gb])
        cos.append(d @ g / np.linalg.norm(d) / np.linalg.norm(g))
    assert 1 - cos[1] <= 1e-5 and (1 - cos[1]) < (1 - cos[0])


# -------------------------------------------------------------------------------------- Z-IL (20-22)
def test_zil_one_step_equals_bp_and_the_negative_controls_fail(backend):
    """Statements 20/21: max|dW_ZIL - dW_BP| / max|dW_BP| <= 1e-12; gamma = 0.9 -> >= 1e-2; all at t=0 -> ~1."""
    net = mlp((5, 8, 7, 6, 4))
    X, Y = data(n=10)
    sim = ns.Simulator(net, backend=backend, seed=0)
    gW, gb = _grads(sim, X, Y)

    def err(dirs):
        dW, db = dirs
        return max(np.abs(dW[k] + gW[k]).max() / np.abs(gW[k]).max() for k in gW)

    assert err(zil_updates(sim, X, Y)[1]) <= 1e-12
    assert max_rel(zil_updates(sim, X, Y)[1], (gW, gb)) <= 1e-12   # biases too
    assert err(zil_updates(sim, X, Y, gamma=0.9)[1]) >= 1e-2
    assert 0.9 <= err(zil_updates(sim, X, Y, update_all_at_zero=True)[1]) <= 1.0 + 1e-12


def test_zil_trajectory_equals_bp_sgd_over_100_steps(backend):
    """Statement 20: 100 SGD steps with a fresh batch each: Z-IL and BP weights agree to Rel <= 1e-10."""
    net = mlp((5, 7, 6, 4), lr=0.1)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    Y = np.tanh(X @ rng.normal(size=(5, 4)))
    a = ns.Simulator(net, backend=backend, seed=1)
    b = ns.Simulator(net, backend=backend, seed=1)
    w0 = a.weights
    a.train(X, Y, epochs=1, batch_size=4, shuffle=False, algorithm="zil", progress=False)
    b.train(X, Y, epochs=1, batch_size=4, shuffle=False, algorithm="bp", progress=False)
    assert len(a.history["loss"]) == 100
    np.testing.assert_allclose(a.history["loss"], b.history["loss"], rtol=1e-12)
    for k in w0:
        moved = np.linalg.norm(b.weights[k] - w0[k])
        assert moved > 1e-3
        assert np.linalg.norm(a.weights[k] - b.weights[k]) <= 1e-10 * np.linalg.norm(b.weights[k])


def test_zil_on_mupc_resnet_and_levelled_graph(backend):
    """Statement 22: residual *layers* and a residual graph levelled with an identity population are exact;
    the unlevelled graph is levelled when Z-IL runs and is exact too (tests/algorithms/test_zil_levelling.py)."""
    X, Y = data(n=6)
    sim = ns.Simulator(mupc_network(5, 6, 5, 4, phi="tanh"), backend=backend, seed=3)
    assert max_rel(zil_updates(sim, X, Y)[1], _grads(sim, X, Y)) <= 1e-12
    Xg, Yg = data(n=6, n_in=4, n_out=5)
    g = ns.Simulator(residual_graph(levelled=True), backend=backend, seed=2)
    assert max_rel(zil_updates(g, Xg, Yg)[1], _grads(g, Xg, Yg)) <= 1e-12
    u = ns.Simulator(residual_graph(levelled=False), backend=backend, seed=2)
    assert max_rel(zil_updates(u, Xg, Yg)[1], _grads(u, Xg, Yg)) <= 1e-12


# ------------------------------------------------------- settings users change: tau_x != 1, precision != 1
TAU, PREC = 2.0, 0.5   # tau_x and hidden precision of algo_helpers.tau_prec_mlp (output precision 1.3)


def test_fpa_and_zil_are_exact_with_the_step_tau_over_precision(backend):
    """A step of size eta moves a hidden error by eta pi / tau_x of its drive, so FPA with eta = tau_x / pi is
    the shift register (exact after L - 1 steps) and Z-IL with gamma = tau_x / pi equals BP (whose loss the
    output precision scales); a step that ignores tau_x or pi is not exact."""
    net = tau_prec_mlp((5, 8, 7, 6, 4))
    X, Y = data(n=10)
    sim = ns.Simulator(net, backend=backend, seed=4)
    g = _grads(sim, X, Y)
    assert max_rel(fpa_updates(sim, X, Y, eta=TAU / PREC, n=3)[1], g) <= 1e-12
    assert max_rel(zil_updates(sim, X, Y, gamma=TAU / PREC)[1], g) <= 1e-12
    for wrong in (1.0, TAU, 1.0 / PREC):
        assert max_rel(fpa_updates(sim, X, Y, eta=wrong, n=3)[1], g) > 1e-2, wrong
        assert max_rel(zil_updates(sim, X, Y, gamma=wrong)[1], g) > 1e-2, wrong


def test_the_default_rate_warns_where_it_is_not_exact(backend):
    """eta = gamma = 1 (the defaults) are exact only where rate * precision / tau_x = 1: a circuit with other
    precisions or time constants gets a warning naming the populations and the exact rate; the exact rate, another
    deliberate rate and a unit circuit get none."""
    import warnings
    X, Y = data(n=4)
    sim = ns.Simulator(tau_prec_mlp((5, 8, 7, 4)), backend=backend, seed=4)
    for fn, name in ((fpa_updates, "eta"), (zil_updates, "gamma")):
        with pytest.warns(UserWarning, match=rf"{name}=1 gives exact backprop gradients only where .*h1 \(precision "
                                             rf"{PREC:g}, tau_x {TAU:g}\).*tau_x / precision"):
            fn(sim, X, Y)
        for rate in (TAU / PREC, 0.5):
            with warnings.catch_warnings():
                warnings.simplefilter("error", UserWarning)
                fn(sim, X, Y, **{name: rate})
    unit = ns.Simulator(mlp((5, 6, 4)), backend=backend, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        fpa_updates(unit, X, Y)
        zil_updates(unit, X, Y)


def test_the_warning_counts_zils_inserted_populations_and_comes_once_at_the_users_call(backend):
    """Z-IL levels an unlevelled circuit with identity populations of precision 1: with hidden precision 0.5 no single
    gamma is exact, and the warning says so instead of advising gamma = tau_x / precision (review: gamma = 2 then
    gave 0.63 relative error, silently).  Training warns once per simulator, attributed to the caller's line."""
    import warnings
    P = ns.ValuePopulation
    circuit = ns.Circuit(
        [P("input", 4), P("h1", 5, "tanh"), P("h2", 5, "tanh"), P("out", 5)],
        [ns.ErrorPopulation("eps_h1", "h1", precision=0.5), ns.ErrorPopulation("eps_h2", "h2", precision=0.5),
         ns.ErrorPopulation("eps_out", "out")],
        [ns.Projection("W1", "input", "h1", plasticity=ns.Hebbian(lr=0.05)),
         ns.Projection("W2", "h1", "h2", plasticity=ns.Hebbian(lr=0.05)),
         ns.Projection("W3", "h2", "out", plasticity=ns.Hebbian(lr=0.05)),
         ns.Projection("S1", "h1", "out", weights=False, skip=True, plasticity=None)],
        [ns.Clamp("input", "input"), ns.Clamp("out", "target")], name="unlevelled-prec")
    X, Y = data(n=6, n_in=4, n_out=5)
    sim = ns.Simulator(circuit, backend=backend, seed=0)
    with pytest.warns(UserWarning, match=r"no single gamma is: tau_x / precision takes the values 1, 2 .*identity "
                                         r"populations Z-IL inserts"):
        zil_updates(sim, X, Y)
    with pytest.warns(UserWarning, match=r"pass options=\{'eta': 2\}") as rec:
        sim.train(X, Y, epochs=3, batch_size=2, algorithm="fpa", progress=False)
    mine = [w for w in rec if "algorithm 'fpa'" in str(w.message)]
    assert len(mine) == 1 and mine[0].filename == __file__, [(w.filename, w.lineno) for w in mine]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        sim.train(X, Y, epochs=1, batch_size=2, algorithm="fpa", progress=False)   # once per simulator


def test_strict_steps_are_eta_on_the_gradient_whatever_tau_x(backend):
    """strict takes steps of size eta on -dF/dx (the pc kernel with dt = eta tau_x): beliefs, energies and
    updates are those of tau_x = 1."""
    X, Y = data(n=6)
    ref = ns.Simulator(tau_prec_mlp(tau_x=1.0), backend=backend, seed=2)
    r0, (gW0, gb0) = strict_updates(ref, X, Y, eta=0.2, n=12)
    for tau in (2.0, 0.5):
        sim = ns.Simulator(tau_prec_mlp(tau_x=tau), backend=backend, seed=2)
        r, (gW, gb) = strict_updates(sim, X, Y, eta=0.2, n=12)
        assert r.steps == r0.steps == 12
        assert_close(r.energy, r0.energy, 1e-12, f"energy (tau_x={tau})")
        for k in gW0:
            assert_close(gW[k], gW0[k], 1e-12, f"W{k} (tau_x={tau})")
            assert_close(gb[k], gb0[k], 1e-12, f"b{k} (tau_x={tau})")
    assert not np.allclose(r0.energy[-1], r0.energy[0])    # the beliefs moved


# ---------------------------------------------------------------------------------------- iPC (25-26)
@pytest.mark.parametrize("tau_x,precision,output_precision", [(1.0, 1.0, 1.0), (TAU, PREC, 1.3)])
def test_ipc_step_is_simultaneous_gradient_step_on_F(backend, tau_x, precision, output_precision):
    """Statement 25: one iPC step = x - (gamma / tau_x) dF/dx and theta - alpha dF/dtheta from the same state
    (pc_oracle), also at tau_x != 1 and precisions != 1."""
    net = mlp((5, 6, 6, 4), lr=0.07, tau_x=tau_x, precision=precision, output_precision=output_precision)
    X, Y = data(n=5)
    sim = ns.Simulator(net, backend=backend, seed=0, probes=[ns.Probe(h, "x") for h in ("h1", "h2")])
    W0 = sim.weights
    gamma = 0.2
    res = ipc_run(sim, X, Y, steps=1, gamma=gamma)
    x = oracle.feedforward(net, W0, X, Y)
    dx, _, eps, _, _ = oracle.derivatives(net, W0, x, t=Y, mode="clamp")
    x1 = {n: x[n] + gamma * dx[n] for n in x}
    W1 = dict(W0)
    for pr in net.projections:   # -dF/dW for the batch-mean energy, plain SGD with lr 0.07
        W1[pr.name] = W0[pr.name] + 0.07 * pr.multiplier * eps[pr.post].T @ oracle.phi(net.population(pr.pre).phi,
                                                                                        x[pr.pre]) / 5
        W1[pr.name + ".b"] = W0[pr.name + ".b"] + 0.07 * eps[pr.post].mean(0)
    for k in W1:
        assert_close(sim.weights[k], W1[k], 1e-14, k)
    assert res.steps == 1
    assert_close(res.energy[1].sum(), oracle.total_energy(net, W1, x1), 1e-14, "F(x1, theta1)")


def test_ipc_energy_is_non_increasing(backend):
    """Statement 26: for small gamma and alpha, F(x_t, theta_t) never increases (tolerance 1e-15 relative)."""
    net = mlp((5, 8, 8, 4), lr=0.02)
    X, Y = data(n=16)
    sim = ns.Simulator(net, backend=backend, seed=0)
    res = ipc_run(sim, X, Y, steps=200, gamma=0.1)
    F = res.energy.sum(axis=1)
    assert np.all(np.diff(F) <= 1e-15 * F[0])
    assert F[-1] < 0.5 * F[0]
