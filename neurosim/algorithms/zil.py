r"""``zil``: zero-divergence inference learning (Song, Lukasiewicz, Xu & Bogacz 2020; Salvatori et al. 2022).

Standard PC dynamics (predictions recomputed from the current values), with three conditions:

* **C1** the values start at the feedforward pass (all hidden errors are 0 at :math:`t = 0`), the output
  is clamped to the target;
* **C2** the weights of projection :math:`k` are updated exactly once, at the step :math:`t = d(k)` equal to
  the distance of its ``post`` population from the output (the output's own projection at :math:`t = 0`,
  the input layer's at :math:`t = L - 1`), from :math:`\varepsilon_{post}(t)` and the current
  :math:`\phi(x_{pre}(t))`;
* **C3** inference rate :math:`\gamma = 1`: :math:`x \leftarrow x + (\gamma/\tau_x)(-\varepsilon +
  J^T\varepsilon_{above})`.

Update order within a step is synchronous: the drive is computed from the state (and weights) at step
:math:`t`, then the weights due at :math:`t` are updated, then the values advance.  Because the parents of
a population at distance :math:`d` only start moving at :math:`t = d + 1`, :math:`\varepsilon_l(d)` equals
backprop's :math:`-\delta_l` and the update equals the BP-SGD update exactly (for :math:`\gamma\pi_l/\tau_x = 1` in
every hidden population: the default :math:`\gamma = 1` at :math:`\pi = \tau_x = 1`, else
:math:`\gamma = \tau_x/\pi` where that ratio is the same everywhere -- in an unlevelled circuit including the
identity populations levelling inserts, of precision 1; the default warns when it is not exact).  The graph must be *levelled* (every path from a population to the output has
the same length); residual *layers* (skip inside a projection, :func:`neurosim.mupc.mupc_network`) are
levelled.  An unlevelled DAG (a projection that jumps over levels) is levelled when Z-IL runs
(:func:`level_circuit`): identity populations are inserted on the short paths, as the graph Z-IL does
(:func:`neurosim.graph.level`); the weights, their names and the results stay the circuit's own.

Options: ``gamma`` (1.0; the negative control is e.g. 0.9), ``update_all_at_zero`` (False; True updates
every projection at :math:`t = 0`, the second negative control), and the output options
``output_precision``, ``beta``, ``compensate``.  ``train(steps=..., dt=...)`` are not used: the schedule has
``L`` steps.

Backends: ``reference`` (the NumPy loop, the specification), ``numba`` (the graph kernels on the circuit's
levelled vertex form, :mod:`neurosim.algorithms._twin`) and ``brian2`` in ``mode="rate"``: the rate network with brian2's ``dt`` = :math:`\gamma`, in which the optimiser step of
projection :math:`k` is a ``run_regularly`` operation of its weight group gated to the time step :math:`d(k)`
(brian2 computes every input from the state at :math:`t` before the weights and then the values advance,
the synchronous order above); :meth:`~neurosim.backends.brian2.Brian2Backend.run_sweep`.  The spiking mode
refuses.
"""
from __future__ import annotations

import numpy as np

import dataclasses

from ..backends.base import BatchResult, RunSpec
from ..circuit import Circuit, ErrorPopulation, Projection
from ..errors import UnsupportedError
from ..plan import ROLE_FREE, lower
from ._common import OUTPUT_OPTIONS, NumpyNet, as_batch, check_common, diverged, observe, output_settings, \
    rec_buffers, tables, uses_numba, warn_if_not_exact
from . import check_backend, register

OPTIONS = {"gamma": 1.0, "update_all_at_zero": False, **OUTPUT_OPTIONS}


def level_circuit(circuit: Circuit, plan=None) -> Circuit:
    r"""The circuit with identity populations inserted so that every projection out of a free population spans
    exactly one level (its longest path to the target), what Z-IL needs.

    A projection ``pre -> post`` with :math:`s = \mathrm{depth}(pre) - \mathrm{depth}(post) > 1` is moved to start
    at the end of a chain ``pre -> <post>.lvl.<pre>.1 -> ... -> <post>.lvl.<pre>.<s-1>`` of identity skips
    (``Projection(weights=False, skip=True)``, one chain per (pre, post) pair).  A chain population copies ``pre``
    (size, activation, ``tau_x``) and has an error unit of precision 1 (``tau_eps`` 0), so at the feedforward
    state it equals ``pre`` and the moved projection (same name, weights, bias, multiplier, plasticity) predicts
    what it predicted; the computed function and the BP gradient are unchanged.  Projections out of inputs need
    no chain (inputs never move).  A levelled circuit is returned unchanged.
    """
    from ._common import distances
    p = lower(circuit, 0) if plan is None else plan
    depth, _, levelled, problem = distances(p)
    if levelled:
        return circuit
    for k in range(p.n_proj):
        if p.proj_pre[k] == p.target_pop:
            raise UnsupportedError(f"algorithm 'zil' cannot level circuit {circuit.name!r}: {problem}")
    pops = {v.name: v for v in circuit.populations}
    names = set(pops) | {e.name for e in circuit.errors} | {pr.name for pr in circuit.projections}
    chains = {}
    new_pops, new_errs, new_projs = [], [], []
    projs = []
    for pr in circuit.projections:
        i, j = p.pop_names.index(pr.pre), p.pop_names.index(pr.post)
        span = int(depth[i] - depth[j]) if depth[i] >= 0 and depth[j] >= 0 else 1
        if p.pop_role[i] != ROLE_FREE or span <= 1:
            projs.append(pr)
            continue
        if (pr.pre, pr.post) not in chains:
            prev = pr.pre
            for step in range(1, span):
                nm = f"{pr.post}.lvl.{pr.pre}.{step}"
                while nm in names:
                    nm += "_"
                names.add(nm)
                en, ln = nm + ".eps", nm + ".in"
                while en in names:
                    en += "_"
                names.add(en)
                while ln in names:
                    ln += "_"
                names.add(ln)
                new_pops.append(dataclasses.replace(pops[pr.pre], name=nm))
                new_errs.append(ErrorPopulation(en, nm, 0.0, 1.0))
                new_projs.append(Projection(ln, prev, nm, skip=True, weights=False, plasticity=None))
                prev = nm
            chains[(pr.pre, pr.post)] = prev
        projs.append(dataclasses.replace(pr, pre=chains[(pr.pre, pr.post)]))
    return dataclasses.replace(circuit, populations=tuple(circuit.populations) + tuple(new_pops),
                               errors=tuple(circuit.errors) + tuple(new_errs),
                               projections=tuple(new_projs) + tuple(projs))


class _Levelled:
    """Z-IL of an unlevelled layered circuit on its levelled twin (:func:`level_circuit`): a simulator of the
    levelled circuit whose parameters and optimiser state are copied from (and back to) the user's simulator
    around every call, matched by projection name; results are reported in the user's plan layout."""

    def __init__(self, sim):
        from ..simulator import Simulator
        lev = level_circuit(sim.circuit, sim.plan)
        self.sim = Simulator(lev, backend=sim.backend_name, dt=sim.dt, dtype=sim.dtype, seed=0,
                             backend_options=dict(sim.backend_options) or None)
        p, q = sim.plan, self.sim.plan
        self.proj = [q.proj_names.index(n) for n in p.proj_names]            # user k -> levelled k
        self.back = {kq: k for k, kq in enumerate(self.proj)}
        self.pops = [q.pop_names.index(n) for n in p.pop_names]
        self.units = np.concatenate([np.arange(q.units(n).start, q.units(n).stop) for n in p.pop_names]) \
            if p.n_units else np.zeros(0, np.int64)
        # a population of the levelled plan reported as the user's: itself, or the population its chain copies
        self.pop_of = {}
        for jq, n in enumerate(q.pop_names):
            if n in p.pop_names:
                self.pop_of[jq] = p.pop_names.index(n)
        for pr in lev.projections:
            jq = q.pop_names.index(pr.post)
            if jq not in self.pop_of and pr.pre in p.pop_names:
                self.pop_of[jq] = p.pop_names.index(pr.pre)
        for jq in range(q.n_pops):   # chains longer than one: follow them back
            while jq not in self.pop_of:
                pre = next(pr.pre for pr in lev.projections if pr.post == q.pop_names[jq])
                self.pop_of[jq] = self.pop_of.get(q.pop_names.index(pre), -1)

    def _copy(self, src_sim, dst_sim, to_levelled: bool):
        a, b = src_sim.backend, dst_sim.backend
        pa, pb = src_sim.plan, dst_sim.plan
        for k, kq in enumerate(self.proj):
            ka, kb = (k, kq) if to_levelled else (kq, k)
            if pa.w_off[ka] >= 0:
                n = int(np.prod(pa.weight_shape(ka)))
                oa, ob = pa.w_off[ka], pb.w_off[kb]
                for name in ("W", "mW", "vW"):
                    getattr(b, name)[ob:ob + n] = getattr(a, name)[oa:oa + n]
            if pa.b_off[ka] >= 0:
                n = int(pa.pop_size[pa.proj_post[ka]])
                oa, ob = pa.b_off[ka], pb.b_off[kb]
                for name in ("b", "mb", "vb"):
                    getattr(b, name)[ob:ob + n] = getattr(a, name)[oa:oa + n]
            b.opt_t[kb] = a.opt_t[ka]

    def run(self, sim, impl, X, Y, spec, gamma, allz, options, want_dirs):
        inner = self.sim
        st = output_settings("zil", inner.plan, options, inner.backend.dtype)
        t = tables(inner.plan)
        post_d = [int(t.dist[inner.plan.proj_post[k]]) for k in range(inner.plan.n_proj)]
        n_upd = 1 + max([d for d in post_d if d >= 0] + [0])
        self._copy(sim, inner, True)
        # the backend's counters travel too (brian2 counts its runs and seeds each from the count): the twin
        # continues the user's simulator's and hands them back, so its runs are the user's backend's runs
        inner.backend.set_checkpoint_state(sim.backend.checkpoint_state())
        res, dirs = impl(inner, X, Y, spec, gamma, allz, n_upd, t.dist, st, spec.learn, want_dirs)
        sim.backend.set_checkpoint_state(inner.backend.checkpoint_state())
        self._copy(inner, sim, False)
        fail = self.pop_of.get(int(res.fail_pop), -1) if res.fail_pop >= 0 else -1
        res = dataclasses.replace(res, energy=np.asarray(res.energy)[:, self.pops], fail_pop=fail,
                                  rec_x=res.rec_x[:, self.units], rec_eps=res.rec_eps[:, self.units],
                                  rec_mu=res.rec_mu[:, self.units])
        if dirs is not None:
            dirs = tuple({self.back[kq]: v for kq, v in d.items()} for d in dirs)
        return res, dirs


def _settings(sim, options):
    gamma = float(options.get("gamma", 1.0))
    if not (np.isfinite(gamma) and gamma > 0):
        raise ValueError(f"algorithm 'zil': gamma must be finite and > 0, got {options.get('gamma')!r}")
    allz = options.get("update_all_at_zero", False)
    if not isinstance(allz, (bool, np.bool_)):
        raise ValueError(f"algorithm 'zil': update_all_at_zero must be True or False, got {allz!r}")
    t = tables(sim.plan)
    if not t.levelled:
        # the circuit Z-IL runs on is the levelled one: its identity populations have a precision and tau_x too
        if gamma == 1.0 and "_zil_exactness_plan" not in sim.__dict__:
            sim.__dict__["_zil_exactness_plan"] = lower(level_circuit(sim.circuit, sim.plan), sample=False)
        warn_if_not_exact("zil", sim.__dict__.get("_zil_exactness_plan", sim.plan), gamma, "gamma", owner=sim)
        return gamma, bool(allz), None, None
    warn_if_not_exact("zil", sim.plan, gamma, "gamma", owner=sim)
    post_d = [int(t.dist[sim.plan.proj_post[k]]) for k in range(sim.plan.n_proj)]
    n_upd = 1 + max([d for d in post_d if d >= 0] + [0])
    return gamma, bool(allz), n_upd, t.dist


def _numpy(sim, X, Y, spec, gamma, allz, n_upd, dist, st, learn, want_dirs=True):
    p = sim.plan
    net = NumpyNet(sim.backend, st.prec)
    x, _ = net.forward(X)
    y0 = x[:, net.tsl].copy()
    net.set_target(x, Y, st.beta)
    B = X.shape[0]
    energies = np.zeros((n_upd, p.n_pops))
    recs = rec_buffers(p, spec, n_upd - 1, B, net.dtype)
    step = gamma / net.tau
    gW, gb = {}, {}
    r = 0
    for t in range(n_upd):
        phx = net.phi(x)
        mu = net.predictions(x, phx)
        eps, _, r, bad = observe(net, x, mu, t, energies, recs, spec, r)
        if bad >= 0:
            return diverged(energies, t, bad, y0, x[:, net.tsl].copy(), recs, r), None
        last = t == n_upd - 1
        if not last:
            d = net.drive(x, eps, net.dphi(x))
        for k in range(p.n_proj):
            dk = dist[p.proj_post[k]]
            if (allz and t == 0 and dk >= 0) or (not allz and dk == t):
                g = net.direction(k, eps, phx)
                if g[0] is not None:
                    gW[k] = g[0]
                if g[1] is not None:
                    gb[k] = g[1]
                if learn:
                    net.apply(k, g[0], g[1], st.factor)
        if not last:
            x = x + step * d
    res = BatchResult(steps=n_upd - 1, energy=energies, rec_steps=recs[3][:r], rec_x=recs[0][:r],
                      rec_eps=recs[1][:r], rec_mu=recs[2][:r], y0=y0, y=x[:, net.tsl].copy())
    return res, (gW, gb)


def _numba(sim, X, Y, spec, gamma, allz, n_upd, dist, st, learn, want_dirs=True):
    """The graph kernels on the circuit's levelled vertex form (:mod:`neurosim.algorithms._twin`): every free value
    moves at every step, each parameter is updated at its vertex's level (``allz``: all at step 0)."""
    from ..graph.base import ALG_ZIL, Schedule
    from ..graph.plan import OP_INPUT, V_LEVEL, V_OP
    from ._twin import record_settings, twin_of
    tw = twin_of(sim)
    plan = tw.plan_for(np.asarray(st.prec, dtype=np.float64), levelled=True)
    # as many steps as the deepest computing vertex's level (the layered schedule's n_upd - 1)
    n = max(int(plan.VI[i, V_LEVEL]) for i in range(plan.n_vertices) if plan.VI[i, V_OP] != OP_INPUT)
    used = None
    if allz:
        used = np.zeros((n + 1, plan.n_params), dtype=np.int64)
        used[0] = 1
    sch = Schedule(ALG_ZIL, n, float(gamma), True, bool(learn), immediate=True, wavefront=False,
                   all_at_zero=bool(allz), **record_settings(spec))
    return tw.run(sim, X, Y, sch, st, levelled=True, used=used)


def _brian2(sim, X, Y, spec, gamma, allz, n_upd, dist, st, learn, want_dirs=True):
    """The brian2 rate network (standard PC dynamics, brian2's ``dt`` = ``gamma``, ``L - 1`` steps) whose
    parameter groups each take their optimiser step in their own time step ``d(k)`` (a ``run_regularly``
    gated by the time), :meth:`~neurosim.backends.brian2.Brian2Backend.run_sweep`."""
    from dataclasses import replace
    p = sim.plan
    upd = {}
    for k in range(p.n_proj):
        dk = int(dist[p.proj_post[k]])
        upd[k] = -1 if dk < 0 else (0 if allz else dk)
    return sim.backend.run_sweep(X, Y, replace(spec, learn=bool(learn)), "zil", n=n_upd - 1, step=gamma,
                                 upd_step=upd, prec=st.prec, factor=st.factor, target_beta=st.beta)


def _run(sim, X, Y, spec, options, want_dirs=True):
    check_backend("zil", sim, options)
    check_common("zil", sim, spec)
    gamma, allz, n_upd, dist = _settings(sim, options)
    st = output_settings("zil", sim.plan, options, sim.backend.dtype)
    if getattr(sim.backend, "name", "") == "brian2":
        impl = _brian2
    else:
        impl = _numba if uses_numba(sim) else _numpy
    if impl is _numba:   # the graph kernels level the vertex form themselves
        return impl(sim, X, Y, spec, gamma, allz, n_upd, dist, st, spec.learn, want_dirs)
    if n_upd is None:   # an unlevelled DAG: run on the levelled twin (identity populations inserted)
        lev = sim.__dict__.get("_zil_levelled")
        if lev is None:
            lev = sim.__dict__["_zil_levelled"] = _Levelled(sim)
        return lev.run(sim, impl, X, Y, spec, gamma, allz, options, want_dirs)
    return impl(sim, X, Y, spec, gamma, allz, n_upd, dist, st, spec.learn, want_dirs)


def zil_updates(sim, X, Y, *, gamma=1.0, update_all_at_zero=False, learn=False, **output_options):
    r"""Run Z-IL on one batch; returns ``(BatchResult, (g_W, g_b))`` with each projection's update direction
    at its update step (without the compensation factor).  ``learn=True`` also applies the updates."""
    X, Y = as_batch(sim, X, Y)
    options = {**OPTIONS, "gamma": gamma, "update_all_at_zero": update_all_at_zero, **output_options}
    return _run(sim, X, Y, RunSpec(learn=learn), options)


def run_batch(sim, X, Y, spec, options) -> BatchResult:
    """One Z-IL batch (``L`` steps; each projection updated once, at its distance from the output)."""
    return _run(sim, X, Y, spec, options, want_dirs=False)[0]


register("zil", run_batch, "Z-IL (Song et al. 2020): feedforward start, inference rate 1, each layer updated once "
                           "at the step equal to its distance from the output; equals BP exactly", OPTIONS,
         backends=("reference", "numba", "brian2:rate"),
         unsupported_reason={
             "brian2:spiking": "Z-IL updates each projection at its own step of the sweep, while the spiking network "
                               "changes its weights only by event-driven plasticity inside the learning window at "
                               "the end of a run; the rate network (mode='rate') runs it",
             "": "Z-IL updates each projection at its own step of the sweep; this backend has no implementation "
                 "of that schedule"})
