r"""The NumPy reference backend: slow, plain, and the executable specification.

Every step follows the documented synchronous order: all inputs (predictions ``mu``, errors ``eps``,
feedback) are computed from the state at time t, then all states advance to t + dt.  After the last
step the errors are evaluated at the final state and, when learning, the Hebbian update
:math:`\Delta W_k = a_k\, \varepsilon_{post}^T \phi(x_{pre})` (mean or sum over the batch) is applied
through the projection's optimiser.
"""
from __future__ import annotations

import numpy as np

from .. import activations as act
from ..plan import OPT_ADAM, ROLE_FREE, ROLE_INPUT, ROLE_TARGET
from .base import (EULER, INIT_FEEDFORWARD, INIT_PREVIOUS, INIT_ZEROS, MODE_CLAMP, MODE_FREE, MODE_NUDGE,
                   STATUS_DIVERGED, Backend, BatchResult, RunSpec)

_PHI = {a.code: a.name for a in act.ACTIVATIONS.values()}


def optimizer_step(param, g, m, v, t, lr, kind, opt):
    """One optimiser step *ascending* the Hebbian direction ``g`` (= -dF/dparam), in place.

    ``opt`` = (momentum, weight_decay, beta1, beta2, eps); ``t`` is the 1-based step count (Adam).
    """
    momentum, wd, beta1, beta2, eps = opt
    if wd > 0:
        g = g - wd * param
    if kind == OPT_ADAM:
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g * g
        mhat = m / (1 - beta1 ** t)
        vhat = v / (1 - beta2 ** t)
        param += lr * mhat / (np.sqrt(vhat) + eps)
    else:
        if momentum > 0:
            m *= momentum
            m += g
            g = m
        param += lr * g


def rec_buffers(plan, spec, n_steps: int, B: int, dtype):
    """Probe buffers ``(rec_x, rec_eps, rec_mu, rec_steps)`` for ``n_steps`` steps of sample ``spec.probe_item``
    (every ``spec.probe_every`` steps from 0; empty if nothing is recorded, as for an item beyond the batch)."""
    track = spec.probe_every > 0 and spec.probe_item < B
    n_rec = n_steps // spec.probe_every + 1 if track else 0
    rec_x = np.zeros((n_rec, plan.n_units), dtype=dtype)
    return rec_x, np.zeros_like(rec_x), np.zeros_like(rec_x), np.zeros(n_rec, dtype=np.int64)


def first_bad(energy, x, sl) -> int:
    """Index of the first population with a non-finite energy, else with a non-finite value (columns ``sl[i]``
    of ``x``), else -1: the population a diverging run reports."""
    bad = ~np.isfinite(energy)
    if bad.any():
        return int(np.argmax(bad))
    for i, cols in enumerate(sl):
        if not np.all(np.isfinite(x[:, cols])):
            return i
    return -1


def max_rate(dx, deps) -> float:
    r""":math:`\max(|dx/dt|, |d\varepsilon/dt|)` over every unit (0 for empty arrays): a run with ``tol`` stops
    once it falls below ``tol``."""
    return max(np.max(np.abs(dx)) if dx.size else 0.0, np.max(np.abs(deps)) if deps.size else 0.0)


class ReferenceBackend(Backend):
    """Plain NumPy; state arrays are ``(B, n_units)`` and populations are column slices."""

    name = "reference"
    supports = frozenset({"euler", "heun", "tol", "nudge", "tau_eps", "skip", "multiplier", "bias", "adam",
                          "dt_decay", "float32", "probes", "graph"})

    def __init__(self, plan, dtype=np.float64):
        super().__init__(plan, dtype)
        p = plan
        self.sl = [slice(int(p.pop_off[i]), int(p.pop_off[i] + p.pop_size[i])) for i in range(p.n_pops)]
        self.x = None
        self.eps = None
        self.prec = p.precision.astype(self.dtype)

    # ------------------------------------------------------------------ the equations
    def _phi(self, i, x):
        return act.phi(_PHI[int(self.plan.pop_phi[i])], x).astype(self.dtype, copy=False)

    def _dphi(self, i, x):
        return act.dphi(_PHI[int(self.plan.pop_phi[i])], x).astype(self.dtype, copy=False)

    def predictions(self, x):
        """``mu`` for every predicted population (zeros for inputs); x is (B, n_units)."""
        p = self.plan
        mu = np.zeros_like(x)
        for k in range(p.n_proj):
            pre, post = p.proj_pre[k], p.proj_post[k]
            xs = x[:, self.sl[pre]]
            if p.w_off[k] >= 0:
                mu[:, self.sl[post]] += p.proj_mult[k] * (self._phi(pre, xs) @ self.weight(k).T)
            if p.b_off[k] >= 0:
                mu[:, self.sl[post]] += self.bias(k)
            if p.proj_skip[k]:
                mu[:, self.sl[post]] += xs
        return mu

    def feedforward(self, s, t, mode):
        """Values from one forward sweep in topological order (clamped target set to t)."""
        p = self.plan
        B = s.shape[0]
        x = np.zeros((B, p.n_units), dtype=self.dtype)
        for j, i in enumerate(p.input_pops):
            x[:, self.sl[i]] = s[:, p.input_off[j]:p.input_off[j] + p.pop_size[i]]
        for i in range(p.n_pops):  # topological order
            if p.pop_role[i] == ROLE_INPUT:
                continue
            mu = np.zeros((B, int(p.pop_size[i])), dtype=self.dtype)
            for k in range(p.in_start[i], p.in_end[i]):
                pre = p.proj_pre[k]
                xs = x[:, self.sl[pre]]
                if p.w_off[k] >= 0:
                    mu += p.proj_mult[k] * (self._phi(pre, xs) @ self.weight(k).T)
                if p.b_off[k] >= 0:
                    mu += self.bias(k)
                if p.proj_skip[k]:
                    mu += xs
            x[:, self.sl[i]] = mu
        if mode == MODE_CLAMP and p.target_pop >= 0:
            x[:, self.sl[p.target_pop]] = t
        return x

    def derivatives(self, x, eps_state, t, spec):
        """Return (dx/dt, deps/dt, eps, mu, energy per population) at state (x, eps_state)."""
        p = self.plan
        mu = self.predictions(x)
        diff = x - mu
        eps = np.zeros_like(x)
        deps = np.zeros_like(x)
        energy = np.zeros(p.n_pops)
        for i in range(p.n_pops):
            if not p.pop_has_err[i]:
                continue
            sl = self.sl[i]
            energy[i] = 0.5 * np.sum(self.prec[sl] * diff[:, sl] ** 2) / x.shape[0]
            if p.pop_tau_eps[i] > 0:
                eps[:, sl] = eps_state[:, sl]
                deps[:, sl] = (diff[:, sl] - eps[:, sl] / self.prec[sl]) / p.pop_tau_eps[i]
            else:
                eps[:, sl] = self.prec[sl] * diff[:, sl]
        fb = np.zeros_like(x)
        skipfb = np.zeros_like(x)
        for k in range(p.n_proj):
            pre, post = p.proj_pre[k], p.proj_post[k]
            if p.w_off[k] >= 0:
                fb[:, self.sl[pre]] += p.proj_mult[k] * (eps[:, self.sl[post]] @ self.weight(k))
            if p.proj_skip[k]:
                skipfb[:, self.sl[pre]] += eps[:, self.sl[post]]
        dx = np.zeros_like(x)
        for i in range(p.n_pops):
            role = p.pop_role[i]
            if role == ROLE_INPUT or (role == ROLE_TARGET and spec.mode == MODE_CLAMP):
                continue
            sl = self.sl[i]
            drive = -eps[:, sl] + self._dphi(i, x[:, sl]) * fb[:, sl] + skipfb[:, sl]
            if role == ROLE_TARGET and spec.mode == MODE_NUDGE:
                drive = drive + spec.beta * (t - x[:, sl])
            dx[:, sl] = drive / p.pop_tau_x[i]
        return dx, deps, eps, mu, energy

    # ------------------------------------------------------------------ one batch
    def run_batch(self, s, t, spec: RunSpec) -> BatchResult:
        p = self.plan
        s = np.ascontiguousarray(s, dtype=self.dtype)
        t = None if t is None else np.ascontiguousarray(t, dtype=self.dtype)
        B = s.shape[0]
        if spec.init == INIT_PREVIOUS and self.x is not None and self.x.shape[0] == B:
            x, eps_state = self.x.copy(), self.eps.copy()
            for j, i in enumerate(p.input_pops):
                x[:, self.sl[i]] = s[:, p.input_off[j]:p.input_off[j] + p.pop_size[i]]
            if spec.mode == MODE_CLAMP and p.target_pop >= 0:
                x[:, self.sl[p.target_pop]] = t
        else:
            x = self.feedforward(s, t, spec.mode)
            if spec.init == INIT_ZEROS:
                for i in range(p.n_pops):
                    if p.pop_role[i] == ROLE_FREE or (p.pop_role[i] == ROLE_TARGET and spec.mode != MODE_CLAMP):
                        x[:, self.sl[i]] = 0.0
            eps_state = self.prec * (x - self.predictions(x))
            for i in range(p.n_pops):
                if not p.pop_has_err[i]:
                    eps_state[:, self.sl[i]] = 0.0
        rec_x, rec_eps, rec_mu, rec_steps = rec_buffers(p, spec, spec.n_steps, B, self.dtype)
        track = rec_x.shape[0] > 0
        energies = np.zeros((spec.n_steps + 1, p.n_pops))
        dt = spec.dt
        status, fail_step, fail_pop = 0, -1, -1
        steps = 0
        r = 0
        dx, deps, eps, mu, energy = self.derivatives(x, eps_state, t, spec)
        tsl = self.sl[p.target_pop] if p.target_pop >= 0 else slice(0, 0)
        y0 = mu[:, tsl].copy()
        for k in range(spec.n_steps + 1):
            energies[k] = energy
            if track and k % spec.probe_every == 0:
                rec_x[r], rec_eps[r], rec_mu[r], rec_steps[r] = x[spec.probe_item], eps[spec.probe_item], \
                    mu[spec.probe_item], k
                r += 1
            fail_pop = first_bad(energy, x, self.sl)
            if fail_pop >= 0:
                status, fail_step = STATUS_DIVERGED, k
                break
            if k == spec.n_steps or (spec.tol > 0 and max_rate(dx, deps) < spec.tol):
                break
            if spec.integrator == EULER:
                x = x + dt * dx
                eps_state = eps_state + dt * deps
            else:
                dx2, deps2, _, _, _ = self.derivatives(x + dt * dx, eps_state + dt * deps, t, spec)
                x = x + 0.5 * dt * (dx + dx2)
                eps_state = eps_state + 0.5 * dt * (deps + deps2)
            steps += 1
            prev_total = energy.sum()
            dx, deps, eps, mu, energy = self.derivatives(x, eps_state, t, spec)
            if spec.dt_decay < 1.0 and energy.sum() >= prev_total:
                dt *= spec.dt_decay
        self.x, self.eps = x, eps
        self._mu = mu
        if spec.learn and status == 0:
            self._hebbian(x, eps, B)
        return BatchResult(steps=steps, energy=energies[:steps + 1].copy(), status=status, fail_step=fail_step,
                           fail_pop=fail_pop, rec_steps=rec_steps[:r], rec_x=rec_x[:r], rec_eps=rec_eps[:r],
                           rec_mu=rec_mu[:r], y0=y0, y=x[:, tsl].copy())

    def _hebbian(self, x, eps, B):
        p = self.plan
        for k in range(p.n_proj):
            if not (p.proj_plastic[k] or p.proj_learn_bias[k]):
                continue
            pre, post = p.proj_pre[k], p.proj_post[k]
            scale = 1.0 / B if p.proj_mean[k] else 1.0
            e = eps[:, self.sl[post]]
            self.opt_t[k] += 1
            if p.proj_plastic[k]:
                g = p.proj_mult[k] * scale * (e.T @ self._phi(pre, x[:, self.sl[pre]]))
                o, n = p.w_off[k], g.size
                W = self.W[o:o + n].reshape(g.shape)
                optimizer_step(W, g, self.mW[o:o + n].reshape(g.shape), self.vW[o:o + n].reshape(g.shape),
                               self.opt_t[k], p.proj_lr[k], p.opt_kind[k], p.opt_param[k])
            if p.proj_learn_bias[k]:
                gb = scale * e.sum(axis=0)
                o, n = p.b_off[k], gb.size
                optimizer_step(self.b[o:o + n], gb, self.mb[o:o + n], self.vb[o:o + n], self.opt_t[k],
                               p.proj_lr[k], p.opt_kind[k], p.opt_param[k])

    def state(self):
        if self.x is None:
            return None
        return {"x": self.x.copy(), "eps": self.eps.copy(), "mu": self._mu.copy()}

    def set_state(self, x, eps):
        self.x = np.array(x, dtype=self.dtype)
        self.eps = np.array(eps, dtype=self.dtype)
        self._mu = self.predictions(self.x)

    def reset(self):
        super().reset()
        self.x = self.eps = None
