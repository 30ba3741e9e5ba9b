r""":class:`neurosim.Simulator` on graph circuits: the algorithms, their options, and the shared run helpers.

>>> import neurosim as ns
>>> from neurosim import graph as ng
>>> net = ng.mlp([64, 32, 10], phi="tanh")
>>> sim = ns.Simulator(net, backend="numba", seed=0)                             # doctest: +SKIP
>>> hist = sim.train(X, Y, epochs=5, batch_size=32, algorithm="zil")            # doctest: +SKIP
>>> sim.directions(X[:8], Y[:8], algorithm="bp")                                 # doctest: +SKIP

``GraphSimulator``, the graph-only simulator of earlier versions, was removed: ``ns.Simulator(graph, ...)``
runs graph circuits with the same backends, numbers, training loop, probes and checkpoints.

Algorithms (``algorithm=`` of :meth:`neurosim.Simulator.train`, :meth:`~neurosim.Simulator.step`,
:meth:`~neurosim.Simulator.directions`; options through ``options={...}``):

``"pc"``
    standard PC (inference learning): feedforward start, output clamped to the target, ``steps`` Euler
    steps of size ``dt`` of the gradient flow of :math:`F`, then one Hebbian update at the reached state.
``"fpa"``
    fixed-prediction assumption: predictions and Jacobians frozen at the feedforward pass, ``n`` synchronous
    steps of size ``eta`` (options ``eta=1.0``, ``n=None`` -> the graph depth + 1, the weight layers on the
    longest path, as for a circuit stated as populations); exact BP with ``eta = 1`` after ``depth`` steps.
``"zil"``
    zero-divergence inference learning: PC dynamics with inference rate ``gamma`` (1.0) from the feedforward
    state, each vertex's parameters updated with its error at the step equal to its level, shared parameters
    accumulated over the sweep; exact BP on a levelled graph.  Options ``levelling`` (``"auto"``: run on
    :func:`~neurosim.graph.declare.level` of the graph, identity vertices inserted; ``"strict"``: raise if the
    graph is not levelled; ``"off"``: run on the graph as declared -- the negative control),
    ``shared_updates`` (``"deferred"``; ``"immediate"`` applies each use's contribution at its own step, the
    other negative control), ``values`` (``"wavefront"``: at step t only the vertices at level t + 1 move, as
    in Song et al.'s reference code; ``"all"``: every free vertex follows the PC dynamics -- the same updates,
    but values behind the wave-front can grow without bound in graphs with products, e.g. LSTMs) and
    ``gamma``.
``"bp"``
    backpropagation on the same network and loss :math:`\tfrac{\pi_{out}}{2}\lVert t - \hat y\rVert^2`
    (batch mean), applied through the same optimisers.

Every update is applied through each parameter's own optimiser with the Hebbian sign convention
(direction = minus the gradient), so a parameter's update under ``zil``/``fpa`` equals its update under
``bp`` whenever the directions agree.  The exactness of ``zil`` and ``fpa`` assumes precision 1 and
``tau_x = 1`` on every vertex except the output (the output precision scales backprop's loss the same way).
"""
from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass

import numpy as np

from ..errors import removed_names
from .backend import ALGORITHMS
from .numba_engine import NumbaGraphEngine as _NumbaBackend  # noqa: F401 (the numba engine)

__all__ = ["GraphRelaxResult", "ALGORITHMS", "BACKENDS"]


BACKENDS = ("numba", "reference")

_BLAS_CONTROLLER = []


def blas_single_thread():
    """Context in which BLAS runs single-threaded (a no-op without ``threadpoolctl``).

    The kernels' matrix products are small (tens to hundreds of rows); OpenBLAS's worker threads only add
    synchronisation to them, and on a loaded machine they made a batch ~10-20x slower in our measurements.
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return contextlib.nullcontext()
    if not _BLAS_CONTROLLER:
        try:  # numba's np.dot calls scipy's BLAS: load it first, or the controller would not see it
            importlib.import_module("scipy.linalg.cython_blas")
        except ImportError:  # pragma: no cover - numba needs scipy for np.dot
            pass
        _BLAS_CONTROLLER.append(ThreadpoolController())
    return _BLAS_CONTROLLER[0].limit(limits=1, user_api="blas")


@dataclass
class GraphRelaxResult:
    """A relaxation with vertex-shaped arrays (what the removed ``GraphSimulator.run`` returned;
    :meth:`neurosim.Simulator.run` returns a :class:`~neurosim.RelaxResult` with flat ``(B, n)`` arrays).

    Attributes
    ----------
    steps : int
    energy : ndarray (steps + 1, n_vertices)
        Batch-mean energy of each vertex after each step (row 0: the initial state).
    vertices : list of str
        Column names of ``energy`` (topological order).
    x, eps, mu : dict name -> ndarray (B, \\*shape)
        Final values, errors, predictions (inputs: ``eps`` and ``mu`` are zero).
    y0 : ndarray (B, n_out)
        Feedforward prediction of the output.
    dt : float
    """

    steps: int
    energy: np.ndarray
    vertices: list
    x: dict
    eps: dict
    mu: dict
    y0: np.ndarray
    dt: float

    @property
    def total_energy(self) -> np.ndarray:
        return self.energy.sum(axis=1)


REMOVED = {"GraphSimulator": "neurosim.graph.GraphSimulator was removed: use neurosim.Simulator(graph, ...) "
                             "(same backends, algorithms, training, probes and checkpoints; run() returns flat "
                             "(B, n) arrays, sim.plan.v_shapes gives the vertices' shapes)"}


__getattr__ = removed_names(__name__, REMOVED)
