"""Lowering: ``lower(circuit, seed)`` samples every random quantity once and lays out flat arrays.

The :class:`Plan` is the one intermediate representation that every backend runs, so backends start
from identical numbers and can be compared to rounding error.

Layout
------
* Value populations are stored in topological order; population ``p`` owns units
  ``pop_off[p] : pop_off[p] + pop_size[p]`` of the flat unit axis (``n_units`` in all).
* Projections are sorted by the topological position of their ``post`` population (then declaration
  order); the incoming projections of population ``p`` are ``in_start[p] : in_end[p]``.
* All weight matrices live in one flat vector ``W`` (projection ``k``'s ``(n_post, n_pre)`` matrix at
  ``w_off[k]``, C order), all biases in ``b`` (at ``b_off[k]``; -1 means none).
* A sparse projection (``Projection(connectivity=...)``, :mod:`neurosim.connectivity`) stores only its ``nnz``
  synapses, at ``w_off[k]`` in CSR order (post unit by post unit, pre units ascending). Its indices are one block
  of the flat int64 vector ``S`` at ``s_off[k]`` (-1: dense), five arrays back to back:
  ``indptr`` (n_post + 1), ``indices`` (nnz; pre unit of each synapse), ``colptr`` (n_pre + 1), ``rows`` (nnz;
  post unit of each synapse in CSC order, i.e. pre unit by pre unit) and ``perm`` (nnz; the CSR position of each
  CSC synapse). :meth:`Plan.sparse_csr` and :meth:`Plan.sparse_csc` return them; ``weight_size(k)`` is the
  number of stored weights of projection ``k``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import activations
from .circuit import Circuit, Init

__all__ = ["Plan", "lower", "sample_init"]

ROLE_INPUT, ROLE_FREE, ROLE_TARGET = 0, 1, 2
OPT_SGD, OPT_ADAM = 0, 1


def index_of(names: list, name: str, missing: str) -> int:
    """Position of ``name`` in ``names``; otherwise a KeyError ``"<missing>: <names>"`` (``missing`` names what
    was looked for and where, e.g. ``"no projection 'W9'; known"``)."""
    try:
        return names.index(name)
    except ValueError:
        raise KeyError(f"{missing}: {names}") from None


def sample_init(init: Init, shape: tuple, rng: np.random.Generator, fans: tuple | None = None) -> np.ndarray:
    """Sample an initial array of ``shape`` (``(n_post, n_pre)`` for weights, ``(n,)`` for biases).

    ``fans`` = ``(fan_in, fan_out)`` replaces the fans taken from ``shape`` (a sparse projection draws its
    ``(nnz,)`` synapses with ``fan_in = nnz / n_post`` and ``fan_out = nnz / n_pre``)."""
    if fans is not None:
        fan_in, fan_out = fans
    elif len(shape) == 2:
        fan_out, fan_in = shape
    else:
        fan_in = fan_out = shape[0]
    k = init.kind
    if k == "zeros":
        return np.zeros(shape)
    if k == "constant":
        return np.full(shape, float(init.value))
    if k == "normal":
        return rng.normal(0.0, init.std, size=shape)
    if k == "uniform":
        return rng.uniform(init.low, init.high, size=shape)
    if k == "xavier_normal":
        return rng.normal(0.0, init.gain * np.sqrt(2.0 / (fan_in + fan_out)), size=shape)
    if k == "xavier_uniform":
        a = init.gain * np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-a, a, size=shape)
    if k == "orthogonal":
        if len(shape) != 2:
            return rng.normal(0.0, init.gain, size=shape)
        n, m = shape
        a = rng.normal(size=(max(n, m), min(n, m)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        q = q if n >= m else q.T
        return init.gain * q[:n, :m]
    raise ValueError(f"unknown init kind {k!r}")  # unreachable: Init validates


class Layout:
    """The counts every lowered circuit derives from its layout, layered (:class:`Plan`) or graph
    (:class:`~neurosim.graph.plan.GraphPlan`): from ``pop_names``, ``pop_size`` (units per population),
    ``proj_names`` and ``input_pops``."""

    @property
    def n_pops(self) -> int:
        return len(self.pop_names)

    @property
    def n_units(self) -> int:
        return int(self.pop_size.sum())

    @property
    def n_proj(self) -> int:
        return len(self.proj_names)

    @property
    def n_input(self) -> int:
        return int(sum(self.pop_size[p] for p in self.input_pops))


@dataclass
class Plan(Layout):
    """Flat arrays describing a lowered circuit (see module docstring for the layout)."""

    circuit: Circuit
    seed: int
    pop_names: list
    pop_size: np.ndarray
    pop_off: np.ndarray
    pop_phi: np.ndarray
    pop_phi_param: np.ndarray
    pop_tau_x: np.ndarray
    pop_role: np.ndarray
    pop_has_err: np.ndarray
    pop_tau_eps: np.ndarray
    precision: np.ndarray
    in_start: np.ndarray
    in_end: np.ndarray
    input_pops: np.ndarray
    input_off: np.ndarray
    target_pop: int
    proj_names: list
    proj_pre: np.ndarray
    proj_post: np.ndarray
    w_off: np.ndarray
    b_off: np.ndarray
    proj_mult: np.ndarray
    proj_skip: np.ndarray
    proj_plastic: np.ndarray
    proj_learn_bias: np.ndarray
    proj_lr: np.ndarray
    proj_mean: np.ndarray
    opt_kind: np.ndarray
    opt_param: np.ndarray  # (n_proj, 5): momentum, weight_decay, beta1, beta2, eps
    W: np.ndarray
    b: np.ndarray
    extras: dict = field(default_factory=dict)
    #: per projection: offset of its index block in ``S`` (-1: dense); see the module docstring
    s_off: np.ndarray | None = None
    #: the index blocks of the sparse projections (int64)
    S: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def n_target(self) -> int:
        return int(self.pop_size[self.target_pop]) if self.target_pop >= 0 else 0

    def pop_index(self, name: str) -> int:
        return index_of(self.pop_names, name, f"no value population {name!r}; known")

    def proj_index(self, name: str) -> int:
        return index_of(self.proj_names, name, f"no projection {name!r}; known")

    def units(self, name: str) -> slice:
        p = self.pop_index(name)
        return slice(int(self.pop_off[p]), int(self.pop_off[p] + self.pop_size[p]))

    def weight_shape(self, k: int) -> tuple:
        """The logical ``(n_post, n_pre)`` shape of projection ``k``'s weights (dense or sparse)."""
        return (int(self.pop_size[self.proj_post[k]]), int(self.pop_size[self.proj_pre[k]]))

    # -- sparse projections
    def is_sparse(self, k: int) -> bool:
        """Whether projection ``k`` is sparse (its weights are ``weight_size(k)`` synapses in CSR order)."""
        return self.s_off is not None and int(self.s_off[k]) >= 0

    @property
    def sparse_projections(self) -> list:
        """Names of the sparse projections (empty for a dense circuit)."""
        return [n for k, n in enumerate(self.proj_names) if self.is_sparse(k)]

    def weight_size(self, k: int) -> int:
        """Number of stored weights of projection ``k``: ``n_post * n_pre`` (dense), its synapses (sparse), 0
        without weights."""
        if self.w_off[k] < 0:
            return 0
        n_post, n_pre = self.weight_shape(k)
        if self.is_sparse(k):
            o = int(self.s_off[k])
            return int(self.S[o + n_post])
        return n_post * n_pre

    def sparse_csr(self, k: int) -> tuple:
        """``(indptr, indices)`` of sparse projection ``k`` (views of ``S``)."""
        n_post, _ = self.weight_shape(k)
        o = int(self.s_off[k])
        nnz = int(self.S[o + n_post])
        return self.S[o:o + n_post + 1], self.S[o + n_post + 1:o + n_post + 1 + nnz]

    def sparse_csc(self, k: int) -> tuple:
        """``(colptr, rows, perm)`` of sparse projection ``k`` (views of ``S``): the synapses of pre unit ``j`` are
        ``colptr[j]:colptr[j+1]``, with post units ``rows`` and CSR positions ``perm`` (weight ``W[w_off + perm]``)."""
        n_post, n_pre = self.weight_shape(k)
        o = int(self.s_off[k])
        nnz = int(self.S[o + n_post])
        c = o + n_post + 1 + nnz
        return self.S[c:c + n_pre + 1], self.S[c + n_pre + 1:c + n_pre + 1 + nnz], \
            self.S[c + n_pre + 1 + nnz:c + n_pre + 1 + 2 * nnz]


def _no_memory_zeros(shape: tuple) -> np.ndarray:
    """A read-only float64 array of zeros of ``shape`` that takes no memory (one element broadcast): the stand-in
    for weights a shape-only lowering (``sample=False``) does not draw."""
    return np.broadcast_to(np.zeros(1), shape)


def lower(circuit: Circuit, seed: int = 0, *, sample: bool = True) -> Plan:
    """Sample all initial weights of ``circuit`` with ``seed`` and lay out the flat arrays of a Plan.

    A graph circuit (:class:`neurosim.graph.Graph`: convolutions, pooling, products, gates) lowers to a
    :class:`~neurosim.graph.GraphPlan` (:func:`neurosim.graph.lower_graph`), which answers the same questions
    (``pop_names``, ``units``, ``proj_names``, ``target_pop``, ...), so one call lowers every circuit kind.

    ``sample=False`` lays out the shapes only (for counting, e.g. :func:`neurosim.hardware.map_circuit`): no
    weight is drawn and ``W`` / ``b`` are read-only views of zeros of the right length that take no memory, so
    a circuit with a 100,000 x 100,000 projection lowers in milliseconds.  Such a plan cannot be simulated."""
    if not isinstance(circuit, Circuit):
        raise TypeError(f"lower() needs a neurosim Circuit, got {type(circuit).__name__}")
    if circuit.is_graph:
        from .graph.plan import lower_graph
        return lower_graph(circuit, seed, sample=sample)
    rng = np.random.default_rng(seed)
    order = circuit.topological_order()
    pos = {n: i for i, n in enumerate(order)}
    pops = [circuit.population(n) for n in order]
    size = np.array([p.size for p in pops], dtype=np.int64)
    off = np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64)
    clamp = {c.population: c.kind for c in circuit.clamps}
    role = np.array([ROLE_INPUT if clamp.get(n) == "input" else ROLE_TARGET if clamp.get(n) == "target"
                     else ROLE_FREE for n in order], dtype=np.int64)
    has_err = np.zeros(len(pops), dtype=np.int64)
    tau_eps = np.zeros(len(pops))
    prec = np.ones(int(size.sum()))
    for i, n in enumerate(order):
        e = circuit.error_of(n)
        if e is not None:
            has_err[i] = 1
            tau_eps[i] = e.tau_eps
            prec[off[i]:off[i] + size[i]] = e.precision_vector(int(size[i]))

    # weights are sampled in declaration order so adding a probe or reordering never changes them
    sampled = {}
    patterns = {}
    for pr in circuit.projections:
        n_post, n_pre = circuit.population(pr.post).size, circuit.population(pr.pre).size
        if pr.connectivity is not None:
            from .connectivity import pattern_of
            patterns[pr.name] = pattern_of(pr.connectivity, n_post, n_pre, pr.name)
            nnz = patterns[pr.name][1].size
            Wk = (sample_init(pr.init, (nnz,), rng, fans=(nnz / n_post, nnz / n_pre)) if sample
                  else _no_memory_zeros((nnz,)))
        elif pr.weights:
            Wk = sample_init(pr.init, (n_post, n_pre), rng) if sample else _no_memory_zeros((n_post, n_pre))
        else:
            Wk = None
        if pr.bias:
            bk = sample_init(pr.bias_init, (n_post,), rng) if sample else _no_memory_zeros((n_post,))
        else:
            bk = None
        sampled[pr.name] = (Wk, bk)

    projs = sorted(circuit.projections, key=lambda pr: (pos[pr.post], circuit.projections.index(pr)))
    n_proj = len(projs)
    w_off = np.full(n_proj, -1, dtype=np.int64)
    b_off = np.full(n_proj, -1, dtype=np.int64)
    Ws, bs, wpos, bpos = [], [], 0, 0
    for k, pr in enumerate(projs):
        Wk, bk = sampled[pr.name]
        if Wk is not None:
            w_off[k] = wpos
            if sample:
                Ws.append(Wk.ravel())
            wpos += Wk.size
        if bk is not None:
            b_off[k] = bpos
            bs.append(bk)
            bpos += bk.size
    s_off = np.full(n_proj, -1, dtype=np.int64)
    Ss, spos = [], 0
    for k, pr in enumerate(projs):
        if pr.name in patterns:
            indptr, indices = patterns[pr.name]
            n_pre = circuit.population(pr.pre).size
            corder = np.argsort(indices, kind="stable")    # CSC: pre unit by pre unit, post ascending within
            rows = np.repeat(np.arange(indptr.size - 1, dtype=np.int64), np.diff(indptr))[corder]
            colptr = np.concatenate([[0], np.cumsum(np.bincount(indices, minlength=n_pre))]).astype(np.int64)
            block = np.concatenate([indptr, indices, colptr, rows, corder.astype(np.int64)])
            s_off[k] = spos
            Ss.append(block)
            spos += block.size
    in_start = np.zeros(len(pops), dtype=np.int64)
    in_end = np.zeros(len(pops), dtype=np.int64)
    posts = [pos[pr.post] for pr in projs]
    for i in range(len(pops)):
        idx = [k for k, p in enumerate(posts) if p == i]
        in_start[i] = idx[0] if idx else 0
        in_end[i] = idx[-1] + 1 if idx else 0

    def plast(pr, attr, default):
        return getattr(pr.plasticity, attr) if pr.plasticity is not None else default

    opt_param = np.zeros((n_proj, 5))
    opt_kind = np.zeros(n_proj, dtype=np.int64)
    for k, pr in enumerate(projs):
        if pr.plasticity is not None:
            o = pr.plasticity.optimizer
            opt_kind[k] = OPT_ADAM if o.kind == "adam" else OPT_SGD
            opt_param[k] = (o.momentum, o.weight_decay, o.beta1, o.beta2, o.eps)

    input_pops = np.array([i for i in range(len(pops)) if role[i] == ROLE_INPUT], dtype=np.int64)
    input_off = np.concatenate([[0], np.cumsum(size[input_pops])[:-1]]).astype(np.int64)
    targets = [i for i in range(len(pops)) if role[i] == ROLE_TARGET]
    return Plan(
        circuit=circuit, seed=seed, pop_names=list(order), pop_size=size, pop_off=off,
        pop_phi=np.array([activations.get(p.phi).code for p in pops], dtype=np.int64),
        pop_phi_param=np.array([activations.get(p.phi).param for p in pops]),
        pop_tau_x=np.array([p.tau_x for p in pops], dtype=float), pop_role=role, pop_has_err=has_err,
        pop_tau_eps=tau_eps, precision=prec, in_start=in_start, in_end=in_end,
        input_pops=input_pops, input_off=input_off, target_pop=targets[0] if targets else -1,
        proj_names=[pr.name for pr in projs],
        proj_pre=np.array([pos[pr.pre] for pr in projs], dtype=np.int64),
        proj_post=np.array(posts, dtype=np.int64), w_off=w_off, b_off=b_off,
        proj_mult=np.array([pr.multiplier for pr in projs], dtype=float),
        proj_skip=np.array([int(pr.skip) for pr in projs], dtype=np.int64),
        proj_plastic=np.array([int(pr.plasticity is not None and pr.weights) for pr in projs], dtype=np.int64),
        proj_learn_bias=np.array([int(pr.plasticity is not None and pr.bias and pr.plasticity.learn_bias)
                                  for pr in projs], dtype=np.int64),
        proj_lr=np.array([plast(pr, "lr", 0.0) for pr in projs], dtype=float),
        proj_mean=np.array([int(plast(pr, "batch_reduction", "mean") == "mean") for pr in projs], dtype=np.int64),
        opt_kind=opt_kind, opt_param=opt_param,
        W=(np.concatenate(Ws) if Ws else np.zeros(0)) if sample else _no_memory_zeros((wpos,)),
        b=np.concatenate(bs) if bs else np.zeros(0),
        s_off=s_off, S=np.concatenate(Ss).astype(np.int64) if Ss else np.zeros(0, dtype=np.int64),
    )
