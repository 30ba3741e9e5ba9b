r"""Predictive coding on arbitrary computation graphs (Salvatori et al. 2022; Millidge et al. 2020).

State a :class:`neurosim.Circuit` as vertices -- each a value population, an error population and a local
differentiable function of its parents (:class:`Dense`, :class:`Conv2d`, :class:`Pool`, :class:`Sum`,
:class:`Product`, :class:`Act`, :class:`Identity`); :func:`Graph` (``Graph(vertices, output)``) and the
builders return that one circuit type -- then train it with standard PC, FPA, Z-IL or backprop on the
NumPy reference, the numba kernels or brian2::

    import neurosim as ns
    from neurosim import graph as ng
    net = ng.cnn((1, 8, 8), channels=(8, 16), n_out=10)
    with ns.Simulator(net, backend="numba", seed=0) as sim:
        sim.train(X, Y, epochs=5, batch_size=32, algorithm="zil")

They run on the one :class:`neurosim.Simulator`: declare -> lower (:func:`lower_graph`) -> run
(``GraphSimulator``, its predecessor, was removed: use ``ns.Simulator(graph, ...)``).
``import neurosim.graph`` compiles nothing; the kernels compile (and are cached) when a numba simulator is
built.
"""
from ..errors import removed_names
from .builders import cnn, lstm, lstm_cell, mlp, residual, rnn
from .convert import from_circuit, population_weights, to_populations
from .declare import Act, Conv2d, Dense, Graph, Identity, Input, Param, Pool, Product, Sum, level
from .plan import GraphPlan, lower_graph
from .precondition import diagonal_curvature, precondition, refresh_time_constants
from .simulator import ALGORITHMS, BACKENDS, REMOVED, GraphRelaxResult

__all__ = ["Act", "Conv2d", "Dense", "Graph", "Identity", "Input", "Param", "Pool", "Product", "Sum", "level",
           "GraphPlan", "lower_graph", "GraphRelaxResult", "ALGORITHMS", "BACKENDS", "mlp", "cnn",
           "residual", "rnn", "lstm", "lstm_cell", "rel_diff", "from_circuit", "to_populations", "population_weights", "diagonal_curvature", "precondition",
           "refresh_time_constants"]


__getattr__ = removed_names(__name__, REMOVED)   # GraphSimulator: the message names ns.Simulator


def rel_diff(a: dict, b: dict) -> float:
    r"""Largest relative difference between two dicts of update directions with the same keys,
    :math:`\max_k \lVert a_k - b_k\rVert / \lVert b_k\rVert` (Frobenius norms; a parameter whose
    reference :math:`b_k` is exactly zero contributes its absolute difference)."""
    import numpy as np
    if set(a) != set(b):
        raise ValueError(f"rel_diff: different parameters {sorted(set(a) ^ set(b))}")
    out = 0.0
    for k in b:
        d = float(np.linalg.norm(np.asarray(a[k], dtype=float) - np.asarray(b[k], dtype=float)))
        n = float(np.linalg.norm(np.asarray(b[k], dtype=float)))
        out = max(out, d / n if n > 0 else d)
    return out
