r"""Event-driven (send-on-delta) predictive-coding relaxation with substrate effects.

Two engines implement the same specification: :class:`ReferenceEngine` (NumPy, the executable
specification) and :class:`NumbaEngine` (one jitted call per batch, :mod:`neurosim.hardware.kernel`).
Both run the relaxation of :mod:`neurosim.backends.reference` from the same :class:`~neurosim.plan.Plan`
arrays, with units that communicate by events.

The event model
---------------
Value unit :math:`j` outputs :math:`o_j = \mathrm{dac}(\mathrm{values}(\phi(x_j)))` and error unit
:math:`i` outputs :math:`\hat\varepsilon_i = \mathrm{errors}(\varepsilon_i)`, sent as
:math:`\mathrm{dac}(\hat\varepsilon_i)`.  Each sender keeps :math:`\hat s`, the sum of what it has sent;
it emits an event carrying :math:`\delta = o - \hat s` only when :math:`|\delta| > \theta`
(:math:`\hat s \leftarrow o`), so the residue :math:`o - \hat s` is carried until it crosses the threshold
(Lava ``Delta``/``SigmaDelta``, Loihi-2 graded spikes).  Receivers integrate events into currents:

.. math::

    c^{\mu}_l \mathrel{+}= a_k W_k[:, j]\, \delta_j \quad\text{(value event, } n_{post}
    \text{ synaptic ops)}, \qquad
    c^{fb}_{l-1} \mathrel{+}= a_k W_k[i, :]\, \delta_i \quad\text{(error event, } n_{pre}\text{ synaptic ops)}

and read them out as :math:`\mu_l = \mathrm{adc}(c^\mu_l) + b_l`, :math:`fb = \mathrm{adc}(c^{fb})`.  Then,
as in the clock-driven model,

.. math::

    \varepsilon_l = \pi_l (x_l - \mu_l), \qquad
    \tau_x \dot x_l = -\hat\varepsilon_l + \phi'(x_l) \odot fb_l \;(+\beta (t - x_l)\text{ when nudged}),

integrated with Euler steps (dynamic error units :math:`\tau_\varepsilon > 0` as in the backends).  A
value unit and its own error unit are wired locally (no events).  Units send only if something receives:
value units with an outgoing weighted projection, error units with a weighted incoming projection from a
non-input population (feedback into a clamped input is never needed).  Synapses live with their
post-synaptic neuron, so the Hebbian update uses the local error and the received pre-synaptic value:
:math:`\Delta W_k \propto a_k \hat\varepsilon_{post}^T \hat s_{pre}`.

Identity skips (``Projection(..., skip=True)``, :math:`\mu_{post} \mathrel{+}= x_{pre}`) have an event channel
of their own: a population with an outgoing skip also sends its state :math:`x` on delta (same threshold
:math:`\theta`, no substrate site: a digital one-to-one route, counted with its value events), and the post
population accumulates those events one-to-one in a skip current :math:`c^{sk}`, so that
:math:`\mu_{post} = \mathrm{adc}(c^\mu) + b + c^{sk}`.  The feedback of a skip,
:math:`\dot x_{pre} \mathrel{+}= \hat\varepsilon_{post}/\tau_x` (not through :math:`\phi'`), is carried by the
error events the post population already sends (it sends them when a skip comes from a non-input population
too), accumulated one-to-one in a skip-feedback current of pre.  One accumulate per event and receiving unit
is counted per skip projection (``EventResult.skip_ops``); no weight is read and nothing is converted.  The
x-channel restarts from zero at every call (its first evaluation sends the whole state; nothing of it is
checkpointed).

Sparse projections (``Projection(connectivity=...)``) deliver a value event of pre unit :math:`j` only over its
out-synapses and an error event of post unit :math:`i` only over its in-synapses, so ``sops`` counts one
operation per synapse touched (out-degree of :math:`j`, in-degree of :math:`i`); read noise sums over the
synapses a receiver has.

With :math:`\theta = 0` every change is sent and the receiver currents equal the dense sums, so the
dynamics and the weight updates reproduce the clock-driven backends to rounding (tested to 1e-12).

Read noise is applied to the read-out currents with the exact variance of per-weight noise on every read
(:func:`~neurosim.hardware.nonideal.read_noise_std`), tracked incrementally from the events.

Order of one evaluation (synchronous): all value units send; all predictions are read; errors and energy
are computed; all error units send; feedback is read and :math:`\dot x` formed.  Evaluation 0 follows the
initialisation (a feedforward sweep in topological order in which each population sends its values as
soon as it is set), and evaluation k follows Euler step k.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import activations as act
from ..backends.base import EULER, INIT_PREVIOUS, INIT_ZEROS, MODE_CLAMP, MODE_NUDGE, BatchResult
from ..backends.tables import pack, sparse_index
from ..errors import UnsupportedError
from ..plan import ROLE_FREE, ROLE_INPUT, ROLE_TARGET
from .nonideal import apply_table

_PHI = {a.code: a.name for a in act.ACTIVATIONS.values()}


@dataclass
class EventResult(BatchResult):
    r"""A :class:`~neurosim.backends.base.BatchResult` plus event counts and Hebbian directions.

    Attributes
    ----------
    events : ndarray (steps + 1, n_pops, 2) int
        Events sent by the value units (``[..., 0]``) and error units (``[..., 1]``) of each population in
        evaluation k (row 0: the evaluation after initialisation).  Summed over the batch.
    events_init : ndarray (n_pops, 2) int
        Events of the initialisation (feedforward sweep, or the refresh of an ``init="previous"`` start).
    sops : ndarray (n_proj, 2) int
        Synaptic operations triggered on each projection by value events (``[:, 0]``) and error events
        (``[:, 1]``), initialisation included.
    gW, gb : ndarray
        Hebbian directions :math:`a_k\, s\, \hat\varepsilon_{post}^T \hat s_{pre}` and
        :math:`s \sum_b \hat\varepsilon_{post}` (flat, plan layout; s = 1/B for mean reduction) at the final
        state; zero for non-plastic projections.
    x, eps, mu : ndarray (B, n_units)
        Final values, error-unit outputs and read predictions.
    skip_ops : ndarray (n_proj, 2) int
        One-to-one operations of identity skips: x events of the pre population (``[:, 0]``) and error events
        of the post population (``[:, 1]``), initialisation included; zero rows for other projections.  The
        x events are also counted in ``events[..., 0]`` (value units send them).
    """

    events: np.ndarray | None = None
    events_init: np.ndarray | None = None
    sops: np.ndarray | None = None
    gW: np.ndarray | None = None
    gb: np.ndarray | None = None
    x: np.ndarray | None = None
    eps: np.ndarray | None = None
    mu: np.ndarray | None = None
    skip_ops: np.ndarray | None = None


class EngineBase:
    """Plan-derived metadata shared by both engines, and the feature check."""

    name = "base"

    def __init__(self, plan):
        self.plan = p = plan
        npop, nproj = p.n_pops, p.n_proj
        weighted = p.w_off >= 0
        flags = lambda: np.zeros(npop, dtype=np.int64)  # noqa: E731
        self.has_out, self.has_in, self.fb_recv, self.has_fbin = flags(), flags(), flags(), flags()
        # identity skips: an x-channel out of pre, a one-to-one skip current into post, and the post's error
        # events fed back one-to-one into a skip-feedback current of pre
        self.has_xout, self.has_skin, self.has_skfb = flags(), flags(), flags()
        # per kind of projection: (which projections, out of pre, into post, feedback into pre); both kinds
        # make post receive feedback (fb_recv) when pre is not an input and post has error units
        for kind, out, into, fb_pre in ((weighted, self.has_out, self.has_in, self.has_fbin),
                                        (p.proj_skip, self.has_xout, self.has_skin, self.has_skfb)):
            for k in range(nproj):
                if not kind[k]:
                    continue
                pre, post = int(p.proj_pre[k]), int(p.proj_post[k])
                out[pre] = 1
                into[post] = 1
                if p.pop_role[pre] != ROLE_INPUT and p.pop_has_err[post]:
                    self.fb_recv[post] = 1
                    fb_pre[pre] = 1
        self.sl = [slice(int(p.pop_off[i]), int(p.pop_off[i] + p.pop_size[i])) for i in range(npop)]
        self.state = None

    def bias_sum(self, b: np.ndarray) -> np.ndarray:
        """Per-unit sum of the biases of all incoming projections, (n_units,)."""
        p = self.plan
        out = np.zeros(p.n_units)
        for k in range(p.n_proj):
            if p.b_off[k] >= 0:
                n = int(p.pop_size[p.proj_post[k]])
                out[self.sl[p.proj_post[k]]] += b[p.b_off[k]:p.b_off[k] + n]
        return out

    def reset(self):
        self.state = None

    def get_state(self) -> dict | None:
        """Copies of the state a ``init="previous"`` run continues from: ``{"x", "es", "sv", "se": (B,
        n_units)}`` (values, dynamic error units, what value and error units have sent), or None."""
        if self.state is None:
            return None
        return {k: np.array(v, dtype=np.float64) for k, v in self.state.items()}

    def set_state(self, state: dict):
        """Restore what :meth:`get_state` returned (e.g. from a checkpoint)."""
        self.state = {k: np.array(state[k], dtype=np.float64) for k in ("x", "es", "sv", "se")}

    def relax(self, X, Y=None, *, steps: int = 20, dt: float = 0.1, theta: float = 0.0, mode: str = "clamp",
              beta: float = 0.0, learn: bool = False, hardware=None, seed: int = 0) -> EventResult:
        r"""Relax the plan's circuit event-driven on one batch: the documented way to run a circuit the
        ``Simulator(hardware=...)`` path refuses (sparse projections), e.g.
        ``NumbaEngine(ns.lower(circuit)).relax(X, Y, steps=20, theta=0.01).sops``.

        ``X`` (B, n_input) holds the inputs and ``Y`` (B, n_target) the targets (needed for ``mode="clamp"`` and
        ``"nudge"``, ignored for ``"free"``); ``steps`` Euler steps of size ``dt`` from a feedforward sweep (every
        call starts afresh); ``theta`` is the send-on-delta threshold of value and error units (0: every change is sent and
        the result equals the clock-driven relaxation to rounding); ``beta`` the nudging strength of
        ``mode="nudge"``.  The weights are the plan's (``plan.W``, ``plan.b``) read through ``hardware`` (a
        :class:`~neurosim.hardware.HardwareModel`, default: an ideal substrate) at device time 0; ``seed`` seeds
        its read noise.  ``learn=True`` also returns the Hebbian directions ``gW``, ``gb`` (no weight is
        changed).  Returns the :class:`EventResult`: ``y`` the relaxed targets, ``events`` / ``events_init``
        per population, ``sops`` the synaptic operations per projection (one per synapse touched), ``energy``.
        """
        from ..backends.base import INITS, MODES, RunSpec
        from .nonideal import Device, HardwareModel
        if mode not in MODES:
            raise ValueError(f"{type(self).__name__}.relax: mode must be one of {sorted(MODES)}, got {mode!r}")
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"{type(self).__name__}.relax: steps must be an int >= 0, got {steps!r}")
        from ..simulator import check_dt_plan
        dt = check_dt_plan(self.plan, dt, f"{type(self).__name__}.relax", target_moves=mode != "clamp")
        p = self.plan
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != p.n_input:
            raise ValueError(f"{type(self).__name__}.relax: X must be (batch, {p.n_input}) for the inputs of "
                             f"circuit {p.circuit.name!r}, got shape {X.shape}")
        if mode == "free":
            Y = None
        elif Y is None:
            raise ValueError(f"{type(self).__name__}.relax: mode {mode!r} needs the targets Y; pass Y or "
                             "mode='free'")
        else:
            Y = np.ascontiguousarray(Y, dtype=np.float64)
            if Y.shape != (X.shape[0], p.n_target):
                raise ValueError(f"{type(self).__name__}.relax: Y must be ({X.shape[0]}, {p.n_target}), got "
                                 f"{Y.shape}")
        dev = Device(hardware if hardware is not None else HardwareModel(), p)
        spec = RunSpec(mode=MODES[mode], beta=float(beta), init=INITS["feedforward"], n_steps=int(steps), dt=float(dt),
                       learn=bool(learn))
        self.reset()
        return self.run(X, Y, spec, dev.read_weights(np.asarray(p.W, dtype=np.float64), 0.0), p.b.copy(),
                        dev.tables(), dev.read_sigmas, float(theta), float(theta), int(seed))

    @staticmethod
    def check_spec(spec):
        if spec.integrator != EULER:
            raise UnsupportedError("the event-driven hardware engine integrates with Euler steps only; "
                                   "use integrator='euler'")


class ReferenceEngine(EngineBase):
    """NumPy twin of the event kernel: plain array code, the specification the numba kernel is tested by."""

    name = "reference"

    def run(self, s, t, spec, Wr, b, tables, sigmas, theta_v, theta_e, seed) -> EventResult:
        self.check_spec(spec)
        p = self.plan
        B = s.shape[0]
        N = p.n_units
        npop, nproj = p.n_pops, p.n_proj
        rng = np.random.default_rng(seed)
        kinds, params, counts, mm = tables
        sig_m2, sig_a2 = sigmas
        noisy = sig_m2 > 0 or sig_a2 > 0
        sl = self.sl
        units = [np.arange(sl_.start, sl_.stop) for sl_ in sl]
        Wk = [_weight_matrix(p, Wr, k) if p.w_off[k] >= 0 else None for k in range(nproj)]
        # sparse projections: 0/1 pattern (read-noise sums over the synapses), out- and in-degrees (event ops)
        ones = {k: _pattern_ones(Wk[k]) for k in range(nproj) if Wk[k] is not None and p.is_sparse(k)}
        outdeg = {k: np.diff(p.sparse_csc(k)[0]) for k in ones}
        indeg = {k: np.diff(p.sparse_csr(k)[0]) for k in ones}
        bsum = self.bias_sum(b)
        mult = p.proj_mult

        prev = spec.init == INIT_PREVIOUS and self.state is not None and self.state["x"].shape[0] == B
        if prev:
            st = {k: v.copy() for k, v in self.state.items()}
        else:
            st = {k: np.zeros((B, N)) for k in ("x", "es", "sv", "se")}
        x, es, sv, se = st["x"], st["es"], st["sv"], st["se"]
        cur_mu, cur_fb = np.zeros((B, N)), np.zeros((B, N))
        qmw, qms, qfw, qfs = (np.zeros((B, N)) for _ in range(4))
        oe, mu = np.zeros((B, N)), np.zeros((B, N))
        ev_init = np.zeros((npop, 2), dtype=np.int64)
        ev = np.zeros((spec.n_steps + 1, npop, 2), dtype=np.int64)
        sops = np.zeros((nproj, 2), dtype=np.int64)
        # identity skips: x sent so far (the x-channel restarts from 0 every call), skip currents, their ops
        sx, cur_sk, cur_skfb = np.zeros((B, N)), np.zeros((B, N)), np.zeros((B, N))
        skip_ops = np.zeros((nproj, 2), dtype=np.int64)

        def site(si, v, i):
            if counts[si] == 0:
                return v
            return apply_table(kinds[si], params[si], counts[si], v, units[i], rng, mm[si])

        def project_values(i, d, ds2, n_ev):
            for k in range(nproj):
                if p.proj_pre[k] != i or Wk[k] is None:
                    continue
                po = sl[p.proj_post[k]]
                if k in ones:   # W d^T over the synapses; one op per out-synapse of each sending unit
                    cur_mu[:, po] += mult[k] * np.asarray(Wk[k] @ d.T).T
                    sops[k, 0] += int(np.sum((d != 0) @ outdeg[k]))
                    if noisy:
                        qmw[:, po] += mult[k] ** 2 * np.asarray(Wk[k].multiply(Wk[k]) @ ds2.T).T
                        qms[:, po] += mult[k] ** 2 * np.asarray(ones[k] @ ds2.T).T
                    continue
                cur_mu[:, po] += mult[k] * (d @ Wk[k].T)
                sops[k, 0] += n_ev * Wk[k].shape[0]
                if noisy:
                    qmw[:, po] += mult[k] ** 2 * (ds2 @ (Wk[k] ** 2).T)
                    qms[:, po] += mult[k] ** 2 * ds2.sum(axis=1, keepdims=True)

        def project_skips(i, d, n_ev):
            for k in range(nproj):
                if p.proj_pre[k] == i and p.proj_skip[k]:
                    cur_sk[:, sl[p.proj_post[k]]] += d
                    skip_ops[k, 0] += n_ev

        def project_errors(i, d, ds2, n_ev):
            for k in range(int(p.in_start[i]), int(p.in_end[i])):
                pre = p.proj_pre[k]
                if p.pop_role[pre] == ROLE_INPUT:
                    continue
                if p.proj_skip[k]:
                    cur_skfb[:, sl[pre]] += d
                    skip_ops[k, 1] += n_ev
                if Wk[k] is None:
                    continue
                if k in ones:   # W^T d^T over the synapses; one op per in-synapse of each sending unit
                    cur_fb[:, sl[pre]] += mult[k] * np.asarray(Wk[k].T @ d.T).T
                    sops[k, 1] += int(np.sum((d != 0) @ indeg[k]))
                    if noisy:
                        qfw[:, sl[pre]] += mult[k] ** 2 * np.asarray(Wk[k].multiply(Wk[k]).T @ ds2.T).T
                        qfs[:, sl[pre]] += mult[k] ** 2 * np.asarray(ones[k].T @ ds2.T).T
                    continue
                cur_fb[:, sl[pre]] += mult[k] * (d @ Wk[k])
                sops[k, 1] += n_ev * Wk[k].shape[1]
                if noisy:
                    qfw[:, sl[pre]] += mult[k] ** 2 * (ds2 @ Wk[k] ** 2)
                    qfs[:, sl[pre]] += mult[k] ** 2 * ds2.sum(axis=1, keepdims=True)

        def send(i, o, sent, theta, cnt, col, project):
            d = o - sent[:, sl[i]]
            fire = np.abs(d) > theta
            n_ev = int(fire.sum())
            cnt[i, col] += n_ev
            if n_ev == 0:
                return
            d = np.where(fire, d, 0.0)
            old = sent[:, sl[i]].copy()
            new = np.where(fire, o, old)
            sent[:, sl[i]] = new
            project(i, d, new * new - old * old if noisy else None, n_ev)

        def send_values(i, cnt):
            if self.has_out[i]:
                name = _PHI[int(p.pop_phi[i])]
                o = site(2, site(0, act.phi(name, x[:, sl[i]]), i), i)
                send(i, o, sv, theta_v, cnt, 0, project_values)
            if self.has_xout[i]:   # the x-channel of identity skips: x itself, sent on delta, no substrate site
                send(i, x[:, sl[i]], sx, theta_v, cnt, 0, lambda i_, d, ds2, n_ev: project_skips(i_, d, n_ev))

        def read(cur, qw, qs, i):
            c = cur[:, sl[i]].copy()
            if noisy:
                c = c + np.sqrt(np.maximum(0.0, sig_m2 * qw[:, sl[i]] + sig_a2 * qs[:, sl[i]])) * \
                    rng.standard_normal(c.shape)
            return site(3, c, i)

        def read_mu(i):
            if p.pop_role[i] == ROLE_INPUT:
                return np.zeros((B, int(p.pop_size[i])))
            if self.has_in[i]:
                m = read(cur_mu, qmw, qms, i) + bsum[sl[i]]
            else:
                m = np.broadcast_to(bsum[sl[i]], (B, int(p.pop_size[i]))).copy()
            if self.has_skin[i]:
                m = m + cur_sk[:, sl[i]]
            return m

        def evaluate(cnt, init_es):
            for i in range(npop):
                if self.has_out[i] or self.has_xout[i]:
                    send_values(i, cnt)
            for i in range(npop):
                mu[:, sl[i]] = read_mu(i)
            energy = np.zeros(npop)
            deps = np.zeros((B, N))
            oe[:] = 0.0
            for i in range(npop):
                if not p.pop_has_err[i]:
                    continue
                pr = p.precision[sl[i]]
                diff = x[:, sl[i]] - mu[:, sl[i]]
                energy[i] = 0.5 * np.sum(pr * diff ** 2) / B
                if p.pop_tau_eps[i] > 0:
                    if init_es:
                        es[:, sl[i]] = pr * diff
                    eps = es[:, sl[i]]
                    deps[:, sl[i]] = (diff - eps / pr) / p.pop_tau_eps[i]
                else:
                    eps = pr * diff
                oe[:, sl[i]] = site(1, eps, i)
            for i in range(npop):
                if self.fb_recv[i]:
                    send(i, site(2, oe[:, sl[i]], i), se, theta_e, cnt, 1, project_errors)
            dx = np.zeros((B, N))
            for i in range(npop):
                role = p.pop_role[i]
                if role == ROLE_INPUT or (role == ROLE_TARGET and spec.mode == MODE_CLAMP):
                    continue
                fb = read(cur_fb, qfw, qfs, i) if self.has_fbin[i] else 0.0
                xi = x[:, sl[i]]
                drive = -oe[:, sl[i]] + act.dphi(_PHI[int(p.pop_phi[i])], xi) * fb
                if self.has_skfb[i]:
                    drive = drive + cur_skfb[:, sl[i]]
                if role == ROLE_TARGET and spec.mode == MODE_NUDGE:
                    drive = drive + spec.beta * (t - xi)
                dx[:, sl[i]] = drive / p.pop_tau_x[i]
            return dx, deps, energy

        # ---- initial state
        for j, i in enumerate(p.input_pops):
            x[:, sl[i]] = s[:, p.input_off[j]:p.input_off[j] + p.pop_size[i]]
        if prev:
            # the weights changed since the last batch: receivers rebuild their currents from what was sent
            for i in range(npop):
                if self.has_out[i]:
                    old = sv[:, sl[i]]
                    n_ev = int(np.count_nonzero(old))
                    ev_init[i, 0] += n_ev
                    project_values(i, old, old * old if noisy else None, n_ev)
                if self.fb_recv[i]:
                    old = se[:, sl[i]]
                    n_ev = int(np.count_nonzero(old))
                    ev_init[i, 1] += n_ev
                    project_errors(i, old, old * old if noisy else None, n_ev)
        elif spec.init != INIT_ZEROS:
            for i in range(npop):  # feedforward sweep in topological order
                if p.pop_role[i] != ROLE_INPUT:
                    x[:, sl[i]] = read_mu(i)
                if self.has_out[i] or self.has_xout[i]:
                    send_values(i, ev_init)
        if spec.mode == MODE_CLAMP and p.target_pop >= 0:
            x[:, sl[p.target_pop]] = t
        if spec.init == INIT_ZEROS and not prev:
            for i in range(npop):
                role = p.pop_role[i]
                if role == ROLE_FREE or (role == ROLE_TARGET and spec.mode != MODE_CLAMP):
                    x[:, sl[i]] = 0.0

        dx, deps, energy = evaluate(ev[0], not prev)
        tsl = sl[p.target_pop] if p.target_pop >= 0 else slice(0, 0)
        y0 = mu[:, tsl].copy()
        energies = np.zeros((spec.n_steps + 1, npop))
        dt = spec.dt
        status, fail_step, fail_pop, steps = 0, -1, -1, 0
        for k in range(spec.n_steps + 1):
            energies[k] = energy
            bad = ~np.isfinite(energy)
            if bad.any() or not np.all(np.isfinite(x)):
                status, fail_step = 1, k
                fail_pop = int(np.argmax(bad)) if bad.any() else next(
                    i for i in range(npop) if not np.all(np.isfinite(x[:, sl[i]])))
                break
            if k == spec.n_steps:
                break
            if spec.tol > 0:
                rate = max(np.max(np.abs(dx)) if dx.size else 0.0, np.max(np.abs(deps)) if deps.size else 0.0)
                if rate < spec.tol:
                    break
            x += dt * dx
            es += dt * deps
            steps += 1
            prev_total = energy.sum()
            dx, deps, energy = evaluate(ev[k + 1], False)
            if spec.dt_decay < 1.0 and energy.sum() >= prev_total:
                dt *= spec.dt_decay
        self.state = {"x": x.copy(), "es": es.copy(), "sv": sv.copy(), "se": se.copy()}
        gW = np.zeros(p.W.size)
        gb = np.zeros(p.b.size)
        if spec.learn and status == 0:
            for k in range(nproj):
                scale = 1.0 / B if p.proj_mean[k] else 1.0
                e = oe[:, sl[p.proj_post[k]]]
                if p.proj_plastic[k] and k in ones:   # only on the synapses, CSR order
                    indptr, indices = p.sparse_csr(k)
                    rows = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
                    g = mult[k] * scale * np.einsum("bn,bn->n", e[:, rows], sv[:, sl[p.proj_pre[k]]][:, indices])
                    gW[p.w_off[k]:p.w_off[k] + g.size] = g
                elif p.proj_plastic[k]:
                    g = mult[k] * scale * (e.T @ sv[:, sl[p.proj_pre[k]]])
                    gW[p.w_off[k]:p.w_off[k] + g.size] = g.ravel()
                if p.proj_learn_bias[k]:
                    gb[p.b_off[k]:p.b_off[k] + e.shape[1]] = scale * e.sum(axis=0)
        return EventResult(steps=steps, energy=energies[:steps + 1].copy(), status=status, fail_step=fail_step,
                           fail_pop=fail_pop, y0=y0, y=x[:, tsl].copy(), events=ev[:steps + 1].copy(),
                           events_init=ev_init, sops=sops, gW=gW, gb=gb, x=x.copy(), eps=oe.copy(), mu=mu.copy(),
                           skip_ops=skip_ops)


class NumbaEngine(EngineBase):
    """Runs :func:`neurosim.hardware.kernel.event_kernel`: one jitted call per batch."""

    name = "numba"

    def __init__(self, plan):
        super().__init__(plan)
        p = plan  # the packed tables of every numba kernel (neurosim.backends.tables)
        self.pi, self.pf, self.ki, self.kf = pack(p)
        self.S = sparse_index(p)
        self.prec = p.precision.astype(np.float64)
        self._bufs = None
        self._B = -1

    def _transposed(self, Wr):
        p = self.plan
        WrT = np.empty_like(Wr)
        for k in range(p.n_proj):
            o = p.w_off[k]
            if o < 0:
                continue
            if p.is_sparse(k):   # the synapses in CSC order: pre unit by pre unit
                perm = p.sparse_csc(k)[2]
                WrT[o:o + perm.size] = Wr[o + perm]
                continue
            n_post, n_pre = p.weight_shape(k)
            WrT[o:o + n_post * n_pre] = Wr[o:o + n_post * n_pre].reshape(n_post, n_pre).T.ravel()
        return WrT

    def reset(self):
        super().reset()
        self._B = -1

    def get_state(self) -> dict | None:
        if self.state is None:
            return None
        return {k: v.copy() for k, v in zip(("x", "es", "sv", "se"), self._bufs[:4])}

    def set_state(self, state: dict):
        B = state["x"].shape[0]
        self._bufs = [np.zeros((B, self.plan.n_units)) for _ in range(14)]
        self._B = B
        for a, k in zip(self._bufs[:4], ("x", "es", "sv", "se")):
            a[:] = state[k]
        self.state = True

    def run(self, s, t, spec, Wr, b, tables, sigmas, theta_v, theta_e, seed) -> EventResult:
        from .kernel import event_kernel
        self.check_spec(spec)
        p = self.plan
        B = s.shape[0]
        N = p.n_units
        if self._bufs is None or self._B != B:
            self._bufs = [np.zeros((B, N)) for _ in range(14)]
            self._B = B
            self.state = None
        x, es, sv, se, oe, mu, cur_mu, cur_fb, qmw, qms, qfw, qfs, dx, deps = self._bufs
        prev = spec.init == INIT_PREVIOUS and self.state is not None
        if not prev:
            for a in (x, es, sv, se):
                a[:] = 0.0
        kinds, params, counts, mm = tables
        sig_m2, sig_a2 = sigmas
        noisy = sig_m2 > 0 or sig_a2 > 0
        Wr = np.ascontiguousarray(Wr, dtype=np.float64)
        WrT = self._transposed(Wr)
        Wr2 = Wr * Wr if noisy else np.zeros(0)
        Wr2T = WrT * WrT if noisy else np.zeros(0)
        tt = np.zeros((B, max(p.n_target, 1))) if t is None else np.ascontiguousarray(t, dtype=np.float64)
        energies = np.zeros((spec.n_steps + 1, p.n_pops))
        ev = np.zeros((spec.n_steps + 1, p.n_pops, 2), dtype=np.int64)
        ev_init = np.zeros((p.n_pops, 2), dtype=np.int64)
        sops = np.zeros((p.n_proj, 2), dtype=np.int64)
        skip_ops = np.zeros((p.n_proj, 2), dtype=np.int64)
        y0 = np.zeros((B, p.n_target))
        y = np.zeros((B, p.n_target))
        gW = np.zeros(p.W.size)
        gb = np.zeros(p.b.size)
        out = np.zeros(4, dtype=np.int64)
        event_kernel(np.ascontiguousarray(s, dtype=np.float64), tt, prev, spec.mode, spec.beta, spec.init,
                     spec.n_steps, spec.tol, spec.dt, spec.dt_decay, spec.learn,
                     self.pi, self.pf, self.prec, self.ki, self.kf, p.in_start.astype(np.int64),
                     p.in_end.astype(np.int64), p.input_pops.astype(np.int64), p.input_off.astype(np.int64),
                     int(p.target_pop), self.has_out, self.has_in, self.fb_recv, self.has_fbin,
                     Wr, WrT, Wr2, Wr2T, self.bias_sum(b), noisy, sig_m2, sig_a2, float(theta_v), float(theta_e),
                     kinds, params, counts, mm, int(seed),
                     x, es, sv, se, oe, mu, cur_mu, cur_fb, qmw, qms, qfw, qfs, dx, deps,
                     energies, ev, ev_init, sops, y0, y, gW, gb, out,
                     self.has_xout, self.has_skin, self.has_skfb, np.zeros((B, N)), np.zeros((B, N)),
                     np.zeros((B, N)), skip_ops, self.S)
        self.state = True
        steps, status, fail_step, fail_pop = (int(v) for v in out)
        return EventResult(steps=steps, energy=energies[:steps + 1].copy(), status=status, fail_step=fail_step,
                           fail_pop=fail_pop, y0=y0, y=y, events=ev[:steps + 1].copy(), events_init=ev_init,
                           sops=sops, gW=gW, gb=gb, x=x.copy(), eps=oe.copy(), mu=mu.copy(), skip_ops=skip_ops)


def _weight_matrix(p, Wr, k):
    """Projection ``k``'s read weights from the flat ``Wr``: a ``(n_post, n_pre)`` view (dense) or a
    ``scipy.sparse.csr_array`` of its synapses (sparse)."""
    o = int(p.w_off[k])
    if p.is_sparse(k):
        import scipy.sparse as sps
        indptr, indices = p.sparse_csr(k)
        return sps.csr_array((Wr[o:o + indices.size], indices, indptr), shape=p.weight_shape(k))
    sh = p.weight_shape(k)
    return Wr[o:o + sh[0] * sh[1]].reshape(sh)


def _pattern_ones(W):
    """The 0/1 pattern of a sparse matrix (every stored synapse, zero-valued ones included)."""
    import scipy.sparse as sps
    return sps.csr_array((np.ones(W.indices.size), W.indices, W.indptr), shape=W.shape)


ENGINES = {"reference": ReferenceEngine, "numba": NumbaEngine}


def make_engine(backend_name: str, plan) -> EngineBase:
    """The engine matching a Simulator backend; other backends raise :class:`~neurosim.UnsupportedError`."""
    if backend_name not in ENGINES:
        raise UnsupportedError(f"backend {backend_name!r} has no event-driven hardware engine; the hardware "
                               f"engines run with backend='numba' or 'reference'")
    return ENGINES[backend_name](plan)
