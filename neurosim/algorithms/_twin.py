r"""The compiled schedules of a layered circuit: its vertex form run by the graph kernels.

``fpa``, ``zil``, ``ipc`` and ``bp`` on ``backend="numba"`` do not have kernels of their own for circuits stated
as populations.  The circuit is written as vertices (:meth:`neurosim.Circuit.as_graph`, the same equations: a
Dense vertex per population, the projections' weights, biases, multipliers, skips, precisions and time
constants), and one batch runs in :mod:`neurosim.graph.kernels`, the kernels that run every graph circuit.  So
each of these schedules is written once in numba for every circuit kind; the NumPy statements of the layered
schedules (:mod:`neurosim.algorithms.fpa` etc., on :class:`neurosim.equations.LayeredEquations`) stay the
oracle the kernels are tested against, on both forms.

:class:`GraphTwin` holds the vertex form's plan and parameters.  Around every batch the layered backend's
weights, biases, optimiser moments and step counters are copied in (matched by name: projection ``k`` is the
parameter ``proj_names[k]``, its bias ``proj_names[k] + ".b"``) and, after the batch, back; the result is
reported in the layered plan's layout (energies per population, records per unit, the failing population).

The layered schedules' settings map onto a :class:`~neurosim.graph.base.Schedule`:

* the output options (:mod:`neurosim.algorithms._common`): the effective output precision becomes the twin
  plan's per-unit precision ``UP``, the weak target ``beta`` its ``target_beta``, the compensation its
  ``factor``;
* ``fpa``: ``n`` value updates of size ``eta`` with the frozen feedforward predictions;
* ``zil``: ``n_upd - 1`` steps of size ``gamma`` on the levelled vertex form (as :func:`~neurosim.algorithms.zil.
  level_circuit` levels the populations), every free value moving at every step, each parameter updated at
  the step equal to its vertex's level (``update_all_at_zero``: all at step 0);
* ``ipc``: ``n_steps`` joint steps of size ``gamma`` (clamped or nudged output);
* ``bp``: the feedforward pass and the backward pass.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..backends.base import MODE_CLAMP, BatchResult
from ..errors import UnsupportedError

__all__ = ["GraphTwin", "twin_of"]


class _Layout:
    """How one graph plan's vertices and units sit in the layered plan (by name; vertices the layered circuit
    does not have, e.g. the identity vertices levelling inserts, are dropped)."""

    def __init__(self, lplan, gplan):
        self.vert = np.array([gplan.vertex_index(n) for n in lplan.pop_names], dtype=np.int64)
        self.units = np.concatenate([np.arange(gplan.units(n).start, gplan.units(n).stop) for n in lplan.pop_names]) \
            if lplan.n_units else np.zeros(0, np.int64)
        self.pop_of = {int(i): j for j, i in enumerate(self.vert)}


class GraphTwin:
    """The vertex form of a simulator's layered circuit, with a graph numba backend to run its batches."""

    def __init__(self, sim):
        from ..graph.backend import GraphNumbaBackend
        from ..graph.convert import from_circuit
        from ..graph.plan import P_OFF, P_SIZE, lower_graph
        try:
            graph = from_circuit(sim.circuit)
        except ValueError as e:
            raise UnsupportedError(f"backend 'numba' runs fpa, zil, ipc and bp on a circuit's vertex form, which "
                                   f"cannot state this circuit: {e}; use backend='reference'") from None
        self.lplan = lp = sim.plan
        self.plan = gp = lower_graph(graph, 0)
        self.backend = GraphNumbaBackend(gp, dtype=sim.backend.dtype)
        # (layered offset, size, theta offset, projection, graph parameter) of every weight matrix and bias
        self.wmap, self.bmap = [], []
        for k, name in enumerate(lp.proj_names):
            if lp.w_off[k] >= 0:
                j = gp.param_index(name)
                self.wmap.append((int(lp.w_off[k]), int(gp.PI[j, P_SIZE]), int(gp.PI[j, P_OFF]), k, j))
            if lp.b_off[k] >= 0:
                j = gp.param_index(f"{name}.b")
                self.bmap.append((int(lp.b_off[k]), int(gp.PI[j, P_SIZE]), int(gp.PI[j, P_OFF]), k, j))
        # the step counter of projection k comes back from its weights' parameter (its bias's without weights)
        self.t_of = {}
        for _, _, _, k, j in self.bmap + self.wmap:
            self.t_of[k] = j
        # whether any optimiser keeps moments (SGD with momentum, Adam): only then are they copied
        from ..graph.plan import OPT_ADAM, P_OPT, PF_MOM
        self.moments = bool(np.any((gp.PI[:, P_OPT] == OPT_ADAM) | (gp.PF[:, PF_MOM] > 0))) if gp.n_params else False
        self._layouts = {}
        self._plans = {}
        self._used = {}

    # ------------------------------------------------------------------ parameters
    def copy_in(self, be):
        """The layered backend's parameters (and the optimiser state the update needs) into the twin."""
        st = self.backend.params
        for src, (W, M, V) in ((self.wmap, (be.W, be.mW, be.vW)), (self.bmap, (be.b, be.mb, be.vb))):
            for o, n, go, k, j in src:
                st.theta[go:go + n] = W[o:o + n]
                if self.moments:
                    st.m[go:go + n] = M[o:o + n]
                    st.v[go:go + n] = V[o:o + n]
                st.opt_t[j] = be.opt_t[k]

    def copy_out(self, be):
        """The twin's parameters and optimiser state back into the layered backend (after an update)."""
        st = self.backend.params
        for src, (W, M, V) in ((self.wmap, (be.W, be.mW, be.vW)), (self.bmap, (be.b, be.mb, be.vb))):
            for o, n, go, k, j in src:
                W[o:o + n] = st.theta[go:go + n]
                if self.moments:
                    M[o:o + n] = st.m[go:go + n]
                    V[o:o + n] = st.v[go:go + n]
        for k, j in self.t_of.items():
            be.opt_t[k] = st.opt_t[j]

    def directions(self, D):
        """The graph's reduced directions ``D`` as the layered ``(g_W, g_b)`` dicts (projection -> array)."""
        lp = self.lplan
        gW = {k: D[go:go + n].reshape(lp.weight_shape(k)).copy() for o, n, go, k, j in self.wmap}
        gb = {k: D[go:go + n].copy() for o, n, go, k, j in self.bmap}
        return gW, gb

    # ------------------------------------------------------------------ plans
    def plan_for(self, prec, levelled=False):
        """The twin plan (levelled for Z-IL) with the layered per-unit precision ``prec`` (the output options'
        effective precision); cached per precision."""
        key = (levelled, prec.tobytes())
        if key not in self._plans:
            base = self.backend.levelled_plan if levelled else self.plan
            up = base.UP.copy()
            lay = self.layout(base)
            up[lay.units] = prec
            self._plans[key] = base if np.array_equal(up, base.UP) else dataclasses.replace(base, UP=up)
        return self._plans[key]

    def layout(self, gplan) -> _Layout:
        key = id(gplan.graph), gplan.n_units, gplan.n_vertices
        if key not in self._layouts:
            self._layouts[key] = _Layout(self.lplan, gplan)
        return self._layouts[key]

    # ------------------------------------------------------------------ one batch
    def run(self, sim, X, Y, sch, st, levelled=False, used=None):
        """Run ``sch`` (a :class:`~neurosim.graph.base.Schedule` without the output options, which come from the
        :class:`~neurosim.algorithms._common.OutputSettings` ``st``) on the layered simulator's weights; returns
        ``(BatchResult, (g_W, g_b) or None)`` in the layered layout."""
        from ..graph.base import used_at_level
        plan = self.plan_for(np.asarray(st.prec, dtype=np.float64), levelled)
        sch = dataclasses.replace(sch, target_beta=float(st.beta), factor=float(st.factor))
        if used is None and sch.immediate:   # Z-IL's update table, once per plan and step count
            key = (id(plan), int(sch.n_steps))
            if key not in self._used:
                self._used[key] = used_at_level(plan, int(sch.n_steps))
            used = self._used[key]
        be = sim.backend
        self.copy_in(be)
        dt = self.backend.dtype
        X = np.ascontiguousarray(X, dtype=dt)
        # BLAS threads as the layered numba backend chooses them (its option blas_threads, else its adaptive
        # choice, measured per schedule and batch shape)
        with be.blas_policy(("schedule", int(sch.algo), X.shape[0], int(sch.n_steps)), X.shape[0]):
            res = self.backend._engine.run(plan, self.backend.params, X, np.ascontiguousarray(Y, dtype=dt), sch,
                                           used)
        if sch.learn:
            self.copy_out(be)
        lay = self.layout(plan)
        fail = lay.pop_of.get(int(res.fail_vertex), -1) if res.status != 0 else -1
        if res.status != 0 and fail < 0 and res.fail_vertex >= 0:   # an inserted identity vertex: its source chain
            fail = int(self.lplan.target_pop)
        empty = np.zeros((0, self.lplan.n_units), dtype=dt)
        rec = {name: (getattr(res, name)[:, lay.units] if getattr(res, name) is not None else empty)
               for name in ("rec_x", "rec_eps", "rec_mu")}
        out = BatchResult(steps=int(res.steps), energy=np.asarray(res.energy)[:, lay.vert], status=int(res.status),
                          fail_step=int(res.fail_step), fail_pop=int(fail),
                          rec_steps=res.rec_steps if res.rec_steps is not None else np.zeros(0, np.int64),
                          y0=res.y0, y=res.y, **rec)
        dirs = self.directions(res.directions) if res.status == 0 and res.directions is not None else None
        return out, dirs


def twin_of(sim) -> GraphTwin:
    """The simulator's :class:`GraphTwin` (built at its first compiled schedule and kept)."""
    tw = getattr(sim, "_graph_twin", None)
    if tw is None or tw.lplan is not sim.plan or tw.backend.dtype != sim.backend.dtype:
        tw = GraphTwin(sim)
        sim._graph_twin = tw
    return tw


def record_settings(spec) -> dict:
    """The probe settings of a layered RunSpec as Schedule fields."""
    every = int(getattr(spec, "probe_every", 0) or 0)
    return dict(record_every=every, record_item=int(getattr(spec, "probe_item", 0) or 0)) if every > 0 else {}


def clamped(spec) -> bool:
    return spec.mode == MODE_CLAMP
