"""The numba graph engine's run settings (error states, nudge, init, tol, Heun, dt_decay, records, iPC, float32).

Oracles: on a graph of Dense vertices (``ng.mlp``) against the LAYERED NumPy reference of the same network
(``ns.hierarchy`` with the graph's weights copied), which implements every setting for layered circuits; on
CNN / LSTM graphs the settings at their neutral or limiting values, and identities between schedules.
"""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim import graph as ng
from neurosim.algorithms import ipc
from neurosim.backends.base import EULER, HEUN, MODE_CLAMP, MODE_FREE, MODE_NUDGE, RunSpec
from neurosim.backends.base import INIT_PREVIOUS as L_PREVIOUS
from neurosim.backends.base import INIT_ZEROS as L_ZEROS
from neurosim.backends.reference import ReferenceBackend
from neurosim.graph.base import (ALG_BP, ALG_IPC, ALG_PC, ALG_ZIL, INIT_PREVIOUS, INIT_ZEROS, ParamState, Schedule,
                                 used_at_level)
from neurosim.graph.numba_engine import NumbaGraphEngine
from neurosim.graph.plan import OP_INPUT, ROLE_FREE, V_OP, V_ROLE, VF_TAU, VF_TAU_EPS, lower_graph
from neurosim.plan import lower

SIZES = [3, 5, 2]
PLAST = ns.Hebbian(lr=0.05, optimizer=ns.SGD(momentum=0.9))
RTOL, ATOL = 1e-10, 1e-12


@pytest.fixture(scope="module")
def engine():
    return NumbaGraphEngine()


def _close(a, b, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


def _data(n_in, n_out, B=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, n_in)), rng.normal(size=(B, n_out))


def _pair(tau_x=1.0, tau_eps=0.0, out_prec=1.0):
    """An MLP graph plan with its ParamState and the layered reference backend of the same network and weights."""
    g = ng.mlp(SIZES, phi="tanh", output_precision=out_prec, plasticity=PLAST)
    plan = lower_graph(g, seed=0)
    comp = plan.VI[:, V_OP] != OP_INPUT
    plan.VF[comp, VF_TAU] = tau_x
    plan.VF[comp, VF_TAU_EPS] = tau_eps
    st = ParamState(plan)
    be = ReferenceBackend(lower(ns.hierarchy(SIZES, "tanh", tau_x=tau_x, tau_eps=tau_eps, output_precision=out_prec,
                                             lr=0.05), seed=0))
    for k in range(len(SIZES) - 1):
        be.weight(k)[:] = st.view(plan.param_index(f"W{k + 1}"))
        be.bias(k)[:] = st.view(plan.param_index(f"b{k + 1}"))
    return plan, st, be


def _same_weights(plan, st, be):
    for k in range(len(SIZES) - 1):
        _close(st.view(plan.param_index(f"W{k + 1}")), be.weight(k))
        _close(st.view(plan.param_index(f"b{k + 1}")), be.bias(k))


def _same_run(res, lres, be, records=True):
    assert res.status == lres.status == 0
    assert res.steps == lres.steps
    _close(res.energy, lres.energy)
    _close(res.x, be.x)
    _close(res.eps, be.eps)
    _close(res.mu, be._mu)
    _close(res.y, lres.y)
    if records:
        assert len(lres.rec_steps) > 1
        np.testing.assert_array_equal(res.rec_steps, lres.rec_steps)
        _close(res.rec_x, lres.rec_x)
        _close(res.rec_eps, lres.rec_eps)
        _close(res.rec_mu, lres.rec_mu)


# ----------------------------------------------------------------------------------------------- PC vs layered
@pytest.mark.parametrize("heun", [False, True])
def test_error_states_and_records_equal_layered(engine, heun):
    plan, st, be = _pair(tau_x=1.3, tau_eps=0.4, out_prec=2.0)
    X, Y = _data(3, 2)
    sch = Schedule(ALG_PC, 12, 0.1, True, True, heun=heun, record_every=5, record_item=1)
    res = engine.run(plan, st, X, Y, sch)
    lres = be.run_batch(X, Y, RunSpec(mode=MODE_CLAMP, n_steps=12, dt=0.1, learn=True, probe_every=5, probe_item=1,
                                      integrator=HEUN if heun else EULER))
    _same_run(res, lres, be)
    _close(res.y0, lres.y0)
    _same_weights(plan, st, be)
    # the error state is not prec (x - mu): it lags behind
    assert np.max(np.abs(res.eps - 2.0 * (res.x - res.mu))) > 1e-3


@pytest.mark.parametrize("heun", [False, True])
def test_nudge_equals_layered(engine, heun):
    plan, st, be = _pair(tau_x=0.8)
    X, Y = _data(3, 2, seed=1)
    sch = Schedule(ALG_PC, 15, 0.1, False, True, beta=0.7, heun=heun, record_every=3)
    res = engine.run(plan, st, X, Y, sch)
    lres = be.run_batch(X, Y, RunSpec(mode=MODE_NUDGE, beta=0.7, n_steps=15, dt=0.1, learn=True, probe_every=3,
                                      integrator=HEUN if heun else EULER))
    _same_run(res, lres, be)
    _same_weights(plan, st, be)
    assert np.max(np.abs(res.y - res.y0)) > 1e-2  # the output moved


def test_init_zeros_and_previous_equal_layered(engine):
    plan, st, be = _pair(tau_eps=0.5)
    X, Y = _data(3, 2, seed=2)
    for mode, clamp in ((MODE_CLAMP, True), (MODE_FREE, False)):
        sch = Schedule(ALG_PC, 8, 0.2, clamp, False, init=INIT_ZEROS, record_every=4)
        res = engine.run(plan, st, X, Y, sch)
        lres = be.run_batch(X, Y, RunSpec(mode=mode, init=L_ZEROS, n_steps=8, dt=0.2, probe_every=4))
        _same_run(res, lres, be)
        assert np.all(res.rec_x[0, 3:8] == 0)  # the hidden vertex started at 0
    # continue from the state reached (layered: the backend keeps it) with new inputs and targets
    X2, Y2 = _data(3, 2, seed=3)
    sch = Schedule(ALG_PC, 6, 0.2, True, True, init=INIT_PREVIOUS, record_every=2)
    res2 = engine.run(plan, st, X2, Y2, sch, x_init=res.x, eps_init=res.eps)
    lres2 = be.run_batch(X2, Y2, RunSpec(mode=MODE_CLAMP, init=L_PREVIOUS, n_steps=6, dt=0.2, learn=True,
                                         probe_every=2))
    _same_run(res2, lres2, be)
    _same_weights(plan, st, be)
    _close(res2.rec_x[0, 3:8], res.x[:, 3:8][0])  # started where the last run ended


def test_tol_stops_like_layered(engine):
    plan, st, be = _pair(tau_eps=0.3)
    X, Y = _data(3, 2, seed=4)
    sch = Schedule(ALG_PC, 400, 0.2, True, True, tol=1e-3, record_every=7)
    res = engine.run(plan, st, X, Y, sch)
    lres = be.run_batch(X, Y, RunSpec(mode=MODE_CLAMP, n_steps=400, dt=0.2, tol=1e-3, learn=True, probe_every=7))
    assert 5 < res.steps < 400
    assert res.energy.shape == (res.steps + 1, plan.n_vertices)
    _same_run(res, lres, be)
    _same_weights(plan, st, be)


def test_dt_decay_equals_layered(engine):
    plan, st, be = _pair()
    X, Y = _data(3, 2, seed=5)
    X, Y = 3 * X, 3 * Y
    sch = Schedule(ALG_PC, 25, 1.6, True, False, dt_decay=0.5)
    res = engine.run(plan, st, X, Y, sch)
    lres = be.run_batch(X, Y, RunSpec(mode=MODE_CLAMP, n_steps=25, dt=1.6, dt_decay=0.5))
    _same_run(res, lres, be, records=False)
    plain = engine.run(plan, st, X, Y, Schedule(ALG_PC, 25, 1.6, True, False))
    assert np.max(np.abs(plain.x - res.x)) > 1e-3  # the decay did happen


def test_records_of_an_item_beyond_the_batch_are_empty(engine):
    plan, st, _ = _pair()
    X, Y = _data(3, 2)
    res = engine.run(plan, st, X, Y, Schedule(ALG_PC, 5, 0.1, record_every=1, record_item=4))
    assert res.rec_x.shape == (0, plan.n_units) and res.rec_steps.shape == (0,)
    res = engine.run(plan, st, X, Y, Schedule(ALG_PC, 5, 0.1, record_every=2, record_item=3))
    np.testing.assert_array_equal(res.rec_steps, [0, 2, 4])
    _close(res.rec_x[-1], engine.run(plan, st, X, Y, Schedule(ALG_PC, 4, 0.1)).x[3])


# ----------------------------------------------------------------------------------------------- iPC vs layered
@pytest.mark.parametrize("mode", [MODE_CLAMP, MODE_NUDGE])
def test_ipc_equals_layered(engine, mode):
    plan, st, _ = _pair(tau_x=1.2)
    circ = ns.hierarchy(SIZES, "tanh", tau_x=1.2, lr=0.05)
    sim = ns.Simulator(circ, backend="reference", seed=0)
    for k in range(len(SIZES) - 1):
        sim.backend.weight(k)[:] = st.view(plan.param_index(f"W{k + 1}"))
        sim.backend.bias(k)[:] = st.view(plan.param_index(f"b{k + 1}"))
    X, Y = _data(3, 2, seed=6)
    beta = 0.6 if mode == MODE_NUDGE else 0.0
    res = engine.run(plan, st, X, Y, Schedule(ALG_IPC, 9, 0.15, mode == MODE_CLAMP, True, beta=beta, record_every=4))
    lres = ipc.run_batch(sim, X, Y, RunSpec(mode=mode, beta=beta, n_steps=9, dt=0.15, learn=True, probe_every=4),
                         {**ipc.OPTIONS, "gamma": 0.15})
    assert res.steps == lres.steps == 9
    _close(res.energy, lres.energy)
    _close(res.y, lres.y)
    _close(res.y0, lres.y0)
    np.testing.assert_array_equal(res.rec_steps, lres.rec_steps)
    for a, b in ((res.rec_x, lres.rec_x), (res.rec_eps, lres.rec_eps), (res.rec_mu, lres.rec_mu)):
        _close(a, b)
    _same_weights(plan, st, sim.backend)
    assert np.all(st.opt_t[[plan.param_index("W1"), plan.param_index("b2")]] == 9)  # one update per step


# ----------------------------------------------------------------------------------------------- CNN and LSTM
def _graphs():
    cnn = ng.cnn((1, 6, 6), channels=(2,), n_out=3, hidden=(4,), phi="tanh",
                 plasticity=ns.Hebbian(lr=0.02, optimizer=ns.Adam()))
    lstm = ng.lstm(2, 3, 2, steps=2, plasticity=ns.Hebbian(lr=0.02))
    return {"cnn": cnn, "lstm": lstm}


@pytest.fixture(scope="module", params=["cnn", "lstm"])
def net(request):
    plan = lower_graph(_graphs()[request.param], seed=1)
    X, Y = _data(plan.n_input, plan.n_output, B=3, seed=7)
    return plan, X, Y


def _movable_cols(plan):
    return np.concatenate([np.arange(plan.units(i).start, plan.units(i).stop) for i in range(plan.n_vertices)
                           if plan.VI[i, V_ROLE] == ROLE_FREE])


def test_neutral_settings_change_nothing(engine, net):
    plan, X, Y = net
    base = engine.run(plan, ParamState(plan), X, Y, Schedule(ALG_PC, 6, 0.1, True, True))
    st = ParamState(plan)
    res = engine.run(plan, st, X, Y, Schedule(ALG_PC, 6, 0.1, True, True, tol=1e-300, dt_decay=1.0, record_every=0))
    assert res.steps == 6
    for a, b in ((res.energy, base.energy), (res.x, base.x), (res.eps, base.eps), (res.directions, base.directions)):
        _close(a, b)
    assert res.rec_x.shape == (0, plan.n_units)


def test_heun_is_second_order(engine, net):
    """Against a fine Euler solution, halving the step quarters Heun's error and halves Euler's."""
    plan, X, Y = net
    st = ParamState(plan)
    ref = engine.run(plan, st, X, Y, Schedule(ALG_PC, 6 * 2048, 0.1 / 2048)).x

    def err(k, heun):
        return np.max(np.abs(engine.run(plan, st, X, Y, Schedule(ALG_PC, 6 * k, 0.1 / k, heun=heun)).x - ref))

    euler, heun = err(1, False) / err(2, False), err(1, True) / err(2, True)
    assert 1.7 < euler < 2.5
    assert heun > 3.5
    assert err(1, True) < 0.3 * err(1, False)


def test_error_state_lags_one_step_when_rate_equals_tau_eps(engine, net):
    """With precision 1 and dt = tau_eps the Euler step gives eps_{t+1} = x_t - mu_t exactly."""
    plan0, X, Y = net
    plan = lower_graph(plan0.graph, seed=1)
    comp = plan.VI[:, V_OP] != OP_INPUT
    plan.VF[comp, VF_TAU_EPS] = 0.1
    res = engine.run(plan, ParamState(plan), X, Y, Schedule(ALG_PC, 5, 0.1, record_every=1, record_item=2))
    cols = np.concatenate([np.arange(plan.units(i).start, plan.units(i).stop) for i in np.flatnonzero(comp)])
    _close(res.rec_eps[1:, cols], (res.rec_x[:-1] - res.rec_mu[:-1])[:, cols])
    _close(res.rec_eps[0, cols], (res.rec_x[0] - res.rec_mu[0])[cols])


def test_previous_init_continues_a_run(engine, net):
    plan0, X, Y = net
    plan = lower_graph(plan0.graph, seed=1)
    plan.VF[plan.VI[:, V_OP] != OP_INPUT, VF_TAU_EPS] = 0.7
    st = ParamState(plan)
    full = engine.run(plan, st, X, Y, Schedule(ALG_PC, 9, 0.1))
    first = engine.run(plan, st, X, Y, Schedule(ALG_PC, 4, 0.1))
    second = engine.run(plan, st, X, Y, Schedule(ALG_PC, 5, 0.1, init=INIT_PREVIOUS), x_init=first.x,
                        eps_init=first.eps)
    _close(second.energy, full.energy[4:])
    _close(second.x, full.x)
    _close(second.eps, full.eps)
    _close(first.y0, full.y0)   # y0: the output's prediction at the initial state (the layered convention)
    _close(second.y0, first.mu[:, plan.units(plan.target)])
    with pytest.raises(ValueError, match="x_init"):
        engine.run(plan, st, X, Y, Schedule(ALG_PC, 5, 0.1, init=INIT_PREVIOUS))
    with pytest.raises(ValueError, match="n_units"):
        engine.run(plan, st, X, Y, Schedule(ALG_PC, 5, 0.1, init=INIT_PREVIOUS), x_init=first.x[:, 1:])


def test_zeros_init_and_nudge(engine, net):
    plan, X, Y = net
    st = ParamState(plan)
    res = engine.run(plan, st, X, Y, Schedule(ALG_PC, 30, 0.1, False, False, beta=0.5, init=INIT_ZEROS,
                                              record_every=30, record_item=0))
    cols = _movable_cols(plan)
    assert np.all(res.rec_x[0, cols] == 0)
    out = plan.units(plan.target)
    assert np.all(res.rec_x[0, out] == 0)  # an unclamped output starts at 0 too
    free = engine.run(plan, st, X, Y, Schedule(ALG_PC, 30, 0.1, False, False, init=INIT_ZEROS))
    assert np.linalg.norm(res.y - Y) < np.linalg.norm(free.y - Y)  # the nudge pulls the output to the target
    with pytest.raises(ValueError, match="nudging"):
        engine.run(plan, st, X, None, Schedule(ALG_PC, 3, 0.1, False, False, beta=0.5))


def test_ipc_without_learning_is_pc_and_one_step_is_one_pc_update(engine, net):
    plan0, X, Y = net
    plan = lower_graph(plan0.graph, seed=1)
    plan.VF[plan.VI[:, V_OP] != OP_INPUT, VF_TAU_EPS] = 0.5
    pc = engine.run(plan, ParamState(plan), X, Y, Schedule(ALG_PC, 7, 0.1, record_every=3))
    ip = engine.run(plan, ParamState(plan), X, Y, Schedule(ALG_IPC, 7, 0.1, record_every=3))
    for a, b in ((pc.energy, ip.energy), (pc.x, ip.x), (pc.eps, ip.eps), (pc.rec_mu, ip.rec_mu),
                 (pc.directions, ip.directions)):
        _close(a, b)
    s_pc, s_ip = ParamState(plan), ParamState(plan)
    engine.run(plan, s_pc, X, Y, Schedule(ALG_PC, 0, 0.1, True, True))
    engine.run(plan, s_ip, X, Y, Schedule(ALG_IPC, 1, 0.1, True, True))
    _close(s_ip.theta, s_pc.theta)
    assert np.max(np.abs(s_ip.theta - plan.theta0)) > 1e-6


def test_ipc_tol_stops_as_a_shorter_run(engine, net):
    plan, X, Y = net
    st = ParamState(plan)
    res = engine.run(plan, st, X, Y, Schedule(ALG_IPC, 500, 0.3, True, True, tol=2e-3))
    assert 0 < res.steps < 500
    st2 = ParamState(plan)
    short = engine.run(plan, st2, X, Y, Schedule(ALG_IPC, res.steps, 0.3, True, True))
    _close(res.energy, short.energy)
    _close(st.theta, st2.theta)


@pytest.mark.parametrize("algo", [ALG_PC, ALG_IPC, ALG_ZIL, ALG_BP])
def test_float32_runs_close_to_float64(engine, net, algo):
    plan, X, Y = net
    n = {ALG_PC: 6, ALG_IPC: 6, ALG_ZIL: plan.depth, ALG_BP: 0}[algo]
    used = used_at_level(plan, n) if algo == ALG_ZIL else None
    out = {}
    for dt in (np.float64, np.float32):
        st = ParamState(plan, dt)
        zil = algo == ALG_ZIL
        res = engine.run(plan, st, X, Y, Schedule(algo, n, 1.0 if zil else 0.1, True, True, wavefront=zil,
                                                  record_every=2), used)
        assert res.status == 0
        out[dt] = (res, st)
    (r64, s64), (r32, s32) = out[np.float64], out[np.float32]
    assert r32.x.dtype == r32.y0.dtype == r32.directions.dtype == s32.theta.dtype == np.float32
    assert r32.energy.dtype == np.float64
    assert r32.steps == r64.steps
    _close(r32.energy, r64.energy, rtol=1e-4, atol=1e-6)
    _close(r32.x, r64.x, rtol=1e-4, atol=1e-5)
    _close(r32.directions, r64.directions, rtol=1e-3, atol=1e-5)
    _close(s32.theta, s64.theta, rtol=1e-4, atol=1e-6)
    if algo in (ALG_PC, ALG_IPC):
        _close(r32.rec_x, r64.rec_x, rtol=1e-4, atol=1e-5)
