r"""Graph-circuit declarations: a DAG of vertices, each with a value population, an error population and a
local differentiable function of its parents (Salvatori et al. 2022; Millidge et al. 2020).

Every non-input vertex :math:`i` holds values :math:`x_i` (shape ``shape``, one row per sample), a
prediction :math:`\mu_i = g_i(\{x_j\}_{j \in \mathrm{par}(i)}; \theta_i)` and errors
:math:`\varepsilon_i = \pi_i (x_i - \mu_i)`.  The energy is

.. math::

    F = \sum_i \frac{\pi_i}{2} \lVert x_i - \mu_i \rVert^2 \quad (\text{batch mean}),

inference is the gradient flow

.. math::

    \tau_i \dot x_i = -\varepsilon_i + \sum_{c \in \mathrm{ch}(i)}
        \Big(\frac{\partial g_c}{\partial x_i}\Big)^T \varepsilon_c ,

and the local (Hebbian) update of a parameter is :math:`\Delta\theta = \mathrm{lr}\,
\sum_{\text{uses } i} (\partial g_i / \partial \theta)^T \varepsilon_i` (a parameter shared by several
vertices -- conv kernels over positions, recurrent weights over time -- accumulates the update of every use).

Vertex functions
----------------
=================  =======================================================================================
:class:`Input`     clamped to data (no error, no function)
:class:`Dense`     :math:`\mu = \sum_j a_j W_j \phi_j(x_{p_j}) + b` (any parent shape is read flat)
:class:`Conv2d`    :math:`\mu = a\, K \star \phi(x_p) + b` (cross-correlation, stride, zero padding,
                   per-channel bias; parent shape ``(C, H, W)``)
:class:`Pool`      max or average pooling over ``size x size`` windows with ``stride``
:class:`Sum`       :math:`\mu = \sum_j c_j x_{p_j}` (residual connections, LSTM cell state)
:class:`Product`   :math:`\mu = \prod_j x_{p_j}` elementwise (gates)
:class:`Act`       :math:`\mu = \phi(x_p)`
:class:`Identity`  :math:`\mu = x_p` (what :func:`level` inserts into edges that skip levels)
=================  =======================================================================================

A :class:`Graph` validates everything at construction: unknown parents, duplicate names, cycles (with the
cycle named), shape mismatches, shared parameters used with different shapes, vertices that cannot reach
the output and inputs that feed nothing all raise a ``ValueError`` naming the vertex and the fix.

Levels.  The *level* of a vertex is the length of the longest path from it to the output (the output has
level 0).  An edge :math:`j \to i` from a non-input vertex is *levelled* when
:math:`\mathrm{level}(j) = \mathrm{level}(i) + 1`.  Z-IL needs every such edge levelled;
:func:`level` inserts ``level(j) - level(i) - 1`` :class:`Identity` vertices into every edge that skips
levels.  Edges from inputs never need levelling (inputs do not move).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

import numpy as np

from .. import activations
from ..circuit import _DEFAULT_GRAPH_PLASTICITY, Circuit, Hebbian, Init, _as_tuple, _positive

__all__ = ["Input", "Dense", "Conv2d", "Pool", "Sum", "Product", "Act", "Identity", "Param", "Graph", "level",
           "VERTEX_TYPES", "validate_vertex_form"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _check_name(kind, name):
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{kind} name {name!r} is not valid: use letters, digits, '_', '.', '-' and start with a "
                         "letter or '_'")


def _int(obj, attr, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{obj}: {attr} must be an int >= {minimum}, got {value!r}")
    return value


def _shape(obj, value):
    value = _as_tuple(value, isinstance(value, int) and not isinstance(value, bool),
                      f"{obj}: shape must be an int or a tuple of ints, got {value!r}")
    if not value or len(value) > 3 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in value):
        raise ValueError(f"{obj}: shape must be 1 to 3 positive ints (n,), (H, W) or (C, H, W), got {value!r}")
    return value


def _phi(obj, name):
    try:
        activations.get(name)
    except ValueError as e:
        raise ValueError(f"{obj}: {e}") from None
    return name


def _tuple_of_names(obj, attr, value):
    value = _as_tuple(value, isinstance(value, str), f"{obj}: {attr} must be a name or a tuple of names, got {value!r}")
    if not value:
        raise ValueError(f"{obj}: {attr} must not be empty")
    for v in value:
        if not isinstance(v, str):
            raise ValueError(f"{obj}: {attr} must contain names (str), got {v!r}")
    return value


def _per_parent(obj, attr, value, n, check=None):
    if isinstance(value, (list, tuple)):
        value = tuple(value)
        if len(value) != n:
            raise ValueError(f"{obj}: {attr} has {len(value)} entries but there are {n} parents; give one per "
                             "parent or a single value for all")
    else:
        value = (value,) * n
    if check is not None:
        value = tuple(check(v) for v in value)
    return value


def _precision(obj, value):
    """A vertex's precision: a number > 0, or one number > 0 per unit (a tuple; its length is checked against the
    vertex's size once the shapes are known, in :func:`validate_vertex_form`)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        flat = np.asarray(value, dtype=object).ravel()
        vals = tuple(_positive(obj, f"precision[{k}]", v) for k, v in enumerate(flat))
        if not vals:
            raise ValueError(f"{obj}: precision is empty; give a number or one number per unit")
        return vals
    return _positive(obj, "precision", value)


def _common(self) -> str:
    """Check a vertex's name, precision, tau_x and tau_eps; returns how errors name it (``"Dense 'h1'"``)."""
    obj = f"{type(self).__name__} {self.name!r}"
    _check_name(type(self).__name__, self.name)
    object.__setattr__(self, "precision", _precision(obj, self.precision))
    object.__setattr__(self, "tau_x", _positive(obj, "tau_x", self.tau_x))
    te = self.tau_eps
    if isinstance(te, bool) or not isinstance(te, (int, float)) or not (math.isfinite(te) and te >= 0):
        raise ValueError(f"{obj}: tau_eps must be a finite number >= 0 (0: instantaneous error units), got {te!r}")
    object.__setattr__(self, "tau_eps", float(te))
    return obj


def _bias(obj, self):
    """Resolve ``self.bias``: a parameter name stays, ``True`` becomes ``"<name>.b"``, ``False``/``None`` none."""
    if isinstance(self.bias, str):
        _check_name(f"{obj} bias parameter", self.bias)
    elif self.bias is True:
        object.__setattr__(self, "bias", f"{self.name}.b")
    elif self.bias is False or self.bias is None:
        object.__setattr__(self, "bias", None)
    else:
        raise ValueError(f"{obj}: bias must be True, False or a parameter name, got {self.bias!r}")


def _finite_numbers(obj, attr, values) -> tuple:
    """``values`` as floats, each a finite real number (bools refused)."""
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise ValueError(f"{obj}: {attr} must be finite numbers, got {v!r}")
    return tuple(float(v) for v in values)


class _OneParent:
    """A vertex reading one parent, named by its ``parent`` field."""

    def _check_parent(self, obj):
        if not isinstance(self.parent, str):
            raise ValueError(f"{obj}: parent must be one vertex name, got {self.parent!r}")

    @property
    def parents(self) -> tuple:
        return (self.parent,)


# ----------------------------------------------------------------------------------------------- vertices
@dataclass(frozen=True)
class Input:
    """An input vertex: clamped to a block of columns of ``X`` (inputs take the columns in declaration order).

    Parameters
    ----------
    name : str
    shape : int or tuple
        ``n``, ``(H, W)`` (read as one channel) or ``(C, H, W)``; ``X`` supplies ``prod(shape)`` columns in
        C order.
    """

    name: str
    shape: tuple = (1,)

    def __post_init__(self):
        _check_name("Input", self.name)
        s = _shape(f"Input {self.name!r}", self.shape)
        if len(s) == 2:
            s = (1,) + s
        object.__setattr__(self, "shape", s)

    @property
    def parents(self) -> tuple:
        return ()


@dataclass(frozen=True)
class Dense:
    r"""Dense (fully connected) vertex, :math:`\mu = \sum_j a_j W_j \phi_j(x_{p_j}) + b`.

    Parameters
    ----------
    name : str
    parents : str or tuple of str
        Parent vertices (read flat, whatever their shape).
    size : int
        Number of units.
    weights : str or tuple of str, optional
        Parameter name of each parent's weight matrix :math:`W_j` (``(size, n_parent)``).  Reusing a name
        shares the matrix (recurrent weights unrolled over time); defaults are ``"<name>.W"`` (one parent)
        or ``"<name>.W0"``, ``"<name>.W1"``, ...  ``None`` for a parent makes its edge an identity (a skip
        connection, :math:`a_j x_{p_j}` without activation; the parent must have ``size`` units), as a
        layered ``Projection(skip=True)``.
    phi : str or tuple of str
        Activation applied to each parent before the weights (neurosim's ``W phi(x)`` convention).
    bias : bool or str
        ``True``: a bias ``"<name>.b"``; a string names a (possibly shared) bias parameter; ``False``: none.
    multiplier : float or tuple of float
        Fixed forward multipliers :math:`a_j` (the feedback path uses the same :math:`a_j`).
    shape : tuple, optional
        Shape of the vertex (``prod(shape) == size``), e.g. ``(C, H, W)`` to feed a convolution.
    precision : float or tuple of float
        Precision of the vertex's error population: one number, or one per unit (flattened order).
    tau_x : float
        Time constant of the vertex's values.
    tau_eps : float
        Time constant of the vertex's error units (0: instantaneous, :math:`\varepsilon = \pi(x - \mu)`;
        > 0: :math:`\tau_\varepsilon \dot\varepsilon = (x - \mu) - \varepsilon/\pi`, as
        :class:`neurosim.ErrorPopulation`).
    """

    name: str
    parents: tuple
    size: int
    weights: tuple | str | None = None
    phi: tuple | str = "linear"
    bias: bool | str = True
    multiplier: tuple | float = 1.0
    shape: tuple | None = None
    precision: float | tuple = 1.0
    tau_x: float = 1.0
    tau_eps: float = 0.0

    def __post_init__(self):
        obj = _common(self)
        parents = _tuple_of_names(obj, "parents", self.parents)
        object.__setattr__(self, "parents", parents)
        _int(obj, "size", self.size, 1)
        if isinstance(self.precision, tuple) and len(self.precision) != self.size:
            raise ValueError(f"{obj}: precision has {len(self.precision)} values but the vertex has {self.size} "
                             "units; give a number or one value per unit")
        n = len(parents)
        if self.weights is None:
            w = (f"{self.name}.W",) if n == 1 else tuple(f"{self.name}.W{j}" for j in range(n))
        else:
            w = _per_parent(obj, "weights", self.weights, n) if not isinstance(self.weights, str) else \
                (self.weights,) * n if n == 1 else None
            if w is None:
                raise ValueError(f"{obj}: weights must name one parameter per parent ({n} parents)")
        for name in w:
            if name is not None:   # None: an identity edge (mu += multiplier * x_parent, no activation)
                _check_name(f"{obj} weight parameter", name)
        if all(name is None for name in w) and (self.bias is False or self.bias is None):
            raise ValueError(f"{obj}: every parent is an identity edge (weights None) and there is no bias; use "
                             "Sum(...) for a weightless sum of parents")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "phi", _per_parent(obj, "phi", self.phi, n, lambda v: _phi(obj, v)))
        mult = _per_parent(obj, "multiplier", self.multiplier, n)
        object.__setattr__(self, "multiplier", _finite_numbers(obj, "multiplier", mult))
        _bias(obj, self)
        if self.shape is not None:
            s = _shape(obj, self.shape)
            if math.prod(s) != self.size:
                raise ValueError(f"{obj}: shape {s} has {math.prod(s)} units but size is {self.size}; make "
                                 "prod(shape) == size")
            object.__setattr__(self, "shape", s if len(s) != 2 else (1,) + s)


def _pair(obj, attr, v, minimum):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{obj}: {attr} must be an int or a pair of ints, got {v!r}")
        return (_int(obj, attr, v[0], minimum), _int(obj, attr, v[1], minimum))
    v = _int(obj, attr, v, minimum)
    return (v, v)


@dataclass(frozen=True)
class Conv2d(_OneParent):
    r"""2-D convolution vertex (cross-correlation, as in deep-learning libraries).

    .. math::

        \mu_{o,r,c} = a \sum_{i,u,v} K_{o,i,u,v}\, \phi(x)_{i,\, r s + u - p,\, c s + v - p} + b_o

    with stride :math:`s`, zero padding :math:`p` (out-of-range inputs count as 0), output shape
    ``(channels, (H + 2p - kh) // s + 1, (W + 2p - kw) // s + 1)``.  The kernel ``K`` has shape
    ``(channels, C_in, kh, kw)`` and is shared by every output position (its update sums them).

    Parameters
    ----------
    name, parent : str
    channels : int
    kernel : int or (int, int)
    stride : int
    padding : int
    phi : str
        Activation applied to the parent before the convolution.
    weight : str, optional
        Kernel parameter name (default ``"<name>.K"``; reuse a name to share a kernel).
    bias : bool or str
        Per-channel bias (``True``: ``"<name>.b"``).
    multiplier, precision, tau_x : float
    """

    name: str
    parent: str
    channels: int
    kernel: int | tuple = 3
    stride: int = 1
    padding: int = 0
    phi: str = "linear"
    weight: str | None = None
    bias: bool | str = True
    multiplier: float = 1.0
    precision: float | tuple = 1.0
    tau_x: float = 1.0
    tau_eps: float = 0.0

    def __post_init__(self):
        obj = _common(self)
        self._check_parent(obj)
        _int(obj, "channels", self.channels, 1)
        object.__setattr__(self, "kernel", _pair(obj, "kernel", self.kernel, 1))
        _int(obj, "stride", self.stride, 1)
        _int(obj, "padding", self.padding, 0)
        _phi(obj, self.phi)
        w = self.weight if self.weight is not None else f"{self.name}.K"
        _check_name(f"{obj} weight parameter", w)
        object.__setattr__(self, "weight", w)
        _bias(obj, self)
        if not isinstance(self.multiplier, (int, float)) or not math.isfinite(self.multiplier):
            raise ValueError(f"{obj}: multiplier must be a finite number, got {self.multiplier!r}")


@dataclass(frozen=True)
class Pool(_OneParent):
    r"""Pooling vertex over ``size x size`` windows with ``stride`` (default ``size``), no padding.

    ``kind="max"``: :math:`\mu_{c,r,s} = \max_{(u,v) \in \text{window}} x_{c,u,v}` (its Jacobian routes the
    error to the first maximal input of the window); ``kind="avg"``: the window mean.
    Output shape ``(C, (H - size) // stride + 1, (W - size) // stride + 1)``.
    """

    name: str
    parent: str
    size: int = 2
    stride: int | None = None
    kind: str = "max"
    precision: float | tuple = 1.0
    tau_x: float = 1.0
    tau_eps: float = 0.0

    def __post_init__(self):
        obj = _common(self)
        self._check_parent(obj)
        _int(obj, "size", self.size, 1)
        if self.stride is None:
            object.__setattr__(self, "stride", self.size)
        _int(obj, "stride", self.stride, 1)
        if self.kind not in ("max", "avg"):
            raise ValueError(f"{obj}: kind must be 'max' or 'avg', got {self.kind!r}")


@dataclass(frozen=True)
class Sum:
    r"""Elementwise weighted sum :math:`\mu = \sum_j c_j x_{p_j}` of parents of equal shape."""

    name: str
    parents: tuple
    coefficients: tuple | float = 1.0
    precision: float | tuple = 1.0
    tau_x: float = 1.0
    tau_eps: float = 0.0

    def __post_init__(self):
        obj = _common(self)
        parents = _tuple_of_names(obj, "parents", self.parents)
        object.__setattr__(self, "parents", parents)
        c = _per_parent(obj, "coefficients", self.coefficients, len(parents))
        object.__setattr__(self, "coefficients", _finite_numbers(obj, "coefficients", c))


@dataclass(frozen=True)
class Product:
    r"""Elementwise product :math:`\mu = \prod_j x_{p_j}` of parents of equal shape (multiplicative gates)."""

    name: str
    parents: tuple
    precision: float | tuple = 1.0
    tau_x: float = 1.0
    tau_eps: float = 0.0

    def __post_init__(self):
        obj = _common(self)
        parents = _tuple_of_names(obj, "parents", self.parents)
        if len(parents) < 2:
            raise ValueError(f"{obj}: a product needs at least 2 parents, got {parents}")
        object.__setattr__(self, "parents", parents)


@dataclass(frozen=True)
class Act(_OneParent):
    r"""Elementwise activation :math:`\mu = \phi(x_p)`."""

    name: str
    parent: str
    phi: str = "tanh"
    precision: float | tuple = 1.0
    tau_x: float = 1.0
    tau_eps: float = 0.0

    def __post_init__(self):
        obj = _common(self)
        self._check_parent(obj)
        _phi(obj, self.phi)


@dataclass(frozen=True)
class Identity(_OneParent):
    r"""Identity vertex :math:`\mu = x_p`: its value node relays the parent's value one level down.

    :func:`level` inserts chains of these into edges that skip levels (Salvatori et al.'s construction).
    """

    name: str
    parent: str
    precision: float | tuple = 1.0
    tau_x: float = 1.0
    tau_eps: float = 0.0

    def __post_init__(self):
        obj = _common(self)
        self._check_parent(obj)


VERTEX_TYPES = (Input, Dense, Conv2d, Pool, Sum, Product, Act, Identity)


@dataclass(frozen=True)
class Param:
    """Settings of one (possibly shared) parameter, referred to by name from the vertices.

    Parameters
    ----------
    name : str
        A weight/kernel/bias name used by a vertex.
    init : Init, optional
        Initialisation (default: ``Init("xavier_normal")`` for weights and kernels, zeros for biases).
    plasticity : Hebbian or None or "default"
        Learning rate and optimiser (``None`` freezes the parameter; ``"default"`` uses the graph's).
    """

    name: str
    init: Init | None = None
    plasticity: Hebbian | None | str = "default"

    def __post_init__(self):
        _check_name("Param", self.name)
        if self.init is not None and not isinstance(self.init, Init):
            raise ValueError(f"Param {self.name!r}: init must be ns.Init(...) or None")
        if not (self.plasticity is None or self.plasticity == "default" or isinstance(self.plasticity, Hebbian)):
            raise ValueError(f"Param {self.name!r}: plasticity must be ns.Hebbian(...), None or 'default'")


# ----------------------------------------------------------------------------------------------- the graph
@dataclass(frozen=True)
class ParamUse:
    """One use of a parameter by a vertex (``role`` is ``"weight"``, ``"kernel"`` or ``"bias"``)."""

    vertex: str
    role: str
    shape: tuple


class _GraphType(type):
    """``isinstance(c, Graph)``: ``c`` is a :class:`~neurosim.Circuit` stated as vertices."""

    def __instancecheck__(cls, obj):
        return isinstance(obj, Circuit) and bool(obj.vertices)


class Graph(metaclass=_GraphType):
    """A predictive-coding circuit stated as a DAG of vertices: returns a :class:`neurosim.Circuit`.

    ``Graph(vertices, output, params=(), plasticity=Hebbian(lr=0.01), name="graph", probes=())`` is
    ``ns.Circuit(vertices=..., output=..., params=..., plasticity=..., name=..., probes=...)``: there is one
    circuit type, and ``isinstance(c, Graph)`` tells whether a circuit is stated as vertices.

    Parameters
    ----------
    vertices : sequence of vertices
        :class:`Input`, :class:`Dense`, :class:`Conv2d`, :class:`Pool`, :class:`Sum`, :class:`Product`,
        :class:`Act`, :class:`Identity`, in any order (the circuit sorts them topologically).
    output : str
        The vertex clamped to the target while learning (its prediction is the network's output).
    params : sequence of Param
        Per-parameter settings (initialisation, plasticity); parameters not listed use the defaults.
    plasticity : Hebbian or None
        Default plasticity of every parameter (``None``: frozen unless a :class:`Param` says otherwise).
    name : str
    probes : sequence of neurosim.Probe
        What to record (vertex names; ``weight_norm`` takes a parameter name).

    Attributes (computed)
    ---------------------
    order : tuple of str
        Vertex names in topological order (declaration order among independent vertices).
    shapes : dict
        Vertex name -> shape tuple.
    inputs : list of str
        Input vertices in declaration order (they take the columns of ``X`` in this order).
    param_shapes : dict
        Parameter name -> shape (order of first use in declaration order).
    levels : dict
        Vertex name -> longest path (in edges) to the output.
    """

    def __new__(cls, vertices, output, params=(), plasticity=_DEFAULT_GRAPH_PLASTICITY, name="graph", probes=()):
        return Circuit(vertices=vertices, output=output, params=params, plasticity=plasticity, name=name,
                       probes=probes)


def validate_vertex_form(c) -> None:
    """Validate a circuit stated as vertices and set its computed attributes (``order``, ``shapes``,
    ``children``, ``levels``, ``param_shapes``, ``param_uses``); every error names the vertex and the fix."""
    _check_name("Graph", c.name)
    g = f"graph {c.name!r}"
    verts = c.vertices
    if not verts:
        raise ValueError(f"{g} has no vertices")
    by_name = {}
    for v in verts:
        if not isinstance(v, VERTEX_TYPES):
            raise ValueError(f"{g}: {v!r} is not a vertex; use Input, Dense, Conv2d, Pool, Sum, Product, Act "
                             "or Identity")
        if v.name in by_name:
            raise ValueError(f"{g}: two vertices are named {v.name!r}; vertex names must be unique")
        by_name[v.name] = v
    for v in verts:
        for p in v.parents:
            if p not in by_name:
                raise ValueError(f"{g}: vertex {v.name!r} has unknown parent {p!r}; declare a vertex named "
                                 f"{p!r} or fix the name")
            if p == v.name:
                raise ValueError(f"{g}: vertex {v.name!r} is its own parent; unroll recurrent connections "
                                 "over time (one vertex per step, shared weights)")
    if c.output is None:
        raise ValueError(f"{g}: no output; name the vertex clamped to the target (output=...)")
    if c.output not in by_name:
        raise ValueError(f"{g}: output {c.output!r} is not a vertex; name one of the declared vertices")
    if isinstance(by_name[c.output], Input):
        raise ValueError(f"{g}: output {c.output!r} is an Input; the output must be a computed vertex")
    if c.plasticity is not None and not isinstance(c.plasticity, Hebbian):
        raise ValueError(f"{g}: plasticity must be ns.Hebbian(...) or None")
    object.__setattr__(c, "order", _toposort(c, by_name))
    children = {n: [] for n in by_name}
    for v in verts:
        for p in v.parents:
            if v.name not in children[p]:
                children[p].append(v.name)
    object.__setattr__(c, "children", {k: tuple(ch) for k, ch in children.items()})
    if not c.inputs:
        raise ValueError(f"{g} has no Input vertex")
    _infer_shapes(c, by_name)
    for v in c.vertices:
        prec = getattr(v, "precision", None)
        if isinstance(prec, tuple) and len(prec) != math.prod(c.shapes[v.name]):
            raise ValueError(f"{type(v).__name__} {v.name!r}: precision has {len(prec)} values but the vertex has "
                             f"{math.prod(c.shapes[v.name])} units; give a number or one value per unit (in the "
                             "order of the flattened shape)")
    _check_reachability(c, by_name)
    _collect_params(c, by_name)


def _toposort(c, by_name):
    indeg = {n: len(v.parents) for n, v in by_name.items()}
    kids = {n: [] for n in by_name}
    for v in c.vertices:
        for p in v.parents:
            kids[p].append(v.name)
    decl = {v.name: k for k, v in enumerate(c.vertices)}
    import heapq
    ready = [(decl[n], n) for n, d in indeg.items() if d == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, n = heapq.heappop(ready)
        order.append(n)
        for ch in kids[n]:
            indeg[ch] -= 1
            if indeg[ch] == 0:
                heapq.heappush(ready, (decl[ch], ch))
    if len(order) != len(by_name):
        left = {n for n in by_name if n not in set(order)}
        cycle = _find_cycle(by_name, left)
        raise ValueError(f"graph {c.name!r} has a cycle: {' -> '.join(cycle)}; a predictive-coding graph "
                         "must be a DAG -- unroll recurrent connections over time (one vertex per time step "
                         "with shared weights)")
    return tuple(order)


def _infer_shapes(c, by_name):
    shapes = {}
    for n in c.order:
        v = by_name[n]
        obj = f"{type(v).__name__} {n!r}"
        if isinstance(v, Input):
            shapes[n] = v.shape
        elif isinstance(v, Dense):
            shapes[n] = v.shape if v.shape is not None else (v.size,)
            for p, w in zip(v.parents, v.weights):
                if w is None and math.prod(shapes[p]) != v.size:
                    raise ValueError(f"{obj}: the identity edge from {p!r} needs {v.size} units, {p!r} has "
                                     f"{math.prod(shapes[p])}; give it a weight matrix or match the sizes")
        elif isinstance(v, Conv2d):
            ps = shapes[v.parent]
            if len(ps) != 3:
                raise ValueError(f"{obj}: parent {v.parent!r} has shape {ps}, a convolution needs (C, H, W); "
                                 "declare the parent with a 3-D shape (e.g. Input(shape=(1, 8, 8)) or "
                                 "Dense(shape=(C, H, W)))")
            C, H, W = ps
            kh, kw = v.kernel
            Ho = (H + 2 * v.padding - kh) // v.stride + 1
            Wo = (W + 2 * v.padding - kw) // v.stride + 1
            if H + 2 * v.padding < kh or W + 2 * v.padding < kw:
                raise ValueError(f"{obj}: kernel {v.kernel} is larger than the padded input "
                                 f"{(H + 2 * v.padding, W + 2 * v.padding)} of parent {v.parent!r} {ps}; use a "
                                 "smaller kernel or more padding")
            if v.padding >= max(kh, kw):
                raise ValueError(f"{obj}: padding {v.padding} >= kernel {v.kernel} gives outputs that see only "
                                 "padding; use padding < kernel size")
            shapes[n] = (v.channels, Ho, Wo)
        elif isinstance(v, Pool):
            ps = shapes[v.parent]
            if len(ps) != 3:
                raise ValueError(f"{obj}: parent {v.parent!r} has shape {ps}, pooling needs (C, H, W)")
            C, H, W = ps
            if v.size > H or v.size > W:
                raise ValueError(f"{obj}: window {v.size} is larger than the parent {v.parent!r} {ps}; use a "
                                 "smaller size")
            shapes[n] = (C, (H - v.size) // v.stride + 1, (W - v.size) // v.stride + 1)
        elif isinstance(v, (Sum, Product)):
            ps = [shapes[p] for p in v.parents]
            for p, s in zip(v.parents, ps):
                if s != ps[0]:
                    raise ValueError(f"{obj}: parents {v.parents[0]!r} {ps[0]} and {p!r} {s} have different "
                                     "shapes; elementwise vertices need parents of equal shape")
            shapes[n] = ps[0]
        else:  # Act, Identity
            shapes[n] = shapes[v.parent]
    object.__setattr__(c, "shapes", shapes)


def _check_reachability(c, by_name):
    if c.children[c.output]:
        raise ValueError(f"graph {c.name!r}: the output {c.output!r} has children "
                         f"{list(c.children[c.output])}; the output must be a sink")
    levels = {c.output: 0}
    for n in reversed(c.order):
        if n == c.output:
            continue
        ls = [levels[ch] + 1 for ch in c.children[n] if ch in levels]
        if ls:
            levels[n] = max(ls)
    for v in c.vertices:
        if v.name not in levels:
            if isinstance(v, Input):
                raise ValueError(f"graph {c.name!r}: input {v.name!r} does not feed the output {c.output!r}; "
                                 "connect it or remove it")
            raise ValueError(f"graph {c.name!r}: vertex {v.name!r} does not reach the output {c.output!r} "
                             "(its error would never be driven); connect it to the output or remove it")
    object.__setattr__(c, "levels", levels)


def _collect_params(c, by_name):
    uses: dict[str, list] = {}
    for v in c.vertices:  # declaration order: level() keeps it, so parameter layouts agree
        n = v.name
        size = math.prod(c.shapes[n])
        if isinstance(v, Dense):
            for p, w in zip(v.parents, v.weights):
                if w is not None:
                    uses.setdefault(w, []).append(ParamUse(n, "weight", (size, math.prod(c.shapes[p]))))
            if v.bias is not None:
                uses.setdefault(v.bias, []).append(ParamUse(n, "bias", (size,)))
        elif isinstance(v, Conv2d):
            cin = c.shapes[v.parent][0]
            uses.setdefault(v.weight, []).append(ParamUse(n, "kernel", (v.channels, cin) + v.kernel))
            if v.bias is not None:
                uses.setdefault(v.bias, []).append(ParamUse(n, "bias", (v.channels,)))
    shapes = {}
    for name, us in uses.items():
        u0 = us[0]
        for u in us[1:]:
            if u.shape != u0.shape or (u.role == "bias") != (u0.role == "bias"):
                raise ValueError(f"graph {c.name!r}: parameter {name!r} is used as a {u0.role} of shape "
                                 f"{u0.shape} by vertex {u0.vertex!r} but as a {u.role} of shape {u.shape} by "
                                 f"vertex {u.vertex!r}; shared parameters need equal shapes (or use distinct "
                                 "names)")
        shapes[name] = u0.shape
    seen = set()
    for p in c.params:
        if not isinstance(p, Param):
            raise ValueError(f"graph {c.name!r}: params must be Param objects, got {p!r}")
        if p.name not in shapes:
            raise ValueError(f"graph {c.name!r}: Param {p.name!r} is not used by any vertex; parameters: "
                             f"{sorted(shapes)}")
        if p.name in seen:
            raise ValueError(f"graph {c.name!r}: Param {p.name!r} is given twice")
        seen.add(p.name)
    object.__setattr__(c, "param_shapes", shapes)
    object.__setattr__(c, "param_uses", {k: tuple(v) for k, v in uses.items()})


def _find_cycle(by_name, left):
    start = sorted(left)[0]
    path, seen = [start], {start: 0}
    node = start
    while True:  # every vertex left has a parent left (otherwise Kahn's algorithm would have taken it)
        node = next(p for p in by_name[node].parents if p in left)
        if node in seen:
            cyc = path[seen[node]:] + [node]
            return list(reversed(cyc))
        seen[node] = len(path)
        path.append(node)


def describe_vertices(c) -> str:
    """A table of the vertices: type, shape, parents, level, parameters."""
    from ..circuit import plasticity_summary
    lines = [f"Graph {c.name!r}: {len(c.vertices)} vertices, output {c.output!r}, depth {c.depth} (the level of the "
             "deepest vertex with parameters: FPA with eta = 1 is exact after that many steps; levels count edges to "
             "the output)"]
    by = {v.name: v for v in c.vertices}
    for n in c.order:
        v = by[n]
        params, parents = [], list(v.parents)
        if isinstance(v, Dense):
            params = [w for w in v.weights if w is not None] + ([v.bias] if v.bias else [])
            parents = [p if w is None else f"{f}({p})" if f != "linear" else p
                       for p, w, f in zip(v.parents, v.weights, v.phi)]
        elif isinstance(v, Conv2d):
            params = [v.weight] + ([v.bias] if v.bias else [])
            parents = [f"{v.phi}({v.parent})" if v.phi != "linear" else v.parent]
        prec = getattr(v, "precision", None)
        extra = []
        if isinstance(prec, tuple):
            extra.append(f"precision per unit {min(prec):g}..{max(prec):g}")
        elif prec is not None and prec != 1.0:
            extra.append(f"precision {prec:g}")
        for attr in ("tau_x", "tau_eps"):
            val = getattr(v, attr, None)
            if val is not None and val != (1.0 if attr == "tau_x" else 0.0):
                extra.append(f"{attr} {val:g}")
        lines.append(f"  {n:<20s} {type(v).__name__:<8s} {str(c.shapes[n]):<14s} level {c.levels[n]:<3d} "
                     f"<- {', '.join(parents) or '-'}" + (f"  [{', '.join(params)}]" if params else "")
                     + (f"  {', '.join(extra)}" if extra else ""))
    for name in c.param_shapes:
        st = c.param_settings(name)
        plast = c.plasticity if st.plasticity == "default" else st.plasticity
        lines.append(f"  param {name:<14s} {str(c.param_shapes[name]):<14s} {plasticity_summary(plast)}")
    return "\n".join(lines)


def _with_parents(v, mapping: dict):
    """A copy of vertex ``v`` with parent names replaced through ``mapping`` (per parent position)."""
    if isinstance(v, (Dense, Sum, Product)):
        return replace(v, parents=tuple(mapping.get(k, p) for k, p in enumerate(v.parents)))
    return replace(v, parent=mapping.get(0, v.parent))


def level(graph: Circuit) -> Circuit:
    r"""Insert identity vertices so that every edge from a non-input vertex spans exactly one level.

    An edge :math:`j \to i` with :math:`s = \mathrm{level}(j) - \mathrm{level}(i) > 1` is replaced by a chain
    :math:`j \to \iota_1 \to \dots \to \iota_{s-1} \to i` of :class:`Identity` vertices named
    ``"<i>.lvl.<j>.<k>"`` (one chain per (parent, child) pair, reused by repeated edges).  The function
    computed by the network, its parameters and their initialisation are unchanged; the levelled graph is
    what Z-IL needs (Salvatori et al. 2022).  A levelled graph is returned unchanged.
    """
    if not isinstance(graph, Circuit):
        raise TypeError(f"level() needs a neurosim Circuit, got {type(graph).__name__}")
    if not graph.vertices:
        raise TypeError(f"level(): circuit {graph.name!r} is stated as populations; level its vertex form, "
                        "level(circuit.as_graph())")
    bad = graph.unlevelled_edges()
    if not bad:
        return graph
    names = {v.name for v in graph.vertices}
    new_vertices = []
    chains = {}
    for p, c, span in bad:
        prev = p
        for k in range(1, span):
            nm = f"{c}.lvl.{p}.{k}"
            while nm in names:
                nm = nm + "_"
            names.add(nm)
            new_vertices.append(Identity(nm, prev))
            prev = nm
        chains[(p, c)] = prev
    out = []
    for v in graph.vertices:
        mapping = {k: chains[(p, v.name)] for k, p in enumerate(v.parents) if (p, v.name) in chains}
        out.append(_with_parents(v, mapping) if mapping else v)
    lev = Graph(tuple(new_vertices) + tuple(out), graph.output, params=graph.params, plasticity=graph.plasticity,
                name=graph.name, probes=graph.probes)
    if not lev.is_levelled:  # cannot happen: every inserted vertex spans one level
        raise RuntimeError(f"level(): graph {graph.name!r} still has unlevelled edges {lev.unlevelled_edges()}")
    return lev
