r"""Per-vertex time constants from the curvature of the energy (a Jacobi preconditioner for PC relaxation).

Standard PC relaxes every belief by the gradient flow :math:`\tau_i \dot x_i = -\partial F/\partial x_i`
(:mod:`neurosim.graph.declare`).  With Euler steps of size ``dt`` the relaxation is stable only while
``dt / tau_i`` times the curvature along the stiffest direction stays below 2, and the stiffest vertices of an
unrolled LSTM (the hidden states ``h_t``, read by four gates and the next step) have a curvature about five
times that of the cell-state and gate vertices.  With one ``tau_x`` for all, ``dt`` must suit ``h_t`` and the
error then crawls through the other ~40 levels.

:func:`diagonal_curvature` measures, at the feedforward state of a batch, the mean diagonal of the
Gauss-Newton curvature of the energy with respect to each vertex,

.. math::

    c_i = \pi_i + \sum_{c \in \mathrm{ch}(i)} \pi_c \,\frac{1}{B\,n_i}
          \sum_{b} \big\lVert J_{c,i}^{(b)} \big\rVert_F^2 ,
    \qquad J_{c,i} = \partial g_c / \partial x_i ,

(exact: one vector-Jacobian product per unit of every child), and :func:`precondition` returns the graph with
:math:`\tau_{x,i} = \max(c_i, \text{floor})` -- a Jacobi (diagonal) preconditioning of the relaxation, which
lets ``dt`` approach 1 for every vertex.  The learning rule and the fixed points are unchanged: only how fast
each belief moves.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .declare import Graph
from .ops import vertex_vjp
from .plan import OP_INPUT, V_OP, V_SIZE, GraphPlan, lower_graph
from .reference import feedforward

__all__ = ["diagonal_curvature", "precondition", "refresh_time_constants"]


def diagonal_curvature(plan: GraphPlan, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    r"""``(n_vertices,)`` mean diagonal Gauss-Newton curvature :math:`c_i` of the energy at the feedforward state
    of ``X`` (module docstring); 0 for inputs.  Costs one vector-Jacobian product per unit of every vertex."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != plan.n_input:
        raise ValueError(f"diagonal_curvature: X must have shape (B, {plan.n_input}) for graph {plan.graph.name!r}, "
                         f"got {X.shape}")
    xs = feedforward(plan, theta, X)
    nv = plan.n_vertices
    is_input = plan.VI[:, V_OP] == OP_INPUT
    prec = plan.VF[:, 0]
    curv = np.where(is_input, 0.0, prec).astype(np.float64)
    B = X.shape[0]
    for c in range(nv):
        if is_input[c]:
            continue
        n_c = int(plan.VI[c, V_SIZE])
        sq = {}
        for k in range(n_c):
            e = np.zeros((B, n_c))
            e[:, k] = 1.0
            acc = {}
            for p, g in vertex_vjp(plan, theta, xs, c, e):   # row k of J_{c,p}, per batch item
                if not is_input[p]:
                    acc[p] = acc.get(p, 0.0) + g
            for p, g in acc.items():
                sq[p] = sq.get(p, 0.0) + float(np.sum(g * g))
        for p, s in sq.items():
            curv[p] += prec[c] * s / (B * int(plan.VI[p, V_SIZE]))
    return curv


def precondition(graph: Graph, X: np.ndarray, seed: int = 0, floor: float = 1.0) -> Graph:
    r"""``graph`` with every non-input vertex's ``tau_x`` set to :math:`\max(c_i, \text{floor})`, :math:`c_i` from
    :func:`diagonal_curvature` at the initial parameters of ``seed`` (those a ``Simulator(graph, seed=seed)``
    starts from) and the feedforward state of ``X`` (a batch of training inputs).  Parameters, precisions and
    names are unchanged, so a simulator of the result starts from the same parameters."""
    if not (np.isfinite(floor) and floor > 0):
        raise ValueError(f"precondition: floor must be finite and > 0, got {floor!r}")
    plan = lower_graph(graph, seed)
    curv = diagonal_curvature(plan, plan.theta0, X)
    tau = {name: max(float(curv[i]), float(floor)) for i, name in enumerate(plan.v_names)
           if plan.VI[i, V_OP] != OP_INPUT}
    verts = [replace(v, tau_x=tau[v.name]) if v.name in tau else v for v in graph.vertices]
    return Graph(verts, graph.output, params=graph.params, plasticity=graph.plasticity, name=graph.name,
                 probes=graph.probes)


def refresh_time_constants(sim, X: np.ndarray, floor: float = 1.0) -> np.ndarray:
    r"""Re-measure :func:`diagonal_curvature` at the simulator's *current* parameters and the feedforward state
    of ``X``, and set every non-input vertex's time constant to :math:`\max(c_i, \text{floor})` in place.

    The curvature grows as the weights grow during training (on the digit-row LSTM the stiffest vertex goes
    from about 6 to 15 in 15 epochs), so time constants measured once at the start let the relaxation drift
    past its stability limit; calling this after every epoch (``Simulator.train(callback=...)``) keeps
    ``dt`` a step in units of each vertex's stable step.  Both graph backends read the time constants from
    ``sim.plan`` at every batch.  Returns the new time constants ``(n_vertices,)`` (inputs: unchanged).
    """
    plan = sim.plan
    if not isinstance(plan, GraphPlan):
        raise ValueError("refresh_time_constants: the simulator must run a graph circuit "
                         f"(neurosim.graph.Graph), got a {type(plan).__name__}")
    if not (np.isfinite(floor) and floor > 0):
        raise ValueError(f"refresh_time_constants: floor must be finite and > 0, got {floor!r}")
    curv = diagonal_curvature(plan, np.asarray(sim.backend.params.theta, dtype=np.float64), X)
    comp = plan.VI[:, V_OP] != OP_INPUT
    plan.VF[comp, 1] = np.maximum(curv[comp], floor)
    return plan.VF[:, 1].copy()
