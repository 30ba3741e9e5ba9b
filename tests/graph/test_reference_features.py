"""The layered run settings on the graph NumPy reference (``neurosim.graph.reference.run_reference``).

Oracles: a graph of Dense vertices is the layered ``ns.hierarchy`` network, so with the same weights the graph
reference must reproduce the layered reference backend (PC: ``ReferenceBackend.run_batch``) and the layered
iPC (``neurosim.algorithms.ipc``) for every run setting -- free / nudged output, tau_eps > 0, the three starts,
tol, Heun, dt_decay, records, divergence.  Plus a closed-form equilibrium of a linear chain reached with tol.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import neurosim as ns
from neurosim.algorithms import ipc as layered_ipc
from neurosim.backends.base import (EULER, HEUN, INIT_FEEDFORWARD, INIT_PREVIOUS, INIT_ZEROS, MODE_CLAMP,
                                    MODE_FREE, MODE_NUDGE, RunSpec)
from neurosim.graph import Dense, Graph, Input
from neurosim.graph.base import ALG_FPA, ALG_IPC, ALG_PC, ParamState, Schedule
from neurosim.graph.plan import lower_graph
from neurosim.graph.reference import run_reference

SIZES = [3, 5, 4, 2]
TAU_X, PREC, OUT_PREC = 1.7, 0.8, 1.6


def _close(a, b, tol=1e-12):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.size:
        assert np.max(np.abs(a - b)) <= tol * (1.0 + np.max(np.abs(b))), np.max(np.abs(a - b))


def _pair(tau_eps=(0.0, 0.0, 0.0), phi="tanh", lr=0.05, momentum=0.9, seed=0):
    """The same network twice: a layered ns.hierarchy Simulator (reference backend) and a lowered Dense graph
    with its ParamState holding the layered weights.  ``tau_eps``: per computing layer (h1, h2, output)."""
    opt = ns.SGD(momentum=momentum)
    net = ns.hierarchy(SIZES, phi=phi, tau_x=TAU_X, precision=PREC, output_precision=OUT_PREC, lr=lr,
                       optimizer=opt)
    errs = tuple(dataclasses.replace(e, tau_eps=float(te)) for e, te in zip(net.errors, tau_eps))
    net = dataclasses.replace(net, errors=errs)
    lay = ns.Simulator(net, backend="reference", seed=seed, dt=0.1)
    names = ["input", "h1", "h2", "output"]
    phis = ["linear", phi, phi]
    V = [Input("input", SIZES[0])] + [
        Dense(names[k + 1], names[k], SIZES[k + 1], weights=f"W{k + 1}", bias=f"b{k + 1}", phi=phis[k],
              tau_x=TAU_X, precision=OUT_PREC if k == 2 else PREC, tau_eps=float(tau_eps[k]))
        for k in range(3)]
    g = Graph(V, "output", plasticity=ns.Hebbian(lr=lr, optimizer=opt), name="mlp")
    plan = lower_graph(g)
    st = ParamState(plan)
    for k in (1, 2, 3):
        plan.param_view(st.theta, plan.param_index(f"W{k}"))[...] = lay.weights[f"W{k}"]
        plan.param_view(st.theta, plan.param_index(f"b{k}"))[...] = lay.weights[f"W{k}.b"]
    # the two flat unit layouts coincide (input, h1, h2, output)
    for i, n in enumerate(names):
        j = lay.plan.pop_names.index(n)
        assert plan.units(i) == slice(int(lay.plan.pop_off[j]), int(lay.plan.pop_off[j] + lay.plan.pop_size[j]))
    return lay, plan, st


def _data(B=4, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, SIZES[0])), rng.normal(size=(B, SIZES[-1]))


def _weights_close(lay, plan, st):
    for k in (1, 2, 3):
        _close(plan.param_view(st.theta, plan.param_index(f"W{k}")), lay.weights[f"W{k}"])
        _close(plan.param_view(st.theta, plan.param_index(f"b{k}")), lay.weights[f"W{k}.b"])


def _compare(rl, lay, rg, records=True):
    """Layered BatchResult ``rl`` (+ the backend's final state) against the GraphBatchResult ``rg``."""
    assert rg.status == rl.status and rg.steps == rl.steps
    assert rg.energy.shape == rl.energy.shape
    _close(rg.energy, rl.energy)
    _close(rg.y0, rl.y0)
    _close(rg.y, rl.y)
    if rl.status == 0:
        s = lay.backend.state()
        _close(rg.x, s["x"])
        _close(rg.eps, s["eps"])
        _close(rg.mu, s["mu"])
    if records:
        assert np.array_equal(rg.rec_steps, rl.rec_steps)
        _close(rg.rec_x, rl.rec_x)
        _close(rg.rec_eps, rl.rec_eps)
        _close(rg.rec_mu, rl.rec_mu)


# ------------------------------------------------------------------------------------------------ PC
MODES = {"clamp": (MODE_CLAMP, True, 0.0), "free": (MODE_FREE, False, 0.0), "nudge": (MODE_NUDGE, False, 0.7)}
INITS = {"feedforward": INIT_FEEDFORWARD, "zeros": INIT_ZEROS, "previous": INIT_PREVIOUS}

CASES = [  # (mode, init, tau_eps, tol, heun, dt, dt_decay, steps, record_every, record_item)
    ("clamp", "feedforward", (0, 0, 0), 0.0, False, 0.1, 1.0, 12, 0, 0),
    ("nudge", "feedforward", (0, 0, 0), 0.0, False, 0.1, 1.0, 12, 3, 1),
    ("free", "zeros", (0, 0, 0), 0.0, False, 0.1, 1.0, 12, 2, 0),
    ("nudge", "zeros", (0.5, 0, 0.3), 0.0, False, 0.1, 1.0, 15, 4, 3),
    ("clamp", "zeros", (0.4, 0.4, 0.4), 0.0, True, 0.1, 1.0, 10, 1, 2),
    ("clamp", "previous", (0, 0.6, 0), 0.0, False, 0.1, 1.0, 9, 2, 0),
    ("nudge", "previous", (0.5, 0, 0.3), 0.0, True, 0.1, 1.0, 9, 2, 1),
    ("clamp", "zeros", (0, 0, 0), 1e-3, False, 0.2, 1.0, 400, 25, 0),
    ("nudge", "zeros", (0.3, 0, 0.2), 1e-3, True, 0.2, 1.0, 400, 7, 0),
    ("clamp", "zeros", (0, 0, 0), 0.0, False, 1.2, 0.5, 30, 5, 0),
    ("nudge", "zeros", (0, 0.2, 0), 0.0, True, 1.0, 0.7, 30, 5, 0),
    ("clamp", "feedforward", (0, 0, 0), 0.0, False, 0.1, 1.0, 6, 2, 4),   # item beyond the batch: no records
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(CASES)])
@pytest.mark.parametrize("learn", [False, True])
def test_pc_settings_equal_layered_reference(case, learn):
    mode, init, tau_eps, tol, heun, dt, decay, steps, every, item = case
    lay, plan, st = _pair(tau_eps)
    X, Y = _data()
    mcode, clamp, beta = MODES[mode]
    x_init = eps_init = None
    if init == "previous":   # a state of the layered backend to start from (also for the graph)
        rng = np.random.default_rng(7)
        x_init = rng.normal(size=(X.shape[0], plan.n_units))
        eps_init = rng.normal(size=(X.shape[0], plan.n_units))
        lay.backend.set_state(x_init, eps_init)
    spec = RunSpec(mode=mcode, beta=beta, init=INITS[init], n_steps=steps, tol=tol, integrator=HEUN if heun else EULER,
                   dt=dt, dt_decay=decay, learn=learn, probe_every=every, probe_item=item)
    rl = lay.backend.run_batch(X, Y, spec)
    sch = Schedule(algo=ALG_PC, n_steps=steps, rate=dt, clamp=clamp, learn=learn, beta=beta, init=INITS[init],
                   tol=tol, heun=heun, dt_decay=decay, record_every=every, record_item=item)
    rg = run_reference(plan, st, X, None if mode == "free" else Y, sch, x_init=x_init, eps_init=eps_init)
    _compare(rl, lay, rg)
    if tol > 0:
        assert 0 < rg.steps < steps   # the early stop happened
    if item >= X.shape[0] or every == 0:
        assert rg.rec_steps.shape == (0,) and rg.rec_x.shape == (0, plan.n_units)
    else:
        assert rg.rec_steps.size > 0
    if learn:
        _weights_close(lay, plan, st)


def test_dt_decay_and_heun_change_the_run():
    """The cases above are not vacuous: dt_decay and heun each change the trajectory."""
    _, plan, st = _pair()
    X, Y = _data()
    base = dict(algo=ALG_PC, n_steps=30, rate=1.2, init=INIT_ZEROS)
    r0 = run_reference(plan, st, X, Y, Schedule(**base))
    r1 = run_reference(plan, st, X, Y, Schedule(**base, dt_decay=0.5))
    r2 = run_reference(plan, st, X, Y, Schedule(**base, heun=True))
    assert np.max(np.abs(r0.energy - r1.energy)) > 1e-6
    assert np.max(np.abs(r0.energy - r2.energy)) > 1e-6


def test_previous_without_state_starts_feedforward():
    """INIT_PREVIOUS with no ``x_init``: the feedforward start, as the layered backend without a previous state."""
    lay, plan, st = _pair((0.3, 0, 0))
    X, Y = _data()
    rl = lay.backend.run_batch(X, Y, RunSpec(mode=MODE_NUDGE, beta=0.5, init=INIT_PREVIOUS, n_steps=8, dt=0.1))
    rg = run_reference(plan, st, X, Y, Schedule(n_steps=8, rate=0.1, clamp=False, beta=0.5, init=INIT_PREVIOUS))
    _compare(rl, lay, rg)


def test_y0_is_the_prediction_at_the_start():
    """y0 = mu_out at the initial state (layered BatchResult.y0): for init='zeros' the prediction from zeros."""
    _, plan, st = _pair()
    X, Y = _data()
    rf = run_reference(plan, st, X, Y, Schedule(n_steps=3))
    rz = run_reference(plan, st, X, Y, Schedule(n_steps=3, init=INIT_ZEROS))
    b3 = plan.param_view(st.theta, plan.param_index("b3"))
    _close(rz.y0, np.broadcast_to(b3, rz.y0.shape))     # mu_out = W3 tanh(0) + b3
    assert np.max(np.abs(rf.y0 - rz.y0)) > 1e-3


# ------------------------------------------------------------------------------------------------ divergence
def test_divergence_keeps_records_and_matches_layered():
    lay, plan, st = _pair(phi="linear")
    X, Y = _data()
    spec = RunSpec(mode=MODE_NUDGE, beta=0.5, n_steps=3000, dt=3.0, probe_every=2, probe_item=1)
    with np.errstate(all="ignore"):
        rl = lay.backend.run_batch(X, Y, spec)
        rg = run_reference(plan, st, X, Y, Schedule(n_steps=3000, rate=3.0, clamp=False, beta=0.5,
                                                    record_every=2, record_item=1))
    assert rl.status == 1 and rg.status == 1
    assert rg.fail_step == rl.fail_step and rg.fail_vertex == rl.fail_pop and rg.steps == rg.fail_step
    assert rg.energy.shape == (rg.fail_step + 1, plan.n_vertices)
    assert np.array_equal(rg.rec_steps, np.arange(0, rg.fail_step + 1, 2))
    ok = rg.rec_steps < rg.fail_step - 40   # well before the blow-up the records agree to rounding
    _close(rg.rec_x[ok], rl.rec_x[ok], 1e-9)
    _close(rg.energy[:10], rl.energy[:10])


# ------------------------------------------------------------------------------------------------ closed form
@pytest.mark.parametrize("tau_eps", [0.0, 0.4])
def test_nudged_linear_chain_reaches_its_equilibrium_with_tol(tau_eps):
    """input -> h -> out, all linear: the nudged equilibrium solves (h - A u) - B^T (o - B h) = 0 and
    pi_o (o - B h) = beta (y - o) (precisions pi_h = 1, pi_o)."""
    A_, B_, pi_o, beta = np.array([[0.5, -1.0], [0.3, 0.8], [1.0, 0.2]]), np.array([[0.7, -0.4, 0.2]]), 2.0, 0.5
    g = Graph([Input("u", 2), Dense("h", "u", 3, weights="A", bias=False, tau_eps=tau_eps),
               Dense("out", "h", 1, weights="B", bias=False, precision=pi_o, tau_eps=tau_eps)], "out")
    plan = lower_graph(g)
    st = ParamState(plan)
    plan.param_view(st.theta, plan.param_index("A"))[...] = A_
    plan.param_view(st.theta, plan.param_index("B"))[...] = B_
    u, y = np.array([[1.0, -2.0], [0.5, 0.3]]), np.array([[2.0], [-1.0]])
    n_steps, tol = 20000, 1e-9
    r = run_reference(plan, st, u, y, Schedule(n_steps=n_steps, rate=0.2, clamp=False, beta=beta, tol=tol))
    assert r.status == 0 and 0 < r.steps < n_steps and r.energy.shape == (r.steps + 1, 3)
    # linear system in z = (h, o) per item
    M = np.zeros((4, 4))
    M[:3, :3] = np.eye(3) + pi_o * B_.T @ B_
    M[:3, 3] = -pi_o * B_[0]
    M[3, :3] = -pi_o * B_[0]
    M[3, 3] = pi_o + beta
    for b in range(u.shape[0]):
        rhs = np.concatenate([A_ @ u[b], beta * y[b]])
        z = np.linalg.solve(M, rhs)
        assert np.max(np.abs(r.x[b, 2:] - z)) < 1e-7
    # the stop is the first step with max |dx/dt|, |deps/dt| < tol
    r2 = run_reference(plan, st, u, y, Schedule(n_steps=r.steps - 1, rate=0.2, clamp=False, beta=beta))
    assert np.allclose(r2.energy, r.energy[:-1], rtol=1e-12, atol=1e-300)


def test_tol_on_the_error_units_alone():
    """Only the error units move (clamped output, no free vertex): from eps_init = 0 the Euler steps give
    d eps/dt at step k = r (1 - a)^k / tau_eps with r = Y - mu, a = rate / (tau_eps pi); the run stops at the
    first k with max |d eps/dt| < tol, with eps_k = pi r (1 - (1 - a)^k)."""
    te, pi, rate, tol = 0.5, 2.0, 0.1, 1e-4
    g = Graph([Input("u", 2), Dense("out", "u", 3, weights="W", precision=pi, tau_eps=te)], "out")
    plan = lower_graph(g)
    st = ParamState(plan)
    u, y = np.array([[1.0, -0.5]]), np.array([[0.3, -1.2, 2.0]])
    mu = u @ plan.param_view(st.theta, 0).T
    r = y - mu
    a = rate / (te * pi)
    k_stop = next(k for k in range(10000) if np.max(np.abs(r)) * (1 - a) ** k / te < tol)
    res = run_reference(plan, st, u, y, Schedule(n_steps=10000, rate=rate, tol=tol, init=INIT_PREVIOUS),
                        x_init=np.zeros((1, plan.n_units)), eps_init=np.zeros((1, plan.n_units)))
    assert res.steps == k_stop > 10
    _close(res.eps[:, plan.units(1)], pi * r * (1 - (1 - a) ** k_stop))
    _close(res.energy[:, 1], np.full(k_stop + 1, 0.5 * pi * np.sum(r * r)))   # the energy uses x - mu


# ------------------------------------------------------------------------------------------------ iPC
@pytest.mark.parametrize("mode,every,item", [("clamp", 2, 1), ("nudge", 3, 0), ("clamp", 0, 0)])
def test_ipc_equals_layered_ipc(mode, every, item):
    lay, plan, st = _pair(lr=0.1)
    X, Y = _data(B=5)
    mcode, clamp, beta = MODES[mode]
    n, gamma = 7, 0.15
    spec = RunSpec(mode=mcode, beta=beta, n_steps=n, dt=gamma, learn=True, probe_every=every, probe_item=item)
    rl = layered_ipc.run_batch(lay, X, Y, spec, dict(layered_ipc.OPTIONS))
    rg = run_reference(plan, st, X, Y, Schedule(algo=ALG_IPC, n_steps=n, rate=gamma, clamp=clamp, beta=beta,
                                                learn=True, record_every=every, record_item=item))
    assert rg.steps == rl.steps == n
    _close(rg.energy, rl.energy)
    _close(rg.y0, rl.y0)
    _close(rg.y, rl.y)
    assert np.array_equal(rg.rec_steps, rl.rec_steps)
    for f in ("rec_x", "rec_eps", "rec_mu"):
        _close(getattr(rg, f), getattr(rl, f))
    _weights_close(lay, plan, st)   # n weight updates, one per step


def test_ipc_directions_are_the_sum_of_the_applied_steps():
    """Plain SGD: theta_end - theta_0 = lr * directions (directions = the sum of the per-step directions)."""
    _, plan, st = _pair(lr=0.1, momentum=0.0)
    X, Y = _data()
    th0 = st.theta.copy()
    r = run_reference(plan, st, X, Y, Schedule(algo=ALG_IPC, n_steps=6, rate=0.2, learn=True))
    _close(st.theta - th0, 0.1 * r.directions)
    assert np.max(np.abs(st.theta - th0)) > 1e-4


@pytest.mark.parametrize("tau_eps,init,tol", [((0.3, 0, 0.5), INIT_ZEROS, 0.0), ((0, 0, 0), INIT_ZEROS, 2e-3),
                                              ((0.2, 0.2, 0), INIT_FEEDFORWARD, 1e-3)])
def test_ipc_without_learning_is_the_pc_trajectory(tau_eps, init, tol):
    """learn=False: iPC's values follow PC's Euler flow, tau_eps / init / tol included (layered PC as oracle)."""
    lay, plan, st = _pair(tau_eps)
    X, Y = _data()
    rl = lay.backend.run_batch(X, Y, RunSpec(mode=MODE_NUDGE, beta=0.4, init=init, n_steps=300, tol=tol, dt=0.2,
                                             probe_every=5))
    rg = run_reference(plan, st, X, Y, Schedule(algo=ALG_IPC, n_steps=300, rate=0.2, clamp=False, beta=0.4,
                                                init=init, tol=tol, record_every=5))
    _compare(rl, lay, rg)
    if tol > 0:
        assert rg.steps < 300


# ------------------------------------------------------------------------------------------------ guards
def test_bad_settings_are_refused():
    _, plan, st = _pair()
    X, Y = _data()
    with pytest.raises(ValueError, match="PC and iPC only"):
        run_reference(plan, st, X, Y, Schedule(algo=ALG_FPA, tol=1e-3))
    with pytest.raises(ValueError, match="Euler"):
        run_reference(plan, st, X, Y, Schedule(algo=ALG_IPC, heun=True))
    with pytest.raises(ValueError, match="x_init"):
        run_reference(plan, st, X, Y, Schedule(init=INIT_PREVIOUS), x_init=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="target Y"):
        run_reference(plan, st, X, None, Schedule(clamp=False, beta=0.5))
