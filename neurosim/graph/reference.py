r"""NumPy reference of the five schedules on a graph: standard PC, FPA, Z-IL, backprop and incremental PC.

The executable specification of :mod:`neurosim.graph.kernels` (tested equal to 1e-10).  One batch:

* **feedforward pass** :math:`\hat x_i = g_i(\hat x_{par(i)})` in topological order (inputs clamped to X);
* **PC** (``ALG_PC``): output clamped to the target, ``n`` synchronous Euler steps of the gradient flow
  :math:`x_i \leftarrow x_i + (\mathrm{dt}/\tau_i)(-\varepsilon_i + \sum_{c} J_{c,i}(x)^T \varepsilon_c)` with
  :math:`\varepsilon_i = \pi_i(x_i - g_i(x_{par(i)}))` recomputed every step; then the Hebbian term
  :math:`(\partial g_i/\partial\theta)^T\varepsilon_i` at the final state;
  the run settings of layered circuits apply exactly as in :class:`neurosim.backends.reference.ReferenceBackend`
  (see :func:`_relax`): a free or nudged output (``beta (Y - x_out)``), error units with ``tau_eps > 0`` as a
  state of their own, the start (``init``: feedforward / zeros / previous), early stop at ``tol``, Heun steps,
  ``dt_decay`` and records of one batch item;
* **iPC** (``ALG_IPC``): the PC loop with the Hebbian update applied at every step from the same state as the
  value step (:mod:`neurosim.algorithms.ipc`);
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
(:func:`neurosim.equations.optimizer_step`, the same code as the layered circuits).
"""
from __future__ import annotations

import numpy as np

from ..equations import optimizer_step
from .base import (ALG_BP, ALG_FPA, ALG_IPC, ALG_PC, ALG_ZIL, INIT_FEEDFORWARD, INIT_PREVIOUS, INIT_ZEROS,
                   STATUS_DIVERGED, GraphBatchResult, ParamState, Schedule)
from .ops import ReadNoiseStream, vertex_forward, vertex_param_grads, vertex_vjp
from .plan import (OP_INPUT, P_MEAN, P_OFF, P_OPT, P_PLASTIC, P_SIZE, PF_B1, PF_B2, PF_EPS, PF_LR, PF_MOM, PF_WD,
                   ROLE_FREE, ROLE_TARGET, V_INOFF, V_LEVEL, V_OP, V_ROLE, V_SIZE, VF_TAU, VF_TAU_EPS,
                   GraphPlan)

__all__ = ["run_reference", "feedforward", "apply_directions"]


def feedforward(plan: GraphPlan, theta: np.ndarray, X: np.ndarray, noise=None) -> list:
    """Per-vertex feedforward values ``[(B, n_i)]`` (inputs clamped to the columns of ``X``; ``noise``: per-read
    noise, :func:`~neurosim.graph.ops.vertex_forward`)."""
    xs = [None] * plan.n_vertices
    for i in plan.inputs:
        o, n = int(plan.VI[i, V_INOFF]), int(plan.VI[i, V_SIZE])
        xs[i] = np.array(X[:, o:o + n], copy=True)
    for i in range(plan.n_vertices):
        if plan.VI[i, V_OP] != OP_INPUT:
            xs[i] = vertex_forward(plan, theta, xs, i, noise)
    return xs


def apply_directions(plan: GraphPlan, state: ParamState, D: np.ndarray, mask=None, factor=1.0):
    """Apply reduced directions ``D`` (flat), times ``factor``, through each plastic parameter's optimiser
    (``mask``: which)."""
    for k in range(plan.n_params):
        if not plan.PI[k, P_PLASTIC] or (mask is not None and not mask[k]):
            continue
        o, n = int(plan.PI[k, P_OFF]), int(plan.PI[k, P_SIZE])
        state.opt_t[k] += 1
        pf = plan.PF[k]
        g = D[o:o + n] if factor == 1.0 else factor * D[o:o + n]
        optimizer_step(state.theta[o:o + n], g, state.m[o:o + n], state.v[o:o + n], state.opt_t[k],
                       pf[PF_LR], int(plan.PI[k, P_OPT]), (pf[PF_MOM], pf[PF_WD], pf[PF_B1], pf[PF_B2], pf[PF_EPS]))


class _Net:
    """The per-vertex state arrays and the building blocks of the schedules."""

    def __init__(self, plan: GraphPlan, state: ParamState, B: int):
        self.plan, self.state, self.B = plan, state, B
        self.nv = plan.n_vertices
        self.comp = [i for i in range(self.nv) if plan.VI[i, V_OP] != OP_INPUT]
        self.is_input = plan.VI[:, V_OP] == OP_INPUT
        # precision of each vertex: a number, or (per-unit precisions) an array of the vertex's units
        self.prec = []
        for i in range(self.nv):
            up = plan.UP[plan.units(i)].astype(state.dtype)
            self.prec.append(up[0] if up.size and np.all(up == up[0]) else up)
        self.tau = plan.VF[:, VF_TAU].astype(state.dtype)
        self.noise = None   # (sigma_m^2, sigma_a^2, rng) of per-read noise, set by the schedules (see noise_of)

    def predictions(self, xs):
        mus = [None] * self.nv
        for i in self.comp:
            mus[i] = vertex_forward(self.plan, self.state.theta, xs, i, self.noise)
        return mus

    def errors(self, xs, mus):
        eps = [None] * self.nv
        energy = np.zeros(self.nv)
        for i in self.comp:
            r = xs[i] - mus[i]
            p = self.p(i, r)
            eps[i] = p * r
            energy[i] = (0.5 * p * np.sum(r * r) if np.ndim(p) == 0 else 0.5 * np.sum(p * r * r)) / self.B
        return eps, energy

    def p(self, i, like):
        """The precision of vertex i, shaped to multiply an array ``like`` (batch, *units)."""
        p = self.prec[i]
        return p if np.ndim(p) == 0 else p.reshape(like.shape[1:])

    def feedback(self, xJ, eps, out=None):
        """``out[p] += sum_c J_{c,p}(xJ)^T eps_c`` for every non-input parent ``p``."""
        if out is None:
            out = [None if self.is_input[i] else np.zeros_like(eps[i]) for i in range(self.nv)]
        for i in self.comp:
            for p, g in vertex_vjp(self.plan, self.state.theta, xJ, i, eps[i], self.noise):
                if not self.is_input[p]:
                    out[p] += g
        return out

    def backprop(self, xs, eps):
        """Reverse-topological accumulation of ``eps`` (which must hold the output's error) into all vertices."""
        for i in reversed(self.comp):
            for p, g in vertex_vjp(self.plan, self.state.theta, xs, i, eps[i], self.noise):
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


def noise_of(sch: Schedule):
    """``(sigma_m^2, sigma_a^2, rng)`` of the schedule's per-read noise, or None (no noise)."""
    if sch.read_m2 > 0 or sch.read_a2 > 0:
        return float(sch.read_m2), float(sch.read_a2), ReadNoiseStream(int(sch.read_seed) % 2 ** 52)
    return None


def _first_bad(energy):
    bad = np.flatnonzero(~np.isfinite(energy))
    return int(bad[0]) if bad.size else -1


def _check_schedule(plan: GraphPlan, sch: Schedule, B: int, Y, x_init, eps_init):
    """Reject settings the schedule does not define (the Simulator validates first; this is the last guard)."""
    if sch.algo not in (ALG_PC, ALG_FPA, ALG_ZIL, ALG_BP, ALG_IPC):
        raise ValueError(f"unknown algorithm code {sch.algo}")
    if sch.algo in (ALG_FPA, ALG_ZIL, ALG_BP):
        extra = [name for name, off in (("beta", sch.clamp or sch.beta == 0.0), ("init", sch.init == INIT_FEEDFORWARD),
                                        ("tol", sch.tol == 0.0), ("heun", not sch.heun),
                                        ("dt_decay", sch.dt_decay == 1.0),
                                        ("record_every", sch.record_every == 0 or sch.algo != ALG_BP))
                 if not off]
        if extra:
            name = {ALG_FPA: "fpa", ALG_ZIL: "zil", ALG_BP: "bp"}[sch.algo]
            raise ValueError(f"graph algorithm {name!r} does not take the run settings {extra}; they apply to PC "
                             "and iPC only (leave them at their defaults)")
    if sch.all_at_zero and sch.algo != ALG_ZIL:
        raise ValueError("all_at_zero is a setting of Z-IL only")
    if sch.ev_values >= 0 and (sch.algo != ALG_PC or sch.heun):
        raise ValueError("event coding (send-on-delta) runs the PC relaxation with Euler steps: use algorithm 'pc' "
                         "and integrator='euler'")
    if sch.algo == ALG_IPC and (sch.heun or sch.dt_decay != 1.0):
        raise ValueError("graph iPC takes fixed Euler steps: use heun=False and dt_decay=1")
    if sch.init not in (INIT_FEEDFORWARD, INIT_ZEROS, INIT_PREVIOUS):
        raise ValueError(f"unknown init code {sch.init} (INIT_FEEDFORWARD, INIT_ZEROS or INIT_PREVIOUS)")
    if sch.algo in (ALG_PC, ALG_IPC) and Y is None and (sch.clamp or sch.beta > 0):
        raise ValueError("run_reference: a clamped or nudged output needs the target Y (pass clamp=False and beta=0 "
                         "to relax without one)")
    for name, a in (("x_init", x_init), ("eps_init", eps_init)):
        if a is not None and np.shape(a) != (B, plan.n_units):
            raise ValueError(f"run_reference: {name} must have shape (B, n_units) = ({B}, {plan.n_units}) in the "
                             f"plan's unit layout, got {np.shape(a)}")


class _Records:
    """The probe records of one batch: x, eps, mu of item ``record_item`` every ``record_every`` steps (flat unit
    layout), for steps 0..n."""

    def __init__(self, plan: GraphPlan, sch: Schedule, B: int, n: int, dtype):
        self.plan = plan
        self.every, self.item = int(sch.record_every), int(sch.record_item)
        self.track = self.every > 0 and self.item < B
        n_rec = n // self.every + 1 if self.track else 0
        self.x = np.zeros((n_rec, plan.n_units), dtype=dtype)
        self.eps = np.zeros_like(self.x)
        self.mu = np.zeros_like(self.x)
        self.steps = np.zeros(n_rec, dtype=np.int64)
        self.r = 0

    def take(self, k, xs, eps, mus):
        """Record step ``k`` (when it is one of the recorded steps)."""
        if not (self.track and k % self.every == 0):
            return
        for arrs, out in ((xs, self.x), (eps, self.eps), (mus, self.mu)):
            for i in range(self.plan.n_vertices):
                if arrs[i] is not None:
                    out[self.r, self.plan.units(i)] = arrs[i][self.item]
        self.steps[self.r] = k
        self.r += 1

    def out(self) -> dict:
        r = self.r
        return dict(rec_steps=self.steps[:r], rec_x=self.x[:r], rec_eps=self.eps[:r], rec_mu=self.mu[:r])


def weak_target(Y, y0, sch: Schedule):
    """The output's target: ``Y``, or with ``sch.target_beta`` != 1 the weak target ``y0 + target_beta (Y - y0)``
    (``y0``: the feedforward prediction)."""
    if Y is None or sch.target_beta == 1.0:
        return Y
    return y0 + sch.target_beta * (np.asarray(Y, dtype=y0.dtype) - y0)


def _no_records(plan: GraphPlan, dtype):
    return dict(rec_steps=np.zeros(0, dtype=np.int64), rec_x=np.zeros((0, plan.n_units), dtype=dtype),
                rec_eps=np.zeros((0, plan.n_units), dtype=dtype), rec_mu=np.zeros((0, plan.n_units), dtype=dtype))


def run_reference(plan: GraphPlan, state: ParamState, X: np.ndarray, Y: np.ndarray | None, sch: Schedule,
                  used: np.ndarray | None = None, x_init: np.ndarray | None = None,
                  eps_init: np.ndarray | None = None) -> GraphBatchResult:
    """Run one batch of schedule ``sch`` (see the module docstring); updates ``state`` when ``sch.learn``.

    ``used`` (Z-IL with ``immediate=True``): the ``(n_steps + 1, n_params)`` table of
    :func:`~neurosim.graph.base.used_at_level`.
    ``x_init``, ``eps_init`` (``init=INIT_PREVIOUS``, PC and iPC): ``(B, n_units)`` values and error units
    in the plan's unit layout (vertex ``i`` at columns ``plan.units(i)``), e.g. the ``x`` and ``eps`` of the
    previous result.  Inputs are overwritten from ``X`` and a clamped output from ``Y``; ``eps_init`` is read
    only where ``tau_eps > 0`` (None: computed at the start, :math:`\\pi(x - \\mu)`).  ``x_init=None`` starts
    from the feedforward pass, as the layered reference does when it holds no previous state.
    """
    B = X.shape[0]
    _check_schedule(plan, sch, B, Y, x_init, eps_init)
    if sch.algo in (ALG_PC, ALG_IPC):
        return _relax(plan, state, X, Y, sch, x_init, eps_init)
    net = _Net(plan, state, B)
    net.noise = noise_of(sch)
    T = plan.target
    xs = feedforward(plan, state.theta, X, net.noise)
    y0 = xs[T].copy()
    n = int(sch.n_steps)
    role = plan.VI[:, V_ROLE]
    movable = [i for i in net.comp if role[i] == ROLE_FREE or (role[i] == ROLE_TARGET and not sch.clamp)]
    norec = _no_records(plan, state.dtype)

    def failed(energies, t, bad, xs_):
        return GraphBatchResult(steps=t, energy=energies[:t + 1], status=STATUS_DIVERGED, fail_step=t,
                                fail_vertex=bad, y0=y0, y=xs_[T].copy(), x=net.flat(xs_), **norec)

    if sch.algo == ALG_BP:
        eps = [None if net.is_input[i] else np.zeros_like(xs[i]) for i in range(net.nv)]
        pT = net.p(T, y0)
        eps[T] = pT * (Y - y0)
        energy = np.zeros((1, net.nv))
        energy[0, T] = (0.5 * pT * np.sum((Y - y0) ** 2) if np.ndim(pT) == 0 else
                        0.5 * np.sum(pT * (Y - y0) ** 2)) / B
        if not np.isfinite(energy[0, T]) or not np.all(np.isfinite(y0)):
            return failed(energy, 0, T, xs)
        net.backprop(xs, eps)
        G = net.hebbian(xs, eps, net.comp)
        D = net.reduce(G)
        if sch.learn:
            apply_directions(plan, state, D, factor=sch.factor)
        return GraphBatchResult(steps=0, energy=energy, y0=y0, y=y0.copy(), directions=D, x=net.flat(xs),
                                eps=net.flat(eps), mu=net.flat([None if net.is_input[i] else xs[i]
                                                                for i in range(net.nv)]), **norec)

    if sch.clamp:
        xs[T] = np.array(weak_target(Y, y0, sch), dtype=state.dtype, copy=True)
    energies = np.zeros((n + 1, net.nv))
    rec = _Records(plan, sch, B, n, state.dtype)

    def failed_rec(t, bad, xs_, eps_, mus_):
        return GraphBatchResult(steps=t, energy=energies[:t + 1], status=STATUS_DIVERGED, fail_step=t,
                                fail_vertex=bad, y0=y0, y=xs_[T].copy(), x=net.flat(xs_), **rec.out())

    if sch.algo == ALG_FPA:
        xh = [a.copy() for a in xs]
        xh[T] = y0.copy()
        mus = [None if net.is_input[i] else xh[i] for i in range(net.nv)]
        for k in range(n + 1):
            eps, energies[k] = net.errors(xs, mus)
            rec.take(k, xs, eps, mus)
            bad = _first_bad(energies[k])
            if bad >= 0:
                return failed_rec(k, bad, xs, eps, mus)
            if k == n:
                break
            net.step(xs, eps, net.feedback(xh, eps), sch.rate, movable)
        D = net.reduce(net.hebbian(xh, eps, net.comp))
        if sch.learn:
            apply_directions(plan, state, D, factor=sch.factor)
        return GraphBatchResult(steps=n, energy=energies, y0=y0, y=xs[T].copy(), directions=D, x=net.flat(xs),
                                eps=net.flat(eps), mu=net.flat(mus), **rec.out())

    # ALG_ZIL
    level = plan.VI[:, V_LEVEL]
    G = np.zeros_like(state.theta)
    for t in range(n + 1):
        mus = net.predictions(xs)
        eps, energies[t] = net.errors(xs, mus)
        rec.take(t, xs, eps, mus)
        bad = _first_bad(energies[t])
        if bad >= 0:
            return failed_rec(t, bad, xs, eps, mus)
        d = net.feedback(xs, eps) if t < n else None
        # the vertices whose parameter terms are taken now: those at level t (all_at_zero: every one at t = 0)
        now = ([i for i in net.comp] if t == 0 else []) if sch.all_at_zero else [i for i in net.comp if level[i] == t]
        Gt = net.hebbian(xs, eps, now)
        G += Gt
        if sch.learn and sch.immediate:
            apply_directions(plan, state, net.reduce(Gt), mask=used[t], factor=sch.factor)
        if t < n:
            net.step(xs, eps, d, sch.rate, [i for i in movable if level[i] == t + 1] if sch.wavefront else movable)
    D = net.reduce(G)
    if sch.learn and not sch.immediate:
        apply_directions(plan, state, D, factor=sch.factor)
    return GraphBatchResult(steps=n, energy=energies, y0=y0, y=xs[T].copy(), directions=D, x=net.flat(xs),
                            eps=net.flat(eps), mu=net.flat(mus), **rec.out())


def _relax(plan: GraphPlan, state: ParamState, X, Y, sch: Schedule, x_init, eps_init) -> GraphBatchResult:
    r"""PC (``ALG_PC``) and iPC (``ALG_IPC``): the layered reference's relaxation loop on a graph.

    Vector field at state :math:`(x, \varepsilon^s)` (:math:`\varepsilon^s`: the error units' own state where
    :math:`\tau_\varepsilon > 0`):

    * :math:`\mu_i = g_i(x_{par(i)})`; :math:`\varepsilon_i = \pi_i (x_i - \mu_i)` where :math:`\tau_{\varepsilon,i}
      = 0`, else :math:`\varepsilon_i = \varepsilon^s_i` with
      :math:`\dot\varepsilon^s_i = ((x_i - \mu_i) - \varepsilon^s_i/\pi_i)/\tau_{\varepsilon,i}` (not divided by
      :math:`\tau_x`); the energy row is always :math:`\tfrac{\pi_i}{2}\lVert x_i - \mu_i\rVert^2` (batch mean);
    * a moving vertex (free; the output too when not clamped) has
      :math:`\mathrm{drive}_i = -\varepsilon_i + \sum_c J_{c,i}(x)^T\varepsilon_c`, plus
      :math:`\beta(Y - x_{out})` on the output when nudged (``clamp=False, beta > 0``), and
      :math:`\dot x_i = \mathrm{drive}_i/\tau_{x,i}`; inputs and a clamped output stay.

    Start: the feedforward pass (``INIT_FEEDFORWARD``), with the moving vertices then set to 0
    (``INIT_ZEROS``), or ``x_init`` (``INIT_PREVIOUS``); inputs from ``X``, a clamped output from ``Y``;
    :math:`\varepsilon^s = \pi(x - \mu)` there (or ``eps_init``, ``INIT_PREVIOUS``).  ``y0`` is
    :math:`\mu_{out}` at the start, as in the layered reference (the feedforward prediction for the
    feedforward start).

    Loop ``k = 0..n``: record row ``k`` of the energy (and, every ``record_every`` steps, item
    ``record_item``); stop on a NaN/inf (records kept); stop at ``k = n``; with ``tol > 0`` stop when
    :math:`\max(|\dot x|, |\dot\varepsilon^s|) <` ``tol``; then

    * PC: one Euler step :math:`x \leftarrow x + (\mathrm{rate}/\tau_x)\,\mathrm{drive}`,
      :math:`\varepsilon^s \leftarrow \varepsilon^s + \mathrm{rate}\,\dot\varepsilon^s` (``heun``: the
      explicit trapezoid, the second stage at the Euler prediction); with ``dt_decay < 1`` the rate is
      multiplied by ``dt_decay`` whenever the new total energy is not below the previous one.  After the loop
      the Hebbian direction at the final state (with the state :math:`\varepsilon`) is applied once.
    * iPC: the Hebbian direction :math:`D_k` at :math:`(x_k, \varepsilon_k, \theta_k)`, the Euler step of the
      values (and :math:`\varepsilon^s`) from the same state, then (``learn``) :math:`D_k` through the
      optimisers -- one weight update per step taken.  ``directions`` is :math:`\sum_k D_k` over the steps
      taken (with plain SGD, :math:`\theta_{end} - \theta_0 = \mathrm{lr}\sum_k D_k`).
    """
    B = X.shape[0]
    dtype = state.dtype
    net = _Net(plan, state, B)
    net.noise = noise_of(sch)
    T = plan.target
    nv = net.nv
    ipc = sch.algo == ALG_IPC
    role = plan.VI[:, V_ROLE]
    movable = [i for i in net.comp if role[i] == ROLE_FREE or (role[i] == ROLE_TARGET and not sch.clamp)]
    nudge = (not sch.clamp) and sch.beta > 0
    beta = sch.beta
    tau_eps = plan.VF[:, VF_TAU_EPS]
    lagged = [i for i in net.comp if tau_eps[i] > 0]   # vertices whose error units are a state
    n = int(sch.n_steps)

    # ---- the start
    xs = feedforward(plan, state.theta, X, net.noise)
    y0 = xs[T].copy()   # the feedforward prediction (= mu_out at the feedforward start)
    Y = weak_target(Y, y0, sch)
    previous = sch.init == INIT_PREVIOUS and x_init is not None
    if previous:
        xi = np.asarray(x_init, dtype=dtype)
        for i in net.comp:
            xs[i] = xi[:, plan.units(i)].copy()   # inputs keep the columns of X
    if sch.clamp:
        xs[T] = np.array(Y, dtype=dtype, copy=True)
    if sch.init == INIT_ZEROS:
        for i in movable:
            xs[i] = np.zeros_like(xs[i])
    if previous or sch.init == INIT_ZEROS:   # y0: the output's prediction at the initial state
        y0 = net.predictions(xs)[T].copy()
    es = [None] * nv
    if lagged:
        given = previous and eps_init is not None
        mus0 = None if given else net.predictions(xs)
        for i in lagged:
            if given:
                es[i] = np.asarray(eps_init, dtype=dtype)[:, plan.units(i)].copy()
            else:
                es[i] = net.p(i, xs[i]) * (xs[i] - mus0[i])

    coder = None
    if sch.ev_values >= 0:   # event coding (neurosim.graph.events): predictions and feedback read the sent copies
        from .events import EventCoder
        coder = EventCoder(plan, xs, sch.ev_values, sch.ev_errors, n + 1)

    def evaluate(xs_, es_):
        """``(mu, eps, energy, deps)`` at state (xs_, es_); eps is the state where tau_eps > 0."""
        mus_ = net.predictions(coder.values(xs_) if coder is not None else xs_)
        eps_, energy_ = net.errors(xs_, mus_)
        deps_ = [None] * nv
        for i in lagged:
            eps_[i] = es_[i]
            deps_[i] = ((xs_[i] - mus_[i]) - es_[i] / net.p(i, es_[i])) / tau_eps[i]
        return mus_, eps_, energy_, deps_

    def drives(xs_, eps_):
        """``drive_i`` (before the division by tau_x) of every moving vertex."""
        fb = net.feedback(xs_, eps_) if coder is None else net.feedback(coder.xr, coder.errors(eps_))
        d = [None] * nv
        for i in movable:
            d[i] = fb[i] - eps_[i]
            if nudge and i == T:
                d[i] = d[i] + beta * (Y - xs_[i])
        return d

    rec = _Records(plan, sch, B, n, dtype)

    # ---- the loop
    energies = np.zeros((n + 1, nv))
    rate = float(sch.rate)
    steps = 0
    Dsum = np.zeros_like(state.theta)
    mus, eps, energy, deps = evaluate(xs, es)
    for k in range(n + 1):
        energies[k] = energy
        rec.take(k, xs, eps, mus)
        bad = _first_bad(energy)
        if bad >= 0:
            ev = {} if coder is None else dict(events=coder.events[:k + 1].copy(), sops=coder.sops.copy(),
                                               edge_events=coder.edge_events.copy())
            return GraphBatchResult(steps=steps, energy=energies[:k + 1], status=STATUS_DIVERGED, fail_step=k,
                                    fail_vertex=bad, y0=y0, y=xs[T].copy(), x=net.flat(xs), eps=net.flat(eps),
                                    mu=net.flat(mus), **rec.out(), **ev)
        if k == n:
            break
        d = drives(xs, eps)
        if sch.tol > 0:
            speed = 0.0
            for i in movable:
                speed = max(speed, float(np.max(np.abs(d[i] / net.tau[i]))) if d[i].size else 0.0)
            for i in lagged:
                speed = max(speed, float(np.max(np.abs(deps[i]))) if deps[i].size else 0.0)
            if speed < sch.tol:
                break
        if ipc:
            Dk = net.reduce(net.hebbian(xs, eps, net.comp))   # at (x_k, eps_k, theta_k)
        if not sch.heun:
            for i in movable:
                xs[i] = xs[i] + (rate / net.tau[i]) * d[i]
            for i in lagged:
                es[i] = es[i] + rate * deps[i]
        else:
            f1 = {i: d[i] / net.tau[i] for i in movable}
            x2 = list(xs)
            e2 = list(es)
            for i in movable:
                x2[i] = xs[i] + rate * f1[i]
            for i in lagged:
                e2[i] = es[i] + rate * deps[i]
            _, eps2, _, deps2 = evaluate(x2, e2)
            d2 = drives(x2, eps2)
            for i in movable:
                xs[i] = xs[i] + 0.5 * rate * (f1[i] + d2[i] / net.tau[i])
            for i in lagged:
                es[i] = es[i] + 0.5 * rate * (deps[i] + deps2[i])
        steps += 1
        if ipc:
            Dsum += Dk
            if sch.learn:
                apply_directions(plan, state, Dk, factor=sch.factor)
        prev_total = energy.sum()
        if coder is not None:
            coder.next()
        mus, eps, energy, deps = evaluate(xs, es)
        if sch.dt_decay < 1.0 and energy.sum() >= prev_total:
            rate *= sch.dt_decay
    if ipc:
        D = Dsum
    else:   # event coding: the synapses hold the received presynaptic values
        D = net.reduce(net.hebbian(xs if coder is None else coder.xr, eps, net.comp))
        if sch.learn:
            apply_directions(plan, state, D, factor=sch.factor)
    ev = {} if coder is None else dict(events=coder.events[:steps + 1].copy(), sops=coder.sops.copy(),
                                       edge_events=coder.edge_events.copy())
    return GraphBatchResult(steps=steps, energy=energies[:steps + 1], y0=y0, y=xs[T].copy(), directions=D,
                            x=net.flat(xs), eps=net.flat(eps), mu=net.flat(mus), **rec.out(), **ev)
