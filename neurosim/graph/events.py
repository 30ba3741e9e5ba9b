r"""Event (send-on-delta) coding of a graph circuit's relaxation: the NumPy statement (reference backend) of what
the numba graph kernels (:func:`neurosim.graph.kernels._derivs`) and brian2's graph network (``event`` networks,
:mod:`neurosim.backends.brian2.graph`) also do, tested equal.

The event model is that of the layered event engine (:mod:`neurosim.hardware.engine`), on every edge kind of a
graph.  Each vertex :math:`p` that feeds others keeps :math:`\hat x_p`, what its children have received; in every
evaluation it sends the units that moved by more than the value threshold :math:`\theta`,

.. math:: |x_p - \hat x_p| > \theta \;\Rightarrow\; \hat x_p \leftarrow x_p \quad\text{(one event per unit)},

so a residue below :math:`\theta` is carried until it crosses it.  Children compute their predictions from what
they received, :math:`\mu_c = g_c(\hat x_{par(c)})`; the errors :math:`\varepsilon_c = \pi_c(x_c - \mu_c)` are local.
Each vertex with a non-input parent sends its error units the same way with the error threshold
:math:`\theta_\varepsilon` (:math:`\hat\varepsilon_c`), and every parent's feedback is the vector-Jacobian product
:math:`\sum_c J_{c,p}(\hat x)^T\hat\varepsilon_c` of what was received.  The Hebbian term of a parameter is
:math:`(\partial g_c/\partial\theta)(\hat x)^T\varepsilon_c`: the local error and the received presynaptic values.
With :math:`\theta = \theta_\varepsilon = 0` every change is sent, :math:`\hat x = x` and :math:`\hat\varepsilon =
\varepsilon`, and the relaxation is the clock-driven one exactly.

Order of one evaluation (synchronous): the value units send, the predictions are read, the errors and the energy
are computed; before a step, the error units send and the feedback is read.  The sent copies start at 0, so the
first evaluation transmits the initial state (the feedforward start) and its events are counted in row 0.

Counts (summed over the batch): ``events[k, i, 0]`` value and ``events[k, i, 1]`` error events of vertex ``i`` in
evaluation ``k``; ``sops[e, 0]`` and ``sops[e, 1]`` the synaptic operations those events trigger on edge ``e``:
one per receiving synapse -- a value event of unit ``u`` of the source triggers ``fanout[e][u]`` operations (dense:
every unit of the child; convolution: every (output position, tap) that reads ``u``; pooling: every window that
contains ``u``; one-to-one edges: 1), an error event of unit ``v`` of the child triggers ``fanin[e][v]`` (dense:
every unit of the parent; convolution: every tap inside the input; average pooling: the window; max pooling: 1,
the error goes to the first maximum only; one-to-one edges: 1).
"""
from __future__ import annotations

import numpy as np

from .ops import conv_connectivity, pool_connectivity
from .plan import (E_CONV, E_DENSE, EI_KIND, EI_PAD, EI_PARAM, EI_SRC, EI_STRIDE, OP_AVGPOOL, OP_INPUT, OP_MAXPOOL,
                   V_C, V_E0, V_E1, V_H, V_OP, V_PK, V_PS, V_SIZE, V_W, GraphPlan)

__all__ = ["edge_fans", "edge_lists", "EventCoder"]


def edge_fans(plan: GraphPlan) -> list:
    """``[(dst, src, fanout, fanin)]`` of every edge (see the module docstring): ``fanout`` has one entry per unit
    of the source vertex, ``fanin`` one per unit of the destination."""
    VI, EI = plan.VI, plan.EI
    shape = lambda i: (int(VI[i, V_C]), int(VI[i, V_H]), int(VI[i, V_W]))  # noqa: E731
    out = [None] * EI.shape[0]
    for i in range(plan.n_vertices):
        op = int(VI[i, V_OP])
        n = int(VI[i, V_SIZE])
        for e in range(int(VI[i, V_E0]), int(VI[i, V_E1])):
            src = int(EI[e, EI_SRC])
            ns = int(VI[src, V_SIZE])
            kind = int(EI[e, EI_KIND])
            if kind == E_DENSE:
                fo, fi = np.full(ns, n, np.int64), np.full(n, ns, np.int64)
            elif kind == E_CONV:
                pre, post, _ = conv_connectivity(shape(src), shape(i), plan.p_shapes[int(EI[e, EI_PARAM])],
                                                 int(EI[e, EI_STRIDE]), int(EI[e, EI_PAD]))
                fo, fi = np.bincount(pre, minlength=ns), np.bincount(post, minlength=n)
            elif op in (OP_MAXPOOL, OP_AVGPOOL):
                k, s = int(VI[i, V_PK]), int(VI[i, V_PS])
                pre = np.concatenate([pool_connectivity(shape(src), shape(i), k, s, q)[0] for q in range(k * k)])
                fo = np.bincount(pre, minlength=ns)
                fi = np.full(n, 1 if op == OP_MAXPOOL else k * k, np.int64)
            else:   # one-to-one: skips, sums, identities, activations, product factors
                fo, fi = np.ones(ns, np.int64), np.ones(n, np.int64)
            out[e] = (i, src, fo.astype(np.int64), fi.astype(np.int64))
    return out


def edge_lists(plan: GraphPlan, fans: list) -> tuple:
    """``(out_edges, in_edges)`` per vertex: the edges its value events drive, and the edges from non-input parents
    its error events drive back (a vertex sends values iff it has out-edges, errors iff it has such in-edges)."""
    nv = plan.n_vertices
    is_input = plan.VI[:, V_OP] == OP_INPUT
    out_edges = [[e for e, f in enumerate(fans) if f[1] == i] for i in range(nv)]
    in_edges = [[e for e, f in enumerate(fans) if f[0] == i and not is_input[f[1]]] for i in range(nv)]
    return out_edges, in_edges


class EventCoder:
    """The sent copies and the event counters of one batch (see the module docstring).

    Parameters
    ----------
    plan : GraphPlan
    xs : list of arrays
        The initial per-vertex values (only shapes and dtypes are read; the copies start at 0).
    theta_values, theta_errors : float
        Thresholds of the value and error units (>= 0).
    n_eval : int
        Evaluations the counters hold (``n_steps + 1``).
    """

    def __init__(self, plan: GraphPlan, xs: list, theta_values: float, theta_errors: float, n_eval: int):
        self.plan = plan
        self.theta_v, self.theta_e = float(theta_values), float(theta_errors)
        nv = plan.n_vertices
        self.fans = edge_fans(plan)
        self.out_edges, self.in_edges = edge_lists(plan, self.fans)
        self.sends_values = [bool(self.out_edges[i]) for i in range(nv)]
        self.sends_errors = [bool(self.in_edges[i]) for i in range(nv)]
        self.xr = [np.zeros_like(a) if self.sends_values[i] else a for i, a in enumerate(xs)]
        self.er = [np.zeros_like(a) if self.sends_errors[i] else None for i, a in enumerate(xs)]
        self.events = np.zeros((n_eval, nv, 2), np.int64)
        self.sops = np.zeros((len(self.fans), 2), np.float64)
        self.edge_events = np.zeros((len(self.fans), 2), np.float64)   # events delivered into each edge
        self.k = 0   # the evaluation being counted

    def values(self, xs: list) -> list:
        """Send the value units that moved by more than the threshold; returns what the children hold."""
        for i, a in enumerate(xs):
            if not self.sends_values[i]:
                self.xr[i] = a   # a vertex without children sends nothing (nothing reads its copy)
                continue
            mask = np.abs(a - self.xr[i]) > self.theta_v
            self.xr[i] = np.where(mask, a, self.xr[i])
            self.events[self.k, i, 0] += int(mask.sum())
            per_unit = mask.sum(axis=0)
            for e in self.out_edges[i]:
                self.sops[e, 0] += float(per_unit @ self.fans[e][2])
                self.edge_events[e, 0] += float(per_unit.sum())
        return self.xr

    def errors(self, eps: list) -> list:
        """Send the error units that moved by more than the error threshold; returns what the parents hold."""
        out = list(eps)
        for i, a in enumerate(eps):
            if a is None or not self.sends_errors[i]:
                continue
            mask = np.abs(a - self.er[i]) > self.theta_e
            self.er[i] = np.where(mask, a, self.er[i])
            out[i] = self.er[i]
            self.events[self.k, i, 1] += int(mask.sum())
            per_unit = mask.sum(axis=0)
            for e in self.in_edges[i]:
                self.sops[e, 1] += float(per_unit @ self.fans[e][3])
                self.edge_events[e, 1] += float(per_unit.sum())
        return out

    def next(self):
        """The following sends belong to the next evaluation."""
        self.k += 1
