"""Calling the compiled kernels from a Simulator: buffers, argument bundles, results."""
from __future__ import annotations

import numpy as np

from ..backends.base import BatchResult
from ..backends.tables import unflatten
from ._common import rec_buffers, tables


class KernelCall:
    """Buffers and argument bundles of one kernel call on ``sim.backend`` for a batch of size ``B``."""

    def __init__(self, sim, X, Y, n_rows, spec=None):
        be = sim.backend
        p = sim.plan
        self.plan = p
        self.dtype = be.dtype
        self.B = B = X.shape[0]
        self.tabs_obj = tabs = tables(p)
        self.tabs = (tabs.pi, tabs.pf.astype(self.dtype), tabs.ki, tabs.kf.astype(self.dtype), tabs.ki_start,
                     tabs.ki_end, tabs.inputs, tabs.input_off)
        self.params = (be.W, be.b, be.mW, be.vW, be.mb, be.vb, be.opt_t)
        N = B * p.n_units
        self.bufs = tuple(np.zeros(N, dtype=self.dtype) for _ in range(8)) + (
            np.zeros(B * tabs.max_n, dtype=self.dtype),)
        self.s = np.ascontiguousarray(X, dtype=self.dtype)
        nt = max(p.n_target, 1)
        self.t = np.zeros((B, nt), dtype=self.dtype) if Y is None else np.ascontiguousarray(Y, dtype=self.dtype)
        self.teff = np.zeros((B, nt), dtype=self.dtype)
        self.G = np.zeros_like(be.W)
        self.Gb = np.zeros_like(be.b)
        self.energies = np.zeros((n_rows, p.n_pops))
        if spec is not None:
            self.recs = rec_buffers(p, spec, max(n_rows - 1, 0), B, self.dtype)
            self.probe_every, self.probe_item = int(spec.probe_every), int(spec.probe_item)
        else:
            self.recs = rec_buffers_empty(p, self.dtype)
            self.probe_every, self.probe_item = 0, 0
        self.y0 = np.zeros((B, p.n_target), dtype=self.dtype)
        self.y = np.zeros((B, p.n_target), dtype=self.dtype)
        self.out = np.zeros(5, dtype=np.int64)

    def state(self):
        """The final state as ``(B, n_units)`` arrays ``x, eps, mu`` (population-major buffers unflattened)."""
        x, phx, dph, mu, eps = self.bufs[:5]
        return {k: unflatten(self.plan, buf, self.B, self.dtype) for k, buf in (("x", x), ("eps", eps), ("mu", mu))}

    def directions(self):
        """Update directions written by the kernel, as ``({k: g_W}, {k: g_b})`` (copies)."""
        p = self.plan
        gW, gb = {}, {}
        for k in range(p.n_proj):
            if p.w_off[k] >= 0:
                sh = p.weight_shape(k)
                gW[k] = self.G[p.w_off[k]:p.w_off[k] + sh[0] * sh[1]].reshape(sh).copy()
            if p.b_off[k] >= 0:
                n = int(p.pop_size[p.proj_post[k]])
                gb[k] = self.Gb[p.b_off[k]:p.b_off[k] + n].copy()
        return gW, gb

    def result(self) -> BatchResult:
        steps, status, fail_step, fail_pop, r = (int(v) for v in self.out)
        rec_x, rec_eps, rec_mu, rec_steps = self.recs
        return BatchResult(steps=steps, energy=self.energies[:steps + 1].copy(), status=status,
                           fail_step=fail_step, fail_pop=fail_pop, rec_steps=rec_steps[:r], rec_x=rec_x[:r],
                           rec_eps=rec_eps[:r], rec_mu=rec_mu[:r], y0=self.y0, y=self.y)


def rec_buffers_empty(plan, dtype):
    rec = np.zeros((0, plan.n_units), dtype=dtype)
    return rec, rec.copy(), rec.copy(), np.zeros(0, dtype=np.int64)
