r"""Lowering a :class:`~neurosim.graph.declare.Graph` to flat arrays: :func:`lower_graph` -> :class:`GraphPlan`.

Everything random (parameter initialisation) is sampled here, once, so that the NumPy reference and the
numba kernels start from identical numbers.

Layout
------
* Vertices are stored in topological order (index ``i``); vertex ``i`` owns units
  ``v_off[i] : v_off[i] + v_size[i]`` of the flat unit axis (``n_units`` in all), laid out C-order from its
  shape ``(C, H, W)`` (a flat vertex is ``(n, 1, 1)``).
* Every vertex function is an *op* (:data:`OP_INPUT`, :data:`OP_AFFINE`, :data:`OP_PRODUCT`,
  :data:`OP_ACT`, :data:`OP_MAXPOOL`, :data:`OP_AVGPOOL`) over a contiguous range ``e0:e1`` of *edges*.
  An affine op sums its edges, each of kind :data:`E_DENSE` (``a W phi(x)``), :data:`E_CONV`
  (``a K * phi(x)``) or :data:`E_SCALE` (``c x``: :class:`Sum` and :class:`Identity`), plus a bias (per unit or
  per channel).  Other ops have :data:`E_PLAIN` edges (just the parent).
* All parameters live in one flat vector ``theta``: parameter ``k`` (shape ``p_shapes[k]``) at
  ``p_off[k] : p_off[k] + p_size[k]``; shared parameters appear once.

Integer tables (``int64``) and float tables (``float64``) with the column indices below are what the numba
kernels read (:mod:`neurosim.graph.kernels`); the NumPy reference reads the same tables.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import numpy as np

from .. import activations
from ..circuit import Circuit, Init
from ..plan import OPT_ADAM, OPT_SGD, Layout, _no_memory_zeros, index_of, sample_init
from .declare import Act, Conv2d, Dense, Graph, Identity, Input, Pool, Product, Sum

__all__ = ["GraphPlan", "lower_graph", "OP_INPUT", "OP_AFFINE", "OP_PRODUCT", "OP_ACT", "OP_MAXPOOL",
           "OP_AVGPOOL", "E_DENSE", "E_CONV", "E_SCALE", "E_PLAIN", "ROLE_INPUT", "ROLE_FREE", "ROLE_TARGET"]

OP_INPUT, OP_AFFINE, OP_PRODUCT, OP_ACT, OP_MAXPOOL, OP_AVGPOOL = range(6)
OP_NAMES = ("input", "affine", "product", "act", "maxpool", "avgpool")
E_DENSE, E_CONV, E_SCALE, E_PLAIN = range(4)
ROLE_INPUT, ROLE_FREE, ROLE_TARGET = 0, 1, 2
BIAS_NONE, BIAS_UNIT, BIAS_CHANNEL = 0, 1, 2

# vertex table columns
(V_OP, V_OFF, V_SIZE, V_C, V_H, V_W, V_ROLE, V_PHI, V_PK, V_PS, V_BIAS, V_BKIND, V_E0, V_E1, V_LEVEL,
 V_INOFF) = range(16)
N_VI = 16
VF_PREC, VF_TAU, VF_TAU_EPS = 0, 1, 2
N_VF = 3
# edge table columns
EI_SRC, EI_KIND, EI_PARAM, EI_PHI, EI_KH, EI_KW, EI_STRIDE, EI_PAD = range(8)
N_EI = 8
# parameter table columns
P_OFF, P_SIZE, P_PLASTIC, P_MEAN, P_OPT = range(5)
N_PI = 5
PF_LR, PF_MOM, PF_WD, PF_B1, PF_B2, PF_EPS = range(6)
N_PF = 6


def _phi_code(name: str) -> int:
    return activations.get(name).code


def _sample(init: Init, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """Sample a parameter: dense ``(n_out, n_in)``, kernel ``(C_out, C_in, kh, kw)`` or bias ``(n,)``.

    Kernels use the fans of deep-learning libraries: fan_in = C_in kh kw, fan_out = C_out kh kw.
    """
    if len(shape) == 4:
        co, ci, kh, kw = shape
        fan_in, fan_out = ci * kh * kw, co * kh * kw
        if init.kind == "xavier_normal":
            return rng.normal(0.0, init.gain * math.sqrt(2.0 / (fan_in + fan_out)), size=shape)
        if init.kind == "xavier_uniform":
            a = init.gain * math.sqrt(6.0 / (fan_in + fan_out))
            return rng.uniform(-a, a, size=shape)
        return sample_init(init, (co, ci * kh * kw), rng).reshape(shape)
    return sample_init(init, shape, rng)


@dataclass
class GraphPlan(Layout):
    """Flat arrays of a lowered graph (see the module docstring for the layout).

    Attributes
    ----------
    graph : Graph
    seed : int
    v_names : list of str
        Vertex names in topological order.
    v_shapes : list of tuple
    VI : ndarray (n_vertices, 16) int64 ; VF : ndarray (n_vertices, 3) float64 (precision, tau_x, tau_eps; the
        precision column holds the largest of a vertex's per-unit precisions)
    UP : ndarray (n_units,) float64
        Precision of every unit (0 for the inputs): what the engines read.
    EI : ndarray (n_edges, 8) int64 ; EF : ndarray (n_edges,) float64 (multiplier / coefficient)
    PI : ndarray (n_params, 5) int64 ; PF : ndarray (n_params, 6) float64 (lr, momentum, weight decay,
        beta1, beta2, eps)
    p_names, p_shapes : list
    theta0 : ndarray (n_theta,)
        Initial parameters.
    target : int
        Index of the output vertex.
    inputs : ndarray of int
        Input vertex indices (declaration order); ``VI[i, V_INOFF]`` is the first column of ``X`` it reads.
    levels : ndarray of int
        Longest path to the output.
    depth : int
        :attr:`Graph.depth`.
    """

    graph: Graph
    seed: int
    v_names: list
    v_shapes: list
    VI: np.ndarray
    VF: np.ndarray
    EI: np.ndarray
    EF: np.ndarray
    PI: np.ndarray
    PF: np.ndarray
    p_names: list
    p_shapes: list
    theta0: np.ndarray
    target: int
    inputs: np.ndarray
    levels: np.ndarray
    depth: int
    UP: np.ndarray = None
    extras: dict = field(default_factory=dict)

    n_vertices = Layout.n_pops   # n_units, n_input: Layout's, from the layered names (LAYERED_NAMES)
    n_params = Layout.n_proj

    @property
    def n_theta(self) -> int:
        return int(self.theta0.size)

    @property
    def n_output(self) -> int:
        return int(self.VI[self.target, V_SIZE])

    @property
    def max_size(self) -> int:
        return int(self.VI[:, V_SIZE].max())

    def vertex_index(self, name: str) -> int:
        return index_of(self.v_names, name, f"graph {self.graph.name!r} has no vertex {name!r}; vertices")

    def param_index(self, name: str) -> int:
        return index_of(self.p_names, name, f"graph {self.graph.name!r} has no parameter {name!r}; parameters")

    pop_index = vertex_index     # the layered Plan's names (see LAYERED_NAMES)
    proj_index = param_index

    def units(self, i) -> slice:
        """Columns of vertex ``i`` (index or name) on the flat unit axis."""
        if isinstance(i, str):
            i = self.vertex_index(i)
        return slice(int(self.VI[i, V_OFF]), int(self.VI[i, V_OFF] + self.VI[i, V_SIZE]))

    # ---- the names the Simulator reads from a layered :class:`neurosim.plan.Plan`, for a graph (aliases in
    # LAYERED_NAMES below, and these)
    @property
    def pop_size(self) -> np.ndarray:
        return self.VI[:, V_SIZE]

    @property
    def b(self) -> np.ndarray:
        return np.zeros(0)

    @property
    def precision(self) -> np.ndarray:
        """Precision of every unit (inputs: 0), a copy of :attr:`UP`."""
        return self.UP.copy()

    def param_view(self, theta: np.ndarray, k: int) -> np.ndarray:
        """View of parameter ``k`` in a flat vector laid out like ``theta0``, with its shape."""
        o, n = int(self.PI[k, P_OFF]), int(self.PI[k, P_SIZE])
        return theta[o:o + n].reshape(self.p_shapes[k])

    def vertex_params(self, i: int) -> list:
        """Parameter indices used by vertex ``i`` (edges first, then the bias)."""
        out = [int(self.EI[e, EI_PARAM]) for e in range(self.VI[i, V_E0], self.VI[i, V_E1])
               if self.EI[e, EI_PARAM] >= 0]
        if self.VI[i, V_BIAS] >= 0:
            out.append(int(self.VI[i, V_BIAS]))
        return out

    def same_params(self, other: "GraphPlan") -> bool:
        """Whether ``other`` lays out the same parameters identically (so both can share one ``theta``)."""
        return (self.p_names == other.p_names and self.p_shapes == other.p_shapes
                and np.array_equal(self.PI, other.PI) and np.array_equal(self.PF, other.PF))


#: the names the Simulator reads from a layered :class:`neurosim.plan.Plan` -> what they are for a graph (read-only
#: properties of GraphPlan): populations are vertices, "projections" are parameters (weights and biases alike),
#: W is the flat parameter vector theta
LAYERED_NAMES = {"pop_names": "v_names", "input_pops": "inputs", "target_pop": "target", "n_target": "n_output",
                 "proj_names": "p_names", "W": "theta0"}
for _layered, _graph in LAYERED_NAMES.items():
    setattr(GraphPlan, _layered, property(operator.attrgetter(_graph)))
del _layered, _graph


def lower_graph(graph: Graph, seed: int = 0, *, sample: bool = True) -> GraphPlan:
    """Lay out ``graph`` as flat tables and sample its parameters.

    Parameter ``k`` (in order of first use, declaration order) is drawn from
    ``numpy.random.default_rng([seed, k])``, so a graph and its levelled version (:func:`level`, same
    parameters) get identical initial parameters.  ``sample=False`` lays out the tables only (for counting):
    ``theta0`` is then a read-only view of zeros of the right length that takes no memory.
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"lower_graph() needs a circuit stated as vertices (neurosim.graph.Graph), got "
                        f"{type(graph).__name__}" + (" stated as populations: use neurosim.lower(circuit), or "
                                                     "lower_graph(circuit.as_graph())"
                                                     if isinstance(graph, Circuit) else ""))
    seed = int(seed)
    order = list(graph.order)
    index = {n: i for i, n in enumerate(order)}
    by_name = {v.name: v for v in graph.vertices}
    p_names = list(graph.param_shapes)
    p_index = {n: k for k, n in enumerate(p_names)}
    p_shapes = [tuple(graph.param_shapes[n]) for n in p_names]

    # ---- parameters
    PI = np.zeros((len(p_names), N_PI), dtype=np.int64)
    PF = np.zeros((len(p_names), N_PF), dtype=np.float64)
    chunks = []
    off = 0
    for k, name in enumerate(p_names):
        shape = p_shapes[k]
        size = math.prod(shape)
        settings = graph.param_settings(name)
        is_bias = graph.param_uses[name][0].role == "bias"
        init = settings.init if settings.init is not None else (Init("zeros") if is_bias else Init())
        if sample:
            chunks.append(_sample(init, shape, np.random.default_rng([seed, k])).ravel())
        plast = graph.plasticity if settings.plasticity == "default" else settings.plasticity
        PI[k, P_OFF], PI[k, P_SIZE] = off, size
        if plast is not None:
            o = plast.optimizer
            PI[k, P_PLASTIC] = 1
            PI[k, P_MEAN] = 1 if plast.batch_reduction == "mean" else 0
            PI[k, P_OPT] = OPT_ADAM if o.kind == "adam" else OPT_SGD
            PF[k] = (plast.lr, o.momentum, o.weight_decay, o.beta1, o.beta2, o.eps)
        else:
            PI[k, P_MEAN] = 1
        off += size
    theta0 = (np.concatenate(chunks) if chunks else np.zeros(0)) if sample else _no_memory_zeros((off,))

    # ---- vertices and edges
    nv = len(order)
    VI = np.zeros((nv, N_VI), dtype=np.int64)
    VF = np.ones((nv, N_VF), dtype=np.float64)
    VF[:, VF_TAU_EPS] = 0.0
    UP = np.zeros(sum(math.prod(graph.shapes[n]) for n in order), dtype=np.float64)   # per-unit precision
    edges_i, edges_f = [], []
    uoff = 0
    in_cols, c = {}, 0
    for n in graph.inputs:  # inputs read the columns of X in declaration order
        in_cols[n] = c
        c += graph.size(n)
    for i, n in enumerate(order):
        v = by_name[n]
        shape = graph.shapes[n]
        s3 = (shape[0], 1, 1) if len(shape) == 1 else shape
        size = math.prod(shape)
        VI[i, V_OFF], VI[i, V_SIZE] = uoff, size
        VI[i, V_C], VI[i, V_H], VI[i, V_W] = s3
        VI[i, V_LEVEL] = graph.levels[n]
        VI[i, V_BIAS] = -1
        VI[i, V_INOFF] = -1
        uoff += size
        VI[i, V_E0] = len(edges_i)
        if isinstance(v, Input):
            VI[i, V_OP], VI[i, V_ROLE] = OP_INPUT, ROLE_INPUT
            VI[i, V_INOFF] = in_cols[n]
            VI[i, V_E1] = len(edges_i)
            continue
        VI[i, V_ROLE] = ROLE_TARGET if n == graph.output else ROLE_FREE
        prec = np.asarray(v.precision, dtype=np.float64)
        UP[uoff - size:uoff] = prec
        VF[i] = (prec.max(), v.tau_x, v.tau_eps)

        def edge(src, kind, param=-1, phi=0, kh=0, kw=0, stride=1, pad=0, coef=1.0):
            edges_i.append((index[src], kind, param, phi, kh, kw, stride, pad))
            edges_f.append(coef)

        if isinstance(v, Dense):
            VI[i, V_OP] = OP_AFFINE
            for p, w, ph, a in zip(v.parents, v.weights, v.phi, v.multiplier):
                if w is None:   # identity edge (skip connection)
                    edge(p, E_SCALE, coef=a)
                else:
                    edge(p, E_DENSE, p_index[w], _phi_code(ph), coef=a)
            if v.bias is not None:
                VI[i, V_BIAS], VI[i, V_BKIND] = p_index[v.bias], BIAS_UNIT
        elif isinstance(v, Conv2d):
            VI[i, V_OP] = OP_AFFINE
            edge(v.parent, E_CONV, p_index[v.weight], _phi_code(v.phi), v.kernel[0], v.kernel[1], v.stride,
                 v.padding, coef=float(v.multiplier))
            if v.bias is not None:
                VI[i, V_BIAS], VI[i, V_BKIND] = p_index[v.bias], BIAS_CHANNEL
        elif isinstance(v, Sum):
            VI[i, V_OP] = OP_AFFINE
            for p, c in zip(v.parents, v.coefficients):
                edge(p, E_SCALE, coef=c)
        elif isinstance(v, Identity):
            VI[i, V_OP] = OP_AFFINE
            edge(v.parent, E_SCALE, coef=1.0)
        elif isinstance(v, Product):
            VI[i, V_OP] = OP_PRODUCT
            for p in v.parents:
                edge(p, E_PLAIN)
        elif isinstance(v, Act):
            VI[i, V_OP], VI[i, V_PHI] = OP_ACT, _phi_code(v.phi)
            edge(v.parent, E_PLAIN)
        elif isinstance(v, Pool):
            VI[i, V_OP] = OP_MAXPOOL if v.kind == "max" else OP_AVGPOOL
            VI[i, V_PK], VI[i, V_PS] = v.size, v.stride
            edge(v.parent, E_PLAIN)
        else:  # pragma: no cover - Graph validates the vertex types
            raise TypeError(f"unknown vertex type {type(v).__name__}")
        VI[i, V_E1] = len(edges_i)
    EI = np.array(edges_i, dtype=np.int64).reshape(-1, N_EI)
    EF = np.array(edges_f, dtype=np.float64)
    inputs = np.array([index[n] for n in graph.inputs], dtype=np.int64)
    levels = VI[:, V_LEVEL].copy()
    return GraphPlan(graph=graph, seed=seed, v_names=order, v_shapes=[tuple(graph.shapes[n]) for n in order],
                     VI=VI, VF=VF, EI=EI, EF=EF, PI=PI, PF=PF, p_names=p_names, p_shapes=p_shapes, theta0=theta0,
                     target=index[graph.output], inputs=inputs, levels=levels, depth=graph.depth, UP=UP)
