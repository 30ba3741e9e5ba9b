r"""The :class:`Simulator`: one signature and lifecycle for every backend.

>>> import neurosim as ns
>>> net = ns.hierarchy([64, 128, 10], phi="tanh")
>>> sim = ns.Simulator(net, dt=0.1, backend="numba", seed=0)   # doctest: +SKIP
>>> sim.train(X, Y, epochs=5)                                    # doctest: +SKIP

Phases
------
:meth:`Simulator.run` picks ``"clamp"`` when a target is given and ``"free"`` otherwise.

* ``mode="clamp"`` -- the target population is hard-clamped to the target (learning phase);
* ``mode="free"`` -- the target population relaxes with everything else (prediction);
* ``mode="nudge"`` -- it is nudged toward the target:
  :math:`\tau_x \dot x_L = -\varepsilon_L + \beta (t - x_L)`.

Update order is synchronous: inputs of every unit are computed from the state at t, then all
states advance to t + dt; the weight update uses the state reached by the relaxation.
"""
from __future__ import annotations

import collections
import collections.abc
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .backends import get_backend_class
from .backends.base import HEUN, INITS, INTEGRATORS, MODE_CLAMP, MODE_NUDGE, MODES, BatchResult, RunSpec
from .circuit import Circuit, Probe
from .errors import DivergenceError, UnsupportedError
from .plan import ROLE_INPUT, Plan, lower

__all__ = ["Simulator", "RelaxResult", "History", "ProbeData", "NetworkState"]



@dataclass
class RelaxResult:
    """The outcome of :meth:`Simulator.run`.

    Attributes
    ----------
    steps : int
        Steps taken (fewer than asked when ``tol`` stopped the relaxation).
    energy : ndarray, shape (steps + 1, n_populations)
        Batch-mean energy of each population after each step; row 0 is the initial state.  It is the
        prediction-error energy F: with ``mode="nudge"`` the dynamics also descend the nudging term
        :math:`\\tfrac{\\beta}{2}\\lVert t - x_L\\rVert^2`, which is not included.
    populations : list of str
        Column names of ``energy``.
    x, eps, mu : dict of name -> ndarray (B, n_units)
        Final values, errors and predictions per population.
    y0 : ndarray (B, n_target)
        Prediction of the target population at the start (the feedforward output by default).
    """

    steps: int
    energy: np.ndarray
    populations: list
    x: dict
    eps: dict
    mu: dict
    y0: np.ndarray | None = None
    dt: float = 0.1

    @property
    def total_energy(self) -> np.ndarray:
        """Total energy F after each step, shape (steps + 1,)."""
        return self.energy.sum(axis=1)

    @property
    def time(self) -> np.ndarray:
        return np.arange(self.energy.shape[0]) * self.dt


class NetworkState(dict):
    """What :attr:`Simulator.state` returns: ``{population: {"x", "eps", "mu": array (B, n_units)}}``.

    A plain dict; calling it (``sim.state()``, the form of earlier versions when ``state`` was a method)
    returns it unchanged with a DeprecationWarning.
    """

    def __call__(self):
        import warnings
        warnings.warn("Simulator.state is a property (like Simulator.weights): write sim.state, not "
                      "sim.state()", DeprecationWarning, stacklevel=2)
        return self


class History(dict):
    """Training history: per-batch lists ``loss``, ``accuracy``, ``energy``, ``steps`` and per-epoch
    lists ``epoch_loss``, ``epoch_accuracy``, ``test_loss``, ``test_accuracy``, ``epoch_time``.

    ``loss`` is the feedforward loss :math:`\\tfrac12\\lVert t - \\hat y\\rVert^2` (batch mean) before
    the batch's update; ``energy`` the batch-mean total energy at the end of the relaxation.

    Where the per-epoch values belong, over several :meth:`Simulator.train` calls (epochs of other batch sizes,
    calls without test data): ``epoch_end_batch`` is the number of batches trained at the end of each epoch, and
    ``test_epoch`` the (1-based) epoch after which each test value was taken; :func:`neurosim.plot.learning_curves`
    places the points there.
    """

    KEYS = ("loss", "accuracy", "energy", "steps", "epoch_loss", "epoch_accuracy", "test_loss",
            "test_accuracy", "epoch_time", "epoch_end_batch", "test_epoch")
    #: the keys that hold counts (ints), not measurements
    COUNTS = ("steps", "epoch_end_batch", "test_epoch")

    def __init__(self):
        super().__init__({k: [] for k in self.KEYS})

    def __getattr__(self, item):
        try:
            return self[item]
        except KeyError:
            raise AttributeError(item) from None

    def to_json(self) -> dict:
        ints = ("epoch_end_batch", "test_epoch")   # ("steps" stays as metrics.json has always written it)
        return {k: [int(v) if k in ints else float(v) for v in vals] for k, vals in self.items() if len(vals)}

    def __repr__(self):   # a summary: the full lists are in the dict (a 20-epoch run holds ~100 KB of numbers)
        last = {k: self[k][-1] for k in ("epoch_loss", "epoch_accuracy", "test_accuracy") if self.get(k)}
        n_epochs = len(self.get("epoch_loss", []))
        te = self.get("test_epoch", [])
        if "test_accuracy" in last and te and len(te) == len(self["test_accuracy"]) and te[-1] != n_epochs:
            last[f"test_accuracy(after epoch {te[-1]})"] = last.pop("test_accuracy")   # not of the last epoch
        tail = "".join(f", {k}={v:.4g}" for k, v in last.items())
        return f"History(epochs={len(self.get('epoch_loss', []))}, batches={len(self.get('loss', []))}{tail})"


_VARS = {"x": 0, "eps": 1, "mu": 2}


class _Ring:
    """The most recent ``limit`` records, kept in fixed-size chunks ``(rows, *row_shape)`` (plus the global
    step of each record); chunks that fall out of the bound are reused, so that a bounded run stops touching
    fresh memory once the bound is reached (on this project's VMs the first write to a page costs
    0.6-0.9 ms per MB, ten times a copy into mapped memory).

    Writers :meth:`reserve` a block, fill it and :meth:`commit` the rows they wrote: the numba kernel writes
    into a reserved block directly, other records are copied in by :meth:`append`.
    """

    CHUNK_BYTES = 1 << 20

    def __init__(self, limit: int):
        self.limit = int(limit)
        self.row_shape = None
        self.dtype = None
        self.chunks = collections.deque()  # [values (rows, *row_shape), steps (rows,), rows used]
        self.head = 0                      # first kept row of chunks[0]
        self.count = 0
        self.spare = []
        self._open = None

    def _shape(self, row_shape, dtype):
        row_shape, dtype = tuple(row_shape), np.dtype(dtype)
        if (row_shape, dtype) != (self.row_shape, self.dtype):
            if self.count:
                raise ValueError(f"probe records changed shape or type: {row_shape} of {dtype} after "
                                 f"{self.row_shape} of {self.dtype}")
            self.row_shape, self.dtype = row_shape, dtype
            self.chunks.clear()
            self.spare = []
            self.head = 0

    def reserve(self, n: int, row_shape, dtype, whole: bool = True) -> np.ndarray:
        """A C-contiguous block ``(m, *row_shape)`` for the next records: ``m = n``, or with
        ``whole=False`` as many as fit in the open chunk (at least 1)."""
        self._shape(row_shape, dtype)
        last = self.chunks[-1] if self.chunks else None
        free = last[1].shape[0] - last[2] if last is not None else 0
        if free == 0 or (whole and free < n):
            row_bytes = max(1, int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize)
            rows = max(n if whole else 1, min(self.limit, self.CHUNK_BYTES // row_bytes), 1)
            last = None
            while self.spare and last is None:
                c = self.spare.pop()
                if c[1].shape[0] >= (n if whole else 1):
                    c[2] = 0
                    last = c
            if last is None:
                last = [np.empty((rows, *self.row_shape), dtype=self.dtype), np.empty(rows, dtype=np.int64), 0]
            self.chunks.append(last)
            free = last[1].shape[0]
        self._open = last
        return last[0][last[2]:last[2] + (n if whole else min(n, free))]

    def commit(self, n: int, steps) -> None:
        """``n`` rows of the last reserved block were written, at global ``steps``."""
        ch, self._open = self._open, None
        if n <= 0:
            if ch is not None and ch[2] == 0 and len(self.chunks) > 1 and self.chunks[-1] is ch:
                self.spare.append(self.chunks.pop())
            return
        ch[1][ch[2]:ch[2] + n] = steps[:n]
        ch[2] += n
        self.count += n
        while self.count > self.limit:
            kept = self.chunks[0][2] - self.head
            extra = self.count - self.limit
            if kept <= extra and len(self.chunks) > 1:
                self.spare.append(self.chunks.popleft())
                self.head = 0
                self.count -= kept
            else:
                self.head += extra
                self.count -= extra

    def append(self, values, steps):
        """Copy records ``(n, *row_shape)`` in (1-d values are one column)."""
        values = np.asarray(values)
        if values.ndim == 1:
            values = values[:, None]
        steps = np.asarray(steps, dtype=np.int64)
        if values.shape[0] > self.limit:
            values, steps = values[-self.limit:], steps[-self.limit:]
        i, n = 0, values.shape[0]
        while i < n:
            block = self.reserve(n - i, values.shape[1:], values.dtype, whole=False)
            m = block.shape[0]
            block[...] = values[i:i + m]
            self.commit(m, steps[i:i + m])
            i += m

    def _parts(self, j, index=()):
        for c, ch in enumerate(self.chunks):
            a = self.head if c == 0 else 0
            if ch[2] > a:
                yield ch[j][(slice(a, ch[2]),) + index]

    def values(self, index=(), width=0) -> np.ndarray:
        """The kept records (a copy), ``index`` applied to each row's trailing dimensions."""
        parts = list(self._parts(0, index))
        if not parts:
            return np.zeros((0, width))
        return np.concatenate(parts, axis=0)

    def steps(self) -> np.ndarray:
        parts = list(self._parts(1))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def clear(self):
        self.spare.extend(self.chunks)
        self.chunks.clear()
        self.head = self.count = 0
        self._open = None


class ProbeData(collections.abc.Mapping):
    """Recorded probe data with bounded memory (the most recent ``max_records`` records per probe).

    A read-only mapping from probe name to records: ``data[name]`` or ``data[probe]`` is an array
    ``(n_records, n_units)`` (a copy); ``keys()``, ``values()``, ``items()``, ``len()``, iteration and
    ``in`` work as on a dict.  ``data.steps(name)`` is the global relaxation step of each record (counting
    across runs and batches); ``data.clear()`` drops every record (weights and history are untouched).
    """

    __hash__ = object.__hash__

    def __eq__(self, other):   # records are arrays: compare identities, not element-wise
        return self is other

    def __init__(self, probes, shared: _Ring | None = None, units=None):
        self.probes = {p.name: p for p in probes}
        self._shared = shared
        self._units = units or {}
        self._rec = {p.name: _Ring(p.max_records) for p in probes
                     if shared is None or p.variable not in _VARS}
        self._width = {}

    def _key(self, key):
        name = key.name if isinstance(key, Probe) else key
        if name not in self.probes:
            raise KeyError(f"no probe named {name!r}; probes: {sorted(self.probes)}")
        return name

    def append(self, name, rows, steps):
        """Add records (copied), dropping the oldest beyond the probe's ``max_records``."""
        self._rec[name].append(rows, steps)

    def __getitem__(self, key) -> np.ndarray:
        name = self._key(key)
        if name not in self._rec:
            u = self._units[name]
            return self._shared.values((_VARS[self.probes[name].variable], u), u.stop - u.start)
        return self._rec[name].values(width=self._width.get(name, 0))

    def steps(self, key) -> np.ndarray:
        name = self._key(key)
        if name not in self._rec:
            return self._shared.steps()
        return self._rec[name].steps()

    def __contains__(self, key):
        return (key.name if isinstance(key, Probe) else key) in self.probes

    def __iter__(self):
        return iter(self.probes)

    def __len__(self):
        return len(self.probes)

    def keys(self):
        return self.probes.keys()

    def clear(self):
        """Drop every record (the probes stay; weights, network state and history are untouched)."""
        for r in self._rec.values():
            r.clear()
        if self._shared is not None:
            self._shared.clear()


def _pair_growth(dt, integrator, tau_x, tau_eps, prec, beta=0.0):
    r"""The largest factor by which one step of ``integrator`` ("euler" or "heun") multiplies a mode of a value
    unit and its error unit, isolated and linearised, for every precision in ``prec``: with error units that
    integrate (``tau_eps > 0``),

    .. math:: \tau_x \dot x = -\varepsilon - \beta x, \qquad
              \tau_\varepsilon \dot\varepsilon = x - \varepsilon / \pi

    (``beta`` > 0: a nudged target), a pair whose eigenvalues are complex for slow error units; with
    instantaneous ones (``tau_eps = 0``) :math:`\lambda = -(\pi + \beta) / \tau_x`.  A step multiplies a mode by
    :math:`g(dt\,\lambda)`, :math:`g(z) = 1 + z` (Euler) or :math:`1 + z + z^2 / 2` (Heun); the run is stable only
    where every :math:`|g| < 1`.  For Euler and ``beta = 0`` that is dt < tau_x / precision (the product of the
    roots of the step's characteristic polynomial, :math:`1 - dt / (\pi\tau_\varepsilon) + dt^2 / (\tau_x
    \tau_\varepsilon)`, must stay below 1) together with dt < 2 tau_eps precision."""
    p = np.unique(np.asarray(prec, dtype=float).ravel())
    if tau_eps > 0:
        tr = -(beta / tau_x + 1.0 / (p * tau_eps))
        det = beta / (tau_x * p * tau_eps) + 1.0 / (tau_x * tau_eps)
        disc = np.sqrt(tr * tr - 4.0 * det + 0j)
        lams = ((tr + disc) / 2, (tr - disc) / 2)
    else:
        lams = (-(p + beta) / tau_x + 0j,)
    g = 0.0
    for lam in lams:
        z = dt * lam
        gz = 1 + z + z * z / 2 if integrator == "heun" else 1 + z
        g = max(g, float(np.max(np.abs(gz))))
    return g


def _pair_bound(integrator, tau_x, tau_eps, prec, beta, dt):
    """The largest stable step below ``dt`` (bisection on :func:`_pair_growth`; dt itself is unstable)."""
    lo, hi = 0.0, dt
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _pair_growth(mid, integrator, tau_x, tau_eps, prec, beta) < 1.0 else (lo, mid)
    return lo


def _check_pair(dt, integrator, what, tau_x, tau_eps, prec, beta=0.0):
    """A ValueError naming ``what`` when :func:`_pair_growth` is 1 or more at ``dt``."""
    if _pair_growth(dt, integrator, tau_x, tau_eps, prec, beta) < 1.0:
        return
    bound = _pair_bound(integrator, tau_x, tau_eps, prec, beta, dt)
    pmax = float(np.max(prec))
    nudge = f", beta={beta}" if beta else ""
    raise ValueError(
        f"dt={dt} is too large for the {what} (tau_x={tau_x}, tau_eps={tau_eps}, precision up to {pmax}{nudge}): "
        f"a value unit and an error unit that integrate form an oscillating pair, whose {integrator} integration "
        f"grows at this step; it needs dt < {bound:.4g} (for Euler without nudging dt < tau_x / precision = "
        f"{tau_x / pmax:.4g}, half the bound of instantaneous error units); reduce dt or increase tau_x")


def _fingerprint_diff(saved: str, mine: str) -> str:
    """What differs between two circuit fingerprints (:meth:`Simulator._fingerprint`), in words: "circuit 'a'
    (this simulator: 'b')", "population sizes [3, 5, 2] (this simulator: [3, 6, 2])", ..."""
    import re
    labels = ["circuit", "populations", "population sizes", "projections", "weight parameters", "bias parameters"]
    a, b = ([re.sub(r"np\.\w+\(([^()]*)\)", r"\1", v) for v in f.split("|")] for f in (saved, mine))
    out = []
    for k, label in enumerate(labels):
        va, vb = (a[k] if k < len(a) else "?"), (b[k] if k < len(b) else "?")
        if va != vb:
            q = repr if k == 0 else str
            out.append(f"{label} {q(va)} (this simulator: {q(vb)})")
    if a[len(labels):] != b[len(labels):]:
        out.append("the sparse projections' synapses")
    return "; ".join(out) or f"circuit {a[0]!r}"


def _targets_of(circuit) -> set:
    """Names of the circuit's target populations (vertices): clamped in training, so their value/error pair is
    checked per run, when it moves (:meth:`Simulator._spec`)."""
    return set(circuit.targets)


def _dt_number(dt, owner: str) -> float:
    """``dt`` as a finite float > 0, or a ValueError from ``owner``."""
    try:
        dt = float(dt)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: dt must be a number, got {dt!r}") from None
    if not (dt > 0 and math.isfinite(dt)):
        raise ValueError(f"{owner}: dt must be finite and > 0, got {dt}")
    return dt


def check_dt_plan(plan, dt, owner: str, integrator: str = "euler", target_moves: bool = True) -> float:
    """The checks of :meth:`Simulator._check_dt` on a lowered layered :class:`~neurosim.plan.Plan` (what the event
    engines relax): ``dt`` finite and > 0, and no population whose isolated dynamics grow at this step (the
    target's value/error pair only when ``target_moves``: not clamped)."""
    dt = _dt_number(dt, owner)
    for i, name in enumerate(plan.pop_names):
        if plan.pop_role[i] == ROLE_INPUT:
            continue
        prec = plan.precision[plan.units(name)] if plan.pop_has_err[i] else np.ones(1)
        tau_x, tau_e = float(plan.pop_tau_x[i]), float(plan.pop_tau_eps[i])
        if dt * float(np.max(prec)) / tau_x >= 2.0:
            raise ValueError(f"{owner}: dt={dt} is too large for value population {name!r} (tau_x={tau_x}, precision "
                             f"up to {float(np.max(prec))}): explicit integration needs dt < 2 tau_x / precision = "
                             f"{2 * tau_x / float(np.max(prec)):.4g}; reduce dt")
        if plan.pop_has_err[i] and tau_e > 0:
            if i == plan.target_pop and not target_moves:
                continue
            if dt / (tau_e * float(np.min(prec))) >= 2.0:
                raise ValueError(f"{owner}: dt={dt} is too large for the error units of {name!r} (tau_eps={tau_e}): "
                                 f"explicit integration needs dt < 2 tau_eps precision = "
                                 f"{2 * tau_e * float(np.min(prec)):.4g}; reduce dt")
            try:
                _check_pair(dt, integrator, f"value population {name!r} with its integrating error units", tau_x,
                            tau_e, prec)
            except ValueError as e:
                raise ValueError(f"{owner}: {e}") from None
    return dt


def class_coded(Y) -> bool:
    """Whether targets ``Y`` (batch, n) code classes: at least two columns, exactly two distinct values (one-hot
    0/1, or e.g. -1/1 or 0.1/0.9) and one unit at the higher value per row.  Only then do ``train`` and
    ``evaluate`` report an accuracy (argmax of the prediction against the class); for regression targets an
    argmax 'accuracy' means nothing (it was reported for any Y with more than one column)."""
    Y = np.asarray(Y)
    if Y.ndim != 2 or Y.shape[1] < 2 or Y.shape[0] == 0:
        return False
    levels = np.unique(Y)
    return levels.size == 2 and bool(np.all(np.sum(Y == levels[1], axis=1) == 1))


def _real_array(name, a, dtype, owner: str = ""):
    """``a`` as an array of ``dtype``, refusing what would otherwise be converted quietly or wrongly:
    complex numbers (numpy would drop the imaginary part with only a warning), text and other objects."""
    try:
        raw = a if isinstance(a, np.ndarray) else np.asarray(a)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{owner}{name} cannot be read as an array ({e}); pass a 2-d array (batch, n_units) "
                         "of real numbers") from None
    if np.iscomplexobj(raw) or (raw.dtype == object and any(isinstance(v, complex) for v in raw.flat)):
        raise ValueError(f"{owner}{name} holds complex numbers ({raw.dtype}); the simulator computes with real "
                         f"values: pass np.real({name}) or np.abs({name}), whichever your data means")
    if raw.dtype.kind not in "biuf":
        try:
            return np.asarray(raw, dtype=dtype)
        except (TypeError, ValueError):
            v = raw.flat[0]
            v = v.item() if isinstance(v, np.generic) else v
            raise ValueError(f"{owner}{name} must hold real numbers, got an array of {raw.dtype} "
                             f"(e.g. {v!r}); convert it, e.g. np.asarray({name}, dtype=float)") from None
    return np.asarray(raw, dtype=dtype)


def _check_batch(name, a, owner: str = "", allow_empty: bool = False):
    """Refuse an empty batch and NaN/inf entries of a 2-d input ``a`` (B, n), naming ``name`` and the fix."""
    if a.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{owner}{name} has no samples (shape {a.shape}); pass at least one row")
    bad = ~np.isfinite(a)
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f"{owner}{name} contains NaN or inf ({int(bad.sum())} entries, the first at row {r}, "
                         f"column {c}: {a[r, c]}); remove or impute those samples first (e.g. np.nan_to_num)")
    return a


def _as_2d(name, a, n_cols, dtype, allow_empty: bool = False, owner: str = ""):
    """``a`` as a (batch, n_cols) array; a 1-d array of n_cols entries is one sample, of any length when
    n_cols is 1.  Otherwise a ValueError names the shape the caller passed; for a 1-d array of whole numbers
    in [0, n_cols) (class labels) it points to :func:`neurosim.data.one_hot`."""
    a = _real_array(name, a, dtype, owner)
    given = np.shape(a)
    if a.ndim == 1:
        if n_cols != 1 and a.shape[0] != n_cols:
            hint = ""
            if a.size and np.all(np.isfinite(a)) and np.all(a == np.round(a)) and a.min() >= 0 and a.max() < n_cols:
                hint = (f"; these look like class labels: one-hot encode them, e.g. "
                        f"neurosim.data.one_hot({name.lower()}, {n_cols})")
            raise ValueError(f"{owner}{name} must have shape (batch, {n_cols}), got a 1-d array of shape {given} "
                             f"(a 1-d array is one sample only if it has {n_cols} entries){hint}")
        a = a[None, :] if n_cols != 1 or a.shape[0] == 1 else a[:, None]
    if a.ndim != 2 or a.shape[1] != n_cols:
        raise ValueError(f"{owner}{name} must have shape (batch, {n_cols}), got {given}")
    return _check_batch(name, a, owner, allow_empty=allow_empty)


class Simulator:
    """Runs a :class:`~neurosim.circuit.Circuit` on a backend: stated as populations (layered or DAG), or as
    vertices (:mod:`neurosim.graph`: CNN, RNN, LSTM, residual -- convolutions, pooling, products, shared
    parameters).

    Parameters
    ----------
    circuit : Circuit
        A circuit stated as vertices runs on ``"numba"``, ``"reference"`` or ``"brian2"`` (rate mode); its
        "populations" are its vertices (flat ``(B, n)`` in probes and states; ``sim.plan.v_shapes`` gives their
        image shapes) and its "weights" its parameters (``sim.weights[name]`` with the parameter's shape).
    dt : float
        Integration step (same unit as the time constants).
    backend : {"numba", "reference"}
    seed : int
        Seeds the weight initialisation (through :func:`neurosim.lower`) and mini-batch shuffling.
    dtype : {"float64", "float32"}
    integrator : {"euler", "heun"}
    probes : sequence of Probe
        Added to the circuit's own probes.
    backend_options : dict, optional
        Backend-specific settings passed to the backend's constructor (e.g. brian2's ``mode``); a
        backend that does not know an option raises a ValueError naming it.
    hardware : neurosim.hardware.HardwareModel, optional
        Run on a modelled substrate: the backend holds the stored (device) weights, writes pass through
        the device, and a model that changes the relaxation (signal sites, reads, event coding) relaxes in
        the event-driven engine of the backend (``numba`` or ``reference``; per-read noise alone also runs in
        brian2's rate network, which draws it on its synapses).  ``sim.hardware`` (a
        :class:`~neurosim.hardware.substrate.Substrate`) holds the device: operation ``counts``, device
        ``time``, :meth:`~neurosim.hardware.substrate.Substrate.advance`, the engine; ``run`` returns a
        :class:`~neurosim.hardware.HardwareRelaxResult` with the events sent.  What the engine cannot run
        raises :class:`~neurosim.UnsupportedError` here; see :mod:`neurosim.hardware.substrate`.  A graph
        circuit takes the write path (``updates``, ``weights``) and frozen read effects (Mismatch, Drift on
        ``reads``) and per-read noise on its weights and kernels (biases are stored exactly); what needs the
        event engine (event coding, signal sites) is refused here.
    """

    def __init__(self, circuit: Circuit, dt: float = 0.1, backend: str = "numba", seed: int = 0,
                 dtype="float64", integrator: str = "euler", probes=(), backend_options: dict | None = None,
                 hardware=None):
        if not isinstance(circuit, Circuit):
            raise TypeError(f"Simulator needs a neurosim Circuit (ns.hierarchy, ns.Circuit, neurosim.graph "
                            f"builders), got {type(circuit).__name__}")
        self._graph = circuit.is_graph
        for pb in probes:
            circuit.check_probe(pb)
        self.circuit = circuit
        if integrator not in INTEGRATORS:
            raise ValueError(f"Simulator: unknown integrator {integrator!r}; choose one of {list(INTEGRATORS)}")
        self.dt = self._check_dt(circuit, dt, integrator)
        self.integrator = integrator
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"Simulator: dtype must be float64 or float32, got {dtype!r}")
        self.seed = int(seed)
        self.backend_name = backend
        self._extra_probes = tuple(probes)
        if self._graph:
            from .graph.backend import graph_backend_class
            from .graph.plan import lower_graph
            if hardware is not None:   # before the backend is built: what needs the event engine is refused
                from .hardware.substrate import Substrate
                Substrate.check_graph_model(hardware, circuit.name, backend, circuit)
            cls = graph_backend_class(backend)
            self.plan = lower_graph(circuit, seed=self.seed)
        else:
            self.plan: Plan = lower(circuit, seed=self.seed)
            if hardware is not None:
                from .hardware.substrate import Substrate
                Substrate.check_model(hardware, backend, backend_options, circuit)   # before the backend is built
            cls = get_backend_class(backend)
        missing = self._required_features() - set(cls.supports)
        if missing:
            reasons = getattr(cls, "unsupported_reasons", {})
            why = "; ".join(f"{m}: {reasons[m]}" for m in sorted(missing) if m in reasons)
            raise UnsupportedError(f"backend {backend!r} cannot run {sorted(missing)} (needed by circuit "
                                   f"{circuit.name!r})" + (f" - {why}" if why else ""))
        self.backend_options = dict(backend_options or {})
        if self.backend_options:  # a typo names the valid options instead of a TypeError from the constructor
            import inspect
            known = getattr(cls, "options", None)
            if known is None:
                known = [n for n, p in inspect.signature(cls.__init__).parameters.items()
                         if n not in ("self", "plan", "dtype") and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            removed = getattr(cls, "removed_options", {})
            unknown = sorted(set(self.backend_options) - set(known))
            if unknown:
                why = "".join(f"; {k!r} was removed: {removed[k]}" for k in unknown if k in removed)
                raise ValueError(f"backend {backend!r} has no option(s) {unknown}; its options: "
                                 f"{list(known) or 'none'}{why}")
        if self.backend_options:
            self._backend = cls(self.plan, self.dtype, **self.backend_options)
        else:
            self._backend = cls(self.plan, self.dtype)
        self.probes = tuple(circuit.probes) + tuple(probes)
        names = [p.name for p in self.probes]
        if len(set(names)) != len(names):
            raise ValueError(f"Simulator: probe names must be unique, got {names}")
        items = {p.item for p in self.probes if p.variable in ("x", "eps", "mu")}
        if len(items) > 1:
            raise ValueError(f"Simulator: all x/eps/mu probes must record the same batch item, got {sorted(items)}")
        self._probe_item = items.pop() if items else 0
        self._shared_rec = self._shared_store()
        self.data = ProbeData(self.probes, self._shared_rec,
                              {p.name: self.plan.units(p.target) for p in self.probes if p.variable in _VARS})
        self.data._width = {p.name: self._probe_width(p) for p in self.probes}
        self._probe_layout = [
            (p, None if p.variable == "weight_norm" else self.plan.units(p.target),
             self.plan.pop_index(p.target) if p.variable == "energy" else -1) for p in self.probes]
        self.history = History()
        self._global_step = 0
        self._n_batches = 0
        self._closed = False
        self.hardware = None
        if hardware is not None:
            from .hardware.substrate import Substrate
            self.hardware = Substrate(self, hardware)

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _check_dt(circuit, dt, integrator="euler"):   # the target's pair: per run, when it moves (_spec)
        """``dt`` as a float, or a ValueError naming the population whose isolated, linearised dynamics the
        ``integrator`` would make grow at this step: a value unit alone (dt < 2 tau_x / precision), integrating
        error units alone (dt < 2 tau_eps precision), and a value unit with its integrating error unit, a pair
        that oscillates (:func:`_pair_growth`; for Euler dt < tau_x / precision, half the bound of instantaneous
        errors).  The couplings between populations (the weights) are not checked: they change as the circuit
        learns, and can make a smaller dt necessary."""
        dt = _dt_number(dt, "Simulator")
        if circuit.is_graph:
            for v in circuit.vertices:
                if v.name in circuit.inputs:
                    continue
                precs = v.precision if isinstance(v.precision, tuple) else (v.precision,)
                pmax, pmin = max(precs), min(precs)
                if dt * pmax / v.tau_x >= 2.0:
                    raise ValueError(
                        f"dt={dt} is too large for vertex {v.name!r} (tau_x={v.tau_x}, precision {pmax}): "
                        f"explicit integration needs dt < 2 tau_x / precision = {2 * v.tau_x / pmax:.4g}; "
                        "reduce dt or increase tau_x")
                if v.tau_eps > 0 and dt / (v.tau_eps * pmin) >= 2.0:
                    raise ValueError(
                        f"dt={dt} is too large for the error units of vertex {v.name!r} (tau_eps={v.tau_eps}, "
                        f"precision {pmin}): explicit integration needs dt < 2 tau_eps precision = "
                        f"{2 * v.tau_eps * pmin:.4g}; reduce dt or increase tau_eps")
                if v.tau_eps > 0 and v.name not in _targets_of(circuit):
                    _check_pair(dt, integrator, f"vertex {v.name!r} with its integrating error units", v.tau_x,
                                v.tau_eps, precs)
            return dt
        inputs = set(circuit.inputs)
        for pop in circuit.populations:
            if pop.name in inputs:
                continue
            e = circuit.error_of(pop.name)
            prec = e.precision_vector(pop.size) if e else [1.0]
            if dt * max(prec) / pop.tau_x >= 2.0:
                raise ValueError(
                    f"dt={dt} is too large for value population {pop.name!r} (tau_x={pop.tau_x}, precision up to "
                    f"{max(prec)}): explicit integration needs dt < 2 tau_x / precision = "
                    f"{2 * pop.tau_x / max(prec):.4g}; reduce dt or increase tau_x"
                )
            if e is not None and e.tau_eps > 0 and dt / (e.tau_eps * min(prec)) >= 2.0:
                raise ValueError(
                    f"dt={dt} is too large for error population {e.name!r} (tau_eps={e.tau_eps}, precision "
                    f"{min(prec)}): explicit integration needs dt < 2 tau_eps precision = "
                    f"{2 * e.tau_eps * min(prec):.4g}; reduce dt or increase tau_eps"
                )
            if e is not None and e.tau_eps > 0 and pop.name not in _targets_of(circuit):
                _check_pair(dt, integrator, f"value population {pop.name!r} with its integrating error population "
                            f"{e.name!r}", pop.tau_x, e.tau_eps, prec)
        return dt

    def _required_features(self):
        f = {self.integrator}
        c = self.circuit
        if self._graph:
            f.add("graph")
            if any(getattr(v, "tau_eps", 0) > 0 for v in c.vertices):
                f.add("tau_eps")
            if self.dtype == np.float32:
                f.add("float32")
            if self.circuit.probes or self._extra_probes:
                f.add("probes")
            return f
        if any(e.tau_eps > 0 for e in c.errors):
            f.add("tau_eps")
        if any(p.skip for p in c.projections):
            f.add("skip")
        if any(p.multiplier != 1.0 for p in c.projections):
            f.add("multiplier")
        if any(p.bias for p in c.projections):
            f.add("bias")
        if any(p.plasticity is not None and p.plasticity.optimizer.kind == "adam" for p in c.projections):
            f.add("adam")
        if self.dtype == np.float32:
            f.add("float32")
        if self.circuit.probes or self._extra_probes:
            f.add("probes")
        if len(c.projections) != len(c.populations) - len(c.inputs) or len(c.inputs) > 1:
            f.add("graph")
        if any(p.connectivity is not None for p in c.projections):
            f.add("sparse")
        return f

    def _check_open(self):
        if self._closed:
            raise RuntimeError("this Simulator is closed; create a new one")

    # ------------------------------------------------------------------ weights and state
    @property
    def backend(self):
        return self._backend

    @property
    def last_run(self):
        """What the backend reports of the last batch beyond its result, or None: on brian2's spiking mode the
        spikes, synaptic events, rates and settle time of the run (:class:`~neurosim.backends.brian2.spiking`); on
        the numba backend (layered circuits) the BLAS threading of its last kernel call, ``{"blas_policy": "auto"
        (or the backend_options["blas_threads"] given), "blas_threads": the BLAS threads of each of its matrix
        products (None: a batch up to 8, which calls no BLAS; 1 when row blocks ran on several workers),
        "batch_size": B, "row_blocks": the row blocks a batch of 256 or more relaxed in (1 otherwise),
        "block_workers": the threads that relaxed them}`` (see
        :class:`~neurosim.backends.numba.backend.NumbaBackend`); elsewhere None."""
        return getattr(self._backend, "last_run", None)

    @property
    def weights(self) -> dict:
        """Copies of the weight matrices ``{projection: (n_post, n_pre)}`` and biases ``{projection.b: (n_post,)}``.

        A sparse projection's weights are a ``scipy.sparse.csr_array`` of shape ``(n_post, n_pre)`` (its
        synapses only; ``.toarray()`` gives the dense matrix with zeros off the pattern); :meth:`load_weights` and
        :meth:`set_weights` take it back."""
        out = {}
        if self._graph:   # parameters, with their shapes (weights, kernels and biases alike)
            return {name: self._backend.weight(k).copy() for k, name in enumerate(self.plan.proj_names)}
        for k, name in enumerate(self.plan.proj_names):
            if self.plan.w_off[k] >= 0:
                out[name] = self._backend.weight(k).copy()
            b = self._backend.bias(k)
            if b is not None:
                out[name + ".b"] = b.copy()
        return out

    def read_weights(self) -> dict:
        """The weight matrices a read sees ``{projection: (n_post, n_pre)}``: with ``hardware``, the stored
        weights with the device's read mismatch and drift at its current time; otherwise the stored weights
        (as :attr:`weights`, without the biases)."""
        if self.hardware is not None:
            return self.hardware.read_weights()
        return {k: v for k, v in self.weights.items() if not k.endswith(".b")}

    def set_weights(self, projection: str, W=None, b=None):
        """Overwrite a projection's weights and/or bias (shapes must match).  With ``hardware`` this sets
        the stored device values as given (no write non-idealities)."""
        if self._graph and isinstance(projection, str):
            if b is not None:
                raise ValueError(f"graph {self.circuit.name!r}: a graph's biases are parameters of their own; set "
                                 f"them by name, set_weights(name, W) (parameters: {self.plan.proj_names})")
            k = self.plan.proj_index(projection)
            dst = self._backend.weight(k)
            W = np.asarray(W, dtype=self.dtype)
            if W.shape != dst.shape:
                raise ValueError(f"graph {self.circuit.name!r}: parameter {projection!r} has shape {dst.shape}, got "
                                 f"{W.shape}")
            if not np.all(np.isfinite(W)):
                raise ValueError(f"graph {self.circuit.name!r}: parameter {projection!r} holds NaN or inf; pass "
                                 "finite values")
            dst[...] = W
            return
        if not isinstance(projection, str):
            raise TypeError(f"set_weights takes one projection name (one of {self.plan.proj_names}), got a "
                            f"{type(projection).__name__}; to set every weight from a dict like sim.weights use "
                            f"sim.load_weights(weights)")
        if projection.endswith(".b") and projection[:-2] in self.plan.proj_names and W is not None and b is None:
            raise ValueError(f"{projection!r} is the bias of projection {projection[:-2]!r}: use "
                             f"set_weights({projection[:-2]!r}, b=...) or load_weights({{{projection!r}: ...}})")
        k = self.plan.proj_index(projection)
        for name, v in (("W", W), ("b", b)):
            if v is not None and not np.all(np.isfinite(v.data if _sparse_input(v) else np.asarray(v, dtype=float))):
                raise ValueError(f"projection {projection!r}: {name} holds NaN or inf; pass finite values")
        if W is not None and self.plan.is_sparse(k):
            self._set_sparse_weights(k, projection, W)
            W = None
        if W is not None:
            if self.plan.w_off[k] < 0:
                raise ValueError(f"projection {projection!r} has no weight matrix")
            dst = self._backend.weight(k)
            if _sparse_input(W):
                raise ValueError(f"projection {projection!r} is dense ({dst.shape[0]} x {dst.shape[1]}) and W is a "
                                 f"sparse matrix: pass W.toarray()")
            W = np.asarray(W, dtype=self.dtype)
            if W.shape != dst.shape:
                raise ValueError(f"projection {projection!r}: W must have shape {dst.shape}, got {W.shape}")
            dst[...] = W
        if b is not None:
            dst = self._backend.bias(k)
            if dst is None:
                raise ValueError(f"projection {projection!r} has no bias; declare it with bias=True")
            b = np.asarray(b, dtype=self.dtype)
            if b.shape != dst.shape:
                raise ValueError(f"projection {projection!r}: b must have shape {dst.shape}, got {b.shape}")
            dst[...] = b

    def _weight_norm(self, k: int) -> float:
        """Frobenius norm of projection ``k``'s weights (a sparse projection's synapses)."""
        w = self._backend.weight(k)
        return np.linalg.norm(w.data if (not self._graph and self.plan.is_sparse(k)) else w)

    def _set_sparse_weights(self, k: int, projection: str, W):
        """Write sparse projection ``k``'s synapses from a scipy.sparse matrix with its pattern (entries off the
        pattern refused), a dense ``(n_post, n_pre)`` array (read on the pattern; non-zeros off it refused) or
        an ``(nnz,)`` vector in CSR order."""
        p = self.plan
        shape = p.weight_shape(k)
        indptr, indices = p.sparse_csr(k)
        nnz = indices.size
        rows = np.repeat(np.arange(shape[0]), np.diff(indptr))
        if hasattr(W, "tocsr") and hasattr(W, "nnz"):
            if W.shape != shape:
                raise ValueError(f"projection {projection!r}: W must have shape {shape}, got {W.shape}")
            m = W.tocsr().tocoo()
            key = rows * shape[1] + indices             # sorted (CSR order is row-major)
            mk = m.row.astype(np.int64) * shape[1] + m.col.astype(np.int64)
            pos = np.searchsorted(key, mk)
            hit = (pos < nnz) & (key[np.minimum(pos, nnz - 1)] == mk)
            if np.any(~hit & (m.data != 0)):
                raise ValueError(f"projection {projection!r} is sparse and W has non-zero entries off its pattern "
                                 f"(e.g. at {(int(m.row[~hit][0]), int(m.col[~hit][0]))}); pass a matrix with the "
                                 f"projection's pattern (sim.weights[{projection!r}])")
            vals = np.zeros(nnz)
            np.add.at(vals, pos[hit], m.data[hit])
        else:
            W = np.asarray(W)
            if W.shape == (nnz,):
                vals = W
            elif W.shape == shape:
                vals = W[rows, indices]
                off = W.copy()
                off[rows, indices] = 0
                if np.any(off != 0):
                    raise ValueError(f"projection {projection!r} is sparse and W has non-zero entries off its "
                                     f"pattern; zero them, or pass a scipy.sparse matrix with its pattern")
            else:
                raise ValueError(f"projection {projection!r}: W must be a scipy.sparse matrix or an array of shape "
                                 f"{shape} (dense, zeros off the pattern) or ({nnz},) (its synapses in CSR order), "
                                 f"got shape {W.shape}")
        o = int(p.w_off[k])
        self._backend.W[o:o + nnz] = np.asarray(vals, dtype=self.dtype)

    def load_weights(self, weights: dict):
        """Set weights from a dict like :attr:`weights` (``"W1"`` matrices, ``"W1.b"`` biases); the projections
        the dict leaves out keep theirs.  All or nothing: if any entry is refused (an unknown name, a wrong
        shape, NaN), the error names it and no weight has changed."""
        if not isinstance(weights, collections.abc.Mapping):
            raise TypeError(f"load_weights takes a dict like sim.weights, got a {type(weights).__name__}")
        be = self._backend
        kept = (be.W.copy(), be.b.copy())
        try:
            for key, value in weights.items():
                if self._graph:
                    self.set_weights(key, value)
                elif key.endswith(".b"):
                    self.set_weights(key[:-2], b=value)
                else:
                    self.set_weights(key, W=value)
        except BaseException:
            be.W[...], be.b[...] = kept
            raise

    # ------------------------------------------------------------------ checkpoints
    #: weight and optimiser arrays of the backend saved in a checkpoint (all finite, same shape on load)
    _CKPT_ARRAYS = ("W", "b", "mW", "vW", "mb", "vb")
    _CKPT_FORMAT = 2

    def _fingerprint(self) -> str:
        p = self.plan
        fp = f"{self.circuit.name}|{p.pop_names}|{list(p.pop_size)}|{p.proj_names}|{p.W.size}|{p.b.size}"
        S = getattr(p, "S", None)
        if S is not None and S.size:   # sparse projections: their patterns (same size, other synapses = another circuit)
            import hashlib
            fp += "|S:" + hashlib.sha256(np.ascontiguousarray(S, dtype=np.int64).tobytes()).hexdigest()[:16]
        return fp

    def save_checkpoint(self, path) -> Path:
        """Write everything the next training batch depends on to ``path`` (``.npz``), atomically.

        That is: weights and biases; optimiser state (moments and step counts); the network state of the
        last batch (where ``init="previous"`` continues from); the step and batch counters; the backend's own
        state (:meth:`~neurosim.backends.base.Backend.checkpoint_state`, e.g. the run counter that seeds the
        brian2 backend's random draws); with ``hardware``, the substrate's state (the counters that seed its
        noise and rounding streams, the device clock and write times, the operation counts, the event
        engine's state); and the history, whose number of epochs seeds the next epoch's shuffling.  The data
        go to a temporary file beside ``path`` that is renamed over it, so ``path``
        always holds a complete checkpoint (temporary files of killed writers are removed).  Non-finite
        weights or optimiser state are refused (ValueError) and ``path`` is left as it was.
        """
        import json
        from .io import write_atomic
        be = self._backend
        members = {name: np.array(getattr(be, name)) for name in self._CKPT_ARRAYS}
        bad = [name for name, a in members.items() if not np.all(np.isfinite(a))]
        if bad:
            raise ValueError(f"save_checkpoint: the backend's {', '.join(bad)} hold NaN or inf (the training "
                             f"diverged); {str(path)!r} is not written, so it keeps its last good checkpoint")
        members["opt_t"] = np.array(be.opt_t, dtype=np.int64)
        members["counters"] = np.array([self._global_step, self._n_batches], dtype=np.int64)
        members["history"] = np.array(json.dumps({k: list(map(float, v)) for k, v in self.history.items()}))
        members["fingerprint"] = np.array(self._fingerprint())
        st = be.state()
        if st is not None:
            members["state_x"] = np.array(st["x"])
            members["state_eps"] = np.array(st["eps"])
        extra = be.checkpoint_state()
        for k, v in extra.items():
            members["backend_" + k] = np.array(v)
        info = {"format": self._CKPT_FORMAT, "backend": self.backend_name, "state": st is not None,
                "backend_state": sorted(extra)}
        if self.__dict__.get("_train_record") is not None:   # written by train: the settings of the run
            info["train"] = self._train_record
        if self.hardware is not None:   # device clock, write times, noise-stream counters, engine state
            hw_state = self.hardware.checkpoint_state()
            for k, v in hw_state.items():
                members["hardware_" + k] = np.array(v)
            info["hardware"] = sorted(hw_state)
            info["hardware_model"] = self._hardware_key()
        # 'meta' (which lists what else the file holds) is the archive's first member: a damaged zip directory
        # that hides members hides the last ones, and the loader finds them missing
        meta = np.array(json.dumps(info))
        members = {"meta": meta, **members}
        return write_atomic(path, lambda f: np.savez(f, **members))

    def load_checkpoint(self, path):
        """Restore what :meth:`save_checkpoint` wrote, all or nothing.

        The whole file is read and checked first (complete and undamaged, written for this circuit, every
        array of the right shape, weights and optimiser state finite); only then is anything replaced, so
        after an error the simulator is as it was.  Raises :class:`~neurosim.errors.CheckpointError` (a
        ValueError) naming the file for a corrupt, truncated or incomplete file, non-finite weights, or a
        checkpoint of another circuit; FileNotFoundError if there is no file.
        """
        self._check_open()
        self._apply_checkpoint(self._read_checkpoint(Path(path)))

    def _apply_checkpoint(self, ck: dict) -> None:
        """Replace the simulator's state with a checkpoint read (and checked) by :meth:`_read_checkpoint`."""
        be = self._backend
        if "state_x" not in ck and be.state() is not None:
            be.reset()   # the checkpoint was taken before any run: no network state to continue from
        for name in self._CKPT_ARRAYS:
            getattr(be, name)[...] = ck[name]
        be.opt_t[...] = ck["opt_t"]
        if "state_x" in ck:
            be.set_state(ck["state_x"], ck["state_eps"])
        if "backend" in ck:
            be.set_checkpoint_state(ck["backend"])
        if self.hardware is not None:
            self.hardware.set_checkpoint_state(ck["hardware"])
        self._global_step, self._n_batches = (int(v) for v in ck["counters"])
        self.history = ck["history"]

    def _read_checkpoint(self, path: Path) -> dict:
        """Read and validate a checkpoint file without changing anything (see :meth:`load_checkpoint`)."""
        import json
        import zipfile
        from .errors import CheckpointError

        def refuse(what):
            return CheckpointError(f"checkpoint {str(path)!r} cannot be used: {what}; delete it (or pass another "
                                   "checkpoint path) to start training afresh", path)

        if not path.exists():
            raise FileNotFoundError(f"no checkpoint at {str(path)!r}")
        try:
            if not zipfile.is_zipfile(path):
                raise refuse("it is not a checkpoint archive (truncated, or overwritten by something else)")
            with np.load(path, allow_pickle=False) as z:
                raw = {name: z[name] for name in z.files}   # reads (and CRC-checks) every member
        except CheckpointError:
            raise
        except Exception as e:  # noqa: BLE001 - whatever a damaged archive makes zipfile/numpy raise
            why = ("it holds pickled Python objects, which a neurosim checkpoint never does" if "allow_pickle" in str(e)
                   else f"{type(e).__name__}: {e}")
            why = why if len(why) <= 160 else why[:150] + " ..."
            raise refuse(f"it is damaged or truncated ({why})") from e
        be = self._backend
        meta = {"format": 1, "backend": None, "state": False, "backend_state": []}
        legacy = ["W", "b", "mW", "vW", "mb", "vb", "opt_t", "counters", "history", "fingerprint"]
        if "meta" not in raw and list(raw) != legacy:
            raise refuse(f"it lacks its 'meta' record and holds {sorted(raw)} (an incomplete or damaged file)")
        if "meta" in raw:   # files without it come from neurosim before checkpoint format 2
            try:
                meta = json.loads(str(raw["meta"]))
                assert isinstance(meta, dict) and isinstance(meta.get("backend_state"), list)
            except Exception:  # noqa: BLE001
                raise refuse("its 'meta' record is damaged") from None
            if meta.get("format") != self._CKPT_FORMAT:
                raise refuse(f"it has format {meta.get('format')!r}, this neurosim reads format {self._CKPT_FORMAT}")
        required = ["fingerprint", *self._CKPT_ARRAYS, "opt_t", "counters", "history"]
        required += ["state_x", "state_eps"] if meta.get("state") else []
        required += ["backend_" + k for k in meta["backend_state"]]
        hw_keys = meta.get("hardware")
        if hw_keys is not None and not (isinstance(hw_keys, list) and all(isinstance(k, str) for k in hw_keys)):
            raise refuse("its 'meta' record is damaged")
        required += ["hardware_" + k for k in hw_keys or []]
        missing = [name for name in required if name not in raw]
        if missing:
            raise refuse(f"it lacks {', '.join(repr(m) for m in missing)} (an incomplete or damaged file)")

        def array(name, shape, kind):
            a = raw[name]
            if a.shape != tuple(shape) or a.dtype.kind not in kind:
                raise refuse(f"{name!r} is {a.dtype} {a.shape}, expected shape {tuple(shape)}")
            return a

        fp = raw["fingerprint"]
        if fp.shape != () or fp.dtype.kind != "U":
            raise refuse("its circuit fingerprint is damaged")
        if str(fp) != self._fingerprint():
            raise CheckpointError(
                f"checkpoint {str(path)!r} was written for a different circuit ({_fingerprint_diff(str(fp), self._fingerprint())}); "
                "load it into a Simulator built from the same circuit, or pass another checkpoint path", path)
        ck = {name: array(name, getattr(be, name).shape, "f") for name in self._CKPT_ARRAYS}
        bad = [name for name in self._CKPT_ARRAYS if not np.all(np.isfinite(ck[name]))]
        if bad:
            raise refuse(f"{', '.join(bad)} hold NaN or inf (it was saved from a diverged run)")
        ck["opt_t"] = array("opt_t", be.opt_t.shape, "iu")
        ck["counters"] = array("counters", (2,), "iu")
        if np.any(ck["opt_t"] < 0) or np.any(ck["counters"] < 0):
            raise refuse("its step counters are negative")
        try:
            hist = json.loads(str(array("history", (), "U")))
            assert isinstance(hist, dict) and set(hist) <= set(History.KEYS)
            assert all(isinstance(v, list) and all(isinstance(x, (int, float)) for x in v) for v in hist.values())
        except CheckpointError:
            raise
        except Exception:  # noqa: BLE001
            raise refuse("its history is damaged") from None
        ck["history"] = History()
        for k, v in hist.items():
            ck["history"][k] = [int(x) if k in History.COUNTS else x for x in v]
        if meta.get("state"):
            x = raw["state_x"]
            if x.ndim != 2 or x.shape[0] < 1:
                raise refuse(f"'state_x' is {x.shape}, expected (batch, {self.plan.n_units})")
            ck["state_x"] = array("state_x", (x.shape[0], self.plan.n_units), "f")
            ck["state_eps"] = array("state_eps", x.shape, "f")
            if not (np.all(np.isfinite(ck["state_x"])) and np.all(np.isfinite(ck["state_eps"]))):
                raise refuse("its network state holds NaN or inf")
        if (hw_keys is None) != (self.hardware is None):
            raise CheckpointError(
                f"checkpoint {str(path)!r} was written by a simulator " + ("with" if hw_keys is not None else
                "without") + " hardware, this one runs " + ("without" if self.hardware is None else "with") +
                " hardware; load it into a Simulator built the same way, or pass another checkpoint path", path)
        if self.hardware is not None:
            if meta.get("hardware_model") != self._hardware_key():
                raise CheckpointError(
                    f"checkpoint {str(path)!r} was written for another hardware model; load it into a Simulator "
                    "with the same HardwareModel, or pass another checkpoint path", path)
            ck["hardware"] = {k: raw["hardware_" + k] for k in hw_keys}
            why = self.hardware.check_checkpoint_state(ck["hardware"])
            if why:
                raise refuse(why)
        train = meta.get("train")
        if train is not None and not isinstance(train, dict):
            raise refuse("its 'meta' record is damaged")
        ck["train"] = train
        if meta.get("backend") == self.backend_name:   # the backend's own state means nothing to another one
            want = be.checkpoint_state()
            if sorted(want) != sorted(meta["backend_state"]):
                raise refuse(f"its backend state {sorted(meta['backend_state'])} is not the {sorted(want)} "
                             f"of backend {self.backend_name!r}")
            ck["backend"] = {k: array("backend_" + k, np.shape(v), np.asarray(v).dtype.kind)
                             for k, v in want.items()}
        return ck

    def _hardware_key(self) -> str:
        import json
        return json.dumps(self.hardware.model.summary(), sort_keys=True, default=str)

    def _network_state(self):
        """``{"x", "eps", "mu": (B, n_units)}`` of the last batch (the event engine's when it relaxes), or None."""
        if self.hardware is not None and self.hardware.engine is not None:
            return self.hardware.state()
        return self._backend.state()

    @property
    def state(self) -> "NetworkState":
        """Copies of the network state ``{population: {"x", "eps", "mu": (B, n_units)}}`` left by the last
        batch (what ``init="previous"`` starts from), or ``{}`` before the first run or after :meth:`reset`.

        A property, like :attr:`weights`; the old call form ``sim.state()`` still works (deprecated).
        """
        st = self._network_state()
        if st is None:
            return NetworkState()
        return NetworkState({name: {k: st[k][:, self.plan.units(name)] for k in ("x", "eps", "mu")}
                             for name in self.plan.pop_names})

    def energy(self, X, Y=None, mode="clamp") -> float:
        """Energy F (batch mean) of the feedforward state, output clamped to Y (or free).

        A run of zero steps (:meth:`run` with ``steps=0``): ``sim.state`` then holds that feedforward state, and
        probes record it like any run."""
        res = self.run(X, Y, steps=0, mode=mode if Y is not None else "free")
        return float(res.total_energy[0])

    # ------------------------------------------------------------------ running
    def _spec(self, steps, mode, beta, init, tol, dt, dt_decay, integrator, learn, record):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")
        integrator = integrator or self.integrator
        if integrator not in INTEGRATORS:
            raise ValueError(f"integrator must be one of {list(INTEGRATORS)}, got {integrator!r}")
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"steps must be a non-negative int, got {steps!r}")
        if dt is not None or integrator != self.integrator:   # the checks of the constructor, for this run
            dt = self._check_dt(self.circuit, self.dt if dt is None else dt, integrator)
        else:
            dt = self.dt
        tol = 0.0 if tol is None else float(tol)
        if not tol >= 0:
            raise ValueError(f"tol must be >= 0, got {tol}")
        if 0 < tol < 1e-6 and self.dtype == np.float32 and not self.__dict__.get("_warned_tol32"):
            import warnings
            from .algorithms._common import _user_stacklevel
            self._warned_tol32 = True
            warnings.warn(f"tol={tol:g} is below what float32 resolves (rounding leaves max|dx/dt| around 1e-7 "
                          "times the values' scale over dt): the relaxation will likely take all its steps; use "
                          "tol >= 1e-6 or dtype='float64' (warned once per simulator)", RuntimeWarning,
                          stacklevel=_user_stacklevel())
        if not (0 < dt_decay <= 1):
            raise ValueError(f"dt_decay must be in (0, 1], got {dt_decay}")
        if isinstance(beta, np.ndarray) and beta.ndim == 0:
            beta = beta.item()
        if isinstance(beta, bool) or not isinstance(beta, (int, float, np.integer, np.floating)) or beta != beta:
            raise ValueError(f"beta must be a number (the nudging strength of mode='nudge'), got {beta!r}")
        if MODES[mode] != MODE_NUDGE and beta != 0:
            raise ValueError(f"beta={beta} is the nudging strength of mode='nudge' and does nothing with "
                             f"mode={mode!r}: pass mode='nudge' to nudge the output toward the target (an "
                             "algorithm's output weighting is options={'beta': ...})")
        if MODES[mode] != MODE_CLAMP and steps > 0 and self.plan.target_pop >= 0:
            # the target moves in this run: its pair with integrating error units (not checked at construction,
            # where a clamped target -- training's -- never integrates); with nudging, below with beta
            name = self.plan.pop_names[self.plan.target_pop]
            tau_e = (self.circuit.vertex(name).tau_eps if self._graph
                     else getattr(self.circuit.error_of(name), "tau_eps", 0.0))
            if tau_e > 0 and MODES[mode] != MODE_NUDGE:
                tau = float(self.plan.VF[self.plan.target, 1]) if self._graph else self.circuit.population(name).tau_x
                _check_pair(dt, integrator, f"free target population {name!r} with its integrating error units",
                            tau, tau_e, self.plan.precision[self.plan.units(name)])
        if MODES[mode] == MODE_NUDGE:
            if not beta > 0:
                raise ValueError("mode='nudge' needs beta > 0")
            if self.plan.target_pop >= 0:
                name = self.plan.pop_names[self.plan.target_pop]
                tau = float(self.plan.VF[self.plan.target, 1]) if self._graph else self.circuit.population(name).tau_x
                prec = float(np.max(self.plan.precision[self.plan.units(name)]))
                if dt * (prec + beta) / tau >= 2.0:
                    raise ValueError(
                        f"dt={dt} is too large for the nudged target population {name!r} (tau_x={tau}, precision "
                        f"{prec}, beta={beta}): explicit integration needs dt (precision + beta) / tau_x < 2; "
                        f"reduce dt or beta (beta < {2 * tau / dt - prec:.4g} at this dt)")
                tau_e = (self.circuit.vertex(name).tau_eps if self._graph
                         else getattr(self.circuit.error_of(name), "tau_eps", 0.0))
                if tau_e > 0:
                    _check_pair(dt, integrator, f"nudged target population {name!r} with its integrating error "
                                "units", tau, tau_e, self.plan.precision[self.plan.units(name)], float(beta))
        every = 0
        if record and any(p.variable in ("x", "eps", "mu", "energy") for p in self.probes):
            every = math.gcd(*[p.every for p in self.probes if p.variable in ("x", "eps", "mu", "energy")])
        return RunSpec(mode=MODES[mode], beta=float(beta), init=INITS[init], n_steps=int(steps), tol=tol,
                       integrator=INTEGRATORS[integrator], dt=dt, dt_decay=float(dt_decay), learn=bool(learn),
                       probe_every=every, probe_item=self._probe_item)

    def _as_2d(self, name, a, n_cols, allow_empty=False):
        """``a`` as a (batch, n_cols) array of this simulator's dtype; a graph circuit also takes image-shaped
        inputs (batch, C, H, W), read in C order."""
        owner = ""
        if self._graph:   # errors name the graph
            owner = f"graph {self.circuit.name!r}: "
            a = _real_array(name, a, self.dtype, owner)
            if a.ndim > 2 and name.startswith("X"):
                # image-shaped inputs must have the input's own shape: (C, H, W), or (H, W) for one channel (only
                # the flat size was checked: (B, 2, 4, 2) passed for a (1, 4, 4) input, read as other pixels)
                # several inputs of one shape (a sequence): (batch, n_inputs, *shape), one row per input in turn
                ins = [self.circuit.vertex(v) for v in self.circuit.inputs]
                shapes = {tuple(v.shape) for v in ins}
                if len(ins) > 1:
                    sh = shapes.pop() if len(shapes) == 1 else None
                    if sh is None or a.shape[1:] not in ((len(ins),) + sh, (len(ins), math.prod(sh))):
                        raise ValueError(
                            f"{owner}{name} has shape {np.shape(a)}; the graph's {len(ins)} inputs "
                            f"{list(self.circuit.inputs)} take the columns of a flat (batch, {self.plan.n_input}) "
                            f"{name} in turn" + (f" (or (batch, {len(ins)}, {math.prod(sh)}): one row per input)"
                                                 if sh is not None else ""))
                    return _as_2d(name, a.reshape(a.shape[0], -1), n_cols, self.dtype, allow_empty, owner)
                want = tuple(ins[0].shape)
                if not (a.shape[1:] == want or (want[0] == 1 and a.shape[1:] == want[1:])):
                    raise ValueError(f"{owner}{name} has shape {np.shape(a)}, but the input images have shape {want}: "
                                     f"pass (batch, {', '.join(map(str, want))}) or flat (batch, {math.prod(want)}) "
                                     f"arrays in C order")
            if a.ndim > 2:
                a = a.reshape(a.shape[0], -1)
        return _as_2d(name, a, n_cols, self.dtype, allow_empty, owner)

    def _inputs(self, X, Y, mode, names=("X", "Y")):
        nx, ny = names
        X = self._as_2d(nx, X, self.plan.n_input)
        if Y is None:
            if mode in (MODE_CLAMP, MODE_NUDGE) and self.plan.target_pop >= 0:
                raise ValueError(f"a target {ny} is needed for mode 'clamp' or 'nudge'")
        else:
            if self.plan.target_pop < 0:
                raise ValueError(f"circuit {self.circuit.name!r} has no target clamp; add ns.Clamp(name, 'target')")
            Y = self._as_2d(ny, Y, self.plan.n_target)
            if Y.shape[0] != X.shape[0]:
                raise ValueError(f"{nx} has {X.shape[0]} samples but {ny} has {Y.shape[0]}")
        return X, Y

    def _pop_size(self, name) -> int:
        return int(self.plan.pop_size[self.plan.pop_index(name)]) if self._graph else \
            int(self.circuit.population(name).size)

    def _probe_width(self, p) -> int:
        if p.variable in ("energy", "weight_norm"):
            return 1
        return self._pop_size(p.target)

    def _shared_store(self):
        """One record store for all x/eps/mu probes, written directly by the kernel (no copy), when they
        record at the same interval (the gcd of every recording probe's ``every``) with the same bound and
        select at least half of the ``3 * n_units`` columns; otherwise each probe keeps its own copies."""
        vp = [p for p in self.probes if p.variable in _VARS]
        if not vp:
            return None
        every = math.gcd(*[p.every for p in self.probes if p.variable in ("x", "eps", "mu", "energy")])
        if {p.every for p in vp} != {every} or len({p.max_records for p in vp}) != 1:
            return None
        cols = {(p.variable, p.target) for p in vp}
        if 2 * sum(self._pop_size(t) for _, t in cols) < 3 * self.plan.n_units:
            return None
        return _Ring(vp[0].max_records)

    def _record(self, res: BatchResult, spec: RunSpec, B: int, written: bool = False):
        if spec.probe_every == 0:
            return
        if self._probe_item >= B and not self.__dict__.get("_warned_probe_item"):
            names = [p.name for p in self.probes if p.variable in _VARS]
            if names:
                import warnings
                from .algorithms._common import _user_stacklevel
                self._warned_probe_item = True
                warnings.warn(f"probes {names} record batch item {self._probe_item}, and this batch has {B} items: "
                              "they record nothing for it (a probe's item= counts from 0; warned once per "
                              "simulator)", RuntimeWarning, stacklevel=_user_stacklevel())
        base = self._global_step
        sh = self._shared_rec
        if sh is not None and not written and self._probe_item < B:
            n = res.rec_steps.shape[0]
            block = sh.reserve(n, (3, self.plan.n_units), self.dtype)
            block[:, 0] = res.rec_x
            block[:, 1] = res.rec_eps
            block[:, 2] = res.rec_mu
            sh.commit(n, base + res.rec_steps)
        for p, units, col in self._probe_layout:
            if p.variable == "weight_norm" or (sh is not None and p.variable in _VARS):
                continue
            if p.variable == "energy":
                ks = np.arange(0, res.energy.shape[0], p.every)
                self.data.append(p.name, res.energy[ks, col:col + 1], base + ks)
                continue
            if self._probe_item >= B:
                continue
            # records are taken every spec.probe_every steps (the gcd of all probes' `every`), starting at 0
            stride = p.every // spec.probe_every
            src = res.rec_x if p.variable == "x" else res.rec_eps if p.variable == "eps" else res.rec_mu
            self.data.append(p.name, src[::stride, units], base + res.rec_steps[::stride])

    def _compute_batch(self, X, Y, spec, algo=None, options=None):
        """One batch on the backend (its kernel, or the algorithm's schedule); returns ``(BatchResult,
        written)``, ``written`` when the kernel wrote the probe records into the shared store itself."""
        written = False
        if self._graph:
            res = self._backend.run_graph(X, Y, spec, "pc" if algo is None else algo.name, options)[0]
            return res, False
        if algo is None or algo.run_batch is None:
            sh = self._shared_rec
            if (sh is not None and spec.probe_every > 0 and self._probe_item < X.shape[0]
                    and getattr(self._backend, "accepts_rec_out", False)):
                # the kernel writes the records into the store itself
                block = sh.reserve(int(spec.n_steps) // int(spec.probe_every) + 1, (3, self.plan.n_units),
                                   self.dtype)
                try:
                    res = self._backend.run_batch(X, Y, spec, rec_out=block)
                except BaseException:
                    sh.commit(0, None)
                    raise
                sh.commit(res.rec_steps.shape[0], self._global_step + res.rec_steps)
                written = True
            else:
                res = self._backend.run_batch(X, Y, spec)
        else:
            res = algo.run_batch(self, X, Y, spec, options or {})
        return res, written

    def _run_batch(self, X, Y, spec, batch=None, algo=None, options=None, evaluation=False) -> BatchResult:
        if spec.init == INITS["previous"] and not self.__dict__.get("_warned_previous"):
            if self.hardware is not None and self.hardware.engine is not None:
                st = self.hardware.state()
                rows = None if st is None else st["x"].shape[0]
            else:
                rows = self._backend.state_rows()   # (a copy of the state per batch would cost ~2% at batch 256)
            if rows is not None and rows != X.shape[0]:
                import warnings
                from .algorithms._common import _user_stacklevel
                self._warned_previous = True
                warnings.warn(
                    f"init='previous': the last batch left a state of {rows} items and this batch has "
                    f"{X.shape[0]}, so it starts from the feedforward pass instead (as every batch of a size other "
                    "than the last one's does, e.g. the partial last batch of an epoch: pick a batch_size that "
                    "divides the data to continue every batch; warned once per simulator)",
                    RuntimeWarning, stacklevel=_user_stacklevel())
        # a diverging run is reported below (DivergenceError with its step and population), not by NumPy's
        # overflow warnings from the reference backend's products first
        with np.errstate(over="ignore", invalid="ignore"):
            if self.hardware is not None:
                res, written = self.hardware.run_batch(X, Y, spec, algo, options, evaluation)
            else:
                res, written = self._compute_batch(X, Y, spec, algo, options)
        self._record(res, spec, X.shape[0], written)
        self._global_step += res.steps + 1
        if res.status != 0:
            pop = self.plan.pop_names[res.fail_pop]
            where = f" in training batch {batch}" if batch is not None else ""
            fix = "dt, the learning rate or the substrate's noise" if self.hardware is not None else \
                "dt or the learning rate"
            raise DivergenceError(
                f"the run diverged (NaN/inf) at step {res.fail_step} in population {pop!r}{where} (the first whose "
                f"error energy, or value, became non-finite: the values that grew may be those of the populations "
                f"predicting it); what was recorded up to that step is kept in sim.data and sim.history; "
                f"reduce {fix}",
                step=res.fail_step, population=pop, batch=batch)
        return res

    def run(self, X, Y=None, *, steps: int = 100, mode: str | None = None, beta: float = 0.0,
            init: str = "feedforward", tol: float | None = None, dt: float | None = None,
            dt_decay: float = 1.0, integrator: str | None = None, learn: bool = False) -> RelaxResult:
        """Relax one batch.

        Parameters
        ----------
        X : array (B, n_input)
        Y : array (B, n_target), optional
            The target; needed for ``mode="clamp"`` and ``"nudge"``.
        steps : int
            Maximum number of integration steps.
        mode : {"clamp", "free", "nudge"}, optional
            Default: ``"clamp"`` when ``Y`` is given (the target population is held at ``Y``), ``"free"``
            without it (the target population relaxes with the rest; from the feedforward start a layered
            network is already at its free equilibrium, so the traces stay flat).  ``"free"`` with ``Y``
            ignores ``Y``.
        beta : float
            Nudging strength (``mode="nudge"``).
        init : {"feedforward", "zeros", "previous"}
            Where the values start: the feedforward pass, zeros (free populations), or the state the last
            batch left (:attr:`state`).  "previous" with no state of this batch size -- the first run, after
            :meth:`reset`, or a batch of another size (which warns once) -- starts from the feedforward pass.
        tol : float, optional
            Stop early once max |dx/dt| (and |d eps/dt|) < tol; ``RelaxResult.steps`` says how many were taken.
        dt_decay : float
            < 1 multiplies dt by this factor whenever a step fails to lower the energy (Song et al.'s recipe).
        learn : bool
            Apply the Hebbian update at the end.

        With ``hardware`` the batch runs on the substrate and returns a
        :class:`~neurosim.hardware.HardwareRelaxResult` (events, synaptic ops and operation counts of the
        run); a learning run adds its counts to ``sim.hardware.counts``.
        """
        self._check_open()
        if mode is None:
            mode = "free" if Y is None else "clamp"
        spec = self._spec(steps, mode, beta, init, tol, dt, dt_decay, integrator, learn, record=True)
        X, Y = self._inputs(X, Y, spec.mode)
        res = self._run_batch(X, Y, spec)
        st = self._network_state()
        names = self.plan.pop_names
        fields = dict(
            steps=res.steps, energy=res.energy, populations=list(names),
            x={n: st["x"][:, self.plan.units(n)] for n in names},
            eps={n: st["eps"][:, self.plan.units(n)] for n in names},
            mu={n: st["mu"][:, self.plan.units(n)] for n in names}, y0=res.y0, dt=spec.dt)
        if self.hardware is None:
            return RelaxResult(**fields)
        from .hardware.substrate import HardwareRelaxResult
        ev = self._backend.last_events if self._graph else None   # graph circuits: the last batch's event counts
        if ev is not None:
            return HardwareRelaxResult(**fields, events=ev.events, sops=ev.sops, counts=self.hardware.last_counts)
        return HardwareRelaxResult(**fields, events=getattr(res, "events", None),
                                   events_init=getattr(res, "events_init", None), sops=getattr(res, "sops", None),
                                   skip_ops=getattr(res, "skip_ops", None), counts=self.hardware.last_counts)

    def learn(self, X, Y, *, steps: int = 50, **kwargs) -> RelaxResult:
        """One step of the standard schedule: relax with the target clamped, then one Hebbian update.

        ``steps`` defaults to 50 (one batch relaxed close to equilibrium; :meth:`run` takes 100, :meth:`train`
        20 per batch, the budget of many batches)."""
        kwargs.setdefault("mode", "clamp")
        return self.run(X, Y, steps=steps, learn=True, **kwargs)

    def predict(self, X, *, relax: bool = False, steps: int = 50, batch_size: int = 1024, **kwargs) -> np.ndarray:
        """Output of the target population with the output free.

        ``relax=False`` returns the feedforward prediction (the free equilibrium of a layered PCN);
        ``relax=True`` relaxes ``steps`` steps with the output free and returns its final value.
        An empty ``X`` (0 rows) gives an empty prediction.
        """
        self._check_open()
        X = self._as_2d("X", X, self.plan.n_input, allow_empty=True)
        mode = kwargs.pop("mode", "free")
        if mode != "free":   # a prediction has no target: 'nudge' pulled the output toward 0, 'clamp' to nothing
            raise ValueError(f"predict/evaluate run with the output free (mode='free'), got mode={mode!r}: a "
                             "prediction has no target to clamp or nudge toward; use run(X, Y, mode=...) for that")
        spec = self._spec(steps if relax else 0, mode, kwargs.pop("beta", 0.0),
                          kwargs.pop("init", "feedforward"), kwargs.pop("tol", None), kwargs.pop("dt", None),
                          kwargs.pop("dt_decay", 1.0), kwargs.pop("integrator", None), False, record=False)
        if kwargs:
            raise TypeError(f"predict() got unexpected arguments {sorted(kwargs)}")
        outs = []
        for i in range(0, X.shape[0], batch_size):
            res = self._run_batch(X[i:i + batch_size], None, spec, evaluation=True)
            outs.append(res.y)
        return np.concatenate(outs, axis=0) if outs else np.zeros((0, self.plan.n_target))

    def evaluate(self, X, Y, **kwargs) -> dict:
        """Feedforward loss ½‖t − ŷ‖² (mean over samples) and, for class-coded Y (:func:`class_coded`: one-hot or
        another two-level coding with one 'on' unit per row), accuracy (argmax of the prediction = the class)."""
        X = self._as_2d("X", X, self.plan.n_input)
        Y = self._as_2d("Y", Y, self.plan.n_target)
        if Y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} samples but Y has {Y.shape[0]}")
        Yhat = self.predict(X, **kwargs)
        out = {"loss": float(0.5 * np.mean(np.sum((Y - Yhat) ** 2, axis=1)))}
        if class_coded(Y):
            out["accuracy"] = float(np.mean(np.argmax(Yhat, axis=1) == np.argmax(Y, axis=1)))
        return out

    def _algorithm(self, algorithm, options):
        """Resolve ``algorithm`` and its ``options`` (merged with the defaults) for this circuit and backend,
        refusing what the backend cannot run before any work (never a silent host fallback)."""
        from . import algorithms
        if self._graph:
            from .graph.backend import GRAPH_ALGORITHMS
            if algorithm not in GRAPH_ALGORITHMS:
                raise ValueError(f"unknown algorithm {algorithm!r} for graph circuits; available: "
                                 f"{', '.join(sorted(GRAPH_ALGORITHMS))}")
            known = GRAPH_ALGORITHMS[algorithm]
            algo = algorithms.Algorithm(algorithm, "", None, known)
        else:
            algo = algorithms.get(algorithm)
            known = algo.options
        unknown = set(options or {}) - set(known)
        if unknown:
            raise ValueError(f"algorithm {algorithm!r} has no option(s) {sorted(unknown)}; options: "
                             f"{sorted(known) or 'none'}")
        options = {**known, **(options or {})}
        if self.hardware is not None:
            self.hardware.check_algorithm(algorithm, options, algo.options)
        elif not self._graph:
            algorithms.check_backend(algo, self, options)   # before any work: never a silent host fallback
        return algo, options

    def step(self, X, Y, algorithm: str = "pc", options: dict | None = None, *, steps: int = 20,
             mode: str = "clamp", beta: float = 0.0, init: str = "feedforward", tol: float | None = None,
             dt: float | None = None, dt_decay: float = 1.0, learn: bool = True) -> BatchResult:
        """One batch of ``algorithm`` -- the public per-batch call of :meth:`train` (experiments and benchmarks
        drive training with it): relax, then update the weights through their optimisers (``learn=False``:
        relax only).  Probes record and divergence raises :class:`~neurosim.DivergenceError` as in
        :meth:`train`; the training :attr:`history` is not extended.  Returns the
        :class:`~neurosim.backends.base.BatchResult` (``y0``: the feedforward prediction before the update,
        ``energy`` per population and step, ``steps`` taken).
        """
        self._check_open()
        algo, options = self._algorithm(algorithm, options)
        if mode not in ("clamp", "nudge"):
            raise ValueError(f"step needs mode 'clamp' or 'nudge', got {mode!r}")
        spec = self._spec(steps, mode, beta, init, tol, dt, dt_decay, None, bool(learn), record=True)
        X, Y = self._inputs(X, Y, spec.mode)
        res = self._run_batch(X, Y, spec, algo=algo, options=options)
        if learn:
            self._n_batches += 1
            self._record_weight_norms()
        return res

    def _record_weight_norms(self):
        """Record the ``weight_norm`` probes due after training batch ``self._n_batches`` (every ``p.every``)."""
        for p in self.probes:
            if p.variable == "weight_norm" and self._n_batches % p.every == 0:
                k = self.plan.proj_index(p.target)
                self.data.append(p.name, [[float(self._weight_norm(k))]], [self._n_batches])

    def directions(self, X, Y, algorithm: str = "bp", options: dict | None = None, *, steps: int = 20,
                   dt: float | None = None, result: bool = False):
        """The update direction of every parameter on one batch, leaving the weights, the optimiser state, the
        history and the records as they were (``sim.state`` then holds the state the schedule reached, as after
        :meth:`run`, for the schedules that relax in the backend: ``pc``, ``strict``, and all on graph circuits).

        Minus the gradient of the loss (``"bp"``) or of the energy at the state the schedule reaches (the
        Hebbian terms of ``"pc"``, ``"strict"``, ``"fpa"``, ``"zil"``), batch mean unless a rule uses
        ``batch_reduction="sum"``, before the learning rate and the optimiser -- with the output options
        ``output_precision``/``beta`` and ``compensate=True`` (the default) the Hebbian term times the compensation
        factor pi_L / (beta lambda) that training applies; keys as :attr:`weights`
        (layered circuits: ``"W1"``, ``"W1.b"``, a sparse projection's direction a ``scipy.sparse.csr_array`` with
        its pattern; graphs: parameter names, shared parameters summed over their uses).  ``"pc"`` relaxes as ``train(algorithm="pc")`` does (this simulator's integrator, ``dt`` over each
        ``tau_x``, error-unit dynamics, output options and ``convention``) and returns the Hebbian term
        ``eps_post^T phi(x_pre)`` at the reached state.  Once ``fpa`` (``eta=1``) or ``zil`` is
        exact, their directions equal ``bp``'s.  ``"ipc"`` updates
        at every step and has no single direction (ValueError).  ``steps`` and ``dt`` are the relaxation of
        ``pc`` and ``strict`` (``strict``: ``n`` and ``eta`` of its options when given); ``fpa`` and ``zil`` run their
        own schedules, set by their options (``fpa``: ``eta``, ``n`` -- default the depth; ``zil``: ``gamma``,
        L steps), and ``bp`` relaxes nothing, so ``steps``/``dt`` do not change their directions.
        ``result=True`` (graph circuits) also returns
        the :class:`~neurosim.graph.base.GraphBatchResult` of the run (final ``x``/``eps``/``mu`` in the plan's
        unit layout, ``energy`` per vertex and step -- of the levelled plan for ``zil``).
        """
        self._check_open()
        if algorithm == "ipc":
            raise ValueError("directions: 'ipc' updates the weights at every step of the relaxation, so it has no "
                             "single update direction; use step(..., algorithm='ipc') and compare the weights")
        algo, options = self._algorithm(algorithm, options)
        X, Y = self._inputs(X, Y, MODE_CLAMP)
        if self._graph:
            # bp relaxes nothing, so its dt is not checked against the time constants (as on layered circuits)
            spec = self._spec(steps, "clamp", 0.0, "feedforward", None, None if algorithm == "bp" else dt, 1.0, None,
                              False, record=False)
            res, gres = self._backend.run_graph(X, Y, spec, algorithm, options)
            if res.status != 0:
                raise DivergenceError(f"the run diverged (NaN/inf) at step {res.fail_step} in population "
                                      f"{self.plan.pop_names[res.fail_pop]!r}; reduce dt", step=res.fail_step,
                                      population=self.plan.pop_names[res.fail_pop])
            D = {name: self.plan.param_view(gres.directions, k).copy() for k, name in enumerate(self.plan.proj_names)}
            return (D, gres) if result else D
        if result:
            raise ValueError("directions(result=True) is for graph circuits; for a layered circuit call "
                             "neurosim.algorithms' fpa_updates / zil_updates / strict_updates for the BatchResult")
        return self._layered_directions(X, Y, algorithm, options, steps, dt)

    def _layered_directions(self, X, Y, algorithm, options, steps, dt):
        from .algorithms import backprop, fpa, pc, zil
        out = {}
        if algorithm == "bp" and getattr(self._backend, "name", "") == "brian2":
            from .backends.base import RunSpec
            res, dirs = backprop.brian2_sweep(self, X, Y, RunSpec(learn=False))   # brian2 computes -grad
            if dirs is None:
                raise DivergenceError("the run diverged (NaN/inf); reduce the learning rate", step=-1,
                                      population="?")
            gW, gb = dirs
        elif algorithm == "bp":
            _, _, gW, gb = backprop.gradients(self._backend, X, Y)   # batch means
            # minus the gradient, summed over the batch where the rule says so (as train applies it)
            sc = {k: 1.0 if self.plan.proj_mean[k] else float(X.shape[0]) for k in range(self.plan.n_proj)}
            gW = {k: -sc[k] * g for k, g in gW.items()}
            gb = {k: -sc[k] * g for k, g in gb.items()}
        else:
            kept = [a.copy() for a in (self._backend.W, self._backend.b)]
            if algorithm == "fpa":
                _, dirs = fpa.fpa_updates(self, X, Y, **options)
            elif algorithm == "zil":
                _, dirs = zil.zil_updates(self, X, Y, **options)
            elif algorithm == "pc":
                # the relaxation of train(algorithm="pc") -- this simulator's integrator, dt / tau_x, error-unit
                # dynamics and output options -- without the update; then the Hebbian term at the reached state
                spec = self._spec(steps, "clamp", 0.0, "feedforward", None, dt, 1.0, None, False, record=False)
                res, dirs, st = pc._relax(self, X, Y, pc._pc_spec(spec, options), options, "pc")
                if dirs is None and res.status == 0:
                    from .equations import LayeredEquations
                    state = self._backend.state()
                    net = LayeredEquations(self._backend, st.prec)
                    dirs = net.directions(state["eps"], net.phi(state["x"]))
            else:
                opts = dict(options)
                opts["eta"] = opts.get("eta") if opts.get("eta") is not None else (dt or self.dt)
                opts["n"] = opts.get("n") if opts.get("n") is not None else steps
                _, dirs = pc.strict_updates(self, X, Y, **opts)
            for a, v in zip((self._backend.W, self._backend.b), kept):
                if not np.array_equal(a, v):  # pragma: no cover - the helpers run with learn=False
                    raise RuntimeError("directions changed the weights")
            if dirs is None:
                raise DivergenceError("the run diverged (NaN/inf); reduce dt", step=-1, population="?")
            gW, gb = dirs
            # what train applies: with output_precision / beta and compensate=True, the Hebbian term times
            # 1 / (beta lambda / pi_L) (neurosim.algorithms._common); 1 otherwise
            from .algorithms._common import output_settings
            f = output_settings(algorithm, self.plan, options).factor
            if f != 1.0:
                gW = {k: f * g for k, g in gW.items()}
                gb = {k: f * g for k, g in gb.items()}
        for k, name in enumerate(self.plan.proj_names):
            if k in gW and self.plan.is_sparse(k):   # a sparse projection's direction has its pattern
                import scipy.sparse as sps
                indptr, indices = self.plan.sparse_csr(k)
                out[name] = sps.csr_array((np.array(gW[k], dtype=self.dtype), indices.copy(), indptr.copy()),
                                          shape=self.plan.weight_shape(k))
            elif k in gW:   # in the weights' dtype, as the graph form returns them (some schedules compute in
                out[name] = np.array(gW[k], dtype=self.dtype)   # float64 on a float32 simulator)
            if k in gb:
                out[name + ".b"] = np.array(gb[k], dtype=self.dtype)
        return out

    def train(self, X, Y, *, epochs: int = 10, batch_size: int = 32, steps: int = 20, algorithm: str = "pc",
              shuffle: bool = True, X_test=None, Y_test=None, progress: bool = True, mode: str = "clamp",
              beta: float = 0.0, tol: float | None = None, dt: float | None = None, dt_decay: float = 1.0,
              init: str = "feedforward", callback=None, options: dict | None = None,
              checkpoint=None, start_from=None) -> History:
        """Train with the prospective-configuration schedule (``algorithm="pc"``).

        Per mini-batch: input clamped, values start from the feedforward pass, the output is clamped to
        the target (or nudged, ``mode="nudge"``), the network relaxes ``steps`` steps (or to ``tol``), then
        one local Hebbian weight update.  Returns (and extends) ``sim.history``.

        ``epochs`` is how many epochs this call trains, counted from where the simulator stands: a
        second ``train(X, Y, epochs=4)`` trains 4 more (8 in all).  Defaults: 10 epochs of mini-batches
        of 32, 20 relaxation steps per batch (with :func:`~neurosim.hierarchy`'s defaults, lr 0.05 and SGD
        momentum 0.9, about 93% test accuracy on the bundled digits).

        ``checkpoint`` (a path) is rewritten atomically after every epoch.  If the file exists and this
        simulator has not trained yet (no epoch in its history, e.g. a fresh process), it is taken as an
        interrupted run of this same call: it is loaded and its epochs count toward ``epochs``, so
        re-running an interrupted script finishes the same total (shuffling depends only on the seed and
        the epoch index, so the result equals an uninterrupted run) and re-running a finished one trains
        nothing more.  A simulator that has trained already does not read the file; it trains ``epochs``
        more and overwrites it.  Use one checkpoint file per ``train`` call.  Resuming logs a notice (logger
        ``"neurosim"``) with the epochs found and those left.  The file records this call's settings (algorithm,
        options, batch size, shuffling, relaxation settings, seed, a digest of ``X`` and ``Y``); resuming it with
        other ones raises :class:`~neurosim.errors.CheckpointError` naming the differences, before anything is
        loaded (``epochs`` may differ).

        ``start_from`` (a path) goes on from another run's checkpoint with new settings (e.g. a smaller learning
        rate or batch size): while this call's own ``checkpoint`` does not exist yet, a simulator that has not trained
        loads ``start_from`` (weights, optimiser state, history; its settings are not checked) and trains until
        ``epochs`` in all, counting the epochs already in it; once ``checkpoint`` exists, re-running the same call
        resumes that instead, as above.

        Other schedules (``neurosim.algorithms.names()``, e.g. ``"bp"``) are chosen with ``algorithm``;
        ``options`` passes their settings.  An algorithm the backend cannot run itself (e.g. ``"fpa"``,
        ``"zil"`` or ``"bp"`` on brian2, ``"ipc"`` in brian2's spiking mode) raises
        :class:`~neurosim.UnsupportedError` before any work.  ``callback(sim, epoch)`` is called after each
        epoch; returning True stops training.

        With ``hardware`` every batch runs on the substrate (``algorithm`` ``"pc"`` or ``"bp"``; others
        raise :class:`~neurosim.UnsupportedError` here), operation counts accumulate in
        ``sim.hardware.counts``, and a checkpoint also keeps the substrate's state.
        """
        self._check_open()
        algo, options = self._algorithm(algorithm, options)
        if mode not in ("clamp", "nudge"):
            raise ValueError(f"training needs mode 'clamp' or 'nudge', got {mode!r}")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        spec = self._spec(steps, mode, beta, init, tol, dt, dt_decay, None, True, record=True)
        given = (X, Y)   # the data as given (the checkpoint's digest), not as converted to this simulator's dtype
        X, Y = self._inputs(X, Y, spec.mode)
        data_digest = _data_digest(*given) if checkpoint is not None else None
        if (X_test is None) != (Y_test is None):
            raise ValueError("train: X_test and Y_test go together; pass both (or neither)")
        if X_test is not None:
            X_test, Y_test = self._inputs(X_test, Y_test, spec.mode, names=("X_test", "Y_test"))
        classify = class_coded(Y)
        n = X.shape[0]
        n_batches = -(-n // batch_size)
        if checkpoint is not None:
            from .io import remove_stale_temporaries
            remove_stale_temporaries(checkpoint)   # left by a run killed while saving; never read
        record = None
        if checkpoint is not None:
            record = self._train_settings(algorithm, options, batch_size, spec, shuffle, data_digest)
        if start_from is not None:
            if self.history["epoch_loss"]:
                raise ValueError("train: start_from needs a simulator that has not trained yet (its epochs would be "
                                 "replaced); build a new Simulator, or call sim.load_checkpoint(path) yourself")
            if checkpoint is not None and Path(start_from).resolve() == Path(checkpoint).resolve():
                raise ValueError("train: start_from and checkpoint are the same file; start_from is the run to go on "
                                 "from, checkpoint the new run's own file")
        if checkpoint is not None and not self.history["epoch_loss"] and Path(checkpoint).exists():
            # a simulator that has not trained yet resumes an interrupted run of this call
            self._check_open()
            ck = self._read_checkpoint(Path(checkpoint))
            diff = _settings_diff(ck.get("train"), record)
            if diff:
                from .errors import CheckpointError
                raise CheckpointError(
                    f"checkpoint {str(checkpoint)!r} is of a train() call with other settings ({diff}); resuming "
                    "would mix the two runs. Call train with the checkpoint's settings to finish that run; to go on "
                    f"from it with the new settings, pass start_from={str(checkpoint)!r} and another checkpoint "
                    "path; or delete the file to start afresh", checkpoint)
            self._apply_checkpoint(ck)
            what = f"resuming from checkpoint {str(checkpoint)!r}"
        elif start_from is not None:
            # a new run that goes on from another one's checkpoint (its settings may differ): loaded only while this
            # run has no checkpoint of its own yet, so that re-running the same call resumes this run instead
            if not Path(start_from).exists():
                raise FileNotFoundError(f"train: no checkpoint at start_from={str(start_from)!r}")
            self.load_checkpoint(start_from)
            what = f"starting from checkpoint {str(start_from)!r} (start_from)"
        else:
            what = None
        if what is not None:
            done = len(self.history["epoch_loss"])
            from .config import log
            log.warning("neurosim: train: %s, which holds %d epoch(s); %s (%s)", what, done,
                        f"training the {epochs - done} remaining of epochs={epochs}" if done < epochs else
                        f"epochs={epochs} are done already, so nothing more is trained",
                        "delete the file, or pass another checkpoint path, to start afresh" if "resuming" in what else
                        "epochs counts these too; leave start_from out to start afresh")
            epochs = max(0, epochs - done)
        h = self.history
        from .progress import progress_bar
        bar = progress_bar(total=epochs * n_batches, desc="train", enabled=progress)
        self._train_record = record
        try:
            for epoch in range(epochs):
                t0 = time.perf_counter()
                order = np.random.default_rng([self.seed, len(h["epoch_loss"])]).permutation(n) if shuffle \
                    else np.arange(n)
                losses, accs = [], []
                for bi in range(n_batches):
                    idx = order[bi * batch_size:(bi + 1) * batch_size]
                    xb, yb = X[idx], Y[idx]
                    res = self._run_batch(xb, yb, spec, batch=self._n_batches, algo=algo, options=options)
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
                    self._record_weight_norms()
                    bar.update(1)
                    if bi % 10 == 0 or bi == n_batches - 1:
                        post = {"loss": f"{np.mean(h['loss'][-n_batches:]):.4f}"}
                        if classify:
                            post["acc"] = f"{np.mean(h['accuracy'][-n_batches:]):.3f}"
                        bar.set_postfix(post)
                h["epoch_loss"].append(sum(losses) / n)
                h["epoch_end_batch"].append(len(h["loss"]))
                if classify:
                    h["epoch_accuracy"].append(sum(accs) / n)
                if X_test is not None and Y_test is not None:
                    # the evaluation's batch replaces the network state: a 'previous' start of the next epoch
                    # continues from the training batch's state, not from the test set's
                    kept = (self._backend.state() if spec.init == INITS["previous"]
                            and (self.hardware is None or self.hardware.engine is None) else None)
                    ev = self.evaluate(X_test, Y_test)
                    if kept is not None:
                        self._backend.set_state(kept["x"], kept["eps"])
                    h["test_loss"].append(ev["loss"])
                    h["test_epoch"].append(len(h["epoch_loss"]))
                    if "accuracy" in ev:
                        h["test_accuracy"].append(ev["accuracy"])
                h["epoch_time"].append(time.perf_counter() - t0)
                if checkpoint is not None:
                    self.save_checkpoint(checkpoint)
                if callback is not None and callback(self, epoch):
                    break
        finally:
            bar.close()
            self._train_record = None
        return h

    def _train_settings(self, algorithm, options, batch_size, spec, shuffle, data_digest) -> dict:
        """What a checkpoint of :meth:`train` records of the call, so that resuming with other settings is refused:
        everything the run's numbers depend on except the number of epochs (resuming with more is finishing a
        longer run) -- the schedule and its options, the batching and shuffling, the relaxation's settings, the
        dtype, the seed (which orders the epochs), the circuit's settings (activations, plasticity and optimiser,
        precisions, time constants: a digest of its description without probes; its structure is the checkpoint's
        fingerprint) and the training data (its size and a digest of its values in float64)."""
        import json
        name = algorithm if isinstance(algorithm, str) else getattr(algorithm, "name", type(algorithm).__name__)
        return {"algorithm": str(name),
                "options": json.loads(json.dumps(options or {}, sort_keys=True, default=_setting_leaf)),
                "batch_size": int(batch_size), "shuffle": bool(shuffle), "seed": self.seed,
                "steps": int(spec.n_steps), "mode": _name_of(MODES, spec.mode), "beta": float(spec.beta),
                "init": _name_of(INITS, spec.init), "tol": float(spec.tol), "dt": float(spec.dt),
                "dt_decay": float(spec.dt_decay), "integrator": _name_of(INTEGRATORS, spec.integrator),
                "dtype": self.dtype.name,
                "circuit": _circuit_settings(self.circuit),
                "data": data_digest}

    # ------------------------------------------------------------------ lifecycle
    def reset(self):
        """Clear the network state and the recorded probe data; keep what was learned.

        As ``reset()`` of a Nengo simulator: the network state (what ``init="previous"`` would start from),
        every probe record (:meth:`ProbeData.clear`) and the step count of the records go; the weights, the
        optimiser state and the training :attr:`history` stay.  To clear only the probe data use
        ``sim.data.clear()``; to start over from the initial weights use :meth:`reinitialize`.
        """
        self._check_open()
        self._backend.clear_state()
        if self.hardware is not None:
            self.hardware.reset()
        self.data.clear()
        self._global_step = 0

    def reinitialize(self):
        """Start over: the initial weights back (those drawn from ``seed`` when the simulator was built),
        optimiser state, network state, probe data and training history cleared -- everything learned is lost.

        To clear only the network state and the probe data use :meth:`reset`; only the probe data,
        ``sim.data.clear()``.
        """
        self._check_open()
        self._backend.reset()
        if self.hardware is not None:
            self.hardware.setup()   # initial weights programmed again; device clock and counts cleared
        self.data.clear()
        self.history = History()
        self._global_step = 0
        self._n_batches = 0

    def close(self):
        if not self._closed:
            self._backend.close()
            self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        hw = "" if self.hardware is None else f", hardware={self.hardware!r}"
        return (f"Simulator(circuit={self.circuit.name!r}, backend={self.backend_name!r}, dt={self.dt}, "
                f"dtype={self.dtype.name}, integrator={self.integrator!r}{hw})")


def _sparse_input(v) -> bool:
    """Whether ``v`` is a scipy.sparse matrix or array (without importing scipy when it is not loaded)."""
    import sys
    sp = sys.modules.get("scipy.sparse")
    return sp is not None and sp.issparse(v)


def _settings_diff(saved, now) -> str:
    """The train settings that differ between a checkpoint's record and this call ("" when none, or when the
    checkpoint has no record: written by ``save_checkpoint`` itself or by a neurosim before the record).  Only
    settings both records have count, and of the options only those both have (a later neurosim may add a setting
    or an option with a default that keeps the numbers)."""
    if not saved or not now:
        return ""
    out = []
    for k in now:
        if k not in saved:
            continue
        a, b = saved[k], now[k]
        if k == "options" and isinstance(a, dict) and isinstance(b, dict):
            a = {o: v for o, v in a.items() if o in b}
            b = {o: v for o, v in b.items() if o in a}
        if k == "circuit":
            if isinstance(a, dict) and isinstance(b, dict):
                out += _circuit_diff(a, b)
            continue   # (a record of another form, from a development version: not compared)
        if a != b:
            out.append(f"{'training data' if k == 'data' else k} {a!r} in the checkpoint, {b!r} now")
    return "; ".join(out)


def _circuit_diff(a: dict, b: dict) -> list:
    """The differences between two :func:`_circuit_settings` records, named part by part and setting by setting; a
    part on one side only is a difference; a field one record lacks (a later neurosim's) is not."""
    out = []
    for field in b:
        if field not in a:
            continue
        x, y = a[field], b[field]
        if isinstance(x, dict) and isinstance(y, dict) and all(isinstance(v, dict) for v in (*x.values(), *y.values())):
            for name in sorted(set(x) | set(y)):   # a collection: its named parts
                if name not in x or name not in y:
                    out.append(f"circuit: {field} {name!r} {'only now' if name not in x else 'only in the checkpoint'}")
                    continue
                out += [f"circuit: {field} {name!r} {key} {_short(x[name][key])} in the checkpoint, "
                        f"{_short(y[name][key])} now" for key in y[name] if key in x[name]
                        and x[name][key] != y[name][key]]
        elif isinstance(x, dict) and isinstance(y, dict):   # one dataclass field, flattened
            out += [f"circuit: {field}.{key} {_short(x[key])} in the checkpoint, {_short(y[key])} now"
                    for key in y if key in x and x[key] != y[key]]
        elif x != y:
            out.append(f"circuit: {field} {_short(x)} in the checkpoint, {_short(y)} now")
    return out


def _short(text, n=100) -> str:
    text = repr(text) if isinstance(text, str) else str(text)
    return text if len(text) <= n else text[:n - 5] + " ...)"


def _circuit_settings(circuit) -> dict:
    """The circuit's settings a run's numbers depend on, part by part: ``{"projections": {"W1": {"plasticity.lr":
    0.02, "plasticity.optimizer.kind": "sgd", ...}, ...}, "populations": {...}, ...}`` -- every named part of each
    collection (populations, error populations, projections, clamps, vertices, params) with its fields flattened to
    leaves (:func:`_setting_leaf`), and the circuit's other fields; not its probes (what is recorded), its name, nor
    fields computed from the others (``repr=False``).  Its structure is also the checkpoint's fingerprint."""
    import dataclasses
    if not dataclasses.is_dataclass(circuit):
        return {"circuit": _setting_leaf(circuit)}
    out = {}
    for f in dataclasses.fields(circuit):
        if f.name in ("probes", "name") or not f.repr:
            continue
        v = getattr(circuit, f.name)
        if isinstance(v, tuple) and all(dataclasses.is_dataclass(x) and hasattr(x, "name") for x in v):
            out[f.name] = {str(x.name): _flat_settings(x, skip=("name",)) for x in v}
        else:
            out[f.name] = _flat_settings(v) if dataclasses.is_dataclass(v) else _setting_leaf(v)
    return out


def _flat_settings(obj, prefix="", skip=()) -> dict:
    """A dataclass's fields as ``{"a.b.c": leaf}`` (nested dataclasses flattened; fields with ``repr=False`` left out)."""
    import dataclasses
    out = {}
    for g in dataclasses.fields(obj):
        if g.name in skip or not g.repr:
            continue
        v = getattr(obj, g.name)
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            out.update(_flat_settings(v, f"{prefix}{g.name}."))
        else:
            out[f"{prefix}{g.name}"] = _setting_leaf(v)
    return out


def _setting_leaf(v):
    """One setting as a JSON value that is the same for the same numbers whatever their type or NumPy's printing:
    numbers as floats (``1`` and ``np.float64(1.0)`` alike), arrays as a digest of their float64 values, sequences
    element by element, anything else its repr without memory addresses."""
    import hashlib
    if isinstance(v, (bool, np.bool_)) or v is None or isinstance(v, str):
        return v.item() if isinstance(v, np.bool_) else v
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    if isinstance(v, np.ndarray):
        a = np.ascontiguousarray(v, dtype=np.float64) if v.dtype.kind in "biuf" else None
        if a is None:
            return _stable_repr(v)
        return f"array{a.shape} sha256 " + hashlib.sha256(a.tobytes()).hexdigest()[:16]
    if isinstance(v, (tuple, list)):
        import dataclasses
        return [_flat_settings(x) if dataclasses.is_dataclass(x) and not isinstance(x, type) else _setting_leaf(x)
                for x in v]
    return _stable_repr(v)

def _data_digest(X, Y) -> str:
    """``"<n> samples, sha256 <digest>"`` of the training data as given, in float64 (so that the same data given
    as float32 or float64, or to a float32 simulator, has the same digest)."""
    import hashlib
    h = hashlib.sha256()
    n = None
    for a in (X, Y):
        if _sparse_input(a):
            a = a.toarray()
        a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
        n = a.shape[0] if n is None and a.ndim else n
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return f"{n} samples, sha256 {h.hexdigest()[:16]}"


def _name_of(table: dict, code) -> str:
    """The name of a setting's code in one of the backends' tables (MODES, INITS, INTEGRATORS)."""
    return next((k for k, v in table.items() if v == code), str(code))


def _stable_repr(obj) -> str:
    """``repr(obj)`` without memory addresses (``<function f at 0x7f...>``), which differ between processes."""
    import re
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(obj))
