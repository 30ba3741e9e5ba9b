r"""The NumPy reference backend: slow, plain, and the executable specification.

The equations (predictions ``mu``, errors ``eps`` and the error-unit dynamics, energy, feedback, ``dx/dt`` with
the target clamped or nudged, the Hebbian update and the optimisers) are stated once, in
:mod:`neurosim.equations`; this backend runs them (:class:`~neurosim.equations.LayeredEquations`) in the
documented loop.  Every step follows the synchronous order: all inputs (predictions ``mu``, errors ``eps``,
feedback) are computed from the state at time t, then all states advance to t + dt (Euler, or Heun's
predictor-corrector).  After the last step the errors are evaluated at the final state and, when learning, the
Hebbian update :math:`\Delta W_k = a_k\, \varepsilon_{post}^T \phi(x_{pre})` (mean or sum over the batch) is
applied through the projection's optimiser.
"""
from __future__ import annotations

import numpy as np

# optimizer_step, first_bad and max_rate live in neurosim.equations; imported here by their historical path
from ..equations import LayeredEquations, first_bad, max_rate, optimizer_step
from ..plan import ROLE_FREE, ROLE_TARGET
from .base import (EULER, INIT_PREVIOUS, INIT_ZEROS, MODE_CLAMP, STATUS_DIVERGED, Backend, BatchResult, RunSpec)

__all__ = ["ReferenceBackend", "rec_buffers", "optimizer_step", "first_bad", "max_rate"]


def rec_buffers(plan, spec, n_steps: int, B: int, dtype):
    """Probe buffers ``(rec_x, rec_eps, rec_mu, rec_steps)`` for ``n_steps`` steps of sample ``spec.probe_item``
    (every ``spec.probe_every`` steps from 0; empty if nothing is recorded, as for an item beyond the batch)."""
    track = spec.probe_every > 0 and spec.probe_item < B
    n_rec = n_steps // spec.probe_every + 1 if track else 0
    rec_x = np.zeros((n_rec, plan.n_units), dtype=dtype)
    return rec_x, np.zeros_like(rec_x), np.zeros_like(rec_x), np.zeros(n_rec, dtype=np.int64)


class ReferenceBackend(Backend):
    """Plain NumPy; state arrays are ``(B, n_units)`` and populations are column slices."""

    name = "reference"
    supports = frozenset({"euler", "heun", "tol", "nudge", "tau_eps", "skip", "multiplier", "bias", "adam",
                          "dt_decay", "float32", "probes", "graph", "sparse"})

    def __init__(self, plan, dtype=np.float64):
        super().__init__(plan, dtype)
        self.x = None
        self.eps = None
        #: the equations, reading this backend's weights; ``prec`` is their precision vector (the same array)
        self.eq = LayeredEquations(self)
        self.prec = self.eq.prec
        self.sl = self.eq.sl

    # ------------------------------------------------------------------ the equations (neurosim.equations)
    def predictions(self, x):
        """``mu`` for every predicted population (zeros for inputs); x is (B, n_units)."""
        return self.eq.predictions(x)

    def feedforward(self, s, t, mode):
        """Values from one forward sweep in topological order (clamped target set to t)."""
        return self.eq.feedforward(s, t, mode)

    def derivatives(self, x, eps_state, t, spec):
        """Return (dx/dt, deps/dt, eps, mu, energy per population) at state (x, eps_state)."""
        return self.eq.derivatives(x, eps_state, t, spec.mode, spec.beta)

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
            eps_state = self.eq.initial_errors(x)
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
            self.eq.learn(x, eps)
        return BatchResult(steps=steps, energy=energies[:steps + 1].copy(), status=status, fail_step=fail_step,
                           fail_pop=fail_pop, rec_steps=rec_steps[:r], rec_x=rec_x[:r], rec_eps=rec_eps[:r],
                           rec_mu=rec_mu[:r], y0=y0, y=x[:, tsl].copy())

    def state_rows(self):
        return None if self.x is None else int(self.x.shape[0])

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
