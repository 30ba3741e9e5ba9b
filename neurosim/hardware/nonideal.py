r"""Analog and neuromorphic non-idealities as composable, seeded transforms.

A :class:`HardwareModel` lists transforms per *site*, the place in the circuit where a signal or a device
state is touched.  The sites, and the transforms each accepts:

==========  =======================================================  ==========================================
site        what it acts on                                          transforms
==========  =======================================================  ==========================================
values      the output :math:`\phi(x)` of every value unit           Quantize, AdditiveNoise, MultiplicativeNoise,
                                                                     Mismatch(per="neuron")
errors      the output :math:`\varepsilon` of every error unit       same as values
dac         what a unit drives into its synapses (layer inputs)      same as values (usually one Quantize)
adc         the summed synaptic current read out at a neuron         same as values (usually one Quantize)
            (layer outputs, before the bias is added)
reads       the effective weight of every synaptic read              Mismatch(per="synapse" | "neuron"),
                                                                     AdditiveNoise, MultiplicativeNoise, Drift
updates     the intended weight change :math:`\Delta w` of a write   Quantize (pulse granularity), AsymmetricUpdate
weights     the stored weight after a write (and when programmed)    Quantize (conductance levels), WriteNoise,
                                                                     StuckAt
==========  =======================================================  ==========================================

Every transform has an *off* setting (``std=0``, ``bits=None``, ``p=0``, ``nu=0``, ``up=down=1``); a model whose
transforms are all off runs the ideal path bit for bit.  All randomness is seeded: fixed-pattern quantities
(mismatch, fault maps, drift exponents) are drawn once per device from ``SeedSequence([seed, site, index])``
so that adding a transform never changes another one's pattern; cycle-to-cycle quantities (noise, stochastic
rounding) are redrawn at every use from per-batch streams.

Default parameter values and their sources (research notes ``neuromorphic.md`` sections 3-4):

* weight levels: Loihi 8-bit mantissa (``num_weight_bits`` 0-8; lava learning constants, *verified*),
  97-128 levels (NeuroSim), 2048 levels (Rao et al., Nature 2023, *verified*);
* converter precision: aihwkit ``IOParameters`` inp_res 1/126 (7 bit), out_res 1/510 (9 bit), inp_bound 1,
  out_bound 12 (*verified*, ``simulator/parameters/io.py``) -- see :data:`AIHWKIT_DAC` / :data:`AIHWKIT_ADC`;
* read noise: aihwkit ``w_noise`` 0.01 for ReRAM (*verified* docstring);
* device-to-device mismatch: aihwkit ``*_dtod`` 0.1-0.3, analog neurons about 10 % (teili, *verified*);
* write noise: NeuroSim Ag:a-Si sigma_c2c 3.5 % of the range per sqrt(pulse) (*verified*, ``Cell.cpp``);
* soft bounds: aihwkit SoftBounds :math:`\Delta w^\pm = \Delta(1 - w / w_{max|min})` (*verified* presets);
* stuck-at faults: about 10 % faulty devices on HfO2 RRAM test chips (*verified*, Aguirre et al. 2021);
* drift: PCM :math:`G(t) = G_{prog} (t / t_0)^{-\nu}`, :math:`t_0 = 20` s, :math:`\nu \approx 0.05`
  (aihwkit PCMLikeNoiseModel, Nandakumar 2019, *verified*).
"""
from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field, fields

import numpy as np

from ..circuit import _as_tuple

__all__ = [
    "Transform", "Quantize", "AdditiveNoise", "MultiplicativeNoise", "Mismatch", "WriteNoise", "AsymmetricUpdate",
    "StuckAt", "Drift", "Converter", "HardwareModel", "Device", "SITES", "ELEMENTWISE_SITES", "AIHWKIT_DAC",
    "AIHWKIT_ADC", "apply_elementwise", "read_noise_std",
]

#: sites in the order the kernels index them (the first four are elementwise on unit outputs/inputs)
ELEMENTWISE_SITES = ("values", "errors", "dac", "adc")
SITES = ELEMENTWISE_SITES + ("reads", "updates", "weights")
SITE_CODE = {s: i for i, s in enumerate(SITES)}

# kernel codes of elementwise transforms (shared with kernel.py)
K_QNEAR, K_QSTOCH, K_ADD, K_MUL, K_MMGAIN, K_MMOFF = 1, 2, 3, 4, 5, 6


def _check_number(owner, name, value, *, low=None, low_open=False, allow_none=False, allow_inf=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{owner}: {name} must be a number, got {value!r}")
    v = float(value)
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{owner}: {name} must be finite, got {value!r}")
    if low is not None and (v <= low if low_open else v < low):
        raise ValueError(f"{owner}: {name} must be {'>' if low_open else '>='} {low}, got {value!r}")


class Transform(abc.ABC):
    """Base class of all non-idealities (frozen dataclasses).  ``sites`` lists where a transform may go."""

    sites: tuple = ()

    @property
    @abc.abstractmethod
    def off(self) -> bool:
        """True when the transform is switched off (it then leaves every value bit-identical)."""

    def describe(self) -> str:
        args = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return f"{type(self).__name__}({args})"


# ------------------------------------------------------------------------------------------ elementwise
@dataclass(frozen=True)
class Quantize(Transform):
    r"""Uniform quantisation with limited range, deterministic or stochastic rounding.

    .. math::

        q(v) = \Delta\, \mathrm{clip}\big(\mathrm{round}(\mathrm{clip}(v/\Delta, k_{min}, k_{max})),
        k_{min}, k_{max}\big)

    ``bits`` and ``bound`` give a symmetric grid with a zero level, :math:`\Delta = b / (2^{n-1} - 1)` and
    :math:`k \in [-(2^{n-1}-1), 2^{n-1}-1]` (``signed=True``, e.g. int8 = -127..127), or
    :math:`\Delta = b / (2^n - 1)`, :math:`k \in [0, 2^n - 1]` (``signed=False``).  Alternatively ``step``
    gives :math:`\Delta` directly (pulse granularity ``dw_min`` of a device), clipped to ``bound`` when given.
    ``rounding="nearest"`` rounds half up (:math:`|q - v| \le \Delta/2` inside the range);
    ``"stochastic"`` rounds up with probability equal to the fractional part, so :math:`E[q(v)] = v`
    and :math:`|q - v| < \Delta` (Loihi learning engine, aihwkit pulsed updates).

    Off when ``bits`` and ``step`` are both None.
    """

    bits: int | None = 8
    bound: float | None = 1.0
    step: float | None = None
    signed: bool = True
    rounding: str = "nearest"
    sites = ("values", "errors", "dac", "adc", "updates", "weights")

    def __post_init__(self):
        own = self.describe()
        if self.rounding not in ("nearest", "stochastic"):
            raise ValueError(f"{own}: rounding must be 'nearest' or 'stochastic', got {self.rounding!r}")
        if self.bits is not None and self.step is not None:
            raise ValueError(f"{own}: give either bits (with bound) or step, not both")
        if self.bits is not None:
            if isinstance(self.bits, bool) or not isinstance(self.bits, (int, np.integer)):
                raise ValueError(f"{own}: bits must be an int, got {self.bits!r}")
            min_bits = 2 if self.signed else 1
            if not min_bits <= self.bits <= 52:
                raise ValueError(f"{own}: bits must be in [{min_bits}, 52] for signed={self.signed}, got {self.bits}")
            _check_number(own, "bound", self.bound, low=0, low_open=True)
        if self.step is not None:
            _check_number(own, "step", self.step, low=0, low_open=True)
            _check_number(own, "bound", self.bound, low=0, low_open=True, allow_none=True)

    @property
    def off(self) -> bool:
        return self.bits is None and self.step is None

    def grid(self) -> tuple:
        """``(step, k_min, k_max)`` of the quantisation grid (k_min/k_max may be infinite)."""
        if self.bits is not None:
            L = 2 ** (self.bits - 1) - 1 if self.signed else 2 ** self.bits - 1
            return float(self.bound) / L, (-float(L) if self.signed else 0.0), float(L)
        step = float(self.step)
        if self.bound is None:
            return step, (-math.inf if self.signed else 0.0), math.inf
        kmax = float(math.floor(float(self.bound) / step + 1e-9))
        return step, (-kmax if self.signed else 0.0), kmax

    def apply(self, v, rng=None):
        """Quantise an array (``rng`` is needed for stochastic rounding)."""
        return apply_elementwise((self,), v, rng=rng)


@dataclass(frozen=True)
class _RedrawnNoise(Transform):
    """Gaussian noise of standard deviation ``std`` (>= 0; 0 is off) redrawn at every use; the subclass says how
    it enters (:func:`apply_elementwise` dispatches on the type)."""

    std: float = 0.0
    sites = ("values", "errors", "dac", "adc", "reads")

    def __post_init__(self):
        _check_number(self.describe(), "std", self.std, low=0)

    @property
    def off(self) -> bool:
        return self.std == 0

    def apply(self, v, rng=None):
        return apply_elementwise((self,), v, rng=rng)


@dataclass(frozen=True)
class AdditiveNoise(_RedrawnNoise):
    r"""Zero-mean Gaussian noise redrawn at every use: :math:`v + \sigma \xi`, :math:`\xi \sim N(0, 1)`.

    On ``reads`` it perturbs every weight read, :math:`w + \sigma\xi`; a read of a whole row is then the
    exact Gaussian :math:`\sum_j w_j s_j + \sigma \sqrt{\sum_j s_j^2}\, \xi` (see :func:`read_noise_std`).
    """


@dataclass(frozen=True)
class MultiplicativeNoise(_RedrawnNoise):
    r"""Gaussian gain noise redrawn at every use: :math:`v (1 + \sigma \xi)`.

    On ``reads`` (per-read conductance noise, aihwkit ``w_noise``; 0.01 for ReRAM) a read of a row is the
    exact Gaussian :math:`\sum_j w_j s_j + \sigma \sqrt{\sum_j w_j^2 s_j^2}\, \xi`.
    """


@dataclass(frozen=True)
class Mismatch(Transform):
    r"""Device-to-device (fixed-pattern) mismatch, drawn once per device and frozen.

    ``kind="gain"``: :math:`v \to g_i v` with :math:`g_i = \max(0, 1 + \sigma \xi_i)` (truncated at 0 as in
    teili's ``add_mismatch``); ``kind="offset"``: :math:`v \to v + \sigma \xi_i`.  ``per="neuron"`` draws one
    value per unit (on ``reads``: one gain per post-synaptic row); ``per="synapse"`` one per weight (``reads``
    only).  Typical :math:`\sigma`: 0.1 for analog neurons (teili), 0.05-0.3 for synaptic devices (aihwkit
    ``*_dtod``).
    """

    std: float = 0.0
    per: str = "neuron"
    kind: str = "gain"
    sites = ("values", "errors", "dac", "adc", "reads")

    def __post_init__(self):
        own = self.describe()
        _check_number(own, "std", self.std, low=0)
        if self.per not in ("neuron", "synapse"):
            raise ValueError(f"{own}: per must be 'neuron' or 'synapse', got {self.per!r}")
        if self.kind not in ("gain", "offset"):
            raise ValueError(f"{own}: kind must be 'gain' or 'offset', got {self.kind!r}")

    @property
    def off(self) -> bool:
        return self.std == 0

    def draw(self, shape, rng) -> np.ndarray:
        """The frozen pattern: gains (>= 0) or offsets of the given shape."""
        xi = rng.standard_normal(shape)
        if self.kind == "gain":
            return np.maximum(0.0, 1.0 + self.std * xi)
        return self.std * xi


# ------------------------------------------------------------------------------------------ write path
@dataclass(frozen=True)
class WriteNoise(Transform):
    r"""Cycle-to-cycle write (programming) noise on every written weight.

    :math:`w \to w + \sigma \xi` per write, or with a pulse granularity ``dw_min``,
    :math:`w \to w + \sigma \sqrt{n_{pulses}}\, \xi` with :math:`n_{pulses} = |\Delta w| / dw_{min}` (NeuroSim:
    :math:`\sigma_{c2c}` = 3.5 % of the conductance range per sqrt(pulse) for Ag:a-Si).  Only elements
    actually written (non-zero update) are perturbed; at programming every weight is written from 0.
    """

    std: float = 0.0
    dw_min: float | None = None
    sites = ("weights",)

    def __post_init__(self):
        own = self.describe()
        _check_number(own, "std", self.std, low=0)
        _check_number(own, "dw_min", self.dw_min, low=0, low_open=True, allow_none=True)

    @property
    def off(self) -> bool:
        return self.std == 0

    def noise_std(self, delta: np.ndarray) -> np.ndarray:
        if self.dw_min is None:
            return np.full(np.shape(delta), float(self.std))
        return self.std * np.sqrt(np.abs(delta) / self.dw_min)


@dataclass(frozen=True)
class AsymmetricUpdate(Transform):
    r"""Asymmetric and state-dependent (nonlinear) weight updates.

    .. math::

        \Delta w' = \begin{cases} u\,\Delta w\,(1 - w / w_{max})^{s} & \Delta w > 0 \\
                                  d\,\Delta w\,(1 - w / w_{min})^{s} & \Delta w < 0 \end{cases}

    with :math:`s = 1` when ``soft_bounds`` (aihwkit SoftBounds device: steps shrink as the conductance
    approaches its bound, the saturating LTP/LTD curves of NeuroSim) and :math:`s = 0` otherwise; ``up`` and
    ``down`` are the gains of potentiation and depression (aihwkit ``up_down`` asymmetry).  Off when
    ``up == down == 1`` and not ``soft_bounds``.
    """

    up: float = 1.0
    down: float = 1.0
    w_min: float = -1.0
    w_max: float = 1.0
    soft_bounds: bool = False
    sites = ("updates",)

    def __post_init__(self):
        own = self.describe()
        _check_number(own, "up", self.up, low=0)
        _check_number(own, "down", self.down, low=0)
        _check_number(own, "w_min", self.w_min)
        _check_number(own, "w_max", self.w_max)
        if not self.w_min < 0 < self.w_max:
            raise ValueError(f"{own}: need w_min < 0 < w_max, got {self.w_min}, {self.w_max}")

    @property
    def off(self) -> bool:
        return self.up == 1 and self.down == 1 and not self.soft_bounds

    def apply_update(self, delta: np.ndarray, w: np.ndarray) -> np.ndarray:
        up = np.full_like(delta, float(self.up))
        down = np.full_like(delta, float(self.down))
        if self.soft_bounds:
            up = up * np.clip(1.0 - w / self.w_max, 0.0, None)
            down = down * np.clip(1.0 - w / self.w_min, 0.0, None)
        return np.where(delta > 0, delta * up, np.where(delta < 0, delta * down, delta))


@dataclass(frozen=True)
class StuckAt(Transform):
    r"""Stuck-at faults: a fixed set of devices holds ``low`` (stuck-at-0, :math:`G_{min}`) or ``high``
    (stuck-at-1, :math:`G_{max}`) whatever is written.

    Exactly :math:`\mathrm{round}(p_{low} N)` and :math:`\mathrm{round}(p_{high} N)` of the :math:`N` weights
    are chosen uniformly without replacement (disjoint sets), once per device.  About 10 % faulty devices
    are reported for HfO2 RRAM test chips (Aguirre et al. 2021).
    """

    p_low: float = 0.0
    p_high: float = 0.0
    low: float = -1.0
    high: float = 1.0
    sites = ("weights",)

    def __post_init__(self):
        own = self.describe()
        _check_number(own, "p_low", self.p_low, low=0)
        _check_number(own, "p_high", self.p_high, low=0)
        _check_number(own, "low", self.low)
        _check_number(own, "high", self.high)
        if self.p_low + self.p_high > 1:
            raise ValueError(f"{own}: p_low + p_high must be <= 1")

    @property
    def off(self) -> bool:
        return self.p_low == 0 and self.p_high == 0

    def draw(self, n: int, rng) -> tuple:
        """(mask, values) of the stuck devices among ``n``."""
        n_low = int(round(self.p_low * n))
        n_high = min(int(round(self.p_high * n)), n - n_low)
        perm = rng.permutation(n)
        mask = np.zeros(n, dtype=bool)
        values = np.zeros(n)
        mask[perm[:n_low]] = True
        values[perm[:n_low]] = self.low
        mask[perm[n_low:n_low + n_high]] = True
        values[perm[n_low:n_low + n_high]] = self.high
        return mask, values


@dataclass(frozen=True)
class Drift(Transform):
    r"""Conductance drift of a programmed device (PCM):

    .. math:: w(t) = w_{prog} \left(\max(t - t_{write}, t_0) / t_0\right)^{-\nu_i},
              \qquad \nu_i \sim \max(0, N(\nu, \sigma_\nu^2))

    drawn once per device; :math:`t` is the device clock (``sim.hardware.time`` of a Simulator built with
    ``hardware=``) and :math:`t_{write}` the time the weight was last written.
    Defaults from aihwkit PCMLikeNoiseModel (Nandakumar 2019): :math:`t_0 = 20` s, :math:`\nu` 0.049-0.1.
    """

    nu: float = 0.0
    nu_std: float = 0.0
    t0: float = 20.0
    sites = ("reads",)

    def __post_init__(self):
        own = self.describe()
        _check_number(own, "nu", self.nu, low=0)
        _check_number(own, "nu_std", self.nu_std, low=0)
        _check_number(own, "t0", self.t0, low=0, low_open=True)

    @property
    def off(self) -> bool:
        return self.nu == 0 and self.nu_std == 0

    def draw(self, n: int, rng) -> np.ndarray:
        return np.maximum(0.0, self.nu + self.nu_std * rng.standard_normal(n))

    def factor(self, nu: np.ndarray, age: np.ndarray) -> np.ndarray:
        return (np.maximum(age, self.t0) / self.t0) ** (-nu)


def Converter(bits: int | None, bound: float = 1.0) -> Quantize:
    """An ideal ADC or DAC: ``bits`` of resolution over ``[-bound, bound]``, round to nearest, clipped."""
    return Quantize(bits=bits, bound=bound, rounding="nearest")


#: aihwkit default input converter: inp_res 1/126 (126 steps over [-1, 1] = 7 signed bits), inp_bound 1
#: (*verified*, ``simulator/parameters/io.py``)
AIHWKIT_DAC = Converter(7, 1.0)
#: aihwkit default output converter: out_res 1/510 (510 steps over [-12, 12] = 9 signed bits), out_bound 12
#: (*verified*, ``simulator/parameters/io.py``)
AIHWKIT_ADC = Converter(9, 12.0)


# ------------------------------------------------------------------------------------------ NumPy application
def _table_entry(t: Transform, mm_row: int = -1):
    """(kind code, params[4]) of an elementwise transform."""
    if isinstance(t, Quantize):
        step, kmin, kmax = t.grid()
        return (K_QSTOCH if t.rounding == "stochastic" else K_QNEAR), (step, kmin, kmax, 0.0)
    if isinstance(t, AdditiveNoise):
        return K_ADD, (float(t.std), 0.0, 0.0, 0.0)
    if isinstance(t, MultiplicativeNoise):
        return K_MUL, (float(t.std), 0.0, 0.0, 0.0)
    if isinstance(t, Mismatch):
        return (K_MMGAIN if t.kind == "gain" else K_MMOFF), (float(mm_row), 0.0, 0.0, 0.0)
    raise TypeError(f"{type(t).__name__} is not an elementwise transform")


def quantize_array(v, step, kmin, kmax, stochastic, rng=None):
    """The quantiser of :class:`Quantize` on arrays (same arithmetic as the numba kernel)."""
    q = np.clip(np.asarray(v, dtype=float) / step, kmin, kmax)
    if stochastic:
        if rng is None:
            raise ValueError("stochastic rounding needs a random generator (rng=...)")
        k = np.floor(q + rng.random(q.shape))
    else:
        k = np.floor(q + 0.5)
    return np.clip(k, kmin, kmax) * step


def apply_table(kinds, params, n, v, units, rng, mm):
    """Apply the first ``n`` entries of a compiled elementwise table to ``v`` (shape (..., len(units)))."""
    for m in range(n):
        kind = kinds[m]
        p = params[m]
        if kind in (K_QNEAR, K_QSTOCH):
            v = quantize_array(v, p[0], p[1], p[2], kind == K_QSTOCH, rng)
        elif kind == K_ADD:
            v = v + p[0] * rng.standard_normal(np.shape(v))
        elif kind == K_MUL:
            v = v * (1.0 + p[0] * rng.standard_normal(np.shape(v)))
        elif kind == K_MMGAIN:
            v = v * mm[int(p[0])][units]
        elif kind == K_MMOFF:
            v = v + mm[int(p[0])][units]
    return v


def apply_elementwise(transforms, v, units=None, rng=None, patterns=None):
    """Apply elementwise transforms in order to an array ``v`` (last axis = units).

    Parameters
    ----------
    transforms : sequence of Transform
        Quantize, AdditiveNoise, MultiplicativeNoise or Mismatch(per="neuron"); switched-off ones are skipped.
    v : array_like
    units : array of int, optional
        Unit index of every column of ``v`` (for mismatch patterns); default ``arange(v.shape[-1])``.
    rng : numpy.random.Generator, optional
        Needed by noise and stochastic rounding.
    patterns : list of arrays, optional
        Frozen mismatch pattern of each Mismatch transform, in order of appearance.
    """
    v = np.array(v, dtype=float)
    active = [t for t in transforms if not t.off]
    if not active:
        return v
    if units is None:
        units = np.arange(v.shape[-1]) if v.ndim else np.zeros(0, dtype=int)
    kinds, params, mm = [], [], []
    patterns = list(patterns or [])
    for t in active:
        row = -1
        if isinstance(t, Mismatch):
            if not patterns:
                raise ValueError(f"{t.describe()}: pass its frozen pattern (patterns=[...]) to apply it to an array")
            mm.append(np.asarray(patterns.pop(0), dtype=float))
            row = len(mm) - 1
        k, p = _table_entry(t, row)
        kinds.append(k)
        params.append(p)
    needs_rng = any(k in (K_QSTOCH, K_ADD, K_MUL) for k in kinds)
    if needs_rng and rng is None:
        raise ValueError("noise and stochastic rounding need a random generator (rng=...)")
    return apply_table(kinds, params, len(kinds), v, units, rng, mm)


def read_noise_std(s, W, sigma_mult=0.0, sigma_add=0.0):
    r"""Exact standard deviation of a noisy row read :math:`\sum_j \tilde w_{ij} s_j`.

    With per-read weights :math:`\tilde w_{ij} = w_{ij}(1 + \sigma_m \xi_{ij}) + \sigma_a \zeta_{ij}`:

    .. math:: \mathrm{std}_i = \sqrt{\sigma_m^2 \sum_j w_{ij}^2 s_j^2 + \sigma_a^2 \sum_j s_j^2}

    ``s`` is (B, n_pre), ``W`` (n_post, n_pre); returns (B, n_post).
    """
    s2 = np.asarray(s, dtype=float) ** 2
    W = np.asarray(W, dtype=float)
    var = sigma_mult ** 2 * (s2 @ (W * W).T) + sigma_add ** 2 * s2.sum(axis=1, keepdims=True)
    return np.sqrt(var)


# ------------------------------------------------------------------------------------------ the model
_TUPLE_FIELDS = SITES


@dataclass(frozen=True)
class HardwareModel:
    r"""What the substrate does to a predictive-coding circuit: transforms per site, and the coding scheme.

    Parameters
    ----------
    values, errors, dac, adc, reads, updates, weights : sequence of Transform
        Transforms applied in order at each site (see the module docstring for what each site touches).
    coding : {"clock", "event"}
        ``"clock"``: every unit is evaluated and transmits at every step (clock-driven; the cost model
        charges dense passes).  ``"event"``: send-on-delta: a unit transmits an event carrying
        :math:`o - \hat s` only when :math:`|o - \hat s| > \theta`, where :math:`\hat s` is the sum of what
        it has sent (the residue :math:`o - \hat s` is carried to later steps); receivers update their
        currents from events only.  Threshold 0 reproduces the clock-driven dynamics.
    threshold : float
        :math:`\theta` of value units (event coding).
    error_threshold : float, optional
        :math:`\theta` of error units (default: ``threshold``).
    seed : int
        Seeds every fixed pattern and every noise stream of the device.
    seconds_per_batch : float
        Device time that passes per training batch (for :class:`Drift`); 0 keeps the clock still.
    """

    values: tuple = ()
    errors: tuple = ()
    dac: tuple = ()
    adc: tuple = ()
    reads: tuple = ()
    updates: tuple = ()
    weights: tuple = ()
    coding: str = "clock"
    threshold: float = 0.0
    error_threshold: float | None = None
    seed: int = 0
    seconds_per_batch: float = 0.0
    name: str = field(default="hardware", compare=False)

    def __post_init__(self):
        for site in _TUPLE_FIELDS:
            ts = getattr(self, site)
            if isinstance(ts, str):   # read one character at a time it said "'Q' is not a ... transform"
                raise ValueError(f"HardwareModel.{site} must be a transform or a list of them (e.g. "
                                 f"{site}=[neurosim.hardware.Quantize(4)]), got the text {ts!r}; a text model is read "
                                 f"by neurosim.hardware.parse_hardware('{site}:{ts}')")
            ts = _as_tuple(ts, isinstance(ts, Transform),
                           f"HardwareModel.{site} must be a sequence of transforms, got {ts!r}")
            object.__setattr__(self, site, ts)
            for t in ts:
                if not isinstance(t, Transform):
                    raise ValueError(f"HardwareModel.{site}: {t!r} is not a neurosim.hardware transform")
                if site not in t.sites:
                    raise ValueError(f"HardwareModel.{site}: {type(t).__name__} cannot be applied at site "
                                     f"{site!r}; it goes on {list(t.sites)}")
                if isinstance(t, Mismatch) and t.per == "synapse" and site != "reads":
                    raise ValueError(f"HardwareModel.{site}: Mismatch(per='synapse') exists only on 'reads'; "
                                     "use per='neuron' here")
        if sum(isinstance(t, Drift) for t in self.reads) > 1:
            raise ValueError("HardwareModel.reads: give at most one Drift")
        if sum(isinstance(t, StuckAt) for t in self.weights) > 1:
            raise ValueError("HardwareModel.weights: give at most one StuckAt")
        if self.coding not in ("clock", "event"):
            raise ValueError(f"HardwareModel: coding must be 'clock' or 'event', got {self.coding!r}")
        _check_number("HardwareModel", "threshold", self.threshold, low=0)
        _check_number("HardwareModel", "error_threshold", self.error_threshold, low=0, allow_none=True)
        _check_number("HardwareModel", "seconds_per_batch", self.seconds_per_batch, low=0)
        if self.coding == "clock" and (self.threshold > 0 or (self.error_threshold or 0) > 0):
            raise ValueError("HardwareModel: a delta threshold needs coding='event' (clock-driven units send "
                             "every step)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"HardwareModel: seed must be a non-negative int, got {self.seed!r}")

    # ---------------------------------------------------------------- queries
    def active(self, site: str) -> tuple:
        """The switched-on transforms of ``site``, in order."""
        return tuple(t for t in getattr(self, site) if not t.off)

    @property
    def theta_values(self) -> float:
        return float(self.threshold)

    @property
    def theta_errors(self) -> float:
        return float(self.threshold if self.error_threshold is None else self.error_threshold)

    @property
    def relaxation_effects(self) -> bool:
        """True when the relaxation itself is changed (signal sites, reads, or event coding)."""
        return self.coding == "event" or any(self.active(s) for s in ELEMENTWISE_SITES + ("reads",))

    @property
    def write_effects(self) -> bool:
        """True when weight writes are changed (updates or weights sites)."""
        return bool(self.active("updates") or self.active("weights"))

    @property
    def ideal(self) -> bool:
        return not self.relaxation_effects and not self.write_effects

    def summary(self) -> dict:
        """A JSON-able description (for metrics files)."""
        return {"coding": self.coding, "threshold": self.threshold, "error_threshold": self.theta_errors,
                "seed": self.seed, "seconds_per_batch": self.seconds_per_batch,
                **{s: [t.describe() for t in getattr(self, s)] for s in SITES}}


def _stream(seed: int, *key) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *[int(k) for k in key]]))


class Device:
    """The fixed-pattern state of one chip: mismatch maps, fault map, drift exponents, write times.

    Built from a :class:`HardwareModel` and a lowered :class:`~neurosim.plan.Plan`; every pattern is drawn
    from its own seeded stream (``SeedSequence([seed, site, index])``).

    Attributes
    ----------
    read_gain : ndarray (n_weights,)
        Product of the frozen read gains (Mismatch on ``reads``), 1 where none.
    nu : ndarray (n_weights,) or None
        Drift exponent of every device.
    t_write : ndarray (n_weights,)
        Device time of the last write of every weight.
    stuck_mask, stuck_value : ndarray (n_weights,) or None
    site_patterns : dict site -> list of ndarray (n_units,)
        Frozen per-neuron mismatch patterns of the elementwise sites, in order of appearance.
    """

    def __init__(self, model: HardwareModel, plan):
        self.model = model
        self.plan = plan
        nW = int(plan.W.size)
        N = int(plan.n_units)
        self.read_gain = np.ones(nW)
        self.read_offset = np.zeros(nW)
        rows = _post_unit_of_weight(plan)
        for idx, t in enumerate(model.reads):
            if isinstance(t, Mismatch) and not t.off:
                rng = _stream(model.seed, SITE_CODE["reads"], idx)
                if t.per == "synapse":
                    pat = t.draw(nW, rng)
                else:
                    pat = t.draw(N, rng)[rows]
                if t.kind == "gain":
                    self.read_gain = self.read_gain * pat
                else:
                    self.read_offset = self.read_offset + pat
        self.drift = next((t for t in model.reads if isinstance(t, Drift) and not t.off), None)
        self.nu = self.drift.draw(nW, _stream(model.seed, SITE_CODE["reads"], 1000)) if self.drift else None
        self.t_write = np.zeros(nW)
        self.stuck = next((t for t in model.weights if isinstance(t, StuckAt) and not t.off), None)
        self.stuck_mask = self.stuck_value = None
        if self.stuck is not None:
            self.stuck_mask, self.stuck_value = self.stuck.draw(nW, _stream(model.seed, SITE_CODE["weights"], 1000))
        self.site_patterns = {}
        for site in ELEMENTWISE_SITES:
            pats = []
            for idx, t in enumerate(getattr(model, site)):
                if isinstance(t, Mismatch) and not t.off:
                    pats.append(t.draw(N, _stream(model.seed, SITE_CODE[site], idx)))
            self.site_patterns[site] = pats

    # ---------------------------------------------------------------- reads
    def read_weights(self, W: np.ndarray, now: float) -> np.ndarray:
        """Effective weights of a read at device time ``now`` (frozen gains, offsets, drift)."""
        Wr = W * self.read_gain if np.any(self.read_gain != 1.0) else W.copy()
        if self.nu is not None:
            Wr = Wr * self.drift.factor(self.nu, now - self.t_write)
        if np.any(self.read_offset != 0.0):
            Wr = Wr + self.read_offset
        return Wr

    @property
    def read_sigmas(self) -> tuple:
        """(sigma_mult^2, sigma_add^2): summed variances of the per-read noise transforms."""
        m2 = sum(t.std ** 2 for t in self.model.active("reads") if isinstance(t, MultiplicativeNoise))
        a2 = sum(t.std ** 2 for t in self.model.active("reads") if isinstance(t, AdditiveNoise))
        return float(m2), float(a2)

    # ---------------------------------------------------------------- elementwise tables (kernels)
    def tables(self):
        """Compiled elementwise tables ``(kinds (4, T), params (4, T, 4), counts (4,), mm (4, M, n_units))``."""
        N = int(self.plan.n_units)
        entries = []
        for site in ELEMENTWISE_SITES:
            row = 0
            es = []
            for t in self.model.active(site):
                if isinstance(t, Mismatch):
                    es.append(_table_entry(t, row))
                    row += 1
                else:
                    es.append(_table_entry(t))
            entries.append(es)
        T = max(1, max(len(e) for e in entries))
        M = max(1, max(len(self.site_patterns[s]) for s in ELEMENTWISE_SITES))
        kinds = np.zeros((4, T), dtype=np.int64)
        params = np.zeros((4, T, 4))
        counts = np.zeros(4, dtype=np.int64)
        mm = np.ones((4, M, N))
        for si, site in enumerate(ELEMENTWISE_SITES):
            counts[si] = len(entries[si])
            for m, (k, p) in enumerate(entries[si]):
                kinds[si, m] = k
                params[si, m] = p
            for r, pat in enumerate(self.site_patterns[site]):
                mm[si, r] = pat
        return kinds, params, counts, mm

    # ---------------------------------------------------------------- writes
    def program(self, W: np.ndarray, rng: np.random.Generator, now: float = 0.0) -> np.ndarray:
        """Program initial weights: every weight is written from 0 through the ``weights`` site."""
        written = np.ones(W.shape, dtype=bool)
        out = self._store(W.astype(float).copy(), W.astype(float).copy(), written, rng)
        self.t_write[:] = now
        return out

    def write(self, W_old: np.ndarray, W_target: np.ndarray, rng: np.random.Generator, now: float,
              region: np.ndarray | None = None) -> tuple:
        r"""Apply an intended update through the device: returns ``(W_new, n_written)``.

        :math:`\Delta = W_{target} - W_{old}` passes the ``updates`` transforms; elements with a non-zero
        resulting update (and not stuck) are written, then pass the ``weights`` transforms; stuck devices
        keep their value.  ``region`` (bool mask) limits the write to some weights (the plastic ones).
        """
        delta = W_target - W_old
        for t in self.model.active("updates"):
            if isinstance(t, Quantize):
                step, kmin, kmax = t.grid()
                delta = quantize_array(delta, step, kmin, kmax, t.rounding == "stochastic", rng)
            elif isinstance(t, AsymmetricUpdate):
                delta = t.apply_update(delta, W_old)
        written = delta != 0
        if region is not None:
            written &= region
        if self.stuck_mask is not None:
            written &= ~self.stuck_mask
        W_new = W_old.copy()
        W_new[written] = W_old[written] + delta[written]
        W_new = self._store(W_new, delta, written, rng)
        self.t_write[written] = now
        return W_new, int(written.sum())

    def _store(self, W: np.ndarray, delta: np.ndarray, written: np.ndarray, rng) -> np.ndarray:
        for t in self.model.active("weights"):
            if isinstance(t, Quantize):
                step, kmin, kmax = t.grid()
                W[written] = quantize_array(W[written], step, kmin, kmax, t.rounding == "stochastic", rng)
            elif isinstance(t, WriteNoise):
                W[written] = W[written] + t.noise_std(delta[written]) * rng.standard_normal(int(written.sum()))
        if self.stuck_mask is not None:
            W[self.stuck_mask] = self.stuck_value[self.stuck_mask]
        return W


def _post_unit_of_weight(plan) -> np.ndarray:
    """Global unit index of the post-synaptic neuron of every weight in ``plan.W`` (a plan that lays out its devices
    otherwise gives the map itself as ``post_unit_of_weight``)."""
    given = getattr(plan, "post_unit_of_weight", None)
    if given is not None:
        return np.asarray(given, dtype=np.int64)
    rows = np.zeros(int(plan.W.size), dtype=np.int64)
    for k in range(plan.n_proj):
        o = int(plan.w_off[k])
        if o < 0:
            continue
        n_post, n_pre = plan.weight_shape(k)
        post_off = int(plan.pop_off[plan.proj_post[k]])
        if getattr(plan, "is_sparse", None) is not None and plan.is_sparse(k):   # CSR: row lengths from indptr
            indptr = plan.sparse_csr(k)[0]
            rows[o:o + int(indptr[-1])] = np.repeat(np.arange(post_off, post_off + n_post), np.diff(indptr))
            continue
        rows[o:o + n_post * n_pre] = np.repeat(np.arange(post_off, post_off + n_post), n_pre)
    return rows
