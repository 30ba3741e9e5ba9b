r"""Graph circuits behind the one :class:`neurosim.Simulator`: the backends that run a :class:`GraphPlan`.

``neurosim.Simulator(graph, backend="numba" | "reference")`` lowers a :class:`~neurosim.graph.Graph` with
:func:`~neurosim.graph.plan.lower_graph` and builds one of the backends below (``backend="brian2"``, rate mode:
:class:`neurosim.backends.brian2.graph.GraphBrian2Backend`, the same protocol on a brian2 network; it runs
``pc``, ``strict`` and ``ipc``).  They implement the same
:class:`~neurosim.backends.base.Backend` protocol as the layered backends -- ``run_batch(s, t, spec) ->
BatchResult``, the parameter and optimiser arrays ``W``/``mW``/``vW``/``opt_t`` (``b``, ``mb``, ``vb`` are empty:
a graph's biases are parameters in ``theta`` like its weights), ``state``/``set_state``, ``reset`` -- so the
Simulator's training loop, probes, checkpoints, progress and divergence handling are the same code for both
kinds of circuit.  The equations are those of :mod:`neurosim.graph.reference` (the NumPy statement, the oracle)
and :mod:`neurosim.graph.kernels` (one jitted call per batch).

Algorithms (``Simulator.train(algorithm=...)``, :meth:`neurosim.Simulator.step`,
:meth:`neurosim.Simulator.directions`) on a graph:

``"pc"``
    standard PC: the run settings of :class:`~neurosim.backends.base.RunSpec` (clamp or nudge, init, tol,
    Euler or Heun, dt_decay, error-unit dynamics), one Hebbian update at the reached state.
``"strict"``
    Rosenbaum's strict PC: ``pc`` with ``n`` (default: ``steps``) Euler steps of size ``eta`` (default:
    ``dt``) on every belief (one ``tau_x`` for all vertices).
``"fpa"``, ``"zil"``, ``"bp"``
    as in :mod:`neurosim.graph.simulator` (exact backprop: ``fpa`` with ``eta=1`` after the graph depth, Z-IL
    on the levelled graph).
``"ipc"``
    incremental PC: values and parameters step together at every step (``gamma``, default ``dt``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..backends.base import EULER, HEUN, INIT_FEEDFORWARD, MODE_CLAMP, MODE_NUDGE, Backend, BatchResult, RunSpec
from ..errors import UnsupportedError
from .base import (ALG_BP, ALG_FPA, ALG_IPC, ALG_PC, ALG_ZIL, STATUS_OK, GraphBatchResult, ParamState, Schedule,
                   used_at_level)
from .declare import level
from .plan import P_MEAN, P_OFF, P_SIZE, GraphPlan, lower_graph

__all__ = ["GraphBackend", "GraphReferenceBackend", "GraphNumbaBackend", "GRAPH_ALGORITHMS", "GRAPH_BACKENDS",
           "graph_backend_class", "reduce_directions", "predictions", "ALGORITHMS"]


@dataclass(frozen=True)
class _Algorithm:
    name: str
    code: int
    description: str
    options: dict


#: the algorithms on graph circuits: name, Schedule code, description, options with their defaults
ALGORITHMS = {
    "pc": _Algorithm("pc", ALG_PC, "standard PC: relax `steps` steps of size `dt` with the output clamped, then "
                                   "one Hebbian update", {}),
    "fpa": _Algorithm("fpa", ALG_FPA, "fixed-prediction assumption: frozen predictions/Jacobians, n steps of size "
                                      "eta (default n: depth + 1, the weight layers on the longest path); exact BP "
                                      "with eta=1 after the graph depth", {"eta": 1.0, "n": None}),
    "zil": _Algorithm("zil", ALG_ZIL, "Z-IL: feedforward start, rate gamma=1, each vertex updated at the step equal "
                                      "to its level (levelled graph), shared updates deferred; exact BP",
                      {"gamma": 1.0, "levelling": "auto", "shared_updates": "deferred", "values": "wavefront"}),
    "bp": _Algorithm("bp", ALG_BP, "backpropagation on the same network and loss", {}),
    "strict": _Algorithm("strict", ALG_PC, "strict PC (Rosenbaum 2022): n Euler steps of size eta on every belief "
                                           "(defaults: steps, dt), one update", {"eta": None, "n": None}),
    "ipc": _Algorithm("ipc", ALG_IPC, "incremental PC (Salvatori et al. 2024): values and parameters step together "
                                      "at every step (gamma, default dt)", {"gamma": None}),
}

#: options of every algorithm on a graph circuit, with their defaults
GRAPH_ALGORITHMS = {name: a.options for name, a in ALGORITHMS.items()}


def _positive(algo, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or \
            not (math.isfinite(value) and value > 0):
        raise ValueError(f"algorithm {algo!r}: {name} must be finite and > 0, got {value!r}")
    return float(value)


def _count(algo, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"algorithm {algo!r}: {name} must be a non-negative int or None, got {value!r}")
    return int(value)


class GraphBackend(Backend):
    """What the reference and numba graph backends share: parameters, state, schedules.

    ``W`` is the flat parameter vector ``theta`` (parameter ``k`` at ``plan.PI[k, P_OFF]``, shape
    ``plan.p_shapes[k]``), ``mW``/``vW`` the optimiser moments, ``opt_t`` the optimiser step of each parameter.
    """

    name = "graph"
    supports = frozenset({"euler", "heun", "tol", "nudge", "tau_eps", "float32", "probes", "graph", "bias",
                          "adam", "dt_decay", "multiplier", "skip"})

    def __init__(self, plan: GraphPlan, dtype=np.float64, **options):
        if options:
            raise ValueError(f"backend {self.name!r} takes no options for graph circuits, got {sorted(options)}")
        if not isinstance(plan, GraphPlan):
            raise TypeError(f"{type(self).__name__} runs a GraphPlan, got {type(plan).__name__}")
        self.plan = plan
        self.dtype = np.dtype(dtype)
        self.params = ParamState(plan, self.dtype)
        self.W, self.mW, self.vW, self.opt_t = self.params.theta, self.params.m, self.params.v, self.params.opt_t
        self.b = np.zeros(0, self.dtype)
        self.mb = np.zeros(0, self.dtype)
        self.vb = np.zeros(0, self.dtype)
        self.batch_size = 0
        self._levelled = None
        self._state = None   # (x, eps, mu) of the last batch, flat (B, n_units)
        #: per-read noise ``(sigma_m^2, sigma_a^2, seed)`` of the next batches (set by the hardware substrate around
        #: a batch, see :class:`~neurosim.graph.base.Schedule`), or None: no noise
        self.read_noise = None
        #: event coding ``(theta_values, theta_errors)`` of the next batches (set by the hardware substrate), or
        #: None: clock coding; :attr:`last_events` then holds the last batch's event counts (GraphBatchResult)
        self.event_coding = None
        self.last_events = None

    # ------------------------------------------------------------------ parameters
    def weight(self, k: int) -> np.ndarray:
        """View of parameter ``k`` with its shape (dense ``(n_out, n_in)``, kernels ``(C_out, C_in, kh, kw)``,
        biases ``(n,)`` or ``(C,)``)."""
        return self.params.view(k)

    def bias(self, k: int):
        return None

    def reset(self):
        self.params.reset()
        self.batch_size = 0
        self._state = None

    def state(self):
        if self._state is None:
            return None
        x, eps, mu = self._state
        return {"x": x.copy(), "eps": eps.copy(), "mu": mu.copy()}

    def set_state(self, x, eps):
        x = np.array(x, dtype=self.dtype)
        eps = np.array(eps, dtype=self.dtype)
        self._state = (x, eps, predictions(self.plan, self.params.theta, x))

    # ------------------------------------------------------------------ schedules
    @property
    def levelled_plan(self) -> GraphPlan:
        """The plan of :func:`~neurosim.graph.declare.level` (graph): identity vertices inserted, same parameters."""
        if self._levelled is None:
            g = self.plan.graph
            lev = level(g)
            plan = self.plan if lev is g else lower_graph(lev, self.plan.seed)
            if not plan.same_params(self.plan):  # cannot happen: level() keeps the vertices' parameters
                raise RuntimeError(f"graph {g.name!r}: the levelled graph lays out its parameters differently")
            self._levelled = plan
        return self._levelled

    def schedule(self, algorithm: str, options: dict, spec: RunSpec):
        """``(plan, Schedule, used)`` of one batch of ``algorithm`` with ``options`` (already merged with the
        defaults of :data:`GRAPH_ALGORITHMS`) under the run settings ``spec``; validates both."""
        plan, used = self.plan, None
        g = self.plan.graph
        clamp = spec.mode == MODE_CLAMP
        beta = float(spec.beta) if spec.mode == MODE_NUDGE else 0.0
        rec = dict(record_every=int(spec.probe_every), record_item=int(spec.probe_item))
        has_tau_eps = bool(np.any(plan.VF[:, 2] > 0))

        def plain(what):   # settings only standard PC / iPC / strict take
            bad = []
            if spec.integrator != EULER:
                bad.append("integrator='heun'")
            if spec.tol > 0:
                bad.append("tol")
            if spec.dt_decay != 1.0:
                bad.append("dt_decay")
            if spec.init != INIT_FEEDFORWARD:
                bad.append("init other than 'feedforward'")
            if spec.mode != MODE_CLAMP:
                bad.append("mode other than 'clamp'")
            if has_tau_eps and what != "bp":   # backprop is a feedforward pass: error units play no part
                bad.append("error units with tau_eps > 0")
            if bad:
                raise UnsupportedError(f"algorithm {what!r} on graph {g.name!r} is a fixed schedule from the "
                                       f"feedforward pass with the output clamped; it cannot take {', '.join(bad)}; "
                                       "use algorithm 'pc' (or 'ipc') for those settings")

        if algorithm == "pc":
            sch = Schedule(ALG_PC, int(spec.n_steps), float(spec.dt), clamp, bool(spec.learn), beta=beta,
                           init=int(spec.init), tol=float(spec.tol), heun=spec.integrator == HEUN,
                           dt_decay=float(spec.dt_decay), **rec)
        elif algorithm == "strict":
            eta = spec.dt if options.get("eta") is None else _positive("strict", "eta", options["eta"])
            n = spec.n_steps if options.get("n") is None else _count("strict", "n", options["n"])
            taus = {float(plan.VF[i, 1]) for i in range(plan.n_vertices) if i not in set(plan.inputs.tolist())}
            if len(taus) > 1:
                raise ValueError(f"algorithm 'strict' takes one step size for all beliefs, but graph {g.name!r} "
                                 f"has several tau_x values {sorted(taus)}; give every vertex the same tau_x")
            if spec.integrator != EULER:
                raise ValueError("algorithm 'strict' takes Euler steps; build the Simulator with integrator='euler'")
            tau = taus.pop() if taus else 1.0
            sch = Schedule(ALG_PC, n, eta * tau, clamp, bool(spec.learn), beta=beta, init=int(spec.init),
                           tol=float(spec.tol), dt_decay=float(spec.dt_decay), **rec)
        elif algorithm == "ipc":
            gamma = spec.dt if options.get("gamma") is None else _positive("ipc", "gamma", options["gamma"])
            if spec.integrator != EULER:
                raise ValueError("algorithm 'ipc' takes discrete (Euler) steps; build the Simulator with "
                                 "integrator='euler'")
            if spec.dt_decay != 1.0:
                raise ValueError("algorithm 'ipc' takes a fixed step gamma; leave dt_decay at 1")
            sch = Schedule(ALG_IPC, int(spec.n_steps), gamma, clamp, bool(spec.learn), beta=beta,
                           init=int(spec.init), tol=float(spec.tol), **rec)
        elif algorithm == "fpa":
            plain("fpa")
            eta = _positive("fpa", "eta", options["eta"])
            from ..algorithms._common import warn_if_not_exact
            warn_if_not_exact("fpa", plan, eta, "eta", owner=self)
            # default: the number of weight layers on the longest path (depth + 1), as for a circuit stated as
            # populations (Torch2PC's default; one step more than exactness at eta = 1 needs)
            n = plan.depth + 1 if options["n"] is None else _count("fpa", "n", options["n"])
            sch = Schedule(ALG_FPA, n, eta, True, bool(spec.learn))
        elif algorithm == "zil":
            plain("zil")
            gamma = _positive("zil", "gamma", options["gamma"])
            lv, su, vu = options["levelling"], options["shared_updates"], options["values"]
            if lv not in ("auto", "strict", "off"):
                raise ValueError(f"algorithm 'zil': levelling must be 'auto', 'strict' or 'off', got {lv!r}")
            if su not in ("deferred", "immediate"):
                raise ValueError(f"algorithm 'zil': shared_updates must be 'deferred' or 'immediate', got {su!r}")
            if vu not in ("wavefront", "all"):
                raise ValueError(f"algorithm 'zil': values must be 'wavefront' or 'all', got {vu!r}")
            if lv == "strict" and not g.is_levelled:
                p, c, span = g.unlevelled_edges()[0]
                raise ValueError(
                    f"algorithm 'zil' needs a levelled graph, but in graph {g.name!r} the edge {p!r} -> {c!r} "
                    f"skips {span - 1} level(s) ({len(g.unlevelled_edges())} such edge(s)); use "
                    "levelling='auto' (identity vertices are inserted) or build the graph with "
                    "neurosim.graph.level(graph)")
            if lv == "auto":
                plan = self.levelled_plan
            from ..algorithms._common import warn_if_not_exact
            warn_if_not_exact("zil", plan, gamma, "gamma", owner=self)   # the levelled graph: what Z-IL runs on
            n = plan.depth
            used = used_at_level(plan, n)
            sch = Schedule(ALG_ZIL, n, gamma, True, bool(spec.learn), su == "immediate", vu == "wavefront")
        elif algorithm == "bp":
            plain("bp")
            sch = Schedule(ALG_BP, 0, 1.0, True, bool(spec.learn))
        else:
            raise ValueError(f"unknown graph algorithm {algorithm!r}; available: {sorted(GRAPH_ALGORITHMS)}")
        return plan, sch, used

    # ------------------------------------------------------------------ one batch
    def _engine_run(self, plan, X, Y, sch, used, x_init, eps_init) -> GraphBatchResult:
        raise NotImplementedError  # implemented by each graph backend

    def run_graph(self, s, t, spec: RunSpec, algorithm: str = "pc", options: dict | None = None):
        """One batch of ``algorithm``; returns ``(BatchResult, GraphBatchResult)`` (the latter holds the update
        ``directions`` and the state in the plan's unit layout)."""
        opts = {**GRAPH_ALGORITHMS[algorithm], **(options or {})} if algorithm in GRAPH_ALGORITHMS else {}
        plan, sch, used = self.schedule(algorithm, opts, spec)
        if self.read_noise is not None:
            m2, a2, seed = self.read_noise
            sch = _replace(sch, read_m2=float(m2), read_a2=float(a2), read_seed=int(seed))
        if self.event_coding is not None:
            if self.name not in EVENT_BACKENDS:
                raise UnsupportedError(f"backend {self.name!r} cannot event-code a graph circuit: {EVENT_REASON}")
            tv, te = self.event_coding
            sch = _replace(sch, ev_values=float(tv), ev_errors=float(te))
        X = np.ascontiguousarray(s, dtype=self.dtype)
        Y = None if t is None else np.ascontiguousarray(t, dtype=self.dtype)
        B = X.shape[0]
        x_init = eps_init = None
        if sch.init == 2:   # INIT_PREVIOUS: continue from the last batch's state (same batch size), else feedforward
            if self._state is not None and self._state[0].shape[0] == B and plan is self.plan:
                x_init, eps_init = self._state[0], self._state[1]
            else:
                sch = _replace(sch, init=INIT_FEEDFORWARD)
        res = self._engine_run(plan, X, Y, sch, used, x_init, eps_init)
        self.last_events = res if res.events is not None else None
        self.batch_size = B
        if plan is self.plan and res.x is not None and res.eps is not None and res.mu is not None:
            self._state = (res.x, res.eps, res.mu)
        nv = self.plan.n_vertices
        energy = res.energy
        fail = res.fail_vertex
        if plan is not self.plan:   # the levelled plan has extra (identity) vertices: report those of this plan
            idx = [plan.v_names.index(n) for n in self.plan.v_names]
            energy = energy[:, idx]
            fail = self.plan.v_names.index(plan.v_names[fail]) if 0 <= fail < plan.n_vertices and \
                plan.v_names[fail] in self.plan.v_names else (self.plan.target if fail >= 0 else -1)
        empty = np.zeros((0, self.plan.n_units), dtype=self.dtype)
        out = BatchResult(steps=int(res.steps), energy=np.asarray(energy)[:, :nv], status=int(res.status),
                          fail_step=int(res.fail_step), fail_pop=int(fail),
                          rec_steps=res.rec_steps if res.rec_steps is not None else np.zeros(0, np.int64),
                          rec_x=res.rec_x if res.rec_x is not None else empty,
                          rec_eps=res.rec_eps if res.rec_eps is not None else empty,
                          rec_mu=res.rec_mu if res.rec_mu is not None else empty,
                          y0=res.y0, y=res.y)
        return out, res

    def run_batch(self, s, t, spec: RunSpec) -> BatchResult:
        return self.run_graph(s, t, spec, "pc")[0]


#: the graph backends that event-code (send-on-delta) the PC relaxation, and why the others do not
EVENT_BACKENDS = ("reference", "numba", "brian2")
EVENT_REASON = ("the send-on-delta relaxation of graph circuits (neurosim.graph.events) runs on backend='reference' "
                "(NumPy), 'numba' (the graph kernels) and 'brian2' (the rate network's groups send on delta); use "
                "one of those, or coding='clock'")


def _replace(sch, **kw):
    from dataclasses import replace
    return replace(sch, **kw)


class GraphReferenceBackend(GraphBackend):
    """The NumPy statement of the graph equations (:func:`neurosim.graph.reference.run_reference`)."""

    name = "reference"

    def _engine_run(self, plan, X, Y, sch, used, x_init, eps_init):
        from .reference import run_reference
        kw = {} if x_init is None else {"x_init": x_init, "eps_init": eps_init}
        return run_reference(plan, self.params, X, Y, sch, used, **kw)


class GraphNumbaBackend(GraphBackend):
    """One jitted call per batch (:mod:`neurosim.graph.kernels`), BLAS single-threaded inside it."""

    name = "numba"

    def __init__(self, plan, dtype=np.float64, **options):
        super().__init__(plan, dtype, **options)
        from .simulator import _NumbaBackend
        self._engine = _NumbaBackend()

    def _engine_run(self, plan, X, Y, sch, used, x_init, eps_init):
        from .simulator import blas_single_thread
        kw = {} if x_init is None else {"x_init": x_init, "eps_init": eps_init}
        with blas_single_thread():
            return self._engine.run(plan, self.params, X, Y, sch, used, **kw)


GRAPH_BACKENDS = {"reference": GraphReferenceBackend, "numba": GraphNumbaBackend}


def graph_backend_class(name: str):
    """The backend class that runs graph circuits under ``name``; others raise :class:`UnsupportedError`.

    ``"brian2"`` is :class:`neurosim.backends.brian2.graph.GraphBrian2Backend` (rate mode; imported here, so
    that brian2 is imported only when it is asked for)."""
    from ..backends import BACKENDS
    if name not in BACKENDS:   # a misspelt name: the same message as a layered circuit's, not "cannot run graphs"
        raise ValueError(f"unknown backend {name!r}; choose one of {list(BACKENDS)}")
    if name == "brian2":
        from ..backends.brian2.graph import GraphBrian2Backend
        return GraphBrian2Backend
    if name not in GRAPH_BACKENDS:
        raise UnsupportedError(f"backend {name!r} cannot run graph circuits: it has no mapping of their vertices "
                               "(convolutions, pooling, products); graph circuits run on "
                               f"{sorted(GRAPH_BACKENDS) + ['brian2']} (brian2 in mode='rate')")
    return GRAPH_BACKENDS[name]


def reduce_directions(plan: GraphPlan, G: np.ndarray, B: int) -> np.ndarray:
    """Batch-summed parameter terms -> directions (divided by B for parameters reduced by the mean)."""
    D = G.copy()
    for k in range(plan.n_params):
        if plan.PI[k, P_MEAN]:
            o, n = int(plan.PI[k, P_OFF]), int(plan.PI[k, P_SIZE])
            D[o:o + n] /= B
    return D



def predictions(plan: GraphPlan, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``mu`` of every computing vertex at the flat state ``x`` (B, n_units) (zeros for the inputs)."""
    from .ops import is_input, vertex_forward
    xs = [x[:, plan.units(i)] for i in range(plan.n_vertices)]
    mu = np.zeros_like(x)
    for i in range(plan.n_vertices):
        if not is_input(plan, i):
            mu[:, plan.units(i)] = np.asarray(vertex_forward(plan, theta, xs, i)).reshape(x.shape[0], -1)
    return mu
