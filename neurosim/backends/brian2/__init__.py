r"""The brian2 backend: the same circuits as brian2 NeuronGroups and Synapses.

``Simulator(circuit, backend="brian2", backend_options={...})`` with

``mode="rate"`` (default)
    The value and error ODEs as equation strings, predictions and feedback as summed variables of
    synapses that share one weight, the Hebbian update as a ``run_regularly`` operation (see
    :mod:`neurosim.backends.brian2.rate`).  Reproduces the numba backend to rounding error for Euler
    integration, in float64 or float32.  Runs the algorithms ``pc``, ``strict``, ``ipc`` (the optimiser step at
    every value step, :meth:`Brian2Backend.run_ipc`), ``fpa``, ``zil`` and ``bp`` (:meth:`Brian2Backend.run_sweep`).
``mode="spiking"``
    Rate-coded spiking neurons, signed errors carried by a configurable scheme, synaptic currents,
    event-driven Hebbian plasticity on spike traces and hardware non-idealities (see
    :mod:`neurosim.backends.brian2.spiking`).

Options
-------
mode : {"rate", "spiking"}
target : {"numpy", "cpp_standalone"}
    brian2 code generation.  ``numpy`` needs no compiler (tests, CI).  ``cpp_standalone`` generates and
    compiles a C++ project once per (batch size, number of steps, dt) and re-runs the binary with new
    inputs, weights and parameters through ``device.run(run_args=...)``, without recompiling.  brian2's
    standalone device is process-wide, so one standalone network is active per process: building a
    second one (another simulator, or a new batch size) re-initialises the device and the first one
    rebuilds on its next run.
directory : str, optional
    Where the cpp_standalone project is written (default: a fresh temporary directory).
spiking : SpikingConfig or dict, optional
    Spiking-mode parameters (units and defaults documented on :class:`SpikingConfig`); see
    :func:`suggest_config` for a choice that approximates the rate model.
hardware : HardwareConfig or dict, optional
    Spiking-mode hardware non-idealities (weight precision, delays, noise, mismatch, refractoriness).

What it cannot do (declared, so the Simulator refuses at build time)
--------------------------------------------------------------------
heun in spiking mode or on cpp_standalone
    brian2 integrates each NeuronGroup on its own with the synaptic inputs (summed variables) held
    fixed during a step, so its multi-stage methods are not the whole-network Heun step of the other
    backends.  The rate network on the numpy target maps one Heun step to two brian2 time steps of half
    the step (predictor: :math:`k_1 = f(x)`, :math:`x \to x + h k_1`; corrector, with every input computed
    at the predicted state: :math:`x \to x_{saved} + h/2\,(k_1 + f(x_{pred}))`), with tol, dt_decay,
    records and the Hebbian update taken in predictor steps only; the spiking network and the standalone
    project refuse (at the first run, the integrator is not known when the backend is built).
float32 in spiking mode or on cpp_standalone
    brian2 sets the float type process-wide (``prefs.core.default_float_dtype``); the rate network on the
    numpy target sets it to float32 while it builds and runs its objects (and restores it), so float32 and
    float64 networks share one process; the spiking network and the standalone project stay float64.
algorithms
    the output options of ``pc``/``strict`` have no brian2 mapping, nor have ``ipc``, ``fpa``, ``zil`` and
    ``bp`` in spiking mode (weights change only inside the learning window; no frozen predictions);
    ``train`` refuses them with an :class:`~neurosim.UnsupportedError` before any work
    (:func:`neurosim.algorithms.check_backend`), so they never run in NumPy on the host instead.  ``pc`` and
    ``strict`` run in the brian2 network; ``ipc``, ``fpa``, ``zil`` and ``bp`` (with their output options) in
    the rate network (:meth:`Brian2Backend.run_ipc`, :meth:`Brian2Backend.run_sweep`; ``bp`` as the FPA
    error sweep that equals backprop exactly).
per-read noise of a hardware model (``hardware=HardwareModel(reads=[AdditiveNoise(...), MultiplicativeNoise(...)])``)
    runs in the rate network on the numpy target, in standard PC (``pc``, what the substrate trains): the substrate
    (:mod:`neurosim.hardware.substrate`) sets :attr:`Brian2Backend.read_noise` for every batch, the network is
    built ``noisy`` (every weighted synapse draws its weight at every prediction and feedback read, see
    :mod:`neurosim.backends.brian2.rate`) and the initial state (the feedforward sweep, the first errors) is
    read on the host with the same law (:meth:`Brian2Backend._noisy_read`).  The spiking network, the
    cpp_standalone project, iPC and the sweep schedules (``fpa``, ``zil``, ``bp``) draw no per-read noise and
    refuse (:data:`READ_NOISE_REASON`).
"""
from __future__ import annotations

import tempfile

import numpy as np

from ...errors import UnsupportedError
from ...plan import ROLE_FREE, ROLE_INPUT, ROLE_TARGET
from ..base import HEUN, INIT_PREVIOUS, INIT_ZEROS, MODE_CLAMP, MODE_NUDGE, STATUS_DIVERGED, Backend, BatchResult, \
    RunSpec
from ..reference import ReferenceBackend

#: fraction of an encoder channel's unit-time spent clipped above which a spiking run warns
SATURATION_WARN = 0.01


def _warn_saturation(report, cfg):
    """A RuntimeWarning when encoders spent more than :data:`SATURATION_WARN` of the run clipped: the spiking
    values then leave the rate model's (a value beyond ``max_rate / value_rate`` is coded as that bound, and the
    error it sees drives it further).  The message names the channels and the ranges, not the fractions, so that
    Python shows it once per training loop; the fractions are in ``last_run["saturation"]``."""
    sat = sorted(k for k, v in report.get("saturation", {}).items() if v > SATURATION_WARN)
    if not sat:
        return
    import warnings
    warnings.warn(
        f"brian2 spiking: encoders saturated for more than {SATURATION_WARN:.0%} of the run in {', '.join(sat)}: "
        f"values and phi(x) beyond +-{report['value_range']:g} (max_rate {cfg.max_rate:g} Hz / value_rate "
        f"{cfg.value_rate:g} Hz) and errors beyond +-{report['error_range']:g} are clipped"
        + (" (on/off error pairs: one neuron of the pair silent or the other at max_rate)"
           if cfg.error_scheme == "onoff" else "")
        + ", so the spiking circuit no longer follows the rate model there. Scale the data or widen the range: "
        "spiking=suggest_config(circuit, value_range=...) (neurosim.backends.brian2.suggest_config), or a higher "
        "max_rate / lower value_rate; sim.backend.last_run['saturation'] gives the clipped fraction per channel",
        RuntimeWarning, stacklevel=2)
from . import _common
from .spiking import HardwareConfig, SpikingConfig, SpikingNetwork, check_spiking_plan, suggest_config

__all__ = ["Brian2Backend", "SpikingConfig", "HardwareConfig", "suggest_config", "UNSUPPORTED"]

#: features the other backends have and this one does not, with the reason
UNSUPPORTED = {"sparse": "sparse projections (connectivity=) are not built as brian2 Synapses yet; run them with "
                         "backend='numba' or 'reference', or drop connectivity= (dense)"}

#: why Heun needs the rate mode on the numpy target
HEUN_REASON = ("integrator 'heun' runs in mode='rate' on target='numpy' only: the rate network maps one Heun step "
               "to a predictor and a corrector brian2 time step (brian2's own multi-stage methods integrate each "
               "group with its synaptic inputs held fixed, which is not the whole-network Heun step); the "
               "spiking network and the cpp_standalone project integrate with Euler; use integrator='euler'")

#: why float32 needs the rate mode on the numpy target (the rate network sets brian2's float type per network)
FLOAT32_REASON = ("float32 runs in mode='rate' on target='numpy' only: the rate network builds and runs its "
                  "objects with brian2's (process-wide) float type set to float32 and restored after; the spiking "
                  "network and the cpp_standalone project are built in float64")

#: why per-read noise needs the rate mode on the numpy target
READ_NOISE_REASON = ("per-read weight noise runs in mode='rate' on target='numpy' only: the rate network draws "
                     "fresh normals on every weighted synapse at every prediction and feedback read, seeded per "
                     "run from the host; the spiking network has no per-read weight draws and the cpp_standalone "
                     "project is compiled without them; use mode='rate' and target='numpy', or backend='numba' "
                     "or 'reference' (the event-driven hardware engine)")

_STANDALONE_OWNER = [None]   # the backend whose project brian2's (process-wide) standalone device holds


class Brian2Backend(Backend):
    """Runs a Plan on brian2, as a rate network (``mode="rate"``) or a spiking one (``mode="spiking"``)."""

    name = "brian2"
    supports = frozenset({"euler", "heun", "tol", "nudge", "tau_eps", "skip", "multiplier", "bias", "adam",
                          "dt_decay", "probes", "graph", "float32"})
    unsupported_reasons = UNSUPPORTED

    def __init__(self, plan, dtype=np.float64, mode="rate", target="numpy", directory=None, spiking=None,
                 hardware=None):
        super().__init__(plan, dtype)
        if np.dtype(dtype) != np.float64 and (mode != "rate" or target != "numpy"):
            raise UnsupportedError(f"backend 'brian2' (mode={mode!r}, target={target!r}) cannot run float32: "
                                   f"{FLOAT32_REASON}")
        if mode not in ("rate", "spiking"):
            raise ValueError(f"backend 'brian2': mode must be 'rate' or 'spiking', got {mode!r}")
        if target not in ("numpy", "cpp_standalone"):
            raise ValueError(f"backend 'brian2': target must be 'numpy' or 'cpp_standalone', got {target!r}")
        if mode == "rate" and (spiking is not None or hardware is not None):
            raise ValueError("backend 'brian2': the options 'spiking' and 'hardware' need mode='spiking'")
        self.mode = mode
        self.target = target
        self.directory = directory
        _common.configure_prefs("numpy")
        self._host = ReferenceBackend(plan, np.float64)
        self._host.W = self.W          # the host helper reads the live weights (same arrays)
        self._host.b = self.b
        self._net = None
        self._net_key = None
        self._x = self._es = self._mu = None
        self._n_runs = 0
        if mode == "spiking":
            self.spiking = SpikingConfig.coerce(spiking)
            self.hardware = HardwareConfig.coerce(hardware)
            check_spiking_plan(plan, self.spiking)
            if target != "numpy":
                raise UnsupportedError("backend 'brian2': mode='spiking' runs on the numpy target only "
                                       "(its per-batch structure changes with the learning window and probes); "
                                       "use target='numpy'")
        else:
            self.spiking = self.hardware = None
        self.last_run = None   # spiking mode: spikes, counts, rates of the last batch
        #: ``(sigma_m^2, sigma_a^2, seed)`` of the per-read noise of the next batch (set by the hardware
        #: substrate around a batch), or None
        self.read_noise = None

    # ------------------------------------------------------------------ the initial state (host)
    def _initial_state(self, s, t, spec, noise=None):
        """``(x, es)`` a run starts from: the previous state, or the feedforward sweep (zeros for
        ``init="zeros"``) and the instantaneous errors there.  ``noise`` (``(sigma_m^2, sigma_a^2, rng)``): the
        sweep and the errors read every weighted projection with per-read noise (:meth:`_noisy_forward`)."""
        p = self.plan
        h = self._host
        B = s.shape[0]
        if spec.init == INIT_PREVIOUS and self._x is not None and self._x.shape[0] == B:
            x, es = self._x.copy(), self._es.copy()
            for j, i in enumerate(p.input_pops):
                x[:, h.sl[i]] = s[:, p.input_off[j]:p.input_off[j] + p.pop_size[i]]
            if spec.mode == MODE_CLAMP and p.target_pop >= 0:
                x[:, h.sl[p.target_pop]] = t
        else:
            x = h.feedforward(s, t, spec.mode) if noise is None else self._noisy_forward(s, t, spec.mode, *noise)
            if spec.init == INIT_ZEROS:
                for i in range(p.n_pops):
                    if p.pop_role[i] == ROLE_FREE or (p.pop_role[i] == ROLE_TARGET and spec.mode != MODE_CLAMP):
                        x[:, h.sl[i]] = 0.0
            es = h.prec * (x - (h.predictions(x) if noise is None else self._noisy_predictions(x, *noise)))
            for i in range(p.n_pops):
                if not p.pop_has_err[i]:
                    es[:, h.sl[i]] = 0.0
        return x, es

    # ------------------------------------------------------------------ per-read noise on the host
    def _noisy_read(self, i, x, phx, m2, a2, rng):
        r"""The prediction of population ``i`` read once with per-read noise (the event engine's law):

        .. math:: \mu_i = \sum_k a_k W_k \phi(x_{pre}) + b_k (+ x_{pre}) + \xi\,\sqrt{\textstyle\sum_k a_k^2
                  \big(\sigma_m^2\, \phi(x_{pre})^2 (W_k^2)^T + \sigma_a^2 \sum_j \phi(x_{pre})_j^2\big)}

        over the projections ``k`` into ``i`` (the weighted ones carry the noise,
        :func:`~neurosim.hardware.nonideal.read_noise_std`; biases and skips are exact), :math:`\xi \sim N(0,1)`
        per unit, drawn only when a weighted projection comes in."""
        from ...hardware.nonideal import read_noise_std
        p = self.plan
        eq = self._host.eq
        out = np.zeros((x.shape[0], int(p.pop_size[i])))
        var = np.zeros_like(out)
        weighted = False
        for k in range(int(p.in_start[i]), int(p.in_end[i])):
            eq._add_contrib(k, x, phx, out)
            if p.w_off[k] >= 0:
                a = float(p.proj_mult[k])
                var += a * a * read_noise_std(phx[:, eq.sl[p.proj_pre[k]]], self._host.weight(k), np.sqrt(m2),
                                              np.sqrt(a2)) ** 2
                weighted = True
        if weighted:
            out += np.sqrt(var) * rng.standard_normal(out.shape)
        return out

    def _noisy_forward(self, s, t, mode, m2, a2, rng):
        """The feedforward sweep in topological order with every population set to its noisy read
        (:meth:`_noisy_read`), as the event engine's initial sweep; the target clamped to ``t`` in mode clamp."""
        from ... import activations as act
        p = self.plan
        eq = self._host.eq
        x = np.zeros((s.shape[0], p.n_units))
        phx = np.zeros_like(x)
        for j, i in enumerate(p.input_pops):
            x[:, eq.sl[i]] = s[:, p.input_off[j]:p.input_off[j] + p.pop_size[i]]
        for i in range(p.n_pops):
            if p.pop_role[i] != ROLE_INPUT:
                x[:, eq.sl[i]] = self._noisy_read(i, x, phx, m2, a2, rng)
            phx[:, eq.sl[i]] = act.phi(eq.names[i], x[:, eq.sl[i]])
        if mode == MODE_CLAMP and p.target_pop >= 0:
            x[:, eq.sl[p.target_pop]] = t
        return x

    def _noisy_predictions(self, x, m2, a2, rng):
        """Every population's prediction read once with per-read noise (0 for inputs)."""
        p = self.plan
        eq = self._host.eq
        phx = eq.phi(x)
        mu = np.zeros_like(x)
        for i in range(p.n_pops):
            if p.pop_role[i] != ROLE_INPUT:
                mu[:, eq.sl[i]] = self._noisy_read(i, x, phx, m2, a2, rng)
        return mu

    def _noise(self):
        """``(sigma_m^2, sigma_a^2, seed)`` of this batch's per-read noise, or None (none set, or both 0)."""
        rn = self.read_noise
        if rn is None or not (rn[0] > 0 or rn[1] > 0):
            return None
        return float(rn[0]), float(rn[1]), int(rn[2])

    def _refuse_noise(self, what):
        if self._noise() is not None:
            raise UnsupportedError(f"backend 'brian2' (mode={self.mode!r}, target={self.target!r}) cannot run "
                                   f"{what} with per-read noise: {READ_NOISE_REASON}")

    # ------------------------------------------------------------------ networks
    def _rate_network(self, B, spec, every_step=False, schedule="pc", noisy=False):
        from .rate import RateNetwork
        probe_item = spec.probe_item if spec.probe_every > 0 and spec.probe_item < B else None
        standalone = self.target == "cpp_standalone"
        heun = spec.integrator == HEUN and not every_step and schedule == "pc"
        key = (B, spec.dt, probe_item, spec.n_steps if standalone else None, bool(every_step), schedule, heun,
               bool(noisy))
        if self._net is not None and self._net_key == key and (not standalone or _STANDALONE_OWNER[0] is self):
            return self._net
        if not standalone:
            self._net = RateNetwork(self.plan, B, spec.dt, probe_item, every_step=every_step, schedule=schedule,
                                    dtype=self.dtype, heun=heun, noisy=noisy)
        else:
            if self.directory is None:
                self.directory = tempfile.mkdtemp(prefix="neurosim_brian2_")
            from brian2.devices.device import all_devices, reset_device, set_device
            dev = all_devices["cpp_standalone"]
            if _STANDALONE_OWNER[0] is not None or dev.has_been_run:
                dev.reinit()   # brian2's standalone device holds one project per process
                if _STANDALONE_OWNER[0] is not None:
                    _STANDALONE_OWNER[0]._net = None
            set_device("cpp_standalone", directory=self.directory, build_on_run=False)
            _common.configure_prefs("numpy")
            _common.configure_standalone_prefs()
            try:
                net = RateNetwork(self.plan, B, spec.dt, probe_item,
                                  standalone={"directory": self.directory, "n_steps": spec.n_steps},
                                  every_step=every_step)
                net.build_standalone(spec.n_steps)
            finally:
                reset_device()
            net.device = dev
            self._net = net
            _STANDALONE_OWNER[0] = self
        self._net_key = key
        return self._net

    # ------------------------------------------------------------------ one batch
    def run_batch(self, s, t, spec: RunSpec) -> BatchResult:
        if spec.integrator == HEUN and (self.mode != "rate" or self.target != "numpy"):
            raise UnsupportedError(f"backend 'brian2' (mode={self.mode!r}, target={self.target!r}): {HEUN_REASON}")
        p = self.plan
        s = np.ascontiguousarray(s, dtype=np.float64)
        t = None if t is None else np.ascontiguousarray(t, dtype=np.float64)
        if self.mode != "rate" or self.target != "numpy":
            self._refuse_noise("a batch")
        if self.mode == "spiking":
            return self._run_spiking(s, t, spec)
        return self._run_rate(s, t, spec)

    def run_ipc(self, s, t, spec: RunSpec, prec=None, factor=1.0, target_beta=1.0) -> BatchResult:
        r"""One batch of incremental PC (:mod:`neurosim.algorithms.ipc`) in the rate network (``mode="rate"``).

        The values start at the feedforward pass (the output clamped to the target in ``"clamp"`` mode);
        in every time step but the last, values and parameters take one step together from the same state,

        .. math:: x_{t+1} = x_t + \frac{dt}{\tau_x}\,\mathrm{drive}(x_t, \theta_t), \qquad
                  \theta_{t+1} = \theta_t + \mathrm{opt}\big(\mathrm{factor}\cdot g(x_t, \theta_t)\big),

        so ``spec.dt`` is iPC's value step :math:`\gamma` and the optimiser (and Adam's step count) steps
        ``spec.n_steps`` times.  The output options: ``prec`` replaces the error precisions (per unit, None:
        the circuit's), ``target_beta`` < 1 replaces the target by the weak target
        :math:`\hat y + \beta (t - \hat y)` (:math:`\hat y` the feedforward output), ``factor`` multiplies
        the update direction.  Spiking mode has no per-step optimiser step and refuses.  A batch that
        diverges leaves the weights as they were before it (the reference keeps the updates of the steps
        before the divergence); ``train`` raises :class:`~neurosim.DivergenceError` either way.
        """
        if self.mode != "rate":
            raise UnsupportedError("backend 'brian2' (mode='spiking') cannot run algorithm 'ipc': its weights "
                                   "change only by event-driven plasticity inside the learning window at the end "
                                   "of a run, with no optimiser step at every value step; use mode='rate'")
        self._refuse_noise("algorithm 'ipc'")
        if spec.integrator == HEUN:
            raise UnsupportedError("backend 'brian2' runs algorithm 'ipc' with integrator='euler' only (its joint "
                                   "steps of values and weights are Euler steps)")
        s = np.ascontiguousarray(s, dtype=np.float64)
        t = np.ascontiguousarray(t, dtype=np.float64)
        if target_beta != 1.0:
            p = self.plan
            y0 = self._host.feedforward(s, t, MODE_NUDGE)[:, self._host.sl[p.target_pop]]
            t = y0 + target_beta * (t - y0)
        return self._run_rate(s, t, spec, every_step=True, prec=prec, factor=factor)

    def run_sweep(self, s, t, spec: RunSpec, schedule, *, n, step, upd_step, prec, factor=1.0, target_beta=1.0,
                  gain=None):
        r"""One batch of a sweep schedule (``fpa``, ``zil``, and ``bp`` as exact FPA) in the rate network.

        The values start at the feedforward pass :math:`\hat x` (computed on the host with the reference's
        NumPy code, as every initial state of this backend), the output clamped to the target (or to the weak
        target :math:`\hat y + \beta_t (t - \hat y)`, ``target_beta``); brian2 then takes ``n`` Euler steps of
        size ``step`` (its ``dt``) and projection ``k`` takes one optimiser step, along ``factor`` times its
        Hebbian direction, in the time step ``upd_step[k]`` (-1: never):

        ``schedule="fpa"``
            predictions, Jacobians and the Hebbian presynaptic rates are frozen at :math:`\hat x` (the value
            groups hold :math:`\hat x` as ``xh``); per unit the step is ``step * gain / tau_x``
            (``gain`` None: 1):
            :math:`x \leftarrow x + \mathrm{step}\cdot\mathrm{gain}/\tau_x\,(-\varepsilon + \phi'(\hat x)\odot
            aW^T\varepsilon_{post} + \varepsilon_{skip})`, :math:`\varepsilon = \pi (x - \mu(\hat x))`.
        ``schedule="zil"``
            the standard PC dynamics (predictions from the live values), with the per-projection update step.

        ``prec`` replaces the error precisions (per unit).  Returns ``(BatchResult, (g_W, g_b))``: the
        directions (Hebbian sums of each projection's update step, times :math:`a_k c_B`, without ``factor``)
        as computed by brian2.  Spiking mode and the cpp_standalone target refuse.
        """
        label = "backend 'brian2'"
        if self.mode != "rate":
            raise UnsupportedError(f"{label} (mode='spiking') cannot run the sweep schedule {schedule!r}: its errors "
                                   "are spike rates relaxing in continuous time, with neither predictions frozen "
                                   "at the feedforward pass nor an update of each projection at its own step; "
                                   "use mode='rate'")
        if self.target != "numpy":
            raise UnsupportedError(f"{label}: the sweep schedule {schedule!r} runs on the numpy target only (its "
                                   "inputs change with the schedule's per-projection update steps); use "
                                   "target='numpy'")
        self._refuse_noise(f"the sweep schedule {schedule!r}")
        from dataclasses import replace
        p = self.plan
        h = self._host
        s = np.ascontiguousarray(s, dtype=np.float64)
        t = np.ascontiguousarray(t, dtype=np.float64)
        tsl = h.sl[p.target_pop]
        xh = h.feedforward(s, t, MODE_NUDGE)          # the feedforward pass (the target at its prediction)
        y0 = xh[:, tsl].copy()
        teff = t if target_beta == 1.0 else y0 + target_beta * (t - y0)
        x0 = xh.copy()
        x0[:, tsl] = teff
        spec = replace(spec, dt=float(step), n_steps=int(n), mode=MODE_CLAMP, tol=0.0, dt_decay=1.0)
        learning = [k for k in range(p.n_proj) if upd_step.get(k, -1) >= 0
                    and (p.proj_plastic[k] or p.proj_learn_bias[k])] if spec.learn else []
        g = np.ones(p.n_units) if gain is None else np.asarray(gain, dtype=np.float64)
        sweep = {"upd_step": dict(upd_step), "learn": set(learning), "xh": xh, "gain": g}
        res = self._run_rate(s, teff, spec, prec=prec, factor=factor, schedule=schedule, sweep=sweep,
                             x0=(x0, np.zeros_like(x0)), learning=learning, y0=y0)
        out = self._last_out
        if res.status != 0:
            return res, None
        if res.rec_x is None:   # no probes: empty records, as the reference's schedules return
            res.rec_steps = np.zeros(0, dtype=np.int64)
            res.rec_x = res.rec_eps = res.rec_mu = np.zeros((0, p.n_units))
        if schedule == "fpa" and res.rec_mu.shape[0]:
            for i in p.input_pops:   # FPA's frozen prediction of an input is its value (as the reference)
                res.rec_mu[:, h.sl[i]] = res.rec_x[:, h.sl[i]]
        gW, gb = {}, {}
        B = s.shape[0]
        for k in range(p.n_proj):
            if upd_step.get(k, -1) < 0:
                continue
            scale = 1.0 / B if p.proj_mean[k] else 1.0
            if k in out["gW"]:
                gW[k] = float(p.proj_mult[k]) * scale * out["gW"][k].reshape(p.weight_shape(k))
            if k in out["gb"]:
                gb[k] = scale * out["gb"][k]
        return res, (gW, gb)

    def _run_rate(self, s, t, spec, every_step=False, prec=None, factor=1.0, schedule="pc", sweep=None, x0=None,
                  learning=None, y0=None):
        """A batch on the rate network: standard PC (one optimiser step at the end), ``every_step`` iPC, or a
        sweep schedule (:meth:`run_sweep`, which passes the initial state ``x0``, the ``learning`` projections
        and the feedforward output ``y0``)."""
        p = self.plan
        B = s.shape[0]
        noise = self._noise()   # per-read noise: standard PC only (ipc and the sweeps refuse before this)
        if noise is not None and spec.integrator == HEUN:
            raise UnsupportedError("backend 'brian2' runs per-read noise with integrator='euler' only: the noisy "
                                   "reads are defined per Euler step, as in the event engine; use "
                                   "integrator='euler'")
        host_noise = None if noise is None else (noise[0], noise[1], np.random.default_rng([noise[2], 1]))
        x0, es0 = self._initial_state(s, t, spec, host_noise) if x0 is None else x0
        h = self._host
        tsl = h.sl[p.target_pop] if p.target_pop >= 0 else slice(0, 0)
        if y0 is None:   # the first prediction of the output (a noisy read when the reads are noisy)
            y0 = (h.predictions(x0) if noise is None else self._noisy_predictions(x0, *host_noise))[:, tsl].copy()
        net = self._rate_network(B, spec, every_step, schedule, noisy=noise is not None)
        if learning is None:
            learning = [k for k in range(p.n_proj) if p.proj_plastic[k] or p.proj_learn_bias[k]] if spec.learn else []
        opt_t = self.opt_t.copy()
        for k in learning:
            opt_t[k] += 1
        extra = {"prec": prec, "factor": factor} if (every_step or schedule != "pc") else {}
        if schedule != "pc":
            extra["sweep"] = sweep
        if noise is not None:
            extra["noise"] = noise[:2]
        out = net.run(x0, es0, t, spec, self.W, self.b, self.mW, self.vW, self.mb, self.vb, opt_t,
                      seed=self._batch_seed() if noise is None else noise[2], **extra)
        self._last_out = out
        self._n_runs += 1
        energy = out["energy"]
        steps = min(out["steps"], spec.n_steps)
        bad_rows = np.nonzero(~np.all(np.isfinite(energy), axis=1))[0]
        status, fail_step, fail_pop = 0, -1, -1
        if bad_rows.size and bad_rows[0] <= steps:
            status, fail_step = STATUS_DIVERGED, int(bad_rows[0])
            fail_pop = int(np.argmax(~np.isfinite(energy[fail_step])))
            steps = fail_step
        energy = energy[:steps + 1].copy()
        res = BatchResult(steps=steps, energy=energy, status=status, fail_step=fail_step, fail_pop=fail_pop,
                          y0=y0, y=out["x"][:, tsl].copy())
        if spec.probe_every > 0 and "rec_x" in out:
            ks = np.arange(0, steps + 1, spec.probe_every)
            res.rec_steps = ks.astype(np.int64)
            res.rec_x, res.rec_eps, res.rec_mu = out["rec_x"][ks], out["rec_eps"][ks], out["rec_mu"][ks]
        elif spec.probe_every > 0:
            res.rec_steps = np.zeros(0, dtype=np.int64)
            res.rec_x = res.rec_eps = res.rec_mu = np.zeros((0, p.n_units))
        if status == 0 and learning:
            for k in learning:
                self.opt_t[k] += spec.n_steps if every_step else 1   # optimiser steps taken
                if p.proj_plastic[k]:
                    o, n = int(p.w_off[k]), out["W"][k].size
                    self.W[o:o + n], self.mW[o:o + n], self.vW[o:o + n] = out["W"][k], out["mW"][k], out["vW"][k]
                if p.proj_learn_bias[k]:
                    o, n = int(p.b_off[k]), out["b"][k].size
                    self.b[o:o + n], self.mb[o:o + n], self.vb[o:o + n] = out["b"][k], out["mb"][k], out["vb"][k]
        self._x, self._es, self._mu = out["x"], out["eps"], out["mu"]
        self.batch_size = B
        return res

    def _batch_seed(self):
        """Seed of the next run's random draws (spike phases, noise, stochastic rounding): the plan's seed and
        the number of runs so far, so a sequence of runs is reproducible and a checkpoint continues it."""
        return int(np.random.SeedSequence([int(self.plan.seed), self._n_runs]).generate_state(1)[0])

    def checkpoint_state(self):
        return {"n_runs": np.array(self._n_runs, dtype=np.int64)}

    def set_checkpoint_state(self, state):
        self._n_runs = int(state["n_runs"])

    # ------------------------------------------------------------------ spiking
    def _run_spiking(self, s, t, spec):
        B = s.shape[0]
        if spec.tol > 0 or spec.dt_decay < 1:
            raise UnsupportedError("backend 'brian2', mode='spiking': 'tol' and 'dt_decay' act on the rate "
                                   "model's integration step and have no spiking counterpart; run a fixed "
                                   "number of steps (simulated time = steps * dt * time_unit)")
        x0, es0 = self._initial_state(s, t, spec)
        h = self._host
        p = self.plan
        tsl = h.sl[p.target_pop] if p.target_pop >= 0 else slice(0, 0)
        y0 = h.predictions(x0)[:, tsl].copy()
        probes = spec.probe_every > 0 and spec.probe_item < B
        if spec.n_steps == 0:   # no simulated time: the state is the initial condition (e.g. predict())
            mu = h.predictions(x0)
            eps, energy = h.eq.errors(x0, mu)   # neurosim.equations: eps = pi (x - mu), F per population
            energy = energy[None, :]
            res = BatchResult(steps=0, energy=energy, y0=y0, y=x0[:, tsl].copy())
            if probes:
                res.rec_steps = np.zeros(1, dtype=np.int64)
                res.rec_x, res.rec_eps, res.rec_mu = x0[spec.probe_item:spec.probe_item + 1], \
                    eps[spec.probe_item:spec.probe_item + 1], mu[spec.probe_item:spec.probe_item + 1]
            self._x, self._es, self._mu = x0, np.where(es0 != 0, es0, eps), mu
            self.batch_size = B
            return res
        key = ("spiking", B, spec.probe_item if probes else 0, probes)
        if self._net is None or self._net_key != key:
            self._net = SpikingNetwork(self.plan, B, self.spiking, self.hardware, record_item=key[2], probes=probes)
            self._net_key = key
        out = self._net.run(x0, es0, h, t, spec, self.W, self.b, seed=self._batch_seed())
        self._n_runs += 1
        energy = out["energy"]
        res = BatchResult(steps=spec.n_steps, energy=energy, y0=y0, y=out["x"][:, tsl].copy())
        if probes:
            ks = np.arange(0, spec.n_steps + 1, spec.probe_every)
            res.rec_steps = ks.astype(np.int64)
            res.rec_x, res.rec_eps, res.rec_mu = out["rec_x"][ks], out["rec_eps"][ks], out["rec_mu"][ks]
        elif spec.probe_every > 0:
            res.rec_steps = np.zeros(0, dtype=np.int64)
            res.rec_x = res.rec_eps = res.rec_mu = np.zeros((0, p.n_units))
        bad = ~np.all(np.isfinite(energy), axis=1)
        if bad.any():
            res.status, res.fail_step = STATUS_DIVERGED, int(np.argmax(bad))
            res.fail_pop = int(np.argmax(~np.isfinite(energy[res.fail_step])))
        elif spec.learn:
            for k in range(p.n_proj):
                if p.proj_plastic[k]:
                    o, n = int(p.w_off[k]), int(np.prod(p.weight_shape(k)))
                    self.W[o:o + n] = out["W"][o:o + n]
                if p.proj_learn_bias[k]:
                    o, n = int(p.b_off[k]), int(p.pop_size[p.proj_post[k]])
                    self.b[o:o + n] = out["b"][o:o + n]
        self._x, self._es, self._mu = out["x"], out["eps"], out["mu"]
        self.batch_size = B
        self.last_run = out["report"]
        _warn_saturation(self.last_run, self.spiking)
        return res

    # ------------------------------------------------------------------ state
    def state(self):
        if self._x is None:
            return None
        return {"x": self._x.copy(), "eps": self._es.copy(), "mu": self._mu.copy()}

    def set_state(self, x, eps):
        self._x = np.array(x, dtype=np.float64)
        self._es = np.array(eps, dtype=np.float64)
        self._mu = self._host.predictions(self._x)

    def reset(self):
        super().reset()
        self._x = self._es = self._mu = None
        self._n_runs = 0
        if self.mode == "spiking":
            self._net = None
            self._net_key = None
        self.last_run = None

    def close(self):
        if _STANDALONE_OWNER[0] is self:
            _STANDALONE_OWNER[0] = None
        self._net = None
