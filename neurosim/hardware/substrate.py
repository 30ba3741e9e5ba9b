r"""The modelled substrate of a :class:`~neurosim.Simulator` built with ``hardware=HardwareModel(...)``.

``ns.Simulator(circuit, backend=..., hardware=model)`` attaches a :class:`Substrate` as ``sim.hardware``;
the Simulator's own ``run / learn / train / predict / evaluate`` (one training loop: progress, history,
checkpoints, divergence handling, probes) then run every batch on it:

* the simulator's backend holds the *stored* weights (the device state, ``sim.weights``) and the optimiser
  state; the :class:`~neurosim.hardware.nonideal.HardwareModel` says what the substrate does to them;
* **writes** (``updates`` and ``weights`` sites): the initial weights are programmed through the
  ``weights`` transforms when the simulator is built (and again by ``reinitialize``); after every update
  the intended change :math:`W_{target} - W_{old}` (computed by the ideal optimiser) is written through
  the device (:meth:`Device.write`).  Biases are neuron parameters in digital registers, stored exactly;
  ``set_weights`` / ``load_weights`` set the stored values as given.
* **relaxation** (``values``, ``errors``, ``dac``, ``adc``, ``reads`` sites, or ``coding="event"``): the
  relaxation runs in the event-driven engine matching the backend (``numba`` or ``reference``,
  :mod:`neurosim.hardware.engine`) on the read weights at the current device time
  (:meth:`Substrate.read_weights`).  Without relaxation effects the backend's own kernel runs, so a model
  that switches everything off trains bit for bit like the plain simulator.  Per-read noise alone runs in
  brian2's rate network instead (below).

Support matrix (anything else raises :class:`~neurosim.UnsupportedError` when the simulator is built, or
when ``train`` / ``run`` starts for a per-call setting, never half-way):

=======================  =====================================  ===========================================
path                      transforms                             limits
=======================  =====================================  ===========================================
PC, backend kernel        updates, weights                       whatever the backend supports
PC, event engine          all sites, clock or event coding       numba/reference backends, float64, Euler,
                                                                 no x/eps/mu probes
                                                                 (energy and weight_norm probes record)
PC, brian2 noisy reads    updates, weights; reads:               brian2 rate mode on the numpy target
                          AdditiveNoise, MultiplicativeNoise     (``pc``; ``bp`` unsupported)
                          only (drawn by brian2's synapses at
                          every read)
BP (``algorithm="bp"``)   all sites, clock coding                as the event engine when signal sites or
                                                                 reads are active; event coding unsupported
graph circuit, PC or BP   updates, weights; reads: Mismatch,     numba/reference/brian2 graph backends; event
(CNN, RNN, LSTM)          Drift (the backend kernel relaxes on   coding (PC, Euler) on numba, reference, brian2
                          the read parameters), AdditiveNoise,   (:mod:`neurosim.graph.events`); signal sites
                          MultiplicativeNoise (drawn by the      (values, errors, dac, adc) unsupported
                          graph kernels, or brian2's synapses,
                          at every read); coding='event'
                          (numba, reference, brian2 rate)
other algorithms          none                                   unsupported (no operation counts)
=======================  =====================================  ===========================================

Layered circuits on brian2: a model whose only relaxation effects are per-read noise (AdditiveNoise,
MultiplicativeNoise on ``reads``; clock coding, no signal sites, no Mismatch or Drift on reads) needs no event
engine: brian2's rate network draws every weight afresh at every prediction and feedback read and the host's
initial sweep reads with the same law (:mod:`neurosim.backends.brian2.rate`, "Per-read noise"), seeded per
batch from ``HardwareModel.seed`` and the batch counter (:meth:`Substrate._compute`).  The draws differ from the
event engine's, so the backends agree in distribution, not sample by sample.  Everything else that changes the
relaxation needs the event engine and is refused on brian2, as are per-read noise in spiking mode or on
cpp_standalone, and ``algorithm="bp"`` with noisy reads (brian2's backprop is the FPA sweep, which has no noisy
forward pass).

Graph circuits (:mod:`neurosim.graph`): the device holds the elements of theta that are weights or kernels;
biases (parameters whose first use has role ``"bias"``) are neuron parameters stored exactly.  Frozen read
effects (mismatch gains and offsets, drift at the device time) do not need the event engine: the kernel relaxes
on the read parameters and the stored weights receive the optimiser's intended change (see
:meth:`Substrate._graph_compute`); ``Mismatch(per="neuron")`` on reads draws one gain per output line of a
parameter (a row of a dense weight, an output channel of a kernel; a shared parameter is one set of devices).
Per-read noise (AdditiveNoise, MultiplicativeNoise on reads) is drawn by the graph kernels (brian2: by every
weighted synapse, :mod:`neurosim.backends.brian2.graph`) themselves at every
read of a weighted edge (predictions, feedback, the feedforward pass, backprop's backward pass; the exact
distribution of per-read weight noise, as in the layered event engine; :mod:`neurosim.graph.ops`), seeded from
``HardwareModel.seed`` and the batch counter.  ``coding="event"`` runs on the numba, reference and brian2 backends: the
graph relaxation sends values and errors on delta (:mod:`neurosim.graph.events`, the NumPy statement; the numba
graph kernels and brian2's graph network do the same) and the counts are the measured events and operations (:func:`~neurosim.hardware.cost.count_graph_events`).  What acts on signals (the
sites values, errors, dac, adc) needs the layered event engine and is refused when the simulator is built.  Operation counts are the clock-driven
:func:`~neurosim.hardware.cost.count_pc` / :func:`~neurosim.hardware.cost.count_bp` on the graph's
:class:`~neurosim.hardware.cost.GraphShape` (MACs of dense and convolution edges, one operation per unit of the
others), with the weight writes measured as below.

Operations are counted (:attr:`Substrate.counts`, a :class:`~neurosim.hardware.cost.OpCounts`) for every
learning batch: measured events and synaptic ops under event coding, the spikes and synaptic events of brian2's
spiking network (:func:`~neurosim.hardware.cost.count_spikes`), the clock-driven counts of
:func:`~neurosim.hardware.cost.count_pc` otherwise, and :func:`~neurosim.hardware.cost.count_bp` for BP -- except the
weight writes, which are measured in every case: the stored parameters the update changed (with device update
effects, the device's writes; :meth:`Substrate._n_written`), where the analytic counts write every plastic weight.
The random draws of the substrate (noise, stochastic rounding) come from streams seeded by
``HardwareModel.seed`` and a batch counter, which checkpoints save with the device clock and write times.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields

import numpy as np

from ..backends.base import INIT_FEEDFORWARD, MODE_CLAMP, MODE_NUDGE, BatchResult
from ..errors import UnsupportedError
from ..simulator import RelaxResult
from .bp import hw_gradients
from .cost import (GraphShape, NetworkShape, OpCounts, count_bp, count_events, count_graph_events, count_pc,
                   count_spikes)
from .engine import ENGINES, make_engine
from .nonideal import ELEMENTWISE_SITES, AdditiveNoise, Device, HardwareModel, MultiplicativeNoise, _stream

__all__ = ["Substrate", "HardwareRelaxResult"]

_MODE_NAME = {0: "free", MODE_CLAMP: "clamp", MODE_NUDGE: "nudge"}
_COUNT_FIELDS = tuple(f.name for f in fields(OpCounts))
#: the counts a checkpoint held before OpCounts had its array_* fields (the first fields, in the same order)
_LEGACY_N_COUNTS = 13
_ENGINE_KEYS = ("x", "es", "sv", "se")
_STATE_KEYS = ("x", "eps", "mu")


@dataclass
class HardwareRelaxResult(RelaxResult):
    """A :class:`~neurosim.RelaxResult` plus what the substrate did (returned by ``Simulator.run`` of a
    simulator with hardware).

    ``events`` (steps + 1, n_pops, 2), ``events_init`` (n_pops, 2), ``sops`` (n_proj, 2) and ``skip_ops``
    (n_proj, 2; the one-to-one ops of identity skips) come from the event engine (None when the backend kernel
    ran); ``counts`` are the operation counts of this run.  A graph circuit with ``coding="event"`` gives
    ``events`` (steps + 1, n_vertices, 2; value and error events of every vertex, the initial transmission in row
    0) and ``sops`` (n_edges, 2) of :mod:`neurosim.graph.events`, in the plan's vertex and edge order.
    """

    events: np.ndarray | None = None
    events_init: np.ndarray | None = None
    sops: np.ndarray | None = None
    skip_ops: np.ndarray | None = None
    counts: OpCounts | None = None


class Substrate:
    """What ``sim.hardware`` is: the device state of a :class:`~neurosim.Simulator` built with a
    :class:`HardwareModel` (built by the Simulator; not constructed by users).

    Attributes
    ----------
    model : HardwareModel
    engine : EngineBase or None
        The event-driven engine that relaxes when the model changes the relaxation, else None (the
        backend's kernel runs).
    backend_noise : bool
        Layered circuit on brian2 with per-read noise only: no engine, brian2's rate network draws the noise
        (:meth:`_noisy_compute`).
    device : Device
        Frozen device patterns (mismatch, faults, drift exponents) and write times.
    counts : OpCounts
        Operations of every learning batch so far.
    last_counts : OpCounts or None
        Operations of the last batch run by ``run`` / ``learn`` / ``train`` (counted or not).
    time : float
        Device time in seconds (drift); advanced by ``seconds_per_batch`` per learning batch and by
        :meth:`advance`.
    batches : int
        Batches run so far (seeds the substrate's random draws of the next batch).
    """

    @staticmethod
    def read_noise_only(model) -> bool:
        """True when the only relaxation effects of ``model`` are per-read noise (AdditiveNoise,
        MultiplicativeNoise on ``reads``; clock coding, no signal sites, no Mismatch or Drift on reads): brian2's
        rate network draws those itself, without the event engine."""
        reads = model.active("reads")
        return (model.coding == "clock" and not any(model.active(s) for s in ELEMENTWISE_SITES) and bool(reads)
                and all(isinstance(t, (AdditiveNoise, MultiplicativeNoise)) for t in reads))

    @staticmethod
    def check_model(model, backend_name: str, backend_options: dict | None = None, circuit=None):
        """Refuse a ``hardware=`` argument that is not a HardwareModel, or that needs the event engine on a
        backend that has none, before the backend is built.  brian2 runs per-read noise alone
        (:meth:`read_noise_only`) in its rate network on the numpy target (``backend_options`` say which)."""
        if not isinstance(model, HardwareModel):
            raise TypeError(f"Simulator: hardware must be a neurosim.hardware.HardwareModel (or None), got "
                            f"{type(model).__name__}")
        if model.relaxation_effects and backend_name not in ENGINES:
            if backend_name == "brian2" and Substrate.read_noise_only(model):
                opts = backend_options or {}
                mode, target = opts.get("mode", "rate"), opts.get("target", "numpy")
                if mode != "rate" or target != "numpy":
                    from ..backends.brian2 import READ_NOISE_REASON
                    noisy = [t.describe() for t in model.active("reads")]
                    raise UnsupportedError(f"backend 'brian2' (mode={mode!r}, target={target!r}) cannot run the "
                                           f"per-read noise {noisy} of the hardware model: {READ_NOISE_REASON}")
                return
            try:
                make_engine(backend_name, None)   # raises UnsupportedError naming the backends that have one
            except UnsupportedError as e:
                raise UnsupportedError(str(e) + _graph_form_hint(model, backend_name, backend_options, circuit)) \
                    from None

    @staticmethod
    def check_graph_model(model, graph_name: str, backend_name: str = "numba", graph=None):
        """Refuse, before the backend is built, what the substrate cannot do on a graph circuit: everything that
        needs the event engine (it relaxes layered plans of dense projections only) -- event coding and the signal
        sites (values, errors, dac, adc).  Per-read noise (AdditiveNoise, MultiplicativeNoise on ``reads``) runs:
        the graph kernels (and brian2's graph network) draw it at every read (:meth:`_graph_compute`)."""
        if not isinstance(model, HardwareModel):
            raise TypeError(f"Simulator: hardware must be a neurosim.hardware.HardwareModel (or None), got "
                            f"{type(model).__name__}")
        from ..graph.convert import population_form_hint
        reasons = []
        from ..graph.backend import EVENT_BACKENDS, EVENT_REASON
        if model.coding == "event" and backend_name not in EVENT_BACKENDS:
            raise UnsupportedError(f"graph circuit {graph_name!r} on backend {backend_name!r} cannot run "
                                   f"coding='event': {EVENT_REASON}" + (population_form_hint(graph)
                                                                        if graph is not None else ""))
        sites = [s for s in ELEMENTWISE_SITES if model.active(s)]
        if sites:
            reasons.append(f"transforms on the signal sites {sites}")
        if reasons:
            raise UnsupportedError(f"graph circuit {graph_name!r} cannot run {'; '.join(reasons)} on a hardware "
                                   "model: these need the event-driven engine, which relaxes layered circuits of "
                                   "dense projections only (no convolutions, pooling or products); on a graph the "
                                   "substrate models the writes (updates and weights sites), the frozen read "
                                   "effects (Mismatch, Drift on reads) and per-read noise (AdditiveNoise, "
                                   "MultiplicativeNoise on reads); use a layered circuit (ns.hierarchy, "
                                   "ns.Circuit) for the others"
                                   + (population_form_hint(graph) if graph is not None and backend_name in
                                      ("numba", "reference") else ""))

    def __init__(self, sim, model: HardwareModel):
        self._sim = sim
        self.model = model
        self.plan = sim.plan
        self.graph = bool(getattr(sim, "_graph", False))
        self.engine = None
        self.backend_noise = False
        if self.graph:
            self.check_graph_model(model, sim.circuit.name, sim.backend_name, sim.circuit)
            if model.coding == "event" and sim.integrator != "euler":
                raise UnsupportedError(f"Simulator(hardware=...): event coding of graph circuit {sim.circuit.name!r} "
                                       f"takes Euler steps, not integrator {sim.integrator!r}; use integrator='euler'")
            self.shape = GraphShape.from_graph_plan(sim.plan)
            self._device_plan = _GraphDevicePlan(sim.plan)
            self.setup()
            return
        self.check_model(model, sim.backend_name, sim.backend_options)
        sparse = sim.plan.sparse_projections
        if sparse:
            raise UnsupportedError(f"Simulator(hardware=...): projection(s) {sparse} are sparse, and the substrate's "
                                   "device layout and cost model (crossbar reads, conversions, writes) are stated for "
                                   "dense matrices; run the circuit without hardware= (backend 'numba' or "
                                   "'reference'), or run its event-driven relaxation with the engines themselves "
                                   "(neurosim.hardware.NumbaEngine(ns.lower(circuit)).relax(X, Y, steps=..., "
                                   "theta=...), or ReferenceEngine likewise), which support sparse projections and "
                                   "count their synaptic operations (.sops of the result)")
        self._device_plan = sim.plan
        self.shape = NetworkShape.from_plan(sim.plan)
        #: per-read noise drawn by the backend itself (brian2's rate network), without the event engine
        self.backend_noise = bool(model.relaxation_effects and sim.backend_name == "brian2"
                                  and self.read_noise_only(model))
        if self.backend_noise and sim.integrator != "euler":
            raise UnsupportedError(f"Simulator(hardware=...) on backend 'brian2' runs per-read noise with "
                                   f"integrator 'euler' only, not {sim.integrator!r}: the noisy reads are defined "
                                   "per Euler step, as in the event engine; use integrator='euler'")
        if model.relaxation_effects and not self.backend_noise:
            reasons = []
            if sim.dtype != np.float64:
                reasons.append("dtype float32 (the hardware engines compute in float64)")
            if sim.integrator != "euler":
                reasons.append(f"integrator {sim.integrator!r} (the event engine takes Euler steps)")
            traced = [p.name for p in sim.probes if p.variable in ("x", "eps", "mu")]
            if traced:
                reasons.append(f"x/eps/mu probes {traced} (the event engine records events and energies, not "
                               "state traces; keep energy and weight_norm probes, drop these probes)")
            if reasons:
                raise UnsupportedError(f"Simulator(hardware=...): the model changes the relaxation, which needs "
                                       f"the event engine, and it cannot run {'; '.join(reasons)}")
            self.engine = make_engine(sim.backend_name, sim.plan)
        self.setup()

    # ------------------------------------------------------------------ lifecycle
    def setup(self):
        """Fresh device: patterns drawn, clock and counters at 0, initial weights programmed."""
        self.device = Device(self.model, self._device_plan)
        self.tables = self.device.tables()
        self.sigmas = self.device.read_sigmas
        self.time = 0.0
        self.batches = 0
        self._eval = 0
        self.counts = OpCounts()
        self.last_counts = None
        self._last = None
        if self.engine is not None:
            self.engine.reset()
        if self.model.active("weights"):
            be = self._sim.backend
            if self.graph:
                idx = self._device_plan.index
                be.W[idx] = self.device.program(be.W[idx].astype(float), _stream(self.model.seed, 9, 0), now=0.0)
            else:
                be.W[:] = self.device.program(be.W.astype(float), _stream(self.model.seed, 9, 0), now=0.0)

    def reset(self):
        """Forget the network state of the event engine (the device, its clock and the counts stay)."""
        if self.engine is not None:
            self.engine.reset()
        self._last = None

    # ------------------------------------------------------------------ state
    def read_weights(self) -> dict:
        """Effective weights of a read at the current device time (mismatch and drift applied),
        ``{projection: (n_post, n_pre)}`` (graph circuits: ``{parameter: array of its shape}`` for every weight
        and kernel; biases are neuron parameters, not device reads, and are left out as for layered circuits)."""
        if self.graph:
            p = self.plan
            Wr = self._graph_read_theta()
            return {name: p.param_view(Wr, k).copy() for k, name in enumerate(p.proj_names)
                    if not self._device_plan.is_bias[k]}
        Wr = self.device.read_weights(self._sim.backend.W.astype(float), self.time)
        p = self.plan
        return {p.proj_names[k]: Wr[p.w_off[k]:p.w_off[k] + int(np.prod(p.weight_shape(k)))].reshape(
            p.weight_shape(k)).copy() for k in range(p.n_proj) if p.w_off[k] >= 0}

    def advance(self, seconds: float):
        """Let ``seconds`` of device time pass (conductance drift)."""
        if isinstance(seconds, (str, bytes, bool)) or not isinstance(seconds, numbers.Real) or \
                not (seconds >= 0 and math.isfinite(seconds)):
            raise ValueError(f"advance: seconds must be a finite number >= 0, got {seconds!r}")
        self.time += float(seconds)

    def state(self):
        """The event engine's final ``{"x", "eps", "mu"}`` arrays of the last batch, or None."""
        return self._last

    # ------------------------------------------------------------------ checks
    def check_algorithm(self, algorithm: str, options: dict, defaults: dict):
        """Refuse (UnsupportedError) what the substrate cannot train, before anything runs."""
        if algorithm not in ("pc", "bp"):
            raise UnsupportedError(f"Simulator(hardware=...) trains with algorithm 'pc' or 'bp', not "
                                   f"{algorithm!r}: the substrate models the writes and counts the operations of "
                                   "those two schedules only")
        if algorithm == "bp" and self.model.coding == "event":
            raise UnsupportedError("event (send-on-delta) coding applies to the PC relaxation; backprop has no "
                                   "relaxation to event-code: use coding='clock' for the BP baseline")
        if self.backend_noise and algorithm == "bp":
            raise UnsupportedError("Simulator(hardware=...) on backend 'brian2' cannot train algorithm 'bp' with "
                                   "per-read noise: brian2 computes backprop as the FPA error sweep with the "
                                   "predictions frozen at a noiseless feedforward pass, and has no noisy forward and "
                                   "backward reads; train with algorithm 'pc', or use backend 'numba' or "
                                   "'reference' (hardware backprop with noisy reads)")
        if self.engine is not None and options != defaults:
            raise UnsupportedError(f"Simulator(hardware=...): the event engine runs plain PC; algorithm "
                                   f"{algorithm!r} options {sorted(k for k in options if options[k] != defaults[k])} "
                                   "need the backend kernel (a model without relaxation effects)")

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_state(self) -> dict:
        """What the next batch depends on beyond the backend's arrays: batch counters (they seed the
        substrate's noise and rounding streams), device clock, write times (drift), operation counts and the
        event engine's state (where ``init="previous"`` continues from)."""
        out = {"counters": np.array([self.batches, self._eval], dtype=np.int64),
               "time": np.array(self.time, dtype=np.float64),
               "t_write": self.device.t_write.astype(np.float64).copy(),
               "counts": np.array([getattr(self.counts, f) for f in _COUNT_FIELDS], dtype=np.float64)}
        st = self.engine.get_state() if self.engine is not None else None
        if st is not None:
            out.update({"engine_" + k: np.array(st[k], dtype=np.float64) for k in _ENGINE_KEYS})
        if self._last is not None:
            out.update({"state_" + k: np.array(self._last[k], dtype=np.float64) for k in _STATE_KEYS})
        return out

    def check_checkpoint_state(self, ck: dict) -> str | None:
        """Why ``ck`` (arrays read from a checkpoint) cannot be restored here, or None."""
        want = {"counters": ((2,), "iu"), "time": ((), "f"), "t_write": ((int(self.device.t_write.size),), "f"),
                "counts": ((len(_COUNT_FIELDS),), "f")}
        for k, (shape, kind) in want.items():
            if k not in ck:
                return f"it lacks the hardware state {k!r}"
            if k == "counts" and ck[k].shape == (_LEGACY_N_COUNTS,):   # written before the array_* counts
                continue
            if ck[k].shape != shape or ck[k].dtype.kind not in kind:
                return f"hardware state {k!r} is {ck[k].dtype} {ck[k].shape}, expected shape {shape}"
        if np.any(ck["counters"] < 0) or not (np.isfinite(ck["time"]) and ck["time"] >= 0):
            return "its hardware counters or device time are negative or not finite"
        for prefix, keys in (("engine_", _ENGINE_KEYS), ("state_", _STATE_KEYS)):
            present = [prefix + k in ck for k in keys]
            if any(present) and not all(present):
                return f"its hardware state {prefix}* is incomplete"
            if all(present):
                if prefix == "engine_" and self.engine is None:
                    return "it holds an event-engine state but this hardware model runs the backend's kernel"
                shape = ck[prefix + keys[0]].shape
                if len(shape) != 2 or shape[1] != self.plan.n_units or shape[0] < 1:
                    return f"hardware state {prefix + keys[0]!r} is {shape}, expected (batch, {self.plan.n_units})"
                for k in keys:
                    a = ck[prefix + k]
                    if a.shape != shape or a.dtype.kind != "f" or not np.all(np.isfinite(a)):
                        return f"hardware state {prefix + k!r} is damaged (shape {a.shape}, or NaN/inf)"
        return None

    def set_checkpoint_state(self, ck: dict):
        """Restore what :meth:`checkpoint_state` returned (validated by :meth:`check_checkpoint_state`)."""
        self.batches, self._eval = (int(v) for v in ck["counters"])
        self.time = float(ck["time"])
        self.device.t_write[:] = ck["t_write"]
        self.counts = OpCounts(**{f: float(v) for f, v in zip(_COUNT_FIELDS, ck["counts"])})
        if ck["counts"].shape == (_LEGACY_N_COUNTS,):   # no array_* counts saved: the measured ones stand in
            self.counts = self.counts.with_array_counts()
        self.last_counts = None
        if self.engine is not None:
            if "engine_x" in ck:
                self.engine.set_state({k: np.array(ck["engine_" + k], dtype=np.float64) for k in _ENGINE_KEYS})
            else:
                self.engine.reset()
        self._last = ({k: np.array(ck["state_" + k], dtype=np.float64) for k in _STATE_KEYS}
                      if "state_x" in ck else None)

    # ------------------------------------------------------------------ one batch
    def _seed(self, stream: int, counter: int) -> int:
        return int(np.random.SeedSequence([self.model.seed, stream, counter]).generate_state(1)[0] % (2 ** 31 - 1))

    def _write(self, W_before: np.ndarray) -> int:
        be = self._sim.backend
        if self.graph:   # the device holds the weights and kernels of theta; biases stay as the optimiser left them
            idx = self._device_plan.index
            W_new, n = self.device.write(W_before[idx].astype(float), be.W[idx].astype(float),
                                         _stream(self.model.seed, 8, self.batches), self.time)
            be.W[idx] = W_new
            return n
        W_new, n = self.device.write(W_before, be.W.astype(float), _stream(self.model.seed, 8, self.batches),
                                     self.time)
        be.W[:] = W_new
        return n

    # ------------------------------------------------------------------ graph circuits
    def _graph_read_theta(self) -> np.ndarray:
        """theta as a read sees it: the device's weights with read mismatch and drift at the current time, the
        biases as stored (float64)."""
        theta = self._sim.backend.W.astype(float)
        idx = self._device_plan.index
        theta[idx] = self.device.read_weights(theta[idx], self.time)
        return theta

    def _graph_compute(self, X, Y, spec, algo, options):
        r"""One batch of a graph circuit on the backend's kernel.  With frozen read effects (Mismatch, Drift on
        ``reads``) the kernel relaxes on the read parameters :math:`\tilde\theta` and its optimiser moves them to
        :math:`\tilde\theta'`; the stored weights then receive the intended change
        :math:`\theta_w + (\tilde\theta'_w - \tilde\theta_w)` (written through the device by the caller) and
        the biases the optimiser's values.  Without read effects the kernel runs on the stored parameters."""
        sim = self._sim
        be = sim.backend
        if self.model.coding == "event":   # the reference graph engine sends values and errors on delta
            be.event_coding = (self.model.theta_values, self.model.theta_errors)
        try:
            return self._graph_read_compute(X, Y, spec, algo, options)
        finally:
            be.event_coding = None

    def _graph_read_compute(self, X, Y, spec, algo, options):
        sim = self._sim
        if not self.model.active("reads"):
            return sim._compute_batch(X, Y, spec, algo, options)
        be = sim.backend
        stored = be.W.copy()
        read = self._graph_read_theta()
        be.W[:] = read
        m2, a2 = self.sigmas
        if m2 > 0 or a2 > 0:   # per-read noise: drawn by the graph kernels at every read, seeded per batch
            be.read_noise = (m2, a2, self._seed(7, self.batches))
        try:
            res, written = sim._compute_batch(X, Y, spec, algo, options)
            moved = be.W.astype(float)
        finally:
            be.W[:] = stored
            be.read_noise = None
        if spec.learn and res.status == 0:
            idx = self._device_plan.index
            target = moved.copy()                              # biases: the optimiser's values
            target[idx] = stored[idx] + (moved[idx] - read[idx])
            be.W[:] = target
        return res, written

    def _compute(self, X, Y, spec, algo, options, evaluation=False):
        if self.graph:
            return self._graph_compute(X, Y, spec, algo, options)
        if self.backend_noise:
            return self._noisy_compute(X, Y, spec, algo, options, evaluation)
        return self._sim._compute_batch(X, Y, spec, algo, options)

    def _noisy_compute(self, X, Y, spec, algo, options, evaluation):
        """One batch of a layered circuit on a backend that draws the per-read noise itself (brian2's rate
        network): it receives ``(sigma_m^2, sigma_a^2, seed)`` for the batch, the seed from the substrate's
        streams as the event engine's (stream 7 and the batch counter; evaluations: stream 11 and their own
        counter)."""
        be = self._sim.backend
        m2, a2 = self.sigmas
        if evaluation:
            seed = self._seed(11, self._eval)
            self._eval += 1
        else:
            seed = self._seed(7, self.batches)
        be.read_noise = (m2, a2, seed)
        try:
            return self._sim._compute_batch(X, Y, spec, algo, options)
        finally:
            be.read_noise = None

    def _optimizer_step(self, gW, gb):
        """The ideal optimiser step of every plastic projection (as the reference backend's Hebbian update)."""
        from ..equations import optimizer_step
        p = self.plan
        be = self._sim.backend
        for k in range(p.n_proj):
            if not (p.proj_plastic[k] or p.proj_learn_bias[k]):
                continue
            be.opt_t[k] += 1
            if p.proj_plastic[k]:
                o = p.w_off[k]
                sh = p.weight_shape(k)
                n = sh[0] * sh[1]
                optimizer_step(be.W[o:o + n].reshape(sh), gW[o:o + n].reshape(sh), be.mW[o:o + n].reshape(sh),
                               be.vW[o:o + n].reshape(sh), be.opt_t[k], p.proj_lr[k], p.opt_kind[k], p.opt_param[k])
            if p.proj_learn_bias[k]:
                o = p.b_off[k]
                n = int(p.pop_size[p.proj_post[k]])
                optimizer_step(be.b[o:o + n], gb[o:o + n], be.mb[o:o + n], be.vb[o:o + n], be.opt_t[k],
                               p.proj_lr[k], p.opt_kind[k], p.opt_param[k])

    def _engine_run(self, X, Y, spec, seed):
        be = self._sim.backend
        Wr = self.device.read_weights(be.W.astype(float), self.time)
        res = self.engine.run(X, Y, spec, Wr, be.b.astype(float), self.tables, self.sigmas,
                              self.model.theta_values, self.model.theta_errors, seed)
        self._last = {"x": res.x, "eps": res.eps, "mu": res.mu}
        return res

    def _n_written(self, W_before, b_before, n_device=None) -> int:
        """The stored parameters one update wrote: those whose value it changed (a chip writes only those: an
        input pixel that is 0 in the whole batch leaves its weights' gradient 0), or with device update effects
        the device's writes (:meth:`_write`: a non-zero quantised update, not stuck) plus what the optimiser
        changed outside the device (a graph's biases); learned biases that changed.  The same rule for clock and
        event coding and for BP, so that a comparison carries no saving the coding did not cause."""
        be = self._sim.backend
        changed = be.W != W_before
        if n_device is None:
            n = int(np.count_nonzero(changed))
        else:
            n = int(n_device)
            if self.graph:
                outside = np.ones(changed.shape, dtype=bool)
                outside[self._device_plan.index] = False
                n += int(np.count_nonzero(changed & outside))
        return n + int(np.count_nonzero(be.b != b_before))

    def _pc_batch(self, X, Y, spec, algo, options):
        sim = self._sim
        be = sim.backend
        B = X.shape[0]
        mode = _MODE_NAME[spec.mode]
        sweep = spec.init == INIT_FEEDFORWARD
        written = False
        n_written = 0
        if self.engine is None:
            W_before, b_before = (be.W.copy(), be.b.copy()) if spec.learn else (None, None)
            spiking_runs = getattr(be, "_n_runs", None)   # brian2 counts its spiking network's runs
            res, written = self._compute(X, Y, spec, algo, options)
            ok = res.status == 0
            if W_before is not None and ok:
                n_written = self._n_written(W_before, b_before,
                                            self._write(W_before) if self.model.write_effects else None)
            if self.graph and self.model.coding == "event" and be.last_events is not None:
                counts = count_graph_events(self.shape, be.last_events, B, mode=mode, learn=spec.learn and ok,
                                            sweep=sweep)
            elif (getattr(be, "mode", None) == "spiking" and "spikes" in (getattr(be, "last_run", None) or {})
                  and getattr(be, "_n_runs", None) != spiking_runs):
                # brian2's spiking network ran this batch: its measured spikes and synaptic events, not the rate
                # model's count (a batch of no steps runs no network: its last_run is an earlier batch's)
                counts = count_spikes(self.shape, be.last_run, res.steps, B, mode=mode, learn=spec.learn and ok,
                                      sweep=sweep)
            else:
                counts = count_pc(self.shape, res.steps, B, mode=mode, learn=spec.learn and ok, sweep=sweep)
        else:
            res = self._engine_run(X, Y, spec, self._seed(7, self.batches))
            ok = res.status == 0
            if spec.learn and ok:
                W_before, b_before = be.W.copy(), be.b.copy()
                self._optimizer_step(res.gW, res.gb)
                n_written = self._n_written(W_before, b_before,
                                            self._write(W_before) if self.model.write_effects else None)
            if self.model.coding == "event":
                counts = count_events(self.shape, res, B, mode=mode, learn=spec.learn and ok, sweep=sweep)
            else:
                counts = count_pc(self.shape, res.steps, B, mode=mode, learn=spec.learn and ok, sweep=sweep)
        if spec.learn and ok:
            counts.weight_writes = float(n_written)
        return res, counts, written

    def _bp_batch(self, X, Y, spec, algo, options):
        sim = self._sim
        be = sim.backend
        B = X.shape[0]
        written = False
        W_before, b_before = (be.W.copy(), be.b.copy()) if spec.learn else (None, None)
        if self.engine is None:
            res, written = self._compute(X, Y, spec, algo, options)
        else:
            from ..algorithms.backprop import apply_update
            Wr = self.device.read_weights(be.W.astype(float), self.time)
            loss, y, gW, gb = hw_gradients(self.plan, Wr, be.b.astype(float), X, Y, self.tables, self.sigmas,
                                           _stream(self.model.seed, 10, self.batches))
            e = np.zeros((1, self.plan.n_pops))
            e[0, self.plan.target_pop] = loss
            if not np.isfinite(loss):
                res = BatchResult(steps=0, energy=e, status=1, fail_step=0, fail_pop=int(self.plan.target_pop),
                                  y0=y, y=y)
            else:
                if spec.learn:
                    apply_update(be, gW, gb, scale_sum_B=B)
                res = BatchResult(steps=0, energy=e, y0=y, y=y)
        ok = res.status == 0
        counts = count_bp(self.shape, B, learn=spec.learn and ok)
        if spec.learn and ok:
            counts.weight_writes = float(self._n_written(
                W_before, b_before, self._write(W_before) if self.model.write_effects else None))
        return res, counts, written

    def run_batch(self, X, Y, spec, algo=None, options=None, evaluation: bool = False):
        """One batch on the substrate for :meth:`neurosim.Simulator._run_batch`: returns ``(BatchResult,
        written)`` (``written``: the backend kernel wrote the probe records itself).

        ``evaluation`` (prediction): the substrate reads with its own noise stream and counts nothing.
        Otherwise the batch advances the batch counter; a learning batch that did not diverge adds its
        operations to :attr:`counts` and ``seconds_per_batch`` to the device clock.
        """
        if evaluation:
            if self.engine is None:
                return self._compute(X, Y, spec, algo, options, evaluation=True)
            res = self._engine_run(X, Y, spec, self._seed(11, self._eval))
            self._eval += 1
            return res, False
        if algo is not None and algo.name == "bp":
            res, counts, written = self._bp_batch(X, Y, spec, algo, options)
        else:
            res, counts, written = self._pc_batch(X, Y, spec, algo, options)
        self.batches += 1
        self.last_counts = counts
        if spec.learn and res.status == 0:
            self.time += self.model.seconds_per_batch
            self.counts = self.counts + counts
        return res, written

    def __repr__(self):
        return (f"Substrate(coding={self.model.coding!r}, engine="
                f"{self.engine.name if self.engine else 'backend'}, time={self.time:g} s)")


def _graph_form_hint(model, backend_name, backend_options, circuit) -> str:
    """For a population-form circuit refused event coding on brian2: its vertex form runs it there (brian2's graph
    network event-codes), when the circuit has one and the model asks for nothing else of the engine."""
    from .nonideal import ELEMENTWISE_SITES
    opts = backend_options or {}
    if (circuit is None or backend_name != "brian2" or model.coding != "event" or opts.get("mode", "rate") != "rate"
            or opts.get("target", "numpy") != "numpy" or any(model.active(s) for s in ELEMENTWISE_SITES)):
        return ""
    try:
        circuit.as_graph()
    except ValueError:
        return ""
    return (f"; circuit {circuit.name!r} can be stated as vertices, and brian2's graph network event-codes that "
            "form: ns.Simulator(circuit.as_graph(), backend='brian2', hardware=...) (the parameters keep their "
            "names: load_weights(weights) gives both forms the same start)")


class _GraphDevicePlan:
    """What :class:`~neurosim.hardware.nonideal.Device` reads from a plan, for a graph circuit: the devices are
    the elements of theta that are weights or kernels (``index``, in theta order); biases (parameters whose first
    use has role ``"bias"``) are neuron parameters stored exactly, outside the device.

    A ``Mismatch(per="neuron")`` on ``reads`` draws one gain per output line of a parameter (a row of a dense
    weight, an output channel of a kernel: the neuron, or the shared neuron of a convolution, the line drives), so
    ``n_units`` counts those lines and :attr:`post_unit_of_weight` maps every device to its line.
    """

    def __init__(self, plan):
        from ..graph.plan import P_OFF
        uses = plan.graph.param_uses
        self.is_bias = [uses[name][0].role == "bias" for name in plan.p_names]
        idx, rows = [], []
        n_rows = 0
        for k in range(plan.n_params):
            if self.is_bias[k]:
                continue
            o = int(plan.PI[k, P_OFF])
            shape = plan.p_shapes[k]
            size = int(np.prod(shape))
            per_row = size // int(shape[0])
            idx.append(np.arange(o, o + size))
            rows.append(n_rows + np.repeat(np.arange(int(shape[0])), per_row))
            n_rows += int(shape[0])
        self.index = np.concatenate(idx).astype(np.int64) if idx else np.zeros(0, np.int64)
        self.post_unit_of_weight = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64)
        self.W = np.zeros(self.index.size)
        self.n_units = n_rows
