r"""Sparse connectivity of a projection: which pre-synaptic units each post-synaptic unit receives.

A :class:`~neurosim.Projection` is dense by default (every post unit receives every pre unit: a ``(n_post,
n_pre)`` matrix). ``Projection(..., connectivity=...)`` makes it sparse:

* :class:`FixedFanIn` ``(k, seed)`` -- every post unit receives exactly ``k`` distinct pre units drawn uniformly
  at random (from the connectivity's own ``seed``, so the pattern is part of the circuit and does not change
  with the simulator's weight seed);
* :class:`ReceptiveField` ``(width, dims=1)`` -- local connectivity: post unit ``i`` receives the ``width``
  contiguous pre units centred at its proportional position (with ``dims=2``, both populations are square
  grids and it receives a ``width x width`` patch);
* :class:`Pattern` ``(indptr, indices)`` -- an explicit pattern in CSR form (row = post unit); a
  ``scipy.sparse`` matrix (its non-zero positions) or an ``(indptr, indices)`` pair given as ``connectivity``
  becomes one.

The model is unchanged: a sparse projection is the dense one with the weights off the pattern fixed at zero.
Its prediction, feedback and Hebbian update are

.. math::

    \mu_{post,i} \mathrel{+}= a \sum_{j \in \mathrm{in}(i)} W_{ij}\,\phi(x_{pre,j}) + b_i, \qquad
    fb_{pre,j} \mathrel{+}= a \sum_{i:\, j \in \mathrm{in}(i)} W_{ij}\,\varepsilon_{post,i}, \qquad
    \Delta W_{ij} = \mathrm{lr}\, a\, \varepsilon_{post,i}\,\phi(x_{pre,j}) \;\text{ for } j \in \mathrm{in}(i)
    \text{ only}.

Storage (see :mod:`neurosim.plan`): the synapses of a sparse projection are stored in CSR order (post unit by
post unit, pre units ascending within a row) in the plan's flat weight vector ``W``; its indices live in the
plan's index vector ``S``.  Memory grows with the number of synapses, never with ``n_post x n_pre``.

Every connectivity's :meth:`pattern` returns ``(indptr, indices)`` (int64 arrays, rows sorted, no duplicates,
no empty row) or raises a ValueError naming the projection and the fix.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Connectivity", "DensePatternWarning", "FixedFanIn", "ReceptiveField", "Pattern", "as_connectivity"]


class Connectivity:
    """Base class of the sparse connectivities (see the module docstring)."""

    def pattern(self, n_post: int, n_pre: int, name: str = "?") -> tuple[np.ndarray, np.ndarray]:
        """``(indptr, indices)`` of a ``(n_post, n_pre)`` projection named ``name`` (CSR, row = post unit)."""
        raise NotImplementedError  # abstract: each connectivity implements it

    def summary(self) -> str:
        """A short text for :meth:`neurosim.Circuit.describe`."""
        raise NotImplementedError  # abstract: each connectivity implements it


def _int(obj: str, attr: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{obj}: {attr} must be an int >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class FixedFanIn(Connectivity):
    """Every post unit receives exactly ``k`` distinct pre units, drawn uniformly at random with ``seed``.

    The draw: ``np.random.default_rng(seed)`` draws an ``(n_post, k)`` array of pre indices; rows with a
    repeated index are drawn again (from the same generator, in row order) until every row has ``k`` distinct
    indices (when ``k > n_pre / 4``, each row is instead ``rng.choice(n_pre, k, replace=False)``).  Indices are
    sorted within a row.
    """

    k: int
    seed: int = 0

    def __post_init__(self):
        _int("FixedFanIn", "k", self.k, 1)
        _int("FixedFanIn", "seed", self.seed, 0)

    def pattern(self, n_post, n_pre, name="?"):
        k = int(self.k)
        if k > n_pre:
            raise ValueError(f"Projection {name!r}: FixedFanIn(k={k}) needs k <= the {n_pre} units of its pre "
                             f"population; use k < {n_pre}, or drop connectivity= for a dense projection (k = "
                             f"{n_pre} would connect every pre unit)")
        rng = np.random.default_rng(self.seed)
        if 4 * k > n_pre:
            idx = np.stack([np.sort(rng.choice(n_pre, k, replace=False)) for _ in range(n_post)]) if n_post else \
                np.zeros((0, k), dtype=np.int64)
        else:
            idx = np.sort(rng.integers(0, n_pre, size=(n_post, k)), axis=1)
            while True:
                bad = np.flatnonzero((np.diff(idx, axis=1) == 0).any(axis=1))
                if bad.size == 0:
                    break
                idx[bad] = np.sort(rng.integers(0, n_pre, size=(bad.size, k)), axis=1)
        indptr = np.arange(n_post + 1, dtype=np.int64) * k
        return indptr, idx.astype(np.int64).ravel()

    def summary(self):
        return f"sparse FixedFanIn(k={self.k}, seed={self.seed})"


def _window(n_post: int, n_pre: int, width: int) -> np.ndarray:
    """``(n_post,)`` first pre index of each post unit's window: post unit ``i`` sits at the proportional
    position ``c_i = (i + 1/2) n_pre / n_post - 1/2`` of the pre axis; its window is the ``width`` units
    ``start_i .. start_i + width - 1``, centred at ``start_i + (width - 1) / 2``, with

    * odd ``width``: ``start_i = round(c_i) - (width - 1) / 2``: centred on the unit nearest ``c_i``;
    * even ``width``: ``start_i = floor(c_i) - width / 2 + 1``: centred on ``floor(c_i) + 1/2``, the half-integer
      nearest ``c_i``;

    shifted inside ``[0, n_pre)`` at the edges so that every window holds exactly ``width`` units.

    Ties (``c_i`` exactly halfway between two possible centres: a half-integer ``c_i`` for odd widths, an
    integer one for even widths) go toward the middle of the pre axis, ``m = (n_pre - 1) / 2``, so the
    pattern is mirror-symmetric (post unit ``n_post - 1 - i`` sees the mirror image of unit ``i``'s window);
    8 pre -> 4 post, width 3: ``c = 1/2, 5/2, 9/2, 13/2`` -> windows 0-2, 2-4, 3-5, 5-7.  A tie at ``m``
    itself has no symmetric choice and keeps the rule above as computed in floating point (``np.rint`` /
    ``np.floor`` of the float ``c_i``, as before).  Ties are found in exact integer arithmetic
    (``2 c_i n_post = (2i + 1) n_pre - n_post``)."""
    i = np.arange(n_post, dtype=np.int64)
    c = (i + 0.5) * (n_pre / n_post) - 0.5
    num = (2 * i + 1) * n_pre - n_post                 # 2 c_i = num / n_post
    q, r = np.divmod(num, n_post)                      # 2 c_i = q exactly where r == 0
    below_m = num < (n_pre - 1) * n_post               # c_i < m
    above_m = num > (n_pre - 1) * n_post               # c_i > m
    if width % 2:
        start = np.rint(c).astype(np.int64) - (width - 1) // 2
        tie = (r == 0) & (q % 2 == 1)                  # c_i = k + 1/2
        k = (q - 1) // 2
        centre = np.where(below_m, k + 1, k)
        start = np.where(tie & (below_m | above_m), centre - (width - 1) // 2, start)
    else:
        start = np.floor(c).astype(np.int64) - width // 2 + 1
        tie = (r == 0) & (q % 2 == 0)                  # c_i = k, an integer
        k = q // 2
        start = np.where(tie & (below_m | above_m), np.where(above_m, k - width // 2, k - width // 2 + 1), start)
    return np.clip(start, 0, n_pre - width)


@dataclass(frozen=True)
class ReceptiveField(Connectivity):
    """Local connectivity: each post unit receives a contiguous window of ``width`` pre units.

    ``dims=1``: post unit ``i`` is centred at its proportional position on the pre axis,
    ``c_i = (i + 1/2) n_pre / n_post - 1/2``; its window is ``start_i`` and the ``width - 1`` units after it,
    shifted inside the population at the edges (so every post unit has exactly ``width`` synapses).  An odd
    window is centred on the unit nearest ``c_i``: ``start_i = round(c_i) - (width - 1) / 2``.  An even window
    is centred between two units, on the half-integer nearest ``c_i``: ``start_i = floor(c_i) - width / 2 + 1``
    (centre ``floor(c_i) + 1/2``).  A tie (``c_i`` equally near two centres) goes toward the middle of the pre
    axis, so the pattern is mirror-symmetric (8 pre -> 4 post, width 3: windows 0-2, 2-4, 3-5, 5-7; details in
    ``_window``).  So away from the edges every window's centre lies within 1/2 unit of ``c_i``.

    ``dims=2``: both populations are square grids (``n = side^2``, units numbered row-major: unit ``r * side +
    c`` is row ``r``, column ``c``); post unit ``(r, c)`` receives the ``width x width`` patch of pre units
    whose rows and columns are the 1-D windows of ``r`` and ``c`` (same rule per axis): ``width^2`` synapses.
    """

    width: int
    dims: int = 1

    def __post_init__(self):
        _int("ReceptiveField", "width", self.width, 1)
        if self.dims not in (1, 2):
            raise ValueError(f"ReceptiveField: dims must be 1 or 2, got {self.dims!r}")

    def pattern(self, n_post, n_pre, name="?"):
        w = int(self.width)
        if self.dims == 1:
            if w > n_pre:
                raise ValueError(f"Projection {name!r}: ReceptiveField(width={w}) is wider than its pre population "
                                 f"({n_pre} units); use width <= {n_pre}")
            start = _window(n_post, n_pre, w)
            idx = start[:, None] + np.arange(w)[None, :]
            return np.arange(n_post + 1, dtype=np.int64) * w, idx.astype(np.int64).ravel()
        sides = []
        for what, n in (("post", n_post), ("pre", n_pre)):
            side = int(round(np.sqrt(n)))
            if side * side != n:
                raise ValueError(f"Projection {name!r}: ReceptiveField(dims=2) needs square populations, but its "
                                 f"{what} population has {n} units (not a square); use dims=1 or square sizes")
            sides.append(side)
        sp, sq = sides
        if w > sq:
            raise ValueError(f"Projection {name!r}: ReceptiveField(width={w}, dims=2) is wider than its pre grid "
                             f"({sq} x {sq}); use width <= {sq}")
        start = _window(sp, sq, w)                      # per axis
        rows = start[:, None] + np.arange(w)[None, :]   # (sp, w) pre rows (and columns) of each post row/column
        # post (r, c) -> pre (rows[r, u], rows[c, v]) for u, v in 0..w-1, row-major: sorted ascending
        idx = (rows[:, None, :, None] * sq + rows[None, :, None, :]).reshape(sp * sp, w * w)
        return np.arange(n_post + 1, dtype=np.int64) * (w * w), idx.astype(np.int64).ravel()

    def summary(self):
        return f"sparse ReceptiveField(width={self.width}, dims={self.dims})"


@dataclass(frozen=True, eq=False)
class Pattern(Connectivity):
    """An explicit pattern in CSR form: post unit ``i`` receives pre units ``indices[indptr[i]:indptr[i+1]]``.

    Indices within a row are sorted on lowering; a repeated index, an index outside the pre population, an empty
    row or a wrong ``indptr`` length raise a ValueError naming the projection.  :func:`as_connectivity` makes
    one from a ``scipy.sparse`` matrix (its stored non-zero positions; explicit zeros are dropped), keeping its
    ``shape`` ``(n_post, n_pre)``, which must then equal the projection's.
    """

    indptr: np.ndarray
    indices: np.ndarray
    shape: tuple | None = None

    def __post_init__(self):
        if self.shape is not None:
            object.__setattr__(self, "shape", tuple(int(v) for v in self.shape))
        for attr in ("indptr", "indices"):
            a = np.array(getattr(self, attr))
            if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
                raise ValueError(f"Pattern: {attr} must be a 1-D array of ints, got {a.dtype} of shape {a.shape}")
            a = a.astype(np.int64)
            a.setflags(write=False)
            object.__setattr__(self, attr, a)

    def __eq__(self, other):
        return (isinstance(other, Pattern) and np.array_equal(self.indptr, other.indptr)
                and np.array_equal(self.indices, other.indices) and self.shape == other.shape)

    def __hash__(self):
        return hash((self.indptr.tobytes(), self.indices.tobytes(), self.shape))

    def pattern(self, n_post, n_pre, name="?"):
        ip, ix = self.indptr, self.indices
        if self.shape is not None and self.shape != (n_post, n_pre):
            raise ValueError(f"Projection {name!r}: the sparse pattern has shape {self.shape} but the projection is "
                             f"(n_post, n_pre) = {(n_post, n_pre)}; give a matrix of that shape")
        if ip.size != n_post + 1 or ip[0] != 0 or ip[-1] != ix.size or np.any(np.diff(ip) < 0):
            raise ValueError(f"Projection {name!r}: the pattern's indptr must have n_post + 1 = {n_post + 1} "
                             f"non-decreasing entries from 0 to len(indices) = {ix.size}; got {ip.size} entries "
                             f"from {ip[0] if ip.size else None} to {ip[-1] if ip.size else None}")
        lens = np.diff(ip)
        if np.any(lens == 0):
            rows = np.flatnonzero(lens == 0)
            raise ValueError(f"Projection {name!r}: post unit(s) {rows[:10].tolist()} receive no synapse (empty "
                             f"rows); give every post unit at least one pre unit, or remove those units")
        if ix.size and (ix.min() < 0 or ix.max() >= n_pre):
            raise ValueError(f"Projection {name!r}: pattern indices must lie in [0, {n_pre}) (the pre population's "
                             f"units), got {int(ix.min())}..{int(ix.max())}")
        rowid = np.repeat(np.arange(n_post), lens)
        order = np.lexsort((ix, rowid))
        ix = ix[order]
        dup = (np.diff(ix) == 0) & (np.diff(rowid) == 0)
        if np.any(dup):
            r = int(rowid[1:][dup][0])
            raise ValueError(f"Projection {name!r}: post unit {r} receives pre unit {int(ix[1:][dup][0])} twice "
                             f"(duplicate synapse); give each (post, pre) pair once")
        return ip.copy(), ix.copy()

    def summary(self):
        return "sparse Pattern"


def as_connectivity(value, name: str = "?"):
    """``None`` (dense), a :class:`Connectivity`, a ``scipy.sparse`` matrix or array (its stored non-zero
    positions) or an ``(indptr, indices)`` pair, as None or a :class:`Connectivity`; a ValueError naming the
    projection otherwise."""
    if value is None or isinstance(value, Connectivity):
        return value
    if hasattr(value, "tocsr") and hasattr(value, "nnz"):
        m = value.tocsr()
        m.eliminate_zeros()
        m.sort_indices()
        return Pattern(np.asarray(m.indptr), np.asarray(m.indices), shape=m.shape)
    if isinstance(value, tuple) and len(value) == 2:
        return Pattern(value[0], value[1])
    raise ValueError(f"Projection {name!r}: connectivity must be None (dense), ns.FixedFanIn(k), "
                     f"ns.ReceptiveField(width), ns.Pattern(indptr, indices), a scipy.sparse matrix or an "
                     f"(indptr, indices) pair; got {type(value).__name__}")


_CACHE: dict = {}


class DensePatternWarning(UserWarning):
    """A sparse connectivity whose pattern connects every post unit to every pre unit (e.g. ``FixedFanIn(k)``
    with ``k`` equal to the pre population's size): the projection is dense and should be declared so
    (``connectivity=None``); it still runs, as sparse, with the same results."""


def pattern_of(conn: Connectivity, n_post: int, n_pre: int, name: str = "?",
               warn_dense: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``conn.pattern(n_post, n_pre, name)`` as read-only arrays, kept for the last few patterns (a circuit is
    validated and then lowered: a large random pattern is drawn once).  ``warn_dense`` (the circuit's validation
    sets it) warns with :class:`DensePatternWarning` when the pattern holds all ``n_post x n_pre`` synapses."""
    key = (conn, int(n_post), int(n_pre))
    hit = _CACHE.get(key)
    if hit is None:
        indptr, indices = conn.pattern(int(n_post), int(n_pre), name)
        for a in (indptr, indices):
            a.setflags(write=False)
        if len(_CACHE) >= 16:
            _CACHE.pop(next(iter(_CACHE)))
        hit = _CACHE[key] = (indptr, indices)
    if warn_dense and n_post * n_pre > 0 and hit[1].size == n_post * n_pre:
        import warnings
        what = conn.summary().replace("sparse ", "")
        warnings.warn(f"Projection {name!r}: {what} connects every one of its {n_post} post units to all {n_pre} pre "
                      "units, a dense matrix stored and run as sparse (CSR loops, slower than the dense products, and "
                      "refused where sparse projections are); drop connectivity= to make it a dense projection (same "
                      "model)", DensePatternWarning, stacklevel=2)
    return hit
