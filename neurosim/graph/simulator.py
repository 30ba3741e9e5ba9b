r""":class:`GraphSimulator`: the lifecycle of :class:`neurosim.Simulator` for graph circuits.

>>> from neurosim import graph as ng
>>> net = ng.mlp([64, 32, 10], phi="tanh")
>>> sim = ng.GraphSimulator(net, backend="numba", seed=0)                        # doctest: +SKIP
>>> hist = sim.train(X, Y, epochs=5, batch_size=32, algorithm="zil")            # doctest: +SKIP
>>> sim.directions(X[:8], Y[:8], algorithm="bp")                                 # doctest: +SKIP

Algorithms (``algorithm=`` of :meth:`GraphSimulator.train`, :meth:`~GraphSimulator.step`,
:meth:`~GraphSimulator.directions`; options through ``options={...}``):

``"pc"``
    standard PC (inference learning): feedforward start, output clamped to the target, ``steps`` Euler
    steps of size ``dt`` of the gradient flow of :math:`F`, then one Hebbian update at the reached state.
``"fpa"``
    fixed-prediction assumption: predictions and Jacobians frozen at the feedforward pass, ``n`` synchronous
    steps of size ``eta`` (options ``eta=1.0``, ``n=None`` -> the graph depth); exact BP with ``eta = 1`` after
    ``depth`` steps.
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
import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..backends.base import MODE_CLAMP, MODE_NUDGE
from ..errors import DivergenceError
from ..simulator import History, Simulator, _check_batch, _real_array
from .backend import ALGORITHMS
from .base import STATUS_OK, GraphBatchResult, ParamState
from .declare import Graph
from .numba_engine import NumbaGraphEngine as _NumbaBackend  # noqa: F401 (the numba engine)
from .plan import GraphPlan

__all__ = ["GraphSimulator", "GraphRelaxResult", "ALGORITHMS", "BACKENDS"]


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
    """The outcome of :meth:`GraphSimulator.run`.

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


# ----------------------------------------------------------------------------------------------- simulator
class GraphSimulator(Simulator):
    """Deprecated: :class:`neurosim.Simulator` runs graph circuits (``ns.Simulator(graph, backend=...)``);
    building one emits a DeprecationWarning.

    Kept so that code written for it keeps running with the same numbers: the constructor's argument order
    (``graph, backend, seed, dt, dtype``), ``run`` returning a :class:`GraphRelaxResult` (vertex-shaped
    arrays), ``step``/``directions`` returning the :class:`~neurosim.graph.base.GraphBatchResult`, ``state``
    (the parameters and optimiser state, :class:`~neurosim.graph.base.ParamState`), ``train`` with one epoch by
    default.  Everything else is :class:`neurosim.Simulator`.
    """

    def __init__(self, graph: Graph, backend: str = "numba", seed: int = 0, dt: float = 0.1, dtype="float64"):
        warnings.warn("GraphSimulator is deprecated: use neurosim.Simulator(graph, ...) (same backends, training, "
                      "probes and checkpoints; run() returns flat (B, n) arrays, sim.plan.v_shapes gives the "
                      "vertices' shapes)", DeprecationWarning, stacklevel=2)
        if not isinstance(graph, Graph):
            raise TypeError(f"GraphSimulator needs a neurosim.graph.Graph, got {type(graph).__name__}; layered "
                            "circuits run on neurosim.Simulator")
        self.graph = graph
        self._check_rate("dt", dt)
        super().__init__(graph, dt=dt, backend=backend, seed=seed, dtype=dtype)

    @staticmethod
    def _check_rate(name, value):
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"GraphSimulator: {name} must be a number, got {value!r}") from None
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"GraphSimulator: {name} must be finite and > 0, got {value!r}")
        return v

    @staticmethod
    def _check_dt(circuit, dt):   # as before: any finite dt > 0 (neurosim.Simulator also refuses unstable steps)
        return GraphSimulator._check_rate("dt", dt)

    def _as_2d(self, what, A, n_cols, allow_empty=False):
        owner = f"graph {self.graph.name!r}: "
        A = _real_array(what, A, self.dtype, owner)
        if A.ndim == 1:
            A = A[None, :] if n_cols != 1 or A.shape[0] == 1 else A[:, None]
        elif A.ndim > 2:
            A = A.reshape(A.shape[0], -1)
        if A.ndim != 2 or A.shape[1] != n_cols:
            raise ValueError(f"{owner}{what} must have shape (batch, {n_cols}) (inputs "
                             f"{list(self.graph.inputs)} in declaration order), got {np.shape(A)}")
        return np.ascontiguousarray(_check_batch(what, A, owner, allow_empty))

    def _graph_inputs(self, X, Y, need_y, names=("X", "Y")):
        nx, ny = names
        X = self._as_2d(nx, X, self.plan.n_input)
        if Y is None:
            if need_y:
                raise ValueError(f"graph {self.graph.name!r}: a target {ny} (batch, {self.plan.n_output}) is needed "
                                 "to clamp the output")
            return X, None
        Y = self._as_2d(ny, Y, self.plan.n_output)
        if Y.shape[0] != X.shape[0]:
            raise ValueError(f"graph {self.graph.name!r}: {nx} has {X.shape[0]} samples but {ny} has {Y.shape[0]}")
        return X, Y

    def _inputs(self, X, Y, mode, names=("X", "Y")):
        return self._graph_inputs(X, Y, mode in (MODE_CLAMP, MODE_NUDGE), names)

    @property
    def state(self) -> ParamState:
        """The parameters ``theta`` and optimiser state (``m``, ``v``, ``opt_t``)."""
        return self._backend.params

    @property
    def levelled_plan(self) -> GraphPlan:
        """The plan of :func:`~neurosim.graph.declare.level` (graph) -- identity vertices inserted, same parameters."""
        return self._backend.levelled_plan

    def schedule(self, algorithm: str, options: dict | None = None, steps: int | None = None,
                 dt: float | None = None, learn: bool = False):
        """Resolve ``algorithm`` and its ``options`` into ``(plan, Schedule, used)`` (validating them)."""
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown graph algorithm {algorithm!r}; available: {sorted(ALGORITHMS)}")
        _, opts = self._algorithm(algorithm, options)
        spec = self._spec(20 if steps is None else steps, "clamp", 0.0, "feedforward", None,
                          None if dt is None else self._check_rate("dt", dt), 1.0, None, learn, record=False)
        return self._backend.schedule(algorithm, opts, spec)

    def _graph_batch(self, X, Y, algorithm, options, steps, dt, learn) -> GraphBatchResult:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown graph algorithm {algorithm!r}; available: {sorted(ALGORITHMS)}")
        _, opts = self._algorithm(algorithm, options)
        spec = self._spec(20 if steps is None else steps, "clamp", 0.0, "feedforward", None,
                          None if dt is None else self._check_rate("dt", dt), 1.0, None, learn, record=False)
        res, gres = self._backend.run_graph(X, Y, spec, algorithm, opts)
        if res.status != STATUS_OK:
            name = self.plan.v_names[res.fail_pop]
            raise DivergenceError(f"graph {self.graph.name!r}: the run diverged (NaN/inf) at step {res.fail_step} in "
                                  f"vertex {name!r}; reduce dt or the learning rate", step=res.fail_step,
                                  population=name)
        return gres

    def _unflatten(self, plan, A):
        return {n: A[:, plan.units(i)].reshape((A.shape[0],) + plan.v_shapes[i]) for i, n in enumerate(plan.v_names)}

    def run(self, X, Y=None, *, steps: int = 20, mode: str | None = None, dt: float | None = None,
            learn: bool = False) -> GraphRelaxResult:
        """Relax one batch with the standard-PC dynamics (feedforward start), optionally learning at the end;
        arrays have the vertices' shapes."""
        self._check_open()
        if mode is None:
            mode = "free" if Y is None else "clamp"
        if mode not in ("clamp", "free"):
            raise ValueError(f"mode must be 'clamp' or 'free', got {mode!r}")
        if learn and mode != "clamp":
            raise ValueError("learn=True needs mode='clamp' (a target to learn)")
        r = super().run(X, Y, steps=steps, mode=mode, dt=None if dt is None else self._check_rate("dt", dt),
                        learn=learn)
        st = self._backend._state
        plan = self.plan
        return GraphRelaxResult(steps=r.steps, energy=r.energy, vertices=list(plan.v_names),
                                x=self._unflatten(plan, st[0]), eps=self._unflatten(plan, st[1]),
                                mu=self._unflatten(plan, st[2]), y0=r.y0, dt=r.dt)

    def directions(self, X, Y, algorithm: str = "bp", options: dict | None = None, *, steps: int | None = None,
                   dt: float | None = None, result: bool = False):
        """Update directions of every parameter on one batch (see :meth:`neurosim.Simulator.directions`);
        ``result=True`` also returns the :class:`GraphBatchResult`."""
        self._check_open()
        X, Y = self._graph_inputs(X, Y, True)
        res = self._graph_batch(X, Y, algorithm, options, steps, dt, False)
        D = {name: self.plan.param_view(res.directions, k).copy() for k, name in enumerate(self.plan.p_names)}
        return (D, res) if result else D

    def step(self, X, Y, algorithm: str = "pc", options: dict | None = None, *, steps: int | None = None,
             dt: float | None = None) -> GraphBatchResult:
        """One training step on one batch (the update is applied through the optimisers)."""
        self._check_open()
        X, Y = self._graph_inputs(X, Y, True)
        return self._graph_batch(X, Y, algorithm, options, steps, dt, True)

    def predict(self, X, *, batch_size: int = 1024) -> np.ndarray:
        """Feedforward prediction of the output, ``(B, n_out)`` (the free equilibrium of the graph)."""
        return super().predict(X, batch_size=batch_size)

    def evaluate(self, X, Y, *, batch_size: int = 1024) -> dict:
        """Feedforward loss :math:`\\tfrac12\\lVert t - \\hat y\\rVert^2` (sample mean) and, for several outputs,
        accuracy (argmax)."""
        return super().evaluate(X, Y, batch_size=batch_size)

    def train(self, X, Y, *, epochs: int = 1, batch_size: int = 32, algorithm: str = "pc",
              options: dict | None = None, steps: int | None = None, dt: float | None = None, shuffle: bool = True,
              X_test=None, Y_test=None, progress: bool = True, callback=None) -> History:
        """:meth:`neurosim.Simulator.train` with this class's defaults (1 epoch, 20 steps)."""
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown graph algorithm {algorithm!r}; available: {sorted(ALGORITHMS)}")
        return super().train(X, Y, epochs=epochs, batch_size=batch_size, algorithm=algorithm, options=options,
                             steps=20 if steps is None else steps,
                             dt=None if dt is None else self._check_rate("dt", dt), shuffle=shuffle,
                             X_test=X_test, Y_test=Y_test, progress=progress, callback=callback)

    def reset(self):
        """Clear the network state (parameters, optimiser state and history are kept)."""
        super().reset()

    def __repr__(self):
        return (f"GraphSimulator(graph={self.graph.name!r}, backend={self.backend_name!r}, dt={self.dt}, "
                f"dtype={self.dtype.name}, vertices={self.plan.n_vertices}, params={self.plan.n_params})")
