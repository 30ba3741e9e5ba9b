r"""Spiking mode: the circuit as rate-coded spiking neurons that emulate neuromorphic hardware.

Coding
------
Every signed quantity ``u`` travels as events of two kinds (+ and -).  An *encoder* turns ``u`` into
event rates, a *synaptic current* turns events back into ``u``:

.. math::

    r_\pm = G\,[\pm u]_+ ,\qquad \tau_s \dot I = -I,\quad I \mathrel{+}= \pm\frac{1}{G\,\tau_s}
    \text{ per event} \;\Rightarrow\; \langle I\rangle = u .

Value unit (group ``V``, one neuron per unit and batch copy)
    A soma :math:`x` integrates its error currents exactly as the rate model,
    :math:`\tau_x \dot x = -I_\varepsilon + \phi'(x) I_{fb} + I_{sfb}` (clamped units keep x fixed), and two
    encoders emit ``x`` events (to its own error unit and to identity skips) and ``phi(x)`` events (to
    the populations it predicts; for a linear population the ``x`` events serve both).  A presynaptic
    trace :math:`\tau_{tr} \dot{tr} = -tr`, :math:`tr \mathrel{+}= \pm 1/(G_v \tau_{tr})` per phi event,
    estimates :math:`\phi(x)`.
Error unit (group ``E``)
    Sums currents, :math:`\mu = I_\mu + b`, :math:`\varepsilon = \pi (I_x - \mu)` (or the leaky
    :math:`\tau_\varepsilon` form), and emits error events with the chosen ``error_scheme``:

    ``"events"``  one neuron, two event types (e+ / e- compartments; Loihi-2 style);
    ``"pair"``    two rectified neurons per unit (separate e+ and e- populations; SNN-PC style);
    ``"onoff"``   two neurons with a baseline, :math:`r_{on/off} = [r_0 \pm G_e\varepsilon/2]_+`, read as
                  the difference (nengo-loihi style; pays :math:`2 r_0` events per unit at zero error).
Projections
    A value event of ``pre`` adds :math:`\pm a w/(G_v\tau_s)` to :math:`I_\mu` of ``post``; an error
    event of ``post`` adds :math:`\pm a w/(G_e\tau_s)` to the feedback current of ``pre`` (the same,
    shared weight ``w``), and, inside the learning window, changes the weight from the presynaptic
    trace (local and event-driven; Loihi's ``x1 * y0`` rule):

    .. math:: w \mathrel{+}= \pm \eta\, tr_{pre},\qquad \eta = \frac{\mathrm{lr}\, a\, s}{G_e T_L}

    so that over a window :math:`T_L` the expected change is the rate model's
    :math:`\mathrm{lr}\, a\, s\, \varepsilon \phi(x)^T` (``s = 1/B`` for batch means).  Weights are bounded
    to ``[-w_max, w_max]`` at the end of every time step.  Biases are constant currents, learned from
    error events (:math:`b \mathrel{+}= \pm \mathrm{lr}\, s/(G_e T_L)`).

Neurons (``neuron``)
    ``"if"``: integrate-and-fire with reset by subtraction (a first-order sigma-delta modulator: the
    event count over any window is within one of :math:`\int r\,dt`); ``"lif"``: leaky, reset to 0,
    driven by the current that gives the wanted rate through the LIF f-I curve; ``"poisson"``.
    With ``compensate=True`` the drive inverts the nominal f-I curve including refractoriness.

Readout
    ``x``, ``eps``, ``mu`` returned for a batch are averages over the last ``readout_fraction`` of the
    run; energies and probes are samples at the rate model's step times.

Time: one rate-model time unit lasts ``time_unit`` ms; a run of ``steps`` steps of size ``dt`` lasts
``steps * dt * time_unit`` ms of simulated time, integrated with ``SpikingConfig.dt``.  Every run starts
from the network as built (time 0, no events in flight, empty monitors), so it depends only on its
inputs, the weights and its seed.  Arrays returned from a run are copies of brian2's memory.
"""
from __future__ import annotations

import math
import functools
from dataclasses import asdict, dataclass, fields

import numpy as np

import brian2 as b2

from ... import activations as act
from ...errors import UnsupportedError
from ...plan import OPT_ADAM, ROLE_INPUT, ROLE_TARGET
from ..base import MODE_CLAMP, MODE_NUDGE, RunSpec
from . import _common as C

__all__ = ["SpikingConfig", "HardwareConfig", "SpikingNetwork", "suggest_config", "check_spiking_plan",
           "quantize"]


class _Coercible:
    @classmethod
    def coerce(cls, value):
        """``None`` (defaults), an instance, or a dict of fields (unknown keys are an error)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            known = {f.name for f in fields(cls)}
            bad = sorted(set(value) - known)
            if bad:
                raise ValueError(f"{cls.__name__}: unknown field(s) {bad}; fields: {sorted(known)}")
            return cls(**value)
        raise TypeError(f"{cls.__name__}: expected None, a dict or a {cls.__name__}, got {type(value).__name__}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SpikingConfig(_Coercible):
    """Parameters of the spiking emulation (units in the field names' docs).

    Attributes
    ----------
    time_unit : float, ms
        Duration of one rate-model time unit (``tau_x = 1`` lasts ``time_unit`` ms).  Default 20.
    dt : float, ms
        Integration step of the spiking network.  Default 0.1.
    tau_syn : float, ms
        Synaptic current time constant (decodes event trains).  Default 2.
    value_rate : float, Hz
        Value encoder gain: events per second per unit of ``x`` (or ``phi(x)``).  Default 2000.
    error_rate : float, Hz
        Error encoder gain: events per second per unit of ``eps``.  Default 2000.
    max_rate : float, Hz
        Saturation of every encoder (hardware maximum rate).  Default 5000.
    neuron : {"if", "lif", "poisson"}
        Encoder neuron model.  Default "if".
    tau_m : float, ms
        Membrane time constant of ``"lif"`` encoders.  Default 20.
    compensate : bool
        Drive encoders through the inverse of their nominal f-I curve (leak, refractoriness), so that
        the nominal neuron fires at exactly the wanted rate.  Default True.
    error_scheme : {"events", "pair", "onoff"}
        How signed errors travel (see the module docstring).  Default "events".
    baseline_rate : float or None, Hz
        Baseline of each neuron of an ``"onoff"`` pair; None: ``error_rate / 2`` (linear for
        ``|eps| <= 1``).  Default None.
    tau_trace : float, ms
        Presynaptic trace time constant (plasticity).  Default 10.
    learn_fraction : float
        Fraction of a learning run, at its end, during which plasticity is on.  Default 0.25.
    w_max : float
        Weight bound, ``|w| <= w_max``.  Default 8.
    readout_fraction : float
        Final values are averaged over this last fraction of the run.  Default 0.3.
    record_spikes : bool
        Keep the event times of one batch item (rasters).  Default True.
    """

    time_unit: float = 20.0
    dt: float = 0.1
    tau_syn: float = 2.0
    value_rate: float = 2000.0
    error_rate: float = 2000.0
    max_rate: float = 5000.0
    neuron: str = "if"
    tau_m: float = 20.0
    compensate: bool = True
    error_scheme: str = "events"
    baseline_rate: float | None = None
    tau_trace: float = 10.0
    learn_fraction: float = 0.25
    w_max: float = 8.0
    readout_fraction: float = 0.3
    record_spikes: bool = True

    def __post_init__(self):
        for name in ("time_unit", "dt", "tau_syn", "value_rate", "error_rate", "max_rate", "tau_m", "tau_trace",
                     "w_max"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"SpikingConfig: {name} must be a finite number > 0, got {v!r}")
        if self.neuron not in ("if", "lif", "poisson"):
            raise ValueError(f"SpikingConfig: neuron must be 'if', 'lif' or 'poisson', got {self.neuron!r}")
        if self.error_scheme not in ("events", "pair", "onoff"):
            raise ValueError(f"SpikingConfig: error_scheme must be 'events', 'pair' or 'onoff', got "
                             f"{self.error_scheme!r}")
        if self.baseline_rate is not None and not self.baseline_rate >= 0:
            raise ValueError(f"SpikingConfig: baseline_rate must be >= 0, got {self.baseline_rate!r}")
        for name in ("learn_fraction", "readout_fraction"):
            v = getattr(self, name)
            if not 0 < v <= 1:
                raise ValueError(f"SpikingConfig: {name} must be in (0, 1], got {v!r}")
        if self.max_rate * self.dt * 1e-3 > 1.0:
            raise ValueError(f"SpikingConfig: max_rate={self.max_rate} Hz needs dt <= {1e3 / self.max_rate:.4g} ms "
                             f"(at most one event per step), got dt={self.dt} ms; reduce dt or max_rate")


@dataclass(frozen=True)
class HardwareConfig(_Coercible):
    """Hardware non-idealities of the spiking emulation (all drawn from seeded generators).

    Attributes
    ----------
    weight_bits : int or None
        Signed weight precision: weights live on the grid ``k * w_max / 2**(weight_bits - 1)``; loading
        and every plastic update round stochastically to it.  None: float64.  Default None.
    delay : float, ms
        Synaptic delay of every connection.  Default 0.
    delay_jitter : float, ms
        Extra per-synapse delay, uniform in ``[0, delay_jitter)``, frozen.  Default 0.
    membrane_noise : float
        Standard deviation of encoder membrane noise, in units of the threshold per sqrt(ms).  Default 0.
    threshold_mismatch : float
        Relative standard deviation of per-neuron thresholds (frozen, clipped at 0.1).  Default 0.
    tau_mismatch : float
        Relative standard deviation of per-neuron synaptic and membrane time constants.  Default 0.
    refractory : float, ms
        Refractory period of every encoder.  Default 0.
    seed : int or None
        Seed of the frozen draws (mismatch, jitter); None derives it from the simulator seed.
    """

    weight_bits: int | None = None
    delay: float = 0.0
    delay_jitter: float = 0.0
    membrane_noise: float = 0.0
    threshold_mismatch: float = 0.0
    tau_mismatch: float = 0.0
    refractory: float = 0.0
    seed: int | None = None

    def __post_init__(self):
        if self.weight_bits is not None and (not isinstance(self.weight_bits, int) or not 2 <= self.weight_bits <= 32):
            raise ValueError(f"HardwareConfig: weight_bits must be None or an int in [2, 32], got {self.weight_bits!r}")
        for name in ("delay", "delay_jitter", "membrane_noise", "threshold_mismatch", "tau_mismatch", "refractory"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"HardwareConfig: {name} must be a finite number >= 0, got {v!r}")

    @property
    def ideal(self) -> bool:
        return self == HardwareConfig(seed=self.seed)


def quantize(w, w_max, bits, rng):
    """Stochastic rounding of ``w`` to the signed grid ``k * w_max / 2**(bits-1)``, clipped to ``±w_max``.

    ``E[quantize(w)] = w`` inside the range; ``rng`` is a NumPy Generator.
    """
    w = np.clip(np.asarray(w, dtype=float), -w_max, w_max)
    if bits is None:
        return w
    q = w_max / 2 ** (bits - 1)
    lo = np.floor(w / q)
    return np.clip((lo + (rng.random(w.shape) < (w / q - lo))) * q, -w_max, w_max)


def check_spiking_plan(plan, cfg: SpikingConfig):
    """Raise UnsupportedError for what spiking mode cannot emulate (non-local optimisers)."""
    for k in range(plan.n_proj):
        if not (plan.proj_plastic[k] or plan.proj_learn_bias[k]):
            continue
        mom, wd = plan.opt_param[k][0], plan.opt_param[k][1]
        if plan.opt_kind[k] == OPT_ADAM or mom > 0 or wd > 0:
            raise UnsupportedError(
                f"backend 'brian2', mode='spiking': projection {plan.proj_names[k]!r} uses "
                f"{'Adam' if plan.opt_kind[k] == OPT_ADAM else 'SGD with momentum/weight decay'}, which needs "
                "per-synapse optimiser state that event-driven local plasticity does not have; use "
                "ns.SGD() (plain) for spiking learning, or train in rate mode and run the spiking network with "
                "the learned weights")


def suggest_config(circuit_or_plan, accuracy: float = 0.05, value_range: float = 2.0, neuron: str = "if",
                   time_unit: float = 20.0, **overrides) -> SpikingConfig:
    r"""Rates and time constants for which the spiking circuit approximates the rate one.

    Rules (:math:`\tau_x` = the fastest value time constant in ms, :math:`\pi_{max}` the largest precision):

    * synaptic filter :math:`\tau_s = 0.1\,\tau_x/\pi_{max}`: the loop value -> error -> value adds a delay
      of about :math:`2\tau_s`, which must stay small against the fastest relaxation time :math:`\tau_x/\pi`;
    * encoder gain :math:`G`: a value integrates its error events over :math:`\tau_x`, so its spike-count
      error is about :math:`1/(G\tau_x)` for sigma-delta encoders ("if", "lif") and
      :math:`1/\sqrt{G\tau_x}` for Poisson ones, with a measured factor of about 2 from the noise of the
      decoded predictions: :math:`G = 2/(\mathrm{accuracy}\,\tau_x)`, resp. :math:`2/(\mathrm{accuracy}^2\tau_x)`;
    * step and saturation: ``max_rate`` covers :math:`|u|` up to ``value_range``, with at most 0.5 events
      per step.

    Measured with the defaults this returns for ``accuracy=0.05`` (a 3-4-2 linear network, 200 ms, IF
    encoders at 2 kHz): relaxed values within 0.02 of the rate model; see tests/backend_brian2.

    Parameters
    ----------
    circuit_or_plan : Circuit or Plan
    accuracy : float
        Wanted absolute error of relaxed values (units of x).
    value_range : float
        Largest |x|, |phi(x)|, |eps| expected.
    neuron : {"if", "lif", "poisson"}
    time_unit : float, ms
        Duration of one rate-model time unit.
    **overrides
        Any other SpikingConfig field.
    """
    from ...plan import Plan, lower
    plan = circuit_or_plan if isinstance(circuit_or_plan, Plan) else lower(circuit_or_plan, 0)
    if not 0 < accuracy < 1:
        raise ValueError(f"suggest_config: accuracy must be in (0, 1), got {accuracy}")
    free = [i for i in range(plan.n_pops) if plan.pop_role[i] != ROLE_INPUT]
    tau_x = min(float(plan.pop_tau_x[i]) for i in free) * time_unit if free else time_unit
    prec_max = float(plan.precision.max()) if plan.precision.size else 1.0
    tau_s = 0.1 * tau_x / max(prec_max, 1.0)
    gain = 2e3 / (accuracy * tau_x) if neuron != "poisson" else 2e3 / (accuracy ** 2 * tau_x)
    max_rate = gain * value_range
    dt = float(f"{min(0.1, 0.5e3 / max_rate, tau_s / 10):.2g}")
    cfg = dict(time_unit=time_unit, dt=dt, tau_syn=tau_s, value_rate=gain, error_rate=gain,
               max_rate=min(max_rate, 1e3 / dt), neuron=neuron, tau_trace=max(10.0, 5 * tau_s))
    cfg.update(overrides)
    return SpikingConfig(**cfg)


def error_range(cfg: SpikingConfig) -> float:
    """The largest |eps| the error events code without clipping: ``max_rate / error_rate`` for ``"events"`` and
    ``"pair"``; for ``"onoff"`` pairs, whose neurons fire at ``r0 +- error_rate eps / 2``, the smaller of
    ``2 r0 / error_rate`` (one neuron of the pair silent) and ``2 (max_rate - r0) / error_rate`` (the other at
    ``max_rate``): 1 with the default baseline ``r0 = error_rate / 2``."""
    Ge, top = float(cfg.error_rate), float(cfg.max_rate)
    if cfg.error_scheme != "onoff":
        return top / Ge
    r0 = Ge / 2 if cfg.baseline_rate is None else float(cfg.baseline_rate)
    return min(2 * r0 / Ge, 2 * max(top - r0, 0.0) / Ge)


# ----------------------------------------------------------------------------------------------------------------
def _encoder(c, u, gain, cfg: SpikingConfig, hw: HardwareConfig, floor: bool = False):
    """A signed rate encoder: compartment ``c`` turns the signed quantity ``u`` into events at rate
    ``gain * |u|`` (Hz), each carrying the sign ``sg_c`` (two event types on one neuron).

    ``sat_c`` integrates the time (s) during which the encoder cannot code ``u``: its rate is clipped at
    ``max_rate`` (and, with ``floor``, at 0: an on/off neuron whose baseline the error has used up).  It feeds
    nothing back (the groups integrate with explicit Euler, so the other variables are unchanged) and is what
    ``last_run["saturation"]`` reports.

    Returns (equation lines, event condition, reset code).  ``"if"`` is a signed sigma-delta
    modulator: :math:`\\dot v = \\mathrm{sign}(u) J`, an event when :math:`|v| > v_{th}`, then
    :math:`v \\mathrel{-}= \\mathrm{sign}(v) v_{th}` (the residue is kept, so counts track the integral).
    """
    noise = f" + {float(hw.membrane_noise)!r}*xi_{c}/sqrt(ms)" if hw.membrane_noise > 0 else ""
    tref = float(hw.refractory) * 1e-3
    clipped = f"int({float(gain)!r}*abs({u}) > {float(cfg.max_rate)!r})" + (f" + int({u} <= 0)" if floor else "")
    lines = [f"R_{c} = clip({float(gain)!r}*Hz*abs({u}), 0*Hz, {float(cfg.max_rate)!r}*Hz) : Hz",
             f"sg_{c} : 1", f"lt_{c} : second", f"n_{c} : 1", f"nl_{c} : 1",
             f"ok_{c} = int(t - lt_{c} >= t_ref) : 1", f"dsat_{c}/dt = ({clipped})/second : 1"]
    count = f"lt_{c} = t\nn_{c} += 1\nnl_{c} += int(t >= t_learn)"
    if cfg.neuron == "poisson":
        return lines, f"rand() < R_{c}*dt and t - lt_{c} >= t_ref", f"sg_{c} = sign({u})\n{count}"
    if cfg.neuron == "if":
        J = f"R_{c}/clip(1 - R_{c}*{tref!r}*second, 0.05, 1)" if (cfg.compensate and tref > 0) else f"R_{c}"
        lines += [f"dv_{c}/dt = ok_{c}*sign({u})*J_{c}{noise} : 1", f"J_{c} = {J} : Hz"]
        reset = f"sg_{c} = sign(v_{c})\nv_{c} -= sg_{c}*vth\n{count}"
    else:  # lif
        tm = float(cfg.tau_m) * 1e-3
        if cfg.compensate:
            J = (f"int(R_{c} > 0.001*Hz)/({tm!r}*second*(1 - exp(-clip(1/(R_{c} + 1e-6*Hz) - {tref!r}*second, "
                 f"1e-6*second, 1e3*second)/({tm!r}*second))))")
        else:
            J = f"R_{c}"
        lines += [f"dv_{c}/dt = ok_{c}*(sign({u})*J_{c} - v_{c}/tau_m){noise} : 1", f"J_{c} = {J} : Hz"]
        reset = f"sg_{c} = sign(v_{c})\nv_{c} = 0\n{count}"
    return lines, f"abs(v_{c}) > vth", reset


class SpikingNetwork:
    """brian2 objects of the spiking emulation of one plan for one batch size (numpy target).

    Parameters
    ----------
    plan : Plan
    B : int
        Batch size (circuit copies; all share the weights).
    cfg : SpikingConfig
    hw : HardwareConfig
    record_item : int
        Batch item whose events (and, with ``probes``, values) are recorded.
    probes : bool
        Monitor x, eps and mu of ``record_item`` (for the Simulator's probes).
    """

    _CLEAN = "neurosim_initial"

    def __init__(self, plan, B, cfg: SpikingConfig, hw: HardwareConfig, record_item=0, probes=False):
        self.plan = p = plan
        self.B = B
        self.cfg = cfg
        self.hw = hw
        self.item = record_item
        hw_seed = hw.seed if hw.seed is not None else int(plan.seed)
        self.rng = np.random.default_rng([hw_seed, 0x5EED])
        self.pfx = pfx = C.unique_prefix("s")
        ms = b2.ms
        self.clock = b2.Clock(dt=cfg.dt * ms, name=pfx + "clock")
        self._syn = functools.partial(b2.Synapses, clock=self.clock)   # every object on one explicit clock
        Gv, Ge = float(cfg.value_rate), float(cfg.error_rate)
        tau_s = cfg.tau_syn * 1e-3
        self.qv = qv = 1.0 / (Gv * tau_s)
        self.qe = 1.0 / (Ge * tau_s)
        npop = p.n_pops
        pn = [C.ident(n) for n in p.pop_names]
        kn = [C.ident(n) for n in p.proj_names]
        objs, summed = [], []
        self.err_pops = [i for i in range(npop) if p.pop_role[i] != ROLE_INPUT]
        self.has_err = [bool(p.pop_has_err[i]) for i in range(npop)]
        self.dyn_err = [self.has_err[i] and p.pop_tau_eps[i] > 0 for i in range(npop)]
        out_w = {i: [k for k in range(p.n_proj) if p.proj_pre[k] == i and p.w_off[k] >= 0] for i in range(npop)}
        in_b = {i: [k for k in range(p.n_proj) if p.proj_post[k] == i and p.b_off[k] >= 0] for i in range(npop)}
        #: value channel that carries phi(x): "x" for linear populations (one channel serves both)
        self.phi_ch = ["p" if (int(p.pop_phi[i]) != 0 and out_w[i]) else "x" for i in range(npop)]
        t_ref = float(hw.refractory) * ms

        def mismatch(n, rel):
            if rel <= 0:
                return np.ones(n)
            return np.clip(1.0 + rel * self.rng.standard_normal(n), 0.1, None)

        common = ["tau_m : second (constant)", "vth : 1 (constant)", "t_ref : second (shared, constant)",
                  "t_learn : second (shared)"]

        # ---- control: energies
        F_names = [f"F_{pn[i]}" for i in range(npop) if self.has_err[i]]
        self.ctl = ctl = b2.NeuronGroup(1, "\n".join(["dummy : 1"] + [f"{f} : 1" for f in F_names]),
                                        clock=self.clock, name=pfx + "ctl")
        objs.append(ctl)
        self.F_names = {i: f"F_{pn[i]}" for i in range(npop) if self.has_err[i]}

        self.Wg, self.Bg, self.delay_syn, self.plastic_syn = {}, {}, [], []
        # ---- value neurons
        self.V, self.E, self.Eenc, self.chans = {}, {}, {}, {}
        for i in range(npop):
            n = int(p.pop_size[i])
            N = B * n
            code, a = int(p.pop_phi[i]), float(p.pop_phi_param[i])
            chans = [("x", "x")] + ([("p", "phx")] if self.phi_ch[i] == "p" else [])
            eqs = [
                "dx/dt = free*(-Ie + dphi_x*Ifb + Isfb + nud*beta*(tgt - x))/tau_x : 1",
                f"phx = {C.phi_expr(code, a, 'x')} : 1",
                f"dphi_x = {C.dphi_expr(code, a, 'x')} : 1",
                "dIe/dt = -Ie/tau_sy : 1", "dIfb/dt = -Ifb/tau_sy : 1", "dIsfb/dt = -Isfb/tau_sy : 1",
                "dtr/dt = -tr/tau_tr : 1",
                "dxs/dt = int(t >= t_avg)*x/second : 1", "dwin/dt = int(t >= t_avg)/second : 1",
                "tgt : 1", "free : 1", "nud : 1 (shared)", "beta : 1 (shared)",
                "tau_x : second (shared, constant)", "tau_tr : second (shared, constant)",
                "tau_sy : second (constant)", "t_avg : second (shared)", *common,
            ]
            events, resets = {}, {}
            for c, u in chans:
                lines, cond, reset = _encoder(c, u, Gv, cfg, hw)
                eqs += lines
                if c == self.phi_ch[i]:   # the presynaptic trace follows the phi-carrying events
                    reset += f"\ntr += sg_{c}*{1.0 / (Gv * cfg.tau_trace * 1e-3)!r}"
                events[f"{c}ev"] = cond
                resets[f"{c}ev"] = reset
            V = b2.NeuronGroup(N, "\n".join(eqs), events=events, method="euler", clock=self.clock,
                               name=f"{pfx}V_{pn[i]}")
            for ev, code_ in resets.items():
                V.run_on_event(ev, code_)
            V.tau_x = float(p.pop_tau_x[i]) * cfg.time_unit * ms
            V.tau_tr = cfg.tau_trace * ms
            V.tau_sy = cfg.tau_syn * ms * mismatch(N, hw.tau_mismatch)
            V.tau_m = cfg.tau_m * ms * mismatch(N, hw.tau_mismatch)
            V.vth = mismatch(N, hw.threshold_mismatch)
            V.t_ref = t_ref
            self.V[i] = V
            self.chans[i] = [c for c, _ in chans]
            objs.append(V)

        # ---- error neurons
        scheme = cfg.error_scheme
        r0 = cfg.error_rate / 2 if cfg.baseline_rate is None else cfg.baseline_rate
        for i in self.err_pops:
            n = int(p.pop_size[i])
            N = B * n
            bnames = [f"b_{kn[k]}" for k in in_b[i]]
            eqs = ["dIx/dt = -Ix/tau_sy : 1", "dImu/dt = -Imu/tau_sy : 1",
                   f"mu = Imu{''.join(' + ' + bn for bn in bnames)} : 1", *[f"{bn} : 1" for bn in bnames],
                   "des_s/dt = int(t >= t_avg)*eps/second : 1", "dmu_s/dt = int(t >= t_avg)*mu/second : 1",
                   "prec : 1 (constant)", "tau_sy : second (constant)", "t_avg : second (shared)",
                   "pol : 1 (shared, constant)", *common]
            if self.dyn_err[i]:
                eqs += ["deps/dt = (Ix - mu - eps/prec)/tau_eps : 1", "tau_eps : second (shared, constant)"]
            elif self.has_err[i]:
                eqs += ["eps = prec*(Ix - mu) : 1"]
            else:
                eqs += ["eps = 0*Ix : 1"]
            events, resets = {}, {}
            if scheme == "events":
                lines, cond, reset = _encoder("e", "eps", Ge, cfg, hw)
                eqs += lines
                events["eev"], resets["eev"] = cond, reset
            E = b2.NeuronGroup(N, "\n".join(eqs), events=events or None, method="euler", clock=self.clock,
                               name=f"{pfx}E_{pn[i]}")
            for ev, code_ in resets.items():
                E.run_on_event(ev, code_)
            o = int(p.pop_off[i])
            E.prec = np.tile(p.precision[o:o + n], B)
            E.tau_sy = cfg.tau_syn * ms * mismatch(N, hw.tau_mismatch)
            E.tau_m = cfg.tau_m * ms * mismatch(N, hw.tau_mismatch)
            E.vth = mismatch(N, hw.threshold_mismatch)
            E.t_ref = t_ref
            E.pol = 1.0
            if self.dyn_err[i]:
                E.tau_eps = float(p.pop_tau_eps[i]) * cfg.time_unit * ms
            self.E[i] = E
            objs.append(E)
            if scheme == "events":
                self.Eenc[i] = [(E, "e")]
            else:
                srcs = []
                for pol, label in ((+1, "ep"), (-1, "en")):
                    u = (f"clip({pol}*eps_l, 0, inf)" if scheme == "pair"
                         else f"clip({r0 / Ge!r} + {pol * 0.5!r}*eps_l, 0, inf)")
                    lines, cond, reset = _encoder("e", u, Ge, cfg, hw, floor=scheme == "onoff")
                    G = b2.NeuronGroup(N, "\n".join(["eps_l : 1 (linked)", "pol : 1 (shared, constant)", *common,
                                                     *lines]),
                                       events={"eev": cond}, method="euler", clock=self.clock,
                                       name=f"{pfx}{label}_{pn[i]}")
                    G.run_on_event("eev", reset)
                    G.eps_l = b2.linked_var(E, "eps")
                    G.pol = float(pol)
                    G.tau_m = cfg.tau_m * ms * mismatch(N, hw.tau_mismatch)
                    G.vth = mismatch(N, hw.threshold_mismatch)
                    G.t_ref = t_ref
                    srcs.append((G, label))
                    objs.append(G)
                self.Eenc[i] = srcs
            # own value -> error (x events), own error -> value
            S = self._syn(self.V[i], E, on_pre={"x": f"Ix_post += {qv!r}*sg_x_pre"}, on_event={"x": "xev"},
                          name=f"{pfx}VE_{pn[i]}")
            S.connect(j="i", namespace={})
            self.delay_syn.append((S, ("x",)))
            objs.append(S)
            objs += self._feedback(self.V[i], i, "Ie_pre", 1.0, name=f"{pfx}EV_{pn[i]}")
            if self.has_err[i]:
                Se = self._syn(E, ctl, f"F_{pn[i]}_post = 0.5*prec_pre*(Ix_pre - mu_pre)**2/{float(B)!r} : 1 (summed)",
                               name=f"{pfx}F_{pn[i]}")
                Se.connect(namespace={})
                summed.append((Se, f"F_{pn[i]}_post", 1))
                objs.append(Se)

        # ---- projections
        for k in range(p.n_proj):
            pre, post = int(p.proj_pre[k]), int(p.proj_post[k])
            n_pre, n_post = int(p.pop_size[pre]), int(p.pop_size[post])
            Vpre, Epost = self.V[pre], self.E[post]
            A = float(p.proj_mult[k])
            scale = 1.0 / B if p.proj_mean[k] else 1.0
            ch = self.phi_ch[pre]
            if p.w_off[k] >= 0:
                Wg = b2.NeuronGroup(n_post * n_pre, "w : 1", clock=self.clock, name=f"{pfx}W_{kn[k]}")
                if p.proj_plastic[k]:
                    Wg.run_regularly(f"w = clip(w, {-float(cfg.w_max)!r}, {float(cfg.w_max)!r})", when="end",
                                     name=f"{pfx}Wclip_{kn[k]}")
                self.Wg[k] = Wg
                objs.append(Wg)
                S = self._syn(Vpre, Epost, "wl : 1 (linked)\nwidx : integer (constant)",
                              on_pre={"p": f"Imu_post += {A * qv!r}*wl*sg_{ch}_pre"}, on_event={"p": f"{ch}ev"},
                              name=f"{pfx}P_{kn[k]}")
                C.batch_connect_all(S, n_pre, n_post)
                C.set_expr(S, "widx", C.weight_index_expr(n_pre, n_post))
                S.wl = b2.linked_var(Wg, "w", index="widx")
                self.delay_syn.append((S, ("p",)))
                objs.append(S)
                eta = float(p.proj_lr[k]) * A * scale if p.proj_plastic[k] else None
                objs += self._feedback(Vpre, post, "Ifb_pre", A, weight=(Wg, n_pre, n_post), eta=eta,
                                       name=f"{pfx}FB_{kn[k]}")
            if p.b_off[k] >= 0:
                Bg = b2.NeuronGroup(n_post, "bb : 1", clock=self.clock, name=f"{pfx}B_{kn[k]}")
                Sb = self._syn(Bg, Epost, f"b_{kn[k]}_post = bb_pre : 1 (summed)", name=f"{pfx}Sb_{kn[k]}")
                Sb.connect(j=f"q for q in range(i, {B * n_post}, {n_post})", namespace={})
                summed.append((Sb, f"b_{kn[k]}_post", 0))
                self.Bg[k] = Bg
                objs += [Bg, Sb]
                if p.proj_learn_bias[k]:
                    for G, label in self.Eenc[post]:
                        Sl = self._syn(G, Bg, "eta_b : 1 (shared)",
                                       on_pre={"u": "bb_post += int(t >= t_learn_pre)*eta_b*pol_pre*sg_e_pre"},
                                       on_event={"u": "eev"}, name=f"{pfx}Bl_{kn[k]}_{label}")
                        Sl.connect(j=f"i % {n_post}", namespace={})
                        self.plastic_syn.append((Sl, "eta_b", float(p.proj_lr[k]) * scale))
                        objs.append(Sl)
            if p.proj_skip[k]:
                Ss = self._syn(Vpre, Epost, on_pre={"x": f"Imu_post += {qv!r}*sg_x_pre"}, on_event={"x": "xev"},
                               name=f"{pfx}SK_{kn[k]}")
                Ss.connect(j="i", namespace={})
                self.delay_syn.append((Ss, ("x",)))
                objs.append(Ss)
                objs += self._feedback(Vpre, post, "Isfb_pre", 1.0, name=f"{pfx}SKF_{kn[k]}")

        for S, var, stage in summed:
            u = S.summed_updaters[var]
            u.when = "before_groups"
            u.order = stage

        # ---- frozen synaptic delays
        if hw.delay > 0 or hw.delay_jitter > 0:
            for S, paths in self.delay_syn:
                for path in paths:
                    d = hw.delay + hw.delay_jitter * self.rng.random(len(S))
                    getattr(S, path).delay = d * ms

        # ---- monitors (every step; sampled at the rate model's step times on the host)
        self.mon_F = b2.StateMonitor(ctl, list(self.F_names.values()) or ["dummy"], record=[0], when="end",
                                     order=10, name=pfx + "monF")
        objs.append(self.mon_F)
        it = record_item
        self.mon_x, self.mon_e, self.ev_mons = {}, {}, {}
        for i in range(npop):
            n = int(p.pop_size[i])
            if probes:
                idx = list(range(it * n, (it + 1) * n))
                self.mon_x[i] = b2.StateMonitor(self.V[i], "x", record=idx, when="end", order=10,
                                                name=f"{pfx}monx_{pn[i]}")
                objs.append(self.mon_x[i])
                if i in self.E:
                    self.mon_e[i] = b2.StateMonitor(self.E[i], ["eps", "mu"], record=idx, when="end", order=10,
                                                    name=f"{pfx}mone_{pn[i]}")
                    objs.append(self.mon_e[i])
            if cfg.record_spikes:
                for c in self.chans[i]:
                    m = b2.EventMonitor(self.V[i][it * n:(it + 1) * n], f"{c}ev", variables=[f"sg_{c}"],
                                        name=f"{pfx}evV_{pn[i]}_{c}")
                    self.ev_mons[(p.pop_names[i], c)] = (m, f"sg_{c}")
                    objs.append(m)
                for G, label in self.Eenc.get(i, []):
                    m = b2.EventMonitor(G[it * n:(it + 1) * n], "eev", variables=["sg_e"],
                                        name=f"{pfx}evE_{pn[i]}_{label}")
                    self.ev_mons[(f"eps_{p.pop_names[i]}", label)] = (m, "sg_e")
                    objs.append(m)
        self.net = b2.Network(*objs, name=pfx + "net")
        # Every run starts from this snapshot: time 0, no events in flight, empty monitors.  Without it a
        # run would depend on the runs before it on the same network (brian2 continues the clock from the
        # previous run's end, which is half a spiking step off the grid, so runs alternated between n and
        # n + 1 steps; delayed events of the previous batch arrived in the next one), and a simulator
        # resumed from a checkpoint, which builds a fresh network, would not repeat an uninterrupted run.
        self.net.store(self._CLEAN)

    # ------------------------------------------------------------------------------------------------------
    def _feedback(self, Vpre, post, target, A, weight=None, eta=None, name=""):
        """Synapses carrying the error events of population ``post`` to ``target`` (a current of ``Vpre``).

        ``weight=(Wg, n_pre, n_post)``: through the shared weights (and, with ``eta``, their event-driven
        plasticity); else one-to-one with unit weight.
        """
        qe = self.qe
        objs = []
        for G, label in self.Eenc[post]:
            if weight is None:
                S = self._syn(Vpre, G, on_post={"f": f"{target} += {A * qe!r}*pol_post*sg_e_post"},
                              on_event={"f": "eev"}, name=f"{name}_{label}")
                S.connect(j="i", namespace={})
            else:
                Wg, n_pre, n_post = weight
                # feedback and plasticity are two pathways of the same event: "f" runs before "l" (so the
                # feedback uses the weight before the update), and one statement each keeps them vectorised
                paths = {"f": f"{target} += {A * qe!r}*wl*pol_post*sg_e_post"}
                if eta is not None:
                    bits = self.hw.weight_bits
                    dw = "int(t >= t_learn_post)*eta*tr_pre*pol_post*sg_e_post"
                    if bits is None:
                        paths["l"] = f"wl += {dw}"
                    else:
                        qw = float(self.cfg.w_max) / 2 ** (bits - 1)
                        paths["l"] = f"wl += {qw!r}*floor({dw}/{qw!r} + rand())"
                S = self._syn(Vpre, G, "wl : 1 (linked)\nwidx : integer (constant)\neta : 1 (shared)",
                              on_post=paths, on_event={pth: "eev" for pth in paths}, name=f"{name}_{label}")
                C.batch_connect_all(S, n_pre, n_post)
                C.set_expr(S, "widx", C.weight_index_expr(n_pre, n_post))
                S.wl = b2.linked_var(Wg, "w", index="widx")
                if eta is not None:
                    self.plastic_syn.append((S, "eta", eta))
            self.delay_syn.append((S, tuple(pw.objname for pw in S._pathways)))
            objs.append(S)
        return objs

    # ------------------------------------------------------------------------------------------------------
    def _host_currents(self, x0, es0, host):
        """Synaptic currents of the rate model at state x0 (warm start: no filter transients)."""
        p = self.plan
        mu = host.predictions(x0)
        eps = np.zeros_like(x0)
        for i in range(p.n_pops):
            sl = host.sl[i]
            if self.dyn_err[i]:
                eps[:, sl] = es0[:, sl]
            elif self.has_err[i]:
                eps[:, sl] = host.prec[sl] * (x0[:, sl] - mu[:, sl])
        fb = np.zeros_like(x0)
        sfb = np.zeros_like(x0)
        for k in range(p.n_proj):
            pre, post = p.proj_pre[k], p.proj_post[k]
            if p.w_off[k] >= 0:
                fb[:, host.sl[pre]] += p.proj_mult[k] * (eps[:, host.sl[post]] @ host.weight(k))
            if p.proj_skip[k]:
                sfb[:, host.sl[pre]] += eps[:, host.sl[post]]
        return mu, eps, fb, sfb

    def _reset_encoder(self, G, c, n, rng):
        setattr(G, f"n_{c}", 0.0)
        setattr(G, f"sat_{c}", 0.0)
        setattr(G, f"nl_{c}", 0.0)
        setattr(G, f"sg_{c}", 0.0)
        setattr(G, f"lt_{c}", -1.0 * b2.second)
        if self.cfg.neuron != "poisson":   # random initial phases: no lock-step first events
            setattr(G, f"v_{c}", (2 * rng.random(n) - 1) * C.copy_out(G.vth[:]))

    def run(self, x0, es0, host, t, spec: RunSpec, W, b, seed=0):
        """Simulate ``spec.n_steps * spec.dt * time_unit`` ms from the host state ``x0``; returns a dict."""
        p, B, cfg, hw = self.plan, self.B, self.cfg, self.hw
        ms = b2.ms
        T = spec.n_steps * spec.dt * cfg.time_unit          # ms
        n_spk = int(round(T / cfg.dt))
        self.net.restore(self._CLEAN)   # a run depends only on its inputs and seed, not on earlier runs
        t0 = float(self.net.t / ms)     # 0.0
        t_end = t0 + n_spk * cfg.dt
        t_avg = t_end - cfg.readout_fraction * T - 0.5 * cfg.dt
        T_L = cfg.learn_fraction * T
        t_learn = (t_end - T_L - 0.5 * cfg.dt) if spec.learn else 1e12
        rng = np.random.default_rng([int(seed) % 2 ** 63, 1])
        for k, Bg in self.Bg.items():
            o = int(p.b_off[k])
            Bg.bb = b[o:o + len(Bg)]
        qrng = np.random.default_rng([int(seed) % 2 ** 63, 2])
        for k, Wg in self.Wg.items():
            o = int(p.w_off[k])
            Wg.w = quantize(W[o:o + len(Wg)], cfg.w_max, hw.weight_bits, qrng)
        mu0, eps0, fb0, sfb0 = self._host_currents(x0, es0, host)
        for i in range(p.n_pops):
            sl = host.sl[i]
            n = int(p.pop_size[i])
            V = self.V[i]
            role = p.pop_role[i]
            clamped = role == ROLE_INPUT or (role == ROLE_TARGET and spec.mode == MODE_CLAMP)
            V.x = x0[:, sl].ravel()
            V.free = 0.0 if clamped else 1.0
            V.nud = 1.0 if (role == ROLE_TARGET and spec.mode == MODE_NUDGE) else 0.0
            V.beta = float(spec.beta)
            V.tgt = np.asarray(t, dtype=float).ravel() if (role == ROLE_TARGET and t is not None) else 0.0
            V.Ie = eps0[:, sl].ravel()
            V.Ifb = fb0[:, sl].ravel()
            V.Isfb = sfb0[:, sl].ravel()
            V.tr = act.phi(C.PHI_NAMES[int(p.pop_phi[i])], x0[:, sl]).ravel()
            V.xs = 0.0
            V.win = 0.0
            V.t_avg = t_avg * ms
            V.t_learn = t_learn * ms
            for c in self.chans[i]:
                self._reset_encoder(V, c, B * n, rng)
            if i in self.E:
                E = self.E[i]
                E.Ix = x0[:, sl].ravel()
                nb = sum(C.copy_out(self.Bg[k].bb[:]) for k in self.Bg if p.proj_post[k] == i)
                E.Imu = (mu0[:, sl] - nb).ravel()
                if self.dyn_err[i]:
                    E.eps = es0[:, sl].ravel()
                E.es_s = 0.0
                E.mu_s = 0.0
                E.t_avg = t_avg * ms
                for G, label in self.Eenc[i]:
                    G.t_learn = t_learn * ms
                    self._reset_encoder(G, "e", B * n, rng)
                E.t_learn = t_learn * ms
        Ge = float(cfg.error_rate)
        for S, var, base in self.plastic_syn:
            setattr(S, var, base / (Ge * T_L * 1e-3) if spec.learn else 0.0)
        with C.isolated_seed(seed):
            self.net.run(n_spk * cfg.dt * ms + 0.5 * cfg.dt * ms, namespace={})
            C.raise_if_stopped()
        return self._collect(spec, t0, T, n_spk)

    # ------------------------------------------------------------------------------------------------------
    def _collect(self, spec, t0, T, n_spk):
        p, B = self.plan, self.B
        N = p.n_units
        win = float(C.copy_out(self.V[0].win[:])[0]) if p.n_pops else 0.0
        win = win if win > 0 else 1.0
        x = np.zeros((B, N))
        eps = np.zeros((B, N))
        mu = np.zeros((B, N))
        for i in range(p.n_pops):
            n, o = int(p.pop_size[i]), int(p.pop_off[i])
            x[:, o:o + n] = C.copy_out(self.V[i].xs[:]).reshape(B, n) / win
            if i in self.E:
                eps[:, o:o + n] = C.copy_out(self.E[i].es_s[:]).reshape(B, n) / win
                mu[:, o:o + n] = C.copy_out(self.E[i].mu_s[:]).reshape(B, n) / win
        # samples at the rate model's step times 0, dt, ..., n_steps dt (monitor row r: after r+1 steps)
        rows = np.clip(np.round(np.arange(spec.n_steps + 1) * (n_spk / max(spec.n_steps, 1))).astype(int) - 1,
                       0, None)
        energy = np.zeros((spec.n_steps + 1, p.n_pops))
        for i, name in self.F_names.items():
            energy[:, i] = C.copy_out(getattr(self.mon_F, name))[0][rows]
        out = {"x": x, "eps": eps, "mu": mu, "energy": energy}
        if self.mon_x:
            rec_x = np.zeros((spec.n_steps + 1, N))
            rec_eps = np.zeros_like(rec_x)
            rec_mu = np.zeros_like(rec_x)
            for i in range(p.n_pops):
                n, o = int(p.pop_size[i]), int(p.pop_off[i])
                rec_x[:, o:o + n] = C.copy_out(self.mon_x[i].x).T[rows]
                if i in self.mon_e:
                    rec_eps[:, o:o + n] = C.copy_out(self.mon_e[i].eps).T[rows]
                    rec_mu[:, o:o + n] = C.copy_out(self.mon_e[i].mu).T[rows]
            out.update(rec_x=rec_x, rec_eps=rec_eps, rec_mu=rec_mu)
        Wout = np.zeros(p.W.shape)
        for k, Wg in self.Wg.items():
            o = int(p.w_off[k])
            Wout[o:o + len(Wg)] = C.copy_out(Wg.w[:])
        bout = np.zeros(p.b.shape)
        for k, Bg in self.Bg.items():
            o = int(p.b_off[k])
            bout[o:o + len(Bg)] = C.copy_out(Bg.bb[:])
        out.update(W=Wout, b=bout, report=self._report(t0, T, n_spk))
        return out

    def _report(self, t0, T, n_spk):
        """Event counts (the input of energy estimates), rates and the recorded events of one item.

        Synaptic events are counted as events times fan-out: a value event reaches its own error unit
        (both neurons of a pair/onoff error unit), and ``n_post`` error units per projection; an error event
        reaches its own value unit, ``n_pre`` value units per incoming projection, skips and bias units --
        except value units of a clamped input, which no feedback moves (their synapses exist for the weight
        update, counted in ``weight_updates``; the cost model never sends feedback into a clamped input, and
        these deliveries were ~29% of the synaptic events of a 64-input digits network).
        """
        p, B, cfg = self.plan, self.B, self.cfg
        pair = 2 if cfg.error_scheme in ("pair", "onoff") else 1
        counts, learn_counts, saturation = {}, {}, {}

        def saturated(G, c):   # the fraction of unit-time during which the encoder's rate was clipped
            tot = float(np.sum(C.copy_out(getattr(G, f"sat_{c}")[:])))
            return min(1.0, tot / max(len(G) * T * 1e-3, 1e-12))
        for i in range(p.n_pops):
            for c in self.chans[i]:
                counts[f"{p.pop_names[i]}.{c}"] = float(np.sum(C.copy_out(getattr(self.V[i], f"n_{c}")[:])))
                saturation[f"{p.pop_names[i]}.{c}"] = saturated(self.V[i], c)
            for G, label in self.Eenc.get(i, []):
                counts[f"eps_{p.pop_names[i]}.{label}"] = float(np.sum(C.copy_out(G.n_e[:])))
                saturation[f"eps_{p.pop_names[i]}.{label}"] = saturated(G, "e")
                learn_counts[i] = learn_counts.get(i, 0.0) + float(np.sum(C.copy_out(G.nl_e[:])))
        syn, wupd, syn_by = 0.0, 0.0, {}
        for i in range(p.n_pops):
            name = p.pop_names[i]
            nx = counts[f"{name}.x"]
            nphi = counts[f"{name}.{self.phi_ch[i]}"]
            ne = sum(counts[f"eps_{name}.{label}"] for _, label in self.Eenc.get(i, []))
            s_val = nx * pair if i in self.E else 0.0
            s_err = ne
            for k in range(p.n_proj):
                pre, post = int(p.proj_pre[k]), int(p.proj_post[k])
                if pre == i and p.w_off[k] >= 0:
                    s_val += nphi * int(p.pop_size[post]) * pair
                if pre == i and p.proj_skip[k]:
                    s_val += nx * pair
                if post == i:
                    if p.w_off[k] >= 0:
                        if p.pop_role[pre] != ROLE_INPUT:   # no feedback moves a clamped input
                            s_err += ne * int(p.pop_size[pre])
                        if p.proj_plastic[k]:
                            wupd += learn_counts.get(i, 0.0) * int(p.pop_size[pre])
                    if p.proj_skip[k] or p.proj_learn_bias[k]:
                        s_err += ne
            syn_by[name] = s_val
            if i in self.E:
                syn_by[f"eps_{name}"] = s_err
            syn += s_val + s_err
        n_neurons = B * (sum(int(p.pop_size[i]) for i in range(p.n_pops))
                         + pair * sum(int(p.pop_size[i]) for i in self.E))
        spikes = float(sum(counts.values()))
        events = {}
        for (pop, c), (m, sgvar) in self.ev_mons.items():
            # copies: brian2 owns (and frees) the monitor's memory
            events[f"{pop}.{c}"] = {"t": C.copy_out(m.t[:] / b2.ms) - t0, "i": C.copy_out(m.i[:]),
                                    "sign": C.copy_out(getattr(m, sgvar)[:])}
        return {
            "simulated_time_ms": float(T), "n_spiking_steps": int(n_spk), "batch": int(B),
            "spikes": spikes, "spikes_by_channel": counts, "synaptic_events": float(syn),
            "synaptic_events_by_population": syn_by, "weight_updates": float(wupd), "n_neurons": int(n_neurons),
            "mean_rate_hz": spikes / max(n_neurons * T * 1e-3, 1e-12), "events": events,
            "spikes_per_sample": spikes / B, "synaptic_events_per_sample": syn / B,
            "error_scheme": cfg.error_scheme, "neuron": cfg.neuron,
            "saturation": saturation,
            "value_range": float(cfg.max_rate / cfg.value_rate), "error_range": error_range(cfg),
        }
