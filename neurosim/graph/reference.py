r"""NumPy reference of the four schedules on a graph: standard PC, FPA, Z-IL and backprop.

The executable specification of :mod:`neurosim.graph.kernels` (tested equal to 1e-10).  One batch:

* **feedforward pass** :math:`\hat x_i = g_i(\hat x_{par(i)})` in topological order (inputs clamped to X);
* **PC** (``ALG_PC``): output clamped to the target, ``n`` synchronous Euler steps of the gradient flow
  :math:`x_i \leftarrow x_i + (\mathrm{dt}/\tau_i)(-\varepsilon_i + \sum_{c} J_{c,i}(x)^T \varepsilon_c)` with
  :math:`\varepsilon_i = \pi_i(x_i - g_i(x_{par(i)}))` recomputed every step; then the Hebbian term
  :math:`(\partial g_i/\partial\theta)^T\varepsilon_i` at the final state;
* **FPA** (``ALG_FPA``): predictions and Jacobians frozen at :math:`\hat x`,
  :math:`\varepsilon_i = \pi_i(x_i - \hat x_i)`, ``n`` steps of size :math:`\eta`, update at :math:`\hat x`;
* **Z-IL** (``ALG_ZIL``): PC dynamics with rate :math:`\gamma` from the feedforward state; the parameters of a
  vertex at level :math:`d` receive :math:`(\partial g_i/\partial\theta)^T\varepsilon_i(d)` at step :math:`d`,
  accumulated and applied after the sweep (``immediate=True``: applied at once, the negative control for
  shared parameters); ``wavefront=True`` moves at step :math:`t` only the vertices at level :math:`t+1` (Song et
  al.'s reference implementation; the updates are the same, and values behind the wave-front cannot blow up);
* **BP** (``ALG_BP``): :math:`e_{out} = \pi_{out}(t - \hat y)`, :math:`e_p \mathrel{+}= J_{c,p}(\hat x)^T e_c`
  in reverse topological order (:math:`e = -\delta`), update :math:`(\partial g_i/\partial\theta)^T e_i`.

Every schedule returns the update *direction* (minus the gradient; batch mean or sum per the parameter's
``batch_reduction``) and, when learning, applies it through each parameter's optimiser
(:func:`neurosim.backends.reference.optimizer_step`, the same code as the layered circuits).
"""
from __future__ import annotations

import numpy as np

from ..backends.reference import optimizer_step
from .base import ALG_BP, ALG_FPA, ALG_PC, ALG_ZIL, STATUS_DIVERGED, GraphBatchResult, ParamState, Schedule
from .ops import vertex_forward, vertex_param_grads, vertex_vjp
from .plan import (OP_INPUT, P_MEAN, P_OFF, P_OPT, P_PLASTIC, P_SIZE, PF_B1, PF_B2, PF_EPS, PF_LR, PF_MOM, PF_WD,
                   ROLE_FREE, ROLE_TARGET, V_INOFF, V_LEVEL, V_OP, V_ROLE, V_SIZE, VF_PREC, VF_TAU, GraphPlan)

__all__ = ["run_reference", "feedforward", "apply_directions"]


def feedforward(plan: GraphPlan, theta: np.ndarray, X: np.ndarray) -> list:
    """Per-vertex feedforward values ``[(B, n_i)]`` (inputs clamped to the columns of ``X``)."""
    xs = [None] * plan.n_vertices
    for i in plan.inputs:
        o, n = int(plan.VI[i, V_INOFF]), int(plan.VI[i, V_SIZE])
        xs[i] = np.array(X[:, o:o + n], copy=True)
    for i in range(plan.n_vertices):
        if plan.VI[i, V_OP] != OP_INPUT:
            xs[i] = vertex_forward(plan, theta, xs, i)
    return xs


def apply_directions(plan: GraphPlan, state: ParamState, D: np.ndarray, mask=None):
    """Apply reduced directions ``D`` (flat) through each plastic parameter's optimiser (``mask``: which)."""
    for k in range(plan.n_params):
        if not plan.PI[k, P_PLASTIC] or (mask is not None and not mask[k]):
            continue
        o, n = int(plan.PI[k, P_OFF]), int(plan.PI[k, P_SIZE])
        state.opt_t[k] += 1
        pf = plan.PF[k]
        optimizer_step(state.theta[o:o + n], D[o:o + n], state.m[o:o + n], state.v[o:o + n], state.opt_t[k],
                       pf[PF_LR], int(plan.PI[k, P_OPT]), (pf[PF_MOM], pf[PF_WD], pf[PF_B1], pf[PF_B2], pf[PF_EPS]))


class _Net:
    """The per-vertex state arrays and the building blocks of the schedules."""

    def __init__(self, plan: GraphPlan, state: ParamState, B: int):
        self.plan, self.state, self.B = plan, state, B
        self.nv = plan.n_vertices
        self.comp = [i for i in range(self.nv) if plan.VI[i, V_OP] != OP_INPUT]
        self.is_input = plan.VI[:, V_OP] == OP_INPUT
        self.prec = plan.VF[:, VF_PREC].astype(state.dtype)
        self.tau = plan.VF[:, VF_TAU].astype(state.dtype)

    def predictions(self, xs):
        mus = [None] * self.nv
        for i in self.comp:
            mus[i] = vertex_forward(self.plan, self.state.theta, xs, i)
        return mus

    def errors(self, xs, mus):
        eps = [None] * self.nv
        energy = np.zeros(self.nv)
        for i in self.comp:
            r = xs[i] - mus[i]
            eps[i] = self.prec[i] * r
            energy[i] = 0.5 * self.prec[i] * np.sum(r * r) / self.B
        return eps, energy

    def feedback(self, xJ, eps, out=None):
        """``out[p] += sum_c J_{c,p}(xJ)^T eps_c`` for every non-input parent ``p``."""
        if out is None:
            out = [None if self.is_input[i] else np.zeros_like(eps[i]) for i in range(self.nv)]
        for i in self.comp:
            for p, g in vertex_vjp(self.plan, self.state.theta, xJ, i, eps[i]):
                if not self.is_input[p]:
                    out[p] += g
        return out

    def backprop(self, xs, eps):
        """Reverse-topological accumulation of ``eps`` (which must hold the output's error) into all vertices."""
        for i in reversed(self.comp):
            for p, g in vertex_vjp(self.plan, self.state.theta, xs, i, eps[i]):
                if not self.is_input[p]:
                    eps[p] = eps[p] + g

    def hebbian(self, xP, eps, vertices, G=None):
        """Sum over the batch (and over uses) of the parameter terms of ``vertices`` into the flat ``G``."""
        if G is None:
            G = np.zeros_like(self.state.theta)
        for i in vertices:
            for k, g in vertex_param_grads(self.plan, self.state.theta, xP, i, eps[i]):
                o, n = int(self.plan.PI[k, P_OFF]), int(self.plan.PI[k, P_SIZE])
                G[o:o + n] += g.ravel()
        return G

    def reduce(self, G):
        D = G.copy()
        for k in range(self.plan.n_params):
            if self.plan.PI[k, P_MEAN]:
                o, n = int(self.plan.PI[k, P_OFF]), int(self.plan.PI[k, P_SIZE])
                D[o:o + n] /= self.B
        return D

    def step(self, xs, eps, d, rate, movable):
        for i in movable:
            xs[i] = xs[i] + (rate / self.tau[i]) * (d[i] - eps[i])

    def flat(self, arrs):
        out = np.zeros((self.B, self.plan.n_units), dtype=self.state.dtype)
        for i in range(self.nv):
            if arrs[i] is not None:
                out[:, self.plan.units(i)] = arrs[i]
        return out


def _first_bad(energy):
    bad = np.flatnonzero(~np.isfinite(energy))
    return int(bad[0]) if bad.size else -1


def run_reference(plan: GraphPlan, state: ParamState, X: np.ndarray, Y: np.ndarray | None, sch: Schedule,
                  used: np.ndarray | None = None) -> GraphBatchResult:
    """Run one batch of schedule ``sch`` (see the module docstring); updates ``state`` when ``sch.learn``.

    ``used`` (Z-IL with ``immediate=True``): the ``(n_steps + 1, n_params)`` table of
    :func:`~neurosim.graph.base.used_at_level`.
    """
    B = X.shape[0]
    net = _Net(plan, state, B)
    T = plan.target
    xs = feedforward(plan, state.theta, X)
    y0 = xs[T].copy()
    n = int(sch.n_steps)
    role = plan.VI[:, V_ROLE]
    movable = [i for i in net.comp if role[i] == ROLE_FREE or (role[i] == ROLE_TARGET and not sch.clamp)]

    def failed(energies, t, bad, xs_):
        return GraphBatchResult(steps=t, energy=energies[:t + 1], status=STATUS_DIVERGED, fail_step=t,
                                fail_vertex=bad, y0=y0, y=xs_[T].copy(), x=net.flat(xs_))

    if sch.algo == ALG_BP:
        eps = [None if net.is_input[i] else np.zeros_like(xs[i]) for i in range(net.nv)]
        eps[T] = net.prec[T] * (Y - y0)
        energy = np.zeros((1, net.nv))
        energy[0, T] = 0.5 * net.prec[T] * np.sum((Y - y0) ** 2) / B
        if not np.isfinite(energy[0, T]) or not np.all(np.isfinite(y0)):
            return failed(energy, 0, T, xs)
        net.backprop(xs, eps)
        G = net.hebbian(xs, eps, net.comp)
        D = net.reduce(G)
        if sch.learn:
            apply_directions(plan, state, D)
        return GraphBatchResult(steps=0, energy=energy, y0=y0, y=y0.copy(), directions=D, x=net.flat(xs),
                                eps=net.flat(eps), mu=net.flat([None if net.is_input[i] else xs[i]
                                                                for i in range(net.nv)]))

    if sch.clamp:
        xs[T] = np.array(Y, dtype=state.dtype, copy=True)
    energies = np.zeros((n + 1, net.nv))

    if sch.algo == ALG_FPA:
        xh = [a.copy() for a in xs]
        xh[T] = y0.copy()
        mus = [None if net.is_input[i] else xh[i] for i in range(net.nv)]
        for k in range(n + 1):
            eps, energies[k] = net.errors(xs, mus)
            bad = _first_bad(energies[k])
            if bad >= 0:
                return failed(energies, k, bad, xs)
            if k == n:
                break
            net.step(xs, eps, net.feedback(xh, eps), sch.rate, movable)
        D = net.reduce(net.hebbian(xh, eps, net.comp))
        if sch.learn:
            apply_directions(plan, state, D)
        return GraphBatchResult(steps=n, energy=energies, y0=y0, y=xs[T].copy(), directions=D, x=net.flat(xs),
                                eps=net.flat(eps), mu=net.flat(mus))

    if sch.algo == ALG_ZIL:
        level = plan.VI[:, V_LEVEL]
        G = np.zeros_like(state.theta)
        for t in range(n + 1):
            mus = net.predictions(xs)
            eps, energies[t] = net.errors(xs, mus)
            bad = _first_bad(energies[t])
            if bad >= 0:
                return failed(energies, t, bad, xs)
            d = net.feedback(xs, eps) if t < n else None
            Gt = net.hebbian(xs, eps, [i for i in net.comp if level[i] == t])
            G += Gt
            if sch.learn and sch.immediate:
                apply_directions(plan, state, net.reduce(Gt), mask=used[t])
            if t < n:
                net.step(xs, eps, d, sch.rate, [i for i in movable if level[i] == t + 1] if sch.wavefront else movable)
        D = net.reduce(G)
        if sch.learn and not sch.immediate:
            apply_directions(plan, state, D)
        return GraphBatchResult(steps=n, energy=energies, y0=y0, y=xs[T].copy(), directions=D, x=net.flat(xs),
                                eps=net.flat(eps), mu=net.flat(mus))

    if sch.algo != ALG_PC:
        raise ValueError(f"unknown algorithm code {sch.algo}")
    for t in range(n + 1):
        mus = net.predictions(xs)
        eps, energies[t] = net.errors(xs, mus)
        bad = _first_bad(energies[t])
        if bad >= 0:
            return failed(energies, t, bad, xs)
        if t == n:
            break
        net.step(xs, eps, net.feedback(xs, eps), sch.rate, movable)
    D = net.reduce(net.hebbian(xs, eps, net.comp))
    if sch.learn:
        apply_directions(plan, state, D)
    return GraphBatchResult(steps=n, energy=energies, y0=y0, y=xs[T].copy(), directions=D, x=net.flat(xs),
                            eps=net.flat(eps), mu=net.flat(mus))
