r""":class:`NumbaGraphEngine`: runs one batch of a graph circuit through :func:`neurosim.graph.kernels.graph_batch_kernel`.

The engine owns the kernel's buffers (cached per plan, batch size and dtype), translates between the plan's
flat unit layout ``(B, n_units)`` (vertex ``i`` at columns ``plan.units(i)``) and the kernel's vertex-block
layout (vertex ``i`` owns the C-contiguous block ``[B off_i, B (off_i + n_i))``, see :mod:`~neurosim.graph.kernels`)
and returns a :class:`~neurosim.graph.base.GraphBatchResult`.  It honours every field of
:class:`~neurosim.graph.base.Schedule` (the caller validates them); float32 and float64 parameter states run
alike.
"""
from __future__ import annotations

import numpy as np

from .base import ALG_BP, INIT_PREVIOUS, STATUS_OK, GraphBatchResult, ParamState, Schedule
from .plan import P_MEAN, P_OFF, P_SIZE, V_OFF, V_SIZE, GraphPlan

__all__ = ["NumbaGraphEngine"]


class NumbaGraphEngine:
    """Runs :func:`neurosim.graph.kernels.graph_batch_kernel`; buffers are cached per (plan, batch size, dtype)."""

    name = "numba"

    def __init__(self):
        from . import kernels  # (compiles or loads the cached kernels)
        self._kernels = kernels
        self._bufs = {}

    def _buffers(self, plan: GraphPlan, B: int, dtype):
        key = (id(plan), B, np.dtype(dtype).str)
        if key not in self._bufs:
            if len(self._bufs) > 8:
                self._bufs.clear()
            nu = plan.n_units
            ms = plan.max_size
            mp = int(plan.PI[:, P_SIZE].max()) if plan.n_params else 1
            perm = np.zeros((B, nu), dtype=np.int64)
            for i in range(plan.n_vertices):
                o, n = int(plan.VI[i, V_OFF]), int(plan.VI[i, V_SIZE])
                perm[:, o:o + n] = B * o + np.arange(B)[:, None] * n + np.arange(n)[None, :]
            nc, no = self._kernels.conv_scratch_sizes(plan, B)
            z = lambda k: np.zeros(k, dtype)  # noqa: E731
            self._bufs[key] = dict(cb=z(nc), ob=z(no), x=z(B * nu), mu=z(B * nu), eps=z(B * nu), drive=z(B * nu),
                                   xhat=z(B * nu), deps=z(B * nu), e0=z(B * nu), k1=z(B * nu), ke1=z(B * nu),
                                   G=z(plan.n_theta), Gt=z(plan.n_theta), s1=z(B * ms), s2=z(B * ms), sG=z(mp),
                                   erow=np.zeros(plan.n_vertices), empty=z(0), perm=perm, plan=plan)
        return self._bufs[key]

    def _event_args(self, plan, sch, B, n, dtype):
        """The kernel's ``ev`` tuple (see :func:`~neurosim.graph.kernels.graph_batch_kernel`): event coding of this
        batch (:mod:`neurosim.graph.events`), or placeholders (switched off) of the same types."""
        i64 = lambda k: np.zeros(k, np.int64)  # noqa: E731
        if sch.ev_values < 0:
            self._ev = (np.zeros(3), np.zeros(0, dtype), np.zeros(0, dtype), i64(0), i64(0), i64(0), i64(0), i64(0),
                        i64(0), i64(0), i64(0), i64(0), i64(0), np.zeros((1, 1, 2), np.int64), np.zeros((1, 2)),
                        np.zeros((1, 2)))
            return self._ev
        from .events import edge_fans, edge_lists
        key = ("fans", id(plan))
        if key not in self._bufs:
            fans = edge_fans(plan)
            nv = plan.n_vertices
            out_edges, in_edges = edge_lists(plan, fans)

            def csr(lists):
                ptr = np.zeros(nv + 1, np.int64)
                ptr[1:] = np.cumsum([len(a) for a in lists])
                return ptr, np.array([e for a in lists for e in a], np.int64)

            def concat(which):
                arrs = [f[which] for f in fans]
                off = np.zeros(len(arrs), np.int64)
                off[1:] = np.cumsum([a.size for a in arrs])[:-1]
                return (np.concatenate(arrs).astype(np.int64) if arrs else i64(0)), off

            optr, oidx = csr(out_edges)
            iptr, iidx = csr(in_edges)
            FO, FOo = concat(2)
            FI, FIo = concat(3)
            sendv = np.array([len(a) > 0 for a in out_edges], np.int64)
            sende = np.array([len(a) > 0 for a in in_edges], np.int64)
            self._bufs[key] = (sendv, sende, optr, oidx, iptr, iidx, FO, FOo, FI, FIo)
        sendv, sende, optr, oidx, iptr, iidx, FO, FOo, FI, FIo = self._bufs[key]
        ne = max(len(FOo), 1)
        self._ev = (np.array([float(sch.ev_values), float(sch.ev_errors), 1.0]), np.zeros(B * plan.n_units, dtype),
                    np.zeros(B * plan.n_units, dtype), sendv, sende, optr, oidx, iptr, iidx, FO, FOo, FI, FIo,
                    np.zeros((n + 1, plan.n_vertices, 2), np.int64), np.zeros((ne, 2)), np.zeros((ne, 2)))
        return self._ev

    @staticmethod
    def _to_blocks(plan, what, A, B, dtype, perm):
        """A (B, n_units) in the plan's flat layout -> the kernel's vertex-block vector."""
        A = np.asarray(A)
        if A.shape != (B, plan.n_units):
            raise ValueError(f"graph {plan.graph.name!r}: {what} must have shape (batch, n_units) = "
                             f"({B}, {plan.n_units}) (the plan's unit layout, vertex i at columns plan.units(i)), "
                             f"got {A.shape}")
        out = np.empty(B * plan.n_units, dtype=dtype)
        out[perm] = A
        return out

    def run(self, plan: GraphPlan, state: ParamState, X, Y, sch: Schedule, used=None, x_init=None,
            eps_init=None) -> GraphBatchResult:
        """One batch of ``sch`` on ``plan`` with the parameters of ``state`` (updated in place when ``sch.learn``).

        ``X`` (B, n_input); ``Y`` (B, n_output) or None (then the output may be neither clamped nor nudged);
        ``used``: Z-IL's ``(n_steps + 1, n_params)`` table (:func:`~neurosim.graph.base.used_at_level`);
        ``x_init`` / ``eps_init`` (B, n_units): the starting values and error states of ``INIT_PREVIOUS``
        (``eps_init`` None: error states start at ``prec (x - mu)`` as with the other inits).
        """
        kern = self._kernels.graph_batch_kernel
        B = X.shape[0]
        dt = state.dtype
        buf = self._buffers(plan, B, dt)
        perm = buf["perm"]
        n = int(sch.n_steps) if sch.algo != ALG_BP else 0
        energies = np.zeros((n + 1, plan.n_vertices))
        y0 = np.zeros((B, plan.n_output), dtype=dt)
        status = np.zeros(5, dtype=np.int64)
        if Y is None and not sch.clamp and sch.beta > 0 and sch.algo != ALG_BP:
            raise ValueError(f"graph {plan.graph.name!r}: nudging the output (beta={sch.beta}) needs a target Y "
                             f"(batch, {plan.n_output}); pass Y or set beta=0")
        Yk = np.ascontiguousarray(Y, dtype=dt) if Y is not None else np.zeros((B, plan.n_output), dtype=dt)
        if used is None:
            used = np.zeros((1, max(plan.n_params, 1)), dtype=np.int64)
        xi = ei = buf["empty"]
        if sch.init == INIT_PREVIOUS and sch.algo != ALG_BP:
            if x_init is None:
                raise ValueError(f"graph {plan.graph.name!r}: init=INIT_PREVIOUS needs x_init (batch, n_units), the "
                                 "values to start from; pass the x of the previous result")
            xi = self._to_blocks(plan, "x_init", x_init, B, dt, perm)
            if eps_init is not None:
                ei = self._to_blocks(plan, "eps_init", eps_init, B, dt, perm)
        track = sch.record_every > 0 and sch.record_item < B
        n_rec = n // int(sch.record_every) + 1 if track else 0
        rec_x = np.zeros((n_rec, plan.n_units), dtype=dt)
        rec_eps = np.zeros_like(rec_x)
        rec_mu = np.zeros_like(rec_x)
        rec_steps = np.zeros(n_rec, dtype=np.int64)
        kern(int(sch.algo), n, float(sch.rate), bool(sch.clamp), bool(sch.learn), bool(sch.immediate),
             bool(sch.wavefront), int(plan.target), float(sch.beta), int(sch.init), float(sch.tol), bool(sch.heun),
             float(sch.dt_decay), int(sch.record_every), int(sch.record_item), float(sch.target_beta),
             float(sch.factor), bool(sch.all_at_zero), np.ascontiguousarray(X, dtype=dt),
             Yk, xi, ei, state.theta, state.m, state.v, state.opt_t, plan.VI, plan.VF, plan.UP, plan.EI, plan.EF, plan.PI,
             plan.PF, used, buf["x"], buf["mu"], buf["eps"], buf["drive"], buf["xhat"], buf["deps"], buf["e0"],
             buf["k1"], buf["ke1"], buf["G"], buf["Gt"], buf["s1"], buf["s2"], buf["sG"], buf["cb"], buf["ob"],
             energies, buf["erow"], y0, rec_steps, rec_x, rec_eps, rec_mu, status,
             np.array([float(sch.read_m2), float(sch.read_a2), float(int(sch.read_seed) % 2 ** 52), 0.0]),
             self._event_args(plan, sch, B, n, dt))
        r = int(status[4])
        recs = dict(rec_steps=rec_steps[:r], rec_x=rec_x[:r], rec_eps=rec_eps[:r], rec_mu=rec_mu[:r])
        if sch.ev_values >= 0:
            ev = self._ev
            last = int(status[1]) if status[0] != STATUS_OK else int(status[3])
            recs.update(events=ev[13][:last + 1].copy(), sops=ev[14].copy(), edge_events=ev[15].copy())
        x = buf["x"][perm]
        out_t = plan.units(plan.target)
        if status[0] != STATUS_OK:
            s = int(status[1])
            return GraphBatchResult(steps=s, energy=energies[:s + 1], status=int(status[0]), fail_step=s,
                                    fail_vertex=int(status[2]), y0=y0, y=x[:, out_t].copy(), x=x, **recs)
        steps = int(status[3])
        D = buf["G"].copy()
        for k in range(plan.n_params):
            if plan.PI[k, P_MEAN]:
                o, sz = int(plan.PI[k, P_OFF]), int(plan.PI[k, P_SIZE])
                D[o:o + sz] /= B
        return GraphBatchResult(steps=steps, energy=energies[:steps + 1], y0=y0, y=x[:, out_t].copy(),
                                directions=D, x=x, eps=buf["eps"][perm], mu=buf["mu"][perm], **recs)
