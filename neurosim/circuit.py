r"""Circuit declarations: what a predictive-coding model *is*, with no arrays and no backend.

A :class:`Circuit` is a set of frozen dataclasses:

* :class:`ValuePopulation` -- value neurons ``x`` (size, activation ``phi``, time constant ``tau_x``);
* :class:`ErrorPopulation` -- error neurons ``eps`` for one value population (``tau_eps``, where 0 means
  instantaneous, and ``precision``, a scalar or one value per unit);
* :class:`Projection` -- a prediction projection ``pre -> post`` contributing
  ``multiplier * W phi(x_pre) + b (+ x_pre if skip)`` to the prediction ``mu_post``. Its feedback path
  is declared as the transpose of the same weights (``feedback="transpose"``);
* :class:`Hebbian` -- the local plasticity rule of a projection,
  :math:`\Delta W = \mathrm{lr}\,\mathrm{multiplier}\,\varepsilon_{post}\,\phi(x_{pre})^T`,
  :math:`\Delta b = \mathrm{lr}\,\varepsilon_{post}` (``eps`` already carries the precision), applied
  through a per-projection optimiser (:func:`SGD`, :func:`Adam`);
* :class:`Clamp` -- which populations are driven by the input and which by the target;
* :class:`Probe` -- what to record.

The dynamics these declarations imply are

.. math::

    \mu_l = \sum_{k \to l} a_k W_k \phi(x_k) + b_k \;(+\, x_k \text{ for identity skips}), \qquad
    \varepsilon_l = \pi_l (x_l - \mu_l) \;\text{ or }\;
    \tau_\varepsilon \dot\varepsilon_l = x_l - \mu_l - \varepsilon_l / \pi_l,

.. math::

    \tau_x \dot x_l = -\varepsilon_l + \phi'(x_l) \odot \sum_{l \to m} a_m W_m^T \varepsilon_m
    \;(+\, \varepsilon_m \text{ for skips}),

the gradient flow of the energy :math:`F = \sum_l \tfrac{\pi_l}{2}\lVert x_l - \mu_l\rVert^2`.
The graph of projections may be any DAG; :func:`hierarchy` builds the layered network.
"""
from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

from . import activations

__all__ = [
    "ValuePopulation", "ErrorPopulation", "Init", "Optimizer", "SGD", "Adam", "Hebbian",
    "Projection", "Clamp", "Probe", "Circuit", "hierarchy",
]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _check_name(kind: str, name) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"{kind} name {name!r} is not valid: use letters, digits, '_', '.', '-' and start with a letter"
        )


def _positive(obj: str, attr: str, value, allow_zero: bool = False) -> float:
    """``value`` as a float, refused (a ValueError naming ``obj`` and ``attr``) unless finite and > 0 (>= 0
    with ``allow_zero``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{obj}: {attr} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        need = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{obj}: {attr} must be finite and {need}, got {value!r}")
    return v


def _as_tuple(value, single: bool, error: str) -> tuple:
    """``value`` as a tuple: ``(value,)`` when ``single`` (one item given alone), else ``tuple(value)``; a
    ValueError with the message ``error`` when it is neither."""
    if single:
        return (value,)
    try:
        return tuple(value)
    except TypeError:
        raise ValueError(error) from None


@dataclass(frozen=True)
class ValuePopulation:
    """Value neurons ``x``.

    Parameters
    ----------
    name : str
    size : int
        Number of units.
    phi : str
        Activation applied when this population *predicts* others (``mu = W phi(x)``); see
        :mod:`neurosim.activations`.
    tau_x : float
        Time constant of the value dynamics (seconds or arbitrary time units; ``dt`` uses the same unit).
    """

    name: str
    size: int
    phi: str = "linear"
    tau_x: float = 1.0

    def __post_init__(self):
        _check_name("ValuePopulation", self.name)
        if isinstance(self.size, (bool, numbers.Integral)) and not isinstance(self.size, (bool, int)):
            object.__setattr__(self, "size", int(self.size))   # a NumPy integer (as hierarchy takes them)
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"ValuePopulation {self.name!r}: size must be a positive int, got {self.size!r}")
        try:
            activations.get(self.phi)
        except ValueError as e:
            raise ValueError(f"ValuePopulation {self.name!r}: {e}") from None
        _positive(f"ValuePopulation {self.name!r}", "tau_x", self.tau_x)


@dataclass(frozen=True)
class ErrorPopulation:
    """Error neurons ``eps`` carrying the precision-weighted prediction error of one value population.

    Parameters
    ----------
    name : str
    value : str
        Name of the value population whose error these units encode.
    tau_eps : float
        0 (default) means instantaneous errors ``eps = precision * (x - mu)``; > 0 gives
        ``tau_eps d eps/dt = x - mu - eps / precision``.
    precision : float or tuple of float
        Scalar, or one positive value per unit.
    """

    name: str
    value: str
    tau_eps: float = 0.0
    precision: float | tuple = 1.0

    def __post_init__(self):
        _check_name("ErrorPopulation", self.name)
        _positive(f"ErrorPopulation {self.name!r}", "tau_eps", self.tau_eps, allow_zero=True)
        p = self.precision
        if isinstance(p, (list, tuple)) or hasattr(p, "__len__"):
            p = tuple(float(v) for v in p)
            object.__setattr__(self, "precision", p)
            for v in p:
                _positive(f"ErrorPopulation {self.name!r}", "precision", v)
        else:
            _positive(f"ErrorPopulation {self.name!r}", "precision", p)

    def precision_vector(self, size: int) -> list[float]:
        """Precision as one value per unit."""
        if isinstance(self.precision, tuple):
            return list(self.precision)
        return [float(self.precision)] * size


_INITS = ("xavier_normal", "xavier_uniform", "normal", "uniform", "constant", "zeros", "orthogonal")


@dataclass(frozen=True)
class Init:
    """Weight initialisation, sampled once by :func:`neurosim.lower`.

    kinds: ``xavier_normal`` (std = gain sqrt(2/(fan_in+fan_out))), ``xavier_uniform``,
    ``normal`` (mean 0, std ``std``), ``uniform`` (``low``..``high``), ``constant`` (``value``),
    ``zeros``, ``orthogonal`` (scaled by gain).
    """

    kind: str = "xavier_normal"
    gain: float = 1.0
    std: float = 1.0
    low: float = -0.1
    high: float = 0.1
    value: float = 0.0

    def __post_init__(self):
        if self.kind not in _INITS:
            raise ValueError(f"Init: unknown kind {self.kind!r}; choose one of {list(_INITS)}")
        if self.high < self.low:
            raise ValueError(f"Init: high ({self.high}) must be >= low ({self.low})")
        _positive("Init", "std", self.std, allow_zero=True)


@dataclass(frozen=True)
class Optimizer:
    """A per-projection optimiser: ``kind`` is ``"sgd"`` (momentum, weight decay) or ``"adam"``."""

    kind: str = "sgd"
    momentum: float = 0.0
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        if self.kind not in ("sgd", "adam"):
            raise ValueError(f"Optimizer: unknown kind {self.kind!r}; use 'sgd' or 'adam'")
        for attr in ("momentum", "beta1", "beta2"):
            v = getattr(self, attr)
            if not (0.0 <= v < 1.0):
                raise ValueError(f"Optimizer: {attr} must be in [0, 1), got {v!r}")
        _positive("Optimizer", "weight_decay", self.weight_decay, allow_zero=True)
        _positive("Optimizer", "eps", self.eps)


def SGD(momentum: float = 0.0, weight_decay: float = 0.0) -> Optimizer:
    """Stochastic gradient descent on F (``W += lr * dW``), optional momentum and weight decay."""
    return Optimizer("sgd", momentum=momentum, weight_decay=weight_decay)


def Adam(beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0) -> Optimizer:
    """Adam on the Hebbian update direction (bias-corrected moments)."""
    return Optimizer("adam", beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay)


@dataclass(frozen=True)
class Hebbian:
    r"""Local prediction-error plasticity: :math:`\Delta W = lr\, a\, \varepsilon_{post} \phi(x_{pre})^T`.

    Parameters
    ----------
    lr : float
        Learning rate.
    optimizer : Optimizer
        :func:`SGD` (default) or :func:`Adam`.
    batch_reduction : {"mean", "sum"}
        How per-sample updates of a mini-batch combine. ``"mean"`` keeps ``lr`` comparable across batch
        sizes; ``"sum"`` is the convention of Song et al.'s code.
    learn_bias : bool
        Whether the bias (if any) is plastic.
    """

    lr: float = 0.01
    optimizer: Optimizer = field(default_factory=SGD)
    batch_reduction: str = "mean"
    learn_bias: bool = True

    def __post_init__(self):
        _positive("Hebbian", "lr", self.lr, allow_zero=True)
        if self.batch_reduction not in ("mean", "sum"):
            raise ValueError(f"Hebbian: batch_reduction must be 'mean' or 'sum', got {self.batch_reduction!r}")
        if not isinstance(self.optimizer, Optimizer):
            raise ValueError("Hebbian: optimizer must be ns.SGD(...) or ns.Adam(...)")


@dataclass(frozen=True)
class Projection:
    """A prediction projection ``pre -> post``: ``mu_post += multiplier * W phi(x_pre) + b (+ x_pre)``.

    Parameters
    ----------
    name, pre, post : str
    bias : bool
        Whether the projection has a bias ``b`` (shape ``(post.size,)``).
    init, bias_init : Init
    multiplier : float
        Fixed forward multiplier ``a`` (muPC's scalings); the feedback uses the same ``a``.
    skip : bool
        Add an identity skip ``x_pre`` to ``mu_post`` (requires equal sizes).
    weights : bool
        Whether the projection has a weight matrix (a pure identity skip has ``weights=False``).
    plasticity : Hebbian or None
        ``None`` freezes the weights.
    feedback : {"transpose"}
        The feedback path of the error ``eps_post`` to ``x_pre``: the transpose of the same weights.
    connectivity : None, FixedFanIn, ReceptiveField, Pattern, scipy.sparse matrix or (indptr, indices)
        ``None`` (default): dense, a ``(n_post, n_pre)`` matrix. Otherwise a sparse projection with only the
        synapses of the pattern (:mod:`neurosim.connectivity`); a ``scipy.sparse`` matrix or an ``(indptr,
        indices)`` pair becomes a :class:`~neurosim.connectivity.Pattern`. Its initial weights are drawn with
        ``init`` as for a dense matrix whose fan-in is the mean number of synapses per post unit
        (``nnz / n_post``) and whose fan-out is the mean number per pre unit (``nnz / n_pre``): one value per
        synapse, in CSR order (``orthogonal`` needs a dense matrix and is refused). ``Simulator.weights``
        returns it as a ``scipy.sparse.csr_array``.
    """

    name: str
    pre: str
    post: str
    bias: bool = False
    init: Init = field(default_factory=Init)
    bias_init: Init = field(default_factory=lambda: Init("zeros"))
    multiplier: float = 1.0
    skip: bool = False
    weights: bool = True
    plasticity: Hebbian | None = field(default_factory=Hebbian)
    feedback: str = "transpose"
    connectivity: object = None

    def __post_init__(self):
        _check_name("Projection", self.name)
        if self.connectivity is not None:
            from .connectivity import as_connectivity
            object.__setattr__(self, "connectivity", as_connectivity(self.connectivity, self.name))
            if not self.weights:
                raise ValueError(f"Projection {self.name!r}: connectivity= needs a weight matrix (weights=True); an "
                                 "identity skip alone has no synapses to make sparse")
            if self.init.kind == "orthogonal":
                raise ValueError(f"Projection {self.name!r}: init 'orthogonal' needs a dense matrix; use "
                                 "ns.Init('xavier_normal') (or another kind) with a sparse connectivity")
        if self.pre == self.post:
            raise ValueError(f"Projection {self.name!r}: pre and post are both {self.pre!r}; self-loops are not predictions")
        if not math.isfinite(float(self.multiplier)):
            raise ValueError(f"Projection {self.name!r}: multiplier must be finite")
        if self.feedback != "transpose":
            raise ValueError(
                f"Projection {self.name!r}: feedback {self.feedback!r} is not supported; only 'transpose' "
                "(the feedback uses the same weights as the prediction)"
            )
        if not self.weights and not self.skip:
            raise ValueError(f"Projection {self.name!r}: weights=False needs skip=True, otherwise it does nothing")
        if self.plasticity is not None and not isinstance(self.plasticity, Hebbian):
            raise ValueError(f"Projection {self.name!r}: plasticity must be ns.Hebbian(...) or None")


@dataclass(frozen=True)
class Clamp:
    """Drive a value population from data: ``kind="input"`` (always clamped) or ``"target"``.

    A target population is hard-clamped while learning, free while predicting, or nudged toward the
    target with strength ``beta`` (mode chosen per run).
    """

    population: str
    kind: str = "input"

    def __post_init__(self):
        if self.kind not in ("input", "target"):
            raise ValueError(f"Clamp on {self.population!r}: kind must be 'input' or 'target', got {self.kind!r}")


_PROBE_VARS = ("x", "eps", "mu", "energy", "weight_norm")


@dataclass(frozen=True)
class Probe:
    """Record a variable.

    Parameters
    ----------
    target : str
        Population name (``x``, ``mu``; ``eps`` and ``energy`` need an error population), or projection
        name (``weight_norm``).
    variable : {"x", "eps", "mu", "energy", "weight_norm"}
    every : int
        Record every ``every`` relaxation steps (``weight_norm``: every ``every`` training batches).
    item : int
        Which sample of the batch is recorded (``energy`` is the batch mean).
    max_records : int
        Bound on memory: only the most recent ``max_records`` records are kept.
    name : str, optional
        Key in ``sim.data`` (default ``"<target>.<variable>"``).

    Recorded arrays are shaped ``(n_records, n_units)`` (``energy`` and ``weight_norm``: ``(n_records, 1)``).
    """

    target: str
    variable: str = "x"
    every: int = 1
    item: int = 0
    max_records: int = 10_000
    name: str | None = None

    def __post_init__(self):
        if self.variable not in _PROBE_VARS:
            raise ValueError(f"Probe on {self.target!r}: variable must be one of {list(_PROBE_VARS)}, got {self.variable!r}")
        for attr in ("every", "max_records", "item"):   # NumPy integers as ints
            v = getattr(self, attr)
            if isinstance(v, numbers.Integral) and not isinstance(v, (bool, int)):
                object.__setattr__(self, attr, int(v))
        for attr in ("every", "max_records"):
            v = getattr(self, attr)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"Probe on {self.target!r}: {attr} must be a positive int, got {v!r}")
        if not isinstance(self.item, int) or self.item < 0:
            raise ValueError(f"Probe on {self.target!r}: item must be a non-negative int")
        if self.name is None:
            object.__setattr__(self, "name", f"{self.target}.{self.variable}")


_DEFAULT_GRAPH_PLASTICITY = Hebbian(lr=0.01)


@dataclass(frozen=True)
class Circuit:
    """A predictive-coding circuit: value populations with their error populations, joined by projections.

    One type for every circuit kind, stated in one of two forms:

    * **populations** (layered and DAG circuits of dense projections) -- ``Circuit(populations, errors,
      projections, clamps, probes=(), name=...)`` with :class:`ValuePopulation`, :class:`ErrorPopulation`,
      :class:`Projection` and :class:`Clamp`; :func:`hierarchy` and :func:`neurosim.mupc.residual_network`
      build this form;
    * **vertices** (any computation graph: dense, conv2d, pooling, identity/skip, sums, elementwise products
      and gates, shared parameters) -- ``Circuit(vertices=..., output=..., params=..., plasticity=...)``,
      each vertex (:mod:`neurosim.graph`: ``Input``, ``Dense``, ``Conv2d``, ``Pool``, ``Sum``, ``Product``,
      ``Act``, ``Identity``) a value population with its error population and the local function that
      predicts it; :func:`neurosim.graph.Graph` (the same call, positional) and the builders ``cnn``,
      ``rnn``, ``lstm``, ``residual``, ``mlp`` return this form.

    Both forms have the same energy and dynamics (:mod:`neurosim.equations`), run on the same
    :class:`~neurosim.Simulator`, lower with :func:`neurosim.lower`, take probes (``probes=`` or
    :meth:`with_probes`) and answer the same questions (``name``, ``form``, ``inputs``, ``targets``,
    :meth:`topological_order`, :meth:`check_probe`, :meth:`describe`, :meth:`with_plasticity`).
    :meth:`as_graph` writes a population-form circuit in the vertex form (same equations and parameter names);
    :meth:`as_populations` writes a vertex-form circuit of dense projections and skips in the population form (which
    also runs on brian2's spiking network and the layered event engine; ``neurosim.graph.population_weights``
    renames its parameters).

    Validation happens on construction; errors name the offending object and the fix.
    """

    populations: tuple = ()
    errors: tuple = ()
    projections: tuple = ()
    clamps: tuple = ()
    probes: tuple = ()
    name: str = "circuit"
    # ---- the vertex form (empty for the population form)
    vertices: tuple = ()
    output: str | None = None
    params: tuple = ()
    plasticity: Hebbian | None = _DEFAULT_GRAPH_PLASTICITY   # vertex form only (None in the population form)
    # ---- computed for the vertex form (see neurosim.graph.declare)
    order: tuple = field(init=False, repr=False, compare=False, default=())
    shapes: dict = field(init=False, repr=False, compare=False, default=None)
    param_shapes: dict = field(init=False, repr=False, compare=False, default=None)
    param_uses: dict = field(init=False, repr=False, compare=False, default=None)
    levels: dict = field(init=False, repr=False, compare=False, default=None)
    children: dict = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self):
        pops = self.populations
        if not self.vertices and isinstance(pops, (list, tuple)) and pops and hasattr(pops[0], "parents"):
            raise ValueError(f"circuit {self.name!r}: the first argument holds vertices ({type(pops[0]).__name__} "
                             f"{pops[0].name!r}); state a circuit as vertices with ns.Circuit(vertices=..., "
                             "output=...) or neurosim.graph.Graph(vertices, output)")
        for attr in ("populations", "errors", "projections", "clamps", "probes", "vertices", "params"):
            value = getattr(self, attr)
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise ValueError(f"circuit {self.name!r}: {attr} must be a sequence, got {value!r}")
            object.__setattr__(self, attr, tuple(value))
        if self.vertices or self.output is not None:
            given = [a for a in ("populations", "errors", "projections", "clamps") if getattr(self, a)]
            if given:
                which = "vertices" if self.vertices else f"output={self.output!r}"
                raise ValueError(
                    f"circuit {self.name!r}: give either populations/errors/projections/clamps (the population form) "
                    f"or vertices and output (the vertex form), not both; got {which} and {given}")
            from .graph.declare import validate_vertex_form
            validate_vertex_form(self)
        else:
            for attr in ("params", "plasticity"):
                v = getattr(self, attr)
                if v and v is not _DEFAULT_GRAPH_PLASTICITY:
                    raise ValueError(f"circuit {self.name!r}: {attr}= belongs to the vertex form (the default "
                                     "settings of its parameters); in the population form give each projection its "
                                     "init and plasticity (ns.Projection(..., plasticity=...), or "
                                     "circuit.with_plasticity(...))")
            object.__setattr__(self, "plasticity", None)   # the population form has no circuit-wide default
            self._validate()
        for pb in self.probes:
            self.check_probe(pb)

    # ------------------------------------------------------------------ queries (both forms)
    @property
    def form(self) -> str:
        """``"populations"`` or ``"vertices"``: which form the circuit was stated in."""
        return "vertices" if self.vertices else "populations"

    @property
    def is_graph(self) -> bool:
        """Whether the circuit is stated as vertices (it then lowers to a :class:`neurosim.graph.GraphPlan`)."""
        return bool(self.vertices)

    @property
    def inputs(self) -> list:
        """Names of the input populations (vertex form: the ``Input`` vertices, which take the columns of ``X``
        in declaration order)."""
        if self.vertices:
            return [v.name for v in self.vertices if not v.parents]
        return [c.population for c in self.clamps if c.kind == "input"]

    @property
    def targets(self) -> list:
        """Names of the target populations (vertex form: the output vertex)."""
        if self.vertices:
            return [self.output]
        return [c.population for c in self.clamps if c.kind == "target"]

    def topological_order(self) -> list[str]:
        """Value populations (vertices) ordered so that every projection goes forward."""
        if self.vertices:
            return list(self.order)
        return self._population_order()

    def _need(self, form: str, what: str):
        if self.form != form:
            other = "vertices (c.vertices, c.vertex(name))" if self.vertices else \
                "populations (c.populations, c.projections, c.population(name))"
            raise ValueError(f"circuit {self.name!r} is stated as {self.form}; {what} belongs to the {form} form "
                             f"-- ask it about its {other}" + (
                                 ", or write it as populations with c.as_populations() (dense projections and "
                                 "skips only)" if self.vertices else ", or write it as vertices with c.as_graph()"))

    # ---- population form
    def population(self, name: str) -> ValuePopulation:
        self._need("populations", f"population({name!r})")
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(f"circuit {self.name!r} has no value population {name!r}; it has {[p.name for p in self.populations]}")

    def projection(self, name: str) -> Projection:
        self._need("populations", f"projection({name!r})")
        for p in self.projections:
            if p.name == name:
                return p
        raise KeyError(f"circuit {self.name!r} has no projection {name!r}; it has {[p.name for p in self.projections]}")

    def error_of(self, value: str) -> ErrorPopulation | None:
        for e in self.errors:
            if e.value == value:
                return e
        return None

    def incoming(self, name: str) -> list[Projection]:
        return [p for p in self.projections if p.post == name]

    def outgoing(self, name: str) -> list[Projection]:
        return [p for p in self.projections if p.pre == name]

    # ---- vertex form
    def vertex(self, name: str):
        """The vertex named ``name``."""
        self._need("vertices", f"vertex({name!r})")
        for v in self.vertices:
            if v.name == name:
                return v
        raise KeyError(f"graph {self.name!r} has no vertex {name!r}")

    def size(self, name: str) -> int:
        """Number of units of vertex (population) ``name``."""
        if self.vertices:
            return math.prod(self.shapes[name])
        return self.population(name).size

    @property
    def n_input(self) -> int:
        """Number of columns of ``X`` (all inputs, in order)."""
        return sum(self.size(n) for n in self.inputs)

    @property
    def n_output(self) -> int:
        """Number of units of the target (0 without one)."""
        return sum(self.size(n) for n in self.targets)

    @property
    def depth(self) -> int:
        """Longest path (in edges) from a parameterised vertex to the output: FPA with ``eta = 1`` is exact
        after this many synchronous steps, Z-IL (on the levelled graph) updates its last parameter at this step."""
        self._need("vertices", "depth")
        d = [self.levels[u.vertex] for us in self.param_uses.values() for u in us]
        return max(d) if d else 0

    def param_settings(self, name: str):
        """The :class:`neurosim.graph.Param` of parameter ``name`` (the defaults if none was given)."""
        self._need("vertices", f"param_settings({name!r})")
        from .graph.declare import Param
        for p in self.params:
            if p.name == name:
                return p
        return Param(name)

    def unlevelled_edges(self) -> list:
        """Edges ``(parent, child, span)`` from non-input vertices with ``span = level(parent) - level(child)
        > 1``, which Z-IL cannot handle without identity vertices (see :func:`neurosim.graph.level`)."""
        self._need("vertices", "unlevelled_edges()")
        out = []
        inputs = set(self.inputs)
        for v in self.vertices:
            for p in dict.fromkeys(v.parents):
                if p in inputs:
                    continue
                span = self.levels[p] - self.levels[v.name]
                if span > 1:
                    out.append((p, v.name, span))
        return out

    @property
    def is_levelled(self) -> bool:
        return not self.unlevelled_edges()

    def as_graph(self, name: str | None = None) -> "Circuit":
        """This circuit in the vertex form (:func:`neurosim.graph.from_circuit`; a vertex-form circuit is
        returned as it is)."""
        if self.vertices:
            return self
        from .graph.convert import from_circuit
        return from_circuit(self, name=name)

    def as_populations(self, name: str | None = None) -> "Circuit":
        """This circuit in the population form (:func:`neurosim.graph.to_populations`: vertices of dense
        projections and identity skips only; a circuit stated as populations is returned as it is).  That form
        also runs on brian2's spiking network and the event-driven hardware engine."""
        if not self.vertices:
            return self
        from .graph.convert import to_populations
        return to_populations(self, name=name)

    def _population_order(self) -> list[str]:
        """Value populations ordered so that every projection goes forward (Kahn's algorithm)."""
        names = [p.name for p in self.populations]
        indeg = {n: 0 for n in names}
        for pr in self.projections:
            indeg[pr.post] += 1
        ready = [n for n in names if indeg[n] == 0]
        order = []
        while ready:
            n = ready.pop(0)
            order.append(n)
            for pr in self.projections:
                if pr.pre == n:
                    indeg[pr.post] -= 1
                    if indeg[pr.post] == 0:
                        ready.append(pr.post)
        if len(order) != len(names):
            # the populations Kahn's algorithm could not order: those on a cycle and those downstream of one;
            # drop the latter (no projection back into the rest) and follow projections round one cycle
            sub = {n for n in names if n not in order}
            nxt = {n: sorted(pr.post for pr in self.projections if pr.pre == n and pr.post in sub) for n in sub}
            while any(not nxt[n] for n in sub):
                sub = {n for n in sub if nxt[n]}
                nxt = {n: [m for m in nxt[n] if m in sub] for n in sub}
            n, path = min(sub), []
            while n not in path:
                path.append(n)
                n = nxt[n][0]
            cycle = path[path.index(n):] + [n]
            raise ValueError(
                f"circuit {self.name!r}: the projections form a cycle through {sorted(set(cycle))} "
                f"({' -> '.join(cycle)}); predictions must form a directed acyclic graph (unroll recurrent "
                "connections over time)"
            )
        return order

    # ------------------------------------------------------------------ validation
    def _validate(self):
        for attr, cls in (("populations", ValuePopulation), ("errors", ErrorPopulation),
                          ("projections", Projection), ("clamps", Clamp), ("probes", Probe)):
            for obj in getattr(self, attr):
                if not isinstance(obj, cls):
                    raise ValueError(f"circuit {self.name!r}: {attr} must hold {cls.__name__} objects, got {obj!r}")
        seen = {}
        for obj in (*self.populations, *self.errors, *self.projections):
            if obj.name in seen:
                raise ValueError(
                    f"circuit {self.name!r}: name {obj.name!r} is used by both a {type(seen[obj.name]).__name__} "
                    f"and a {type(obj).__name__}; names must be unique"
                )
            seen[obj.name] = obj
        if not self.populations:
            raise ValueError(f"circuit {self.name!r} has no value populations")
        pops = {p.name: p for p in self.populations}
        for pr in self.projections:
            for end in ("pre", "post"):
                if getattr(pr, end) not in pops:
                    raise ValueError(
                        f"Projection {pr.name!r}: {end} population {getattr(pr, end)!r} does not exist; "
                        f"known populations: {sorted(pops)}"
                    )
            if pr.connectivity is not None:
                from .connectivity import pattern_of
                pattern_of(pr.connectivity, pops[pr.post].size, pops[pr.pre].size, pr.name,  # raises if invalid
                           warn_dense=True)
            if pr.skip and pops[pr.pre].size != pops[pr.post].size:
                raise ValueError(
                    f"Projection {pr.name!r}: an identity skip needs equal sizes, but {pr.pre!r} has "
                    f"{pops[pr.pre].size} units and {pr.post!r} has {pops[pr.post].size}"
                )
        errs_of = {}
        for e in self.errors:
            if e.value not in pops:
                raise ValueError(f"ErrorPopulation {e.name!r}: value population {e.value!r} does not exist")
            if e.value in errs_of:
                raise ValueError(
                    f"value population {e.value!r} has two error populations ({errs_of[e.value]!r}, {e.name!r}); keep one"
                )
            errs_of[e.value] = e.name
            if isinstance(e.precision, tuple) and len(e.precision) != pops[e.value].size:
                raise ValueError(
                    f"ErrorPopulation {e.name!r}: precision has {len(e.precision)} values but population "
                    f"{e.value!r} has {pops[e.value].size} units; give a scalar or one value per unit"
                )
        self._population_order()  # raises on cycles
        clamped = {}
        for c in self.clamps:
            if c.population not in pops:
                raise ValueError(f"Clamp: population {c.population!r} does not exist; known: {sorted(pops)}")
            if c.population in clamped:
                raise ValueError(f"population {c.population!r} is clamped twice; use one Clamp per population")
            clamped[c.population] = c.kind
        for name in pops:
            has_in = bool(self.incoming(name))
            kind = clamped.get(name)
            if not has_in and kind != "input":
                raise ValueError(
                    f"value population {name!r} has no incoming projection, so nothing predicts it: "
                    f"clamp it with ns.Clamp({name!r}, 'input') or add a projection into it"
                )
            if has_in and kind == "input":
                raise ValueError(
                    f"population {name!r} is an input clamp but receives projection(s) "
                    f"{[p.name for p in self.incoming(name)]}; inputs cannot be predicted"
                )
            if has_in and name not in errs_of:
                raise ValueError(
                    f"value population {name!r} is predicted by {[p.name for p in self.incoming(name)]} but has "
                    f"no ErrorPopulation; add ns.ErrorPopulation('eps_{name}', value={name!r})"
                )
            if not has_in and name in errs_of:
                raise ValueError(f"ErrorPopulation {errs_of[name]!r}: input population {name!r} has no prediction to compare with")
        if not self.inputs:
            raise ValueError(f"circuit {self.name!r} has no input clamp; add ns.Clamp(name, 'input')")
        if len(self.targets) > 1:
            raise ValueError(
                f"circuit {self.name!r} has {len(self.targets)} target clamps {self.targets}; one target population "
                "is supported (concatenate the outputs into one population)"
            )

    def check_probe(self, pb: Probe) -> None:
        """Refuse (ValueError naming the probe and the fix) a :class:`Probe` this circuit cannot record."""
        if not isinstance(pb, Probe):
            raise ValueError(f"circuit {self.name!r}: probes must be ns.Probe objects, got {pb!r}")
        if self.vertices:
            if pb.variable == "weight_norm":
                if pb.target not in self.param_shapes:
                    raise ValueError(f"Probe {pb.name!r}: weight_norm needs a parameter name of graph {self.name!r}; "
                                     f"known: {sorted(self.param_shapes)}")
                return
            if pb.target not in self.shapes:
                raise ValueError(f"Probe {pb.name!r}: graph {self.name!r} has no vertex {pb.target!r}; known: "
                                 f"{list(self.order)}")
            if pb.variable in ("eps", "energy", "mu") and pb.target in self.inputs:
                raise ValueError(f"Probe {pb.name!r}: vertex {pb.target!r} is an input of graph {self.name!r}; it has "
                                 "no error units or prediction to record (probe its 'x', or a computing vertex)")
            return
        pops = {p.name for p in self.populations}
        projs = {p.name for p in self.projections}
        if pb.variable == "weight_norm":
            if pb.target not in projs:
                raise ValueError(f"Probe {pb.name!r}: weight_norm needs a projection name; known: {sorted(projs)}")
            return
        if pb.target not in pops:
            raise ValueError(f"Probe {pb.name!r}: population {pb.target!r} does not exist; known: {sorted(pops)}")
        if pb.variable in ("eps", "energy", "mu") and self.error_of(pb.target) is None:
            raise ValueError(f"Probe {pb.name!r}: population {pb.target!r} has no error population / prediction to record")

    # ------------------------------------------------------------------ derived circuits
    def with_probes(self, *probes: Probe) -> "Circuit":
        """A copy of the circuit with extra probes: ``with_probes(p1, p2)`` or ``with_probes([p1, p2])``, as
        ``Simulator(probes=[...])`` takes them."""
        if len(probes) == 1 and isinstance(probes[0], (list, tuple)):
            probes = tuple(probes[0])
        return replace(self, probes=self.probes + tuple(probes))

    def with_plasticity(self, plasticity: Hebbian | None, projections: Iterable[str] | None = None) -> "Circuit":
        """A copy with the plasticity rule of (some) weighted projections replaced (``None`` freezes them).

        Vertex form: ``projections`` names parameters (weights, kernels, biases); without it every parameter
        takes ``plasticity``."""
        if plasticity is not None and not isinstance(plasticity, Hebbian):
            raise ValueError(f"circuit {self.name!r}: plasticity must be ns.Hebbian(...) or None, got {plasticity!r}")
        if self.vertices:
            from .graph.declare import Param
            if projections is None:
                params = tuple(replace(p, plasticity="default") for p in self.params)
                return replace(self, params=params, plasticity=plasticity)
            names = list(dict.fromkeys(projections))
            unknown = [n for n in names if n not in self.param_shapes]
            if unknown:
                raise ValueError(f"circuit {self.name!r} has no parameter(s) {unknown}; parameters: "
                                 f"{sorted(self.param_shapes)}")
            given = {p.name: p for p in self.params}
            params = [replace(p, plasticity=plasticity) if p.name in names else p for p in self.params]
            params += [Param(n, plasticity=plasticity) for n in names if n not in given]
            return replace(self, params=tuple(params))
        names = set(projections) if projections is not None else None
        if names is not None:
            unknown = sorted(names - {p.name for p in self.projections})
            if unknown:
                raise ValueError(f"circuit {self.name!r} has no projection(s) {unknown}; projections: "
                                 f"{[p.name for p in self.projections]}")
        projs = tuple(
            replace(p, plasticity=plasticity) if (p.weights and (names is None or p.name in names)) else p
            for p in self.projections
        )
        return replace(self, projections=projs)

    def with_connectivity(self, connectivity, projections: Iterable[str]) -> "Circuit":
        """A copy whose projections ``projections`` (names) have the connectivity ``connectivity``
        (``ns.FixedFanIn``, ``ns.ReceptiveField``, ``ns.Pattern`` or a scipy.sparse matrix; ``None``: dense), e.g.
        ``ns.hierarchy([784, 1000, 10]).with_connectivity(ns.FixedFanIn(30), ["W1"])``; the patterns are
        checked when the circuit is lowered (a Simulator is built), as for a projection declared so."""
        if self.vertices:
            raise ValueError(f"circuit {self.name!r} is stated as vertices (a graph): sparse connectivity is a "
                             f"projection option of circuits stated as populations")
        def _names(v):
            return isinstance(v, str) or (isinstance(v, (list, tuple)) and bool(v) and all(isinstance(n, str) for n in v))
        if _names(connectivity) and not _names(projections):
            raise TypeError(f"circuit {self.name!r}: with_connectivity takes the connectivity first and the projection "
                            f"names second: with_connectivity({type(projections).__name__}(...), "
                            f"{connectivity!r}) -- the arguments look swapped")
        if not (_names(projections) or isinstance(projections, Iterable)):
            raise TypeError(f"circuit {self.name!r}: with_connectivity(connectivity, projections): projections must "
                            f"be a projection name or a list of names, got {type(projections).__name__}")
        names = list(dict.fromkeys([projections] if isinstance(projections, str) else projections))
        known = {p.name: p for p in self.projections}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"circuit {self.name!r} has no projection(s) {unknown}; projections: {list(known)}")
        skips = [n for n in names if not known[n].weights]
        if skips:
            raise ValueError(f"circuit {self.name!r}: projection(s) {skips} have no weights (identity skips); "
                             f"connectivity applies to weighted projections")
        projs = tuple(replace(p, connectivity=connectivity) if p.name in names else p for p in self.projections)
        return replace(self, projections=projs)

    def describe(self) -> str:
        """A human-readable summary (vertex form: a table of the vertices: type, shape, parents, level,
        parameters)."""
        if self.vertices:
            from .graph.declare import describe_vertices
            return describe_vertices(self)
        lines = [f"Circuit {self.name!r}"]
        for name in self.topological_order():
            p = self.population(name)
            e = self.error_of(name)
            role = {"input": "input", "target": "target"}.get(
                {c.population: c.kind for c in self.clamps}.get(name, ""), "free")
            err = f", errors {e.name!r} (tau_eps={e.tau_eps}, precision={e.precision})" if e else ""
            lines.append(f"  {name}: {p.size} units, phi={p.phi}, tau_x={p.tau_x}, {role}{err}")
        for pr in self.projections:
            extra = []
            if pr.bias:
                extra.append("bias")
            if pr.multiplier != 1.0:
                extra.append(f"x{pr.multiplier:g}")
            if pr.skip:
                extra.append("+skip")
            if pr.connectivity is not None:
                from .connectivity import pattern_of
                n_post, n_pre = self.population(pr.post).size, self.population(pr.pre).size
                nnz = pattern_of(pr.connectivity, n_post, n_pre, pr.name)[1].size
                extra.append(f"[{pr.connectivity.summary()}: {nnz} synapses, {nnz / n_post:g} per post unit]")
            extra.append(plasticity_summary(pr.plasticity))
            lines.append(f"  {pr.name}: {pr.pre} -> {pr.post} {' '.join(extra)}".rstrip())
        return "\n".join(lines)


def plasticity_summary(plast) -> str:
    """``"lr=0.01 sgd"``, ``"lr=0.001 adam, sum"``, ``"lr=0.02 sgd(momentum=0.9), bias frozen"``, or ``"frozen"``."""
    if plast is None:
        return "frozen"
    o = plast.optimizer
    opts = [f"{k}={getattr(o, k):g}" for k in ("momentum", "weight_decay") if getattr(o, k, 0.0)]
    text = f"lr={plast.lr:g} {o.kind}" + (f"({', '.join(opts)})" if opts else "")
    if plast.batch_reduction != "mean":
        text += f", {plast.batch_reduction}"
    if not getattr(plast, "learn_bias", True):
        text += ", bias frozen"
    return text


def hierarchy(
    sizes: Sequence[int],
    phi: str | Sequence[str] = "tanh",
    *,
    bias: bool = True,
    tau_x: float = 1.0,
    tau_eps: float = 0.0,
    precision: float = 1.0,
    output_precision: float | None = None,
    init: Init | None = None,
    lr: float = 0.05,
    optimizer: Optimizer | None = None,
    batch_reduction: str = "mean",
    multipliers: Sequence[float] | None = None,
    skips: Sequence[bool] | None = None,
    name: str = "hierarchy",
    names: Sequence[str] | None = None,
) -> Circuit:
    r"""The layered PCN of Whittington & Bogacz (2017) and Song et al. (2024).

    :math:`\mu_l = a_l W_l \phi(x_{l-1}) + b_l` for :math:`l = 1..L` (no ``phi`` on the input:
    the input population is linear), :math:`\varepsilon_l = \pi_l (x_l - \mu_l)`.

    Parameters
    ----------
    sizes : sequence of int
        ``[n_input, n_hidden..., n_output]`` (at least 2 entries).
    phi : str or sequence of str
        Activation of the hidden populations (one name, or one per hidden layer).
    precision, output_precision : float
        Precision of hidden errors and of the output error (default: ``precision``).
    lr, optimizer : float, Optimizer
        Hebbian learning rate and optimiser of every projection; defaults ``lr=0.05`` and
        ``SGD(momentum=0.9)``, which with :meth:`Simulator.train`'s defaults reach about 93% test
        accuracy on the bundled digits (``[64, 128, 10]``, tanh); earlier versions defaulted to
        ``lr=0.01`` and ``SGD()`` (no momentum).
    multipliers, skips : sequences of length L, optional
        Forward multiplier ``a_l`` and identity skip of each projection (muPC).
    names : sequence of str, optional
        Population names (default ``input, h1, ..., output``).

    Returns
    -------
    Circuit
        Populations ``names``, errors ``eps_<name>``, projections ``W1..WL``, an input clamp on the first
        and a target clamp on the last population.
    """
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"hierarchy: sizes needs at least an input and an output size, got {sizes}")
    for i, n in enumerate(sizes):   # integers (NumPy's too), never a float, bool or string truncated to one
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"hierarchy: sizes[{i}] must be a positive int, got {n!r} (in sizes={sizes})")
    L = len(sizes) - 1
    if names is None:
        names = ["input"] + [f"h{l}" for l in range(1, L)] + ["output"]
    names = list(names)
    if len(names) != L + 1:
        raise ValueError(f"hierarchy: {len(names)} names for {L + 1} layers")
    phis = [phi] * (L - 1) if isinstance(phi, str) else list(phi)
    for p in [phi] if isinstance(phi, str) and L == 1 else []:  # no hidden population checks it: check it here
        try:
            activations.get(p)
        except ValueError:
            raise ValueError(f"hierarchy: phi={p!r} is not a known activation; choose one of "
                             f"{activations.names()}") from None
    if len(phis) != L - 1:
        raise ValueError(f"hierarchy: phi needs one activation per hidden layer ({L - 1}), got {len(phis)}")
    multipliers = [1.0] * L if multipliers is None else list(multipliers)
    skips = [False] * L if skips is None else list(skips)
    if len(multipliers) != L or len(skips) != L:
        raise ValueError(f"hierarchy: multipliers and skips need one entry per projection ({L})")
    init = init or Init("xavier_normal")
    plast = Hebbian(lr=lr, optimizer=SGD(momentum=0.9) if optimizer is None else optimizer,
                    batch_reduction=batch_reduction)
    pops = [ValuePopulation(names[0], int(sizes[0]), "linear", tau_x)]
    for l in range(1, L):
        pops.append(ValuePopulation(names[l], int(sizes[l]), phis[l - 1], tau_x))
    pops.append(ValuePopulation(names[L], int(sizes[L]), "linear", tau_x))
    out_prec = precision if output_precision is None else output_precision
    errs = [
        ErrorPopulation(f"eps_{names[l]}", names[l], tau_eps, out_prec if l == L else precision)
        for l in range(1, L + 1)
    ]
    projs = [
        Projection(f"W{l}", names[l - 1], names[l], bias=bias, init=init, multiplier=float(multipliers[l - 1]),
                   skip=bool(skips[l - 1]), plasticity=plast)
        for l in range(1, L + 1)
    ]
    clamps = [Clamp(names[0], "input"), Clamp(names[L], "target")]
    return Circuit(tuple(pops), tuple(errs), tuple(projs), tuple(clamps), (), name)
