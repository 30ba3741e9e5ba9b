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
import time
from dataclasses import dataclass

import numpy as np

from ..errors import DivergenceError, UnsupportedError
from ..simulator import History, _check_batch, _real_array
from .base import (ALG_BP, ALG_FPA, ALG_PC, ALG_ZIL, STATUS_OK, GraphBatchResult, ParamState, Schedule,
                   used_at_level)
from .declare import Graph, level
from .plan import P_MEAN, P_OFF, P_SIZE, V_OFF, V_SIZE, GraphPlan, lower_graph
from .numba_engine import NumbaGraphEngine as _NumbaBackend  # noqa: F401 (the numba engine)
from .reference import run_reference

__all__ = ["GraphSimulator", "GraphRelaxResult", "ALGORITHMS", "BACKENDS"]


@dataclass(frozen=True)
class _Algorithm:
    name: str
    code: int
    description: str
    options: dict


ALGORITHMS = {
    "pc": _Algorithm("pc", ALG_PC, "standard PC: relax `steps` steps of size `dt` with the output clamped, then "
                                   "one Hebbian update", {}),
    "fpa": _Algorithm("fpa", ALG_FPA, "fixed-prediction assumption: frozen predictions/Jacobians, n steps of size "
                                      "eta; exact BP with eta=1 after the graph depth", {"eta": 1.0, "n": None}),
    "zil": _Algorithm("zil", ALG_ZIL, "Z-IL: feedforward start, rate gamma=1, each vertex updated at the step equal "
                                      "to its level (levelled graph), shared updates deferred; exact BP",
                      {"gamma": 1.0, "levelling": "auto", "shared_updates": "deferred", "values": "wavefront"}),
    "bp": _Algorithm("bp", ALG_BP, "backpropagation on the same network and loss", {}),
}

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


# ----------------------------------------------------------------------------------------------- backends
class _ReferenceBackend:
    name = "reference"

    def run(self, plan, state, X, Y, sch, used):
        return run_reference(plan, state, X, Y, sch, used)


# ----------------------------------------------------------------------------------------------- simulator
class GraphSimulator:
    """Runs a :class:`~neurosim.graph.declare.Graph` on a backend.

    Parameters
    ----------
    graph : Graph
    backend : {"numba", "reference"}
        ``"numba"``: one jitted call per batch (:mod:`neurosim.graph.kernels`); ``"reference"``: the NumPy
        oracle (:mod:`neurosim.graph.reference`).  Any other backend raises :class:`~neurosim.UnsupportedError`.
    seed : int
        Seeds the parameter initialisation (:func:`~neurosim.graph.plan.lower_graph`) and mini-batch shuffling.
    dt : float
        Default step of the standard-PC relaxation (``x += dt / tau_x * (-eps + feedback)``).
    dtype : {"float64", "float32"}
        float32 runs on the reference backend only (the numba kernels are compiled for float64, which keeps
        their compilation to one specialisation); asking numba for float32 raises
        :class:`~neurosim.UnsupportedError`.
    """

    def __init__(self, graph: Graph, backend: str = "numba", seed: int = 0, dt: float = 0.1, dtype="float64"):
        if not isinstance(graph, Graph):
            raise TypeError(f"GraphSimulator needs a neurosim.graph.Graph, got {type(graph).__name__}; layered "
                            "circuits run on neurosim.Simulator")
        if backend not in BACKENDS:
            raise UnsupportedError(f"backend {backend!r} cannot run graph circuits (graph {graph.name!r}); graph "
                                   f"circuits run on {list(BACKENDS)}")
        self.graph = graph
        self.dt = self._check_rate("dt", dt)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"GraphSimulator: dtype must be float64 or float32, got {dtype!r}")
        if backend == "numba" and self.dtype != np.float64:
            raise UnsupportedError(f"backend 'numba' runs graph circuits in float64 only (graph {graph.name!r}); use "
                                   "dtype='float64' or backend='reference' for float32")
        self.seed = int(seed)
        self.backend_name = backend
        self.plan: GraphPlan = lower_graph(graph, self.seed)
        self._levelled_plan: GraphPlan | None = None
        self.state = ParamState(self.plan, self.dtype)
        self._backend = _NumbaBackend() if backend == "numba" else _ReferenceBackend()
        self.history = History()
        self._n_batches = 0
        self._closed = False
        self._blas_limited = False

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _check_rate(name, value):
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"GraphSimulator: {name} must be a number, got {value!r}") from None
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"GraphSimulator: {name} must be finite and > 0, got {value!r}")
        return v

    def _check_open(self):
        if self._closed:
            raise RuntimeError("this GraphSimulator is closed; create a new one")

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

    def _inputs(self, X, Y, need_y, names=("X", "Y")):
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

    # ------------------------------------------------------------------ plans and schedules
    @property
    def levelled_plan(self) -> GraphPlan:
        """The plan of :func:`~neurosim.graph.declare.level` (graph) -- identity vertices inserted, same parameters."""
        if self._levelled_plan is None:
            lev = level(self.graph)
            plan = self.plan if lev is self.graph else lower_graph(lev, self.seed)
            if not plan.same_params(self.plan):  # cannot happen: level() keeps the vertices' parameters
                raise RuntimeError(f"graph {self.graph.name!r}: the levelled graph lays out its parameters differently")
            self._levelled_plan = plan
        return self._levelled_plan

    def schedule(self, algorithm: str, options: dict | None = None, steps: int | None = None,
                 dt: float | None = None, learn: bool = False):
        """Resolve ``algorithm`` and its ``options`` into ``(plan, Schedule, used)`` (validating them)."""
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown graph algorithm {algorithm!r}; available: {sorted(ALGORITHMS)}")
        algo = ALGORITHMS[algorithm]
        options = dict(options or {})
        unknown = set(options) - set(algo.options)
        if unknown:
            raise ValueError(f"algorithm {algorithm!r} has no option(s) {sorted(unknown)}; options: "
                             f"{sorted(algo.options) or 'none'}")
        opts = {**algo.options, **options}
        plan, used = self.plan, None
        if algo.code == ALG_PC:
            steps = 20 if steps is None else steps
            if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
                raise ValueError(f"algorithm 'pc': steps must be a non-negative int, got {steps!r}")
            rate = self.dt if dt is None else self._check_rate("dt", dt)
            sch = Schedule(ALG_PC, int(steps), rate, True, learn)
        elif algo.code == ALG_FPA:
            eta = opts["eta"]
            if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not (math.isfinite(eta) and eta > 0):
                raise ValueError(f"algorithm 'fpa': eta must be finite and > 0, got {eta!r}")
            n = plan.depth if opts["n"] is None else opts["n"]
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
                raise ValueError(f"algorithm 'fpa': n must be a non-negative int or None, got {n!r}")
            sch = Schedule(ALG_FPA, int(n), float(eta), True, learn)
        elif algo.code == ALG_ZIL:
            gamma = opts["gamma"]
            if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not (math.isfinite(gamma)
                                                                                       and gamma > 0):
                raise ValueError(f"algorithm 'zil': gamma must be finite and > 0, got {gamma!r}")
            lv = opts["levelling"]
            if lv not in ("auto", "strict", "off"):
                raise ValueError(f"algorithm 'zil': levelling must be 'auto', 'strict' or 'off', got {lv!r}")
            su = opts["shared_updates"]
            if su not in ("deferred", "immediate"):
                raise ValueError(f"algorithm 'zil': shared_updates must be 'deferred' or 'immediate', got {su!r}")
            vu = opts["values"]
            if vu not in ("wavefront", "all"):
                raise ValueError(f"algorithm 'zil': values must be 'wavefront' or 'all', got {vu!r}")
            if lv == "strict" and not self.graph.is_levelled:
                p, c, span = self.graph.unlevelled_edges()[0]
                raise ValueError(
                    f"algorithm 'zil' needs a levelled graph, but in graph {self.graph.name!r} the edge {p!r} -> {c!r} "
                    f"skips {span - 1} level(s) ({len(self.graph.unlevelled_edges())} such edge(s)); use "
                    "levelling='auto' (identity vertices are inserted) or build the graph with "
                    "neurosim.graph.level(graph)")
            if lv == "auto":
                plan = self.levelled_plan
            n = plan.depth
            used = used_at_level(plan, n)
            sch = Schedule(ALG_ZIL, n, float(gamma), True, learn, su == "immediate", vu == "wavefront")
        else:
            sch = Schedule(ALG_BP, 0, 1.0, True, learn)
        return plan, sch, used

    def _batch(self, plan, X, Y, sch, used, batch=None) -> GraphBatchResult:
        if self.backend_name == "numba" and not self._blas_limited:
            with blas_single_thread():
                res = self._backend.run(plan, self.state, X, Y, sch, used)
        else:
            res = self._backend.run(plan, self.state, X, Y, sch, used)
        if res.status != STATUS_OK:
            where = f" in training batch {batch}" if batch is not None else ""
            name = plan.v_names[res.fail_vertex]
            raise DivergenceError(f"graph {self.graph.name!r}: the run diverged (NaN/inf) at step {res.fail_step} in "
                                  f"vertex {name!r}{where}; reduce dt or the learning rate", step=res.fail_step,
                                  population=name, batch=batch)
        return res

    # ------------------------------------------------------------------ parameters
    @property
    def backend(self):
        return self._backend

    @property
    def weights(self) -> dict:
        """Copies of the parameters ``{name: array}`` (dense ``(n_out, n_in)``, kernels ``(C_out, C_in, kh, kw)``,
        biases ``(n,)`` or ``(C,)``)."""
        return {name: self.state.view(k).copy() for k, name in enumerate(self.plan.p_names)}

    def set_weights(self, name: str, value):
        """Overwrite parameter ``name`` (shape must match)."""
        self._check_open()
        k = self.plan.param_index(name)
        dst = self.state.view(k)
        value = np.asarray(value, dtype=self.dtype)
        if value.shape != dst.shape:
            raise ValueError(f"graph {self.graph.name!r}: parameter {name!r} has shape {dst.shape}, got {value.shape}")
        dst[...] = value

    def load_weights(self, weights: dict):
        """Set parameters from a dict like :attr:`weights`."""
        for name, value in weights.items():
            self.set_weights(name, value)

    # ------------------------------------------------------------------ running
    def _unflatten(self, plan, A):
        return {n: A[:, plan.units(i)].reshape((A.shape[0],) + plan.v_shapes[i]) for i, n in enumerate(plan.v_names)}

    def run(self, X, Y=None, *, steps: int = 20, mode: str | None = None, dt: float | None = None,
            learn: bool = False) -> GraphRelaxResult:
        """Relax one batch with the standard-PC dynamics (feedforward start), optionally learning at the end.

        ``mode="clamp"`` (the default when ``Y`` is given) clamps the output to ``Y``; ``mode="free"`` (the
        default without ``Y``) lets it relax (from the feedforward state a graph is already at its free
        equilibrium, F = 0).
        """
        self._check_open()
        if mode is None:
            mode = "free" if Y is None else "clamp"
        if mode not in ("clamp", "free"):
            raise ValueError(f"mode must be 'clamp' or 'free', got {mode!r}")
        if learn and mode != "clamp":
            raise ValueError("learn=True needs mode='clamp' (a target to learn)")
        X, Y = self._inputs(X, Y, mode == "clamp")
        plan, sch, used = self.schedule("pc", steps=steps, dt=dt, learn=learn)
        sch = Schedule(ALG_PC, sch.n_steps, sch.rate, mode == "clamp", learn)
        res = self._batch(plan, X, Y, sch, used)
        return GraphRelaxResult(steps=res.steps, energy=res.energy, vertices=list(plan.v_names),
                                x=self._unflatten(plan, res.x), eps=self._unflatten(plan, res.eps),
                                mu=self._unflatten(plan, res.mu), y0=res.y0, dt=sch.rate)

    def directions(self, X, Y, algorithm: str = "bp", options: dict | None = None, *, steps: int | None = None,
                   dt: float | None = None, result: bool = False):
        """Update directions of every parameter on one batch, without changing the parameters.

        Returns ``{name: array}``: minus the gradient of the loss (``"bp"``) or of the energy at the state each
        schedule reaches (Hebbian terms; batch mean unless a parameter uses ``batch_reduction="sum"``), summed
        over the uses of shared parameters.  ``result=True`` also returns the :class:`GraphBatchResult`.
        Z-IL's ``shared_updates="immediate"`` only makes a difference when updates are applied (:meth:`step`,
        :meth:`train`).
        """
        self._check_open()
        X, Y = self._inputs(X, Y, True)
        plan, sch, used = self.schedule(algorithm, options, steps, dt, learn=False)
        res = self._batch(plan, X, Y, sch, used)
        D = {name: self.plan.param_view(res.directions, k).copy() for k, name in enumerate(self.plan.p_names)}
        return (D, res) if result else D

    def step(self, X, Y, algorithm: str = "pc", options: dict | None = None, *, steps: int | None = None,
             dt: float | None = None) -> GraphBatchResult:
        """One training step on one batch (the update is applied through the optimisers)."""
        self._check_open()
        X, Y = self._inputs(X, Y, True)
        plan, sch, used = self.schedule(algorithm, options, steps, dt, learn=True)
        return self._batch(plan, X, Y, sch, used)

    def predict(self, X, *, batch_size: int = 1024) -> np.ndarray:
        """Feedforward prediction of the output, ``(B, n_out)`` (the free equilibrium of the graph)."""
        self._check_open()
        X = self._as_2d("X", X, self.plan.n_input, allow_empty=True)
        sch = Schedule(ALG_PC, 0, self.dt, False, False)
        outs = [self._batch(self.plan, X[i:i + batch_size], None, sch, None).y0
                for i in range(0, X.shape[0], batch_size)]
        return np.concatenate(outs, axis=0) if outs else np.zeros((0, self.plan.n_output), dtype=self.dtype)

    def evaluate(self, X, Y, *, batch_size: int = 1024) -> dict:
        """Feedforward loss :math:`\\tfrac12\\lVert t - \\hat y\\rVert^2` (sample mean) and, for several outputs,
        accuracy (argmax)."""
        X, Y = self._inputs(X, Y, True)
        Yhat = self.predict(X, batch_size=batch_size)
        out = {"loss": float(0.5 * np.mean(np.sum((Y - Yhat) ** 2, axis=1)))}
        if Y.shape[1] > 1:
            out["accuracy"] = float(np.mean(np.argmax(Yhat, axis=1) == np.argmax(Y, axis=1)))
        return out

    def train(self, X, Y, *, epochs: int = 1, batch_size: int = 32, algorithm: str = "pc",
              options: dict | None = None, steps: int | None = None, dt: float | None = None, shuffle: bool = True,
              X_test=None, Y_test=None, progress: bool = True, callback=None) -> History:
        """Train with ``algorithm`` (``"pc"``, ``"fpa"``, ``"zil"``, ``"bp"``); returns (and extends) ``sim.history``.

        Per-batch ``loss`` (feedforward :math:`\\tfrac12\\lVert t-\\hat y\\rVert^2` before the update),
        ``accuracy``, ``energy`` (total at the end of the batch's relaxation; BP: the loss),
        ``steps``; per-epoch ``epoch_loss``, ``epoch_accuracy``, ``test_loss``, ``test_accuracy``,
        ``epoch_time``.  Shuffling depends only on the seed and the epoch index.  ``callback(sim, epoch)``
        returning True stops training.
        """
        self._check_open()
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        X, Y = self._inputs(X, Y, True)
        if (X_test is None) != (Y_test is None):
            raise ValueError(f"graph {self.graph.name!r}: train: X_test and Y_test go together; pass both (or neither)")
        if X_test is not None:
            X_test, Y_test = self._inputs(X_test, Y_test, True, names=("X_test", "Y_test"))
        plan, sch, used = self.schedule(algorithm, options, steps, dt, learn=True)
        classify = Y.shape[1] > 1
        n = X.shape[0]
        n_batches = -(-n // batch_size)
        h = self.history
        from ..progress import progress_bar
        bar = progress_bar(total=epochs * n_batches, desc=f"train {algorithm}", enabled=progress)
        limit = blas_single_thread() if self.backend_name == "numba" else contextlib.nullcontext()
        limit.__enter__()
        self._blas_limited = True
        try:
            for epoch in range(epochs):
                t0 = time.perf_counter()
                order = np.random.default_rng([self.seed, len(h["epoch_loss"])]).permutation(n) if shuffle \
                    else np.arange(n)
                losses, accs = [], []
                for bi in range(n_batches):
                    idx = order[bi * batch_size:(bi + 1) * batch_size]
                    xb, yb = X[idx], Y[idx]
                    res = self._batch(plan, xb, yb, sch, used, batch=self._n_batches)
                    self._n_batches += 1
                    loss = float(0.5 * np.mean(np.sum((yb - res.y0) ** 2, axis=1)))
                    h["loss"].append(loss)
                    h["energy"].append(float(res.energy[-1].sum()))
                    h["steps"].append(res.steps)
                    losses.append(loss * len(idx))
                    if classify:
                        acc = float(np.mean(np.argmax(res.y0, 1) == np.argmax(yb, 1)))
                        h["accuracy"].append(acc)
                        accs.append(acc * len(idx))
                    bar.update(1)
                    if bi % 10 == 0 or bi == n_batches - 1:
                        post = {"loss": f"{np.mean(h['loss'][-n_batches:]):.4f}"}
                        if classify:
                            post["acc"] = f"{np.mean(h['accuracy'][-n_batches:]):.3f}"
                        bar.set_postfix(post)
                h["epoch_loss"].append(sum(losses) / n)
                if classify:
                    h["epoch_accuracy"].append(sum(accs) / n)
                if X_test is not None and Y_test is not None:
                    ev = self.evaluate(X_test, Y_test)
                    h["test_loss"].append(ev["loss"])
                    if "accuracy" in ev:
                        h["test_accuracy"].append(ev["accuracy"])
                h["epoch_time"].append(time.perf_counter() - t0)
                if callback is not None and callback(self, epoch):
                    break
        finally:
            self._blas_limited = False
            limit.__exit__(None, None, None)
            bar.close()
        return h

    # ------------------------------------------------------------------ lifecycle
    def reset(self):
        """Clear the network state, as :meth:`neurosim.Simulator.reset`: parameters, optimiser state and history
        are kept.  Every run of a graph starts from the feedforward pass, so there is no state to clear and
        this does nothing; to start over from the initial parameters use :meth:`reinitialize`."""
        self._check_open()

    def reinitialize(self):
        """Start over: initial parameters back (those drawn from ``seed``), optimiser state and history
        cleared -- everything learned is lost."""
        self._check_open()
        self.state.reset()
        self.history = History()
        self._n_batches = 0

    def close(self):
        if not self._closed:
            self._backend = None
            self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return (f"GraphSimulator(graph={self.graph.name!r}, backend={self.backend_name!r}, dt={self.dt}, "
                f"dtype={self.dtype.name}, vertices={self.plan.n_vertices}, params={self.plan.n_params})")
