"""Hardware co-design: event-driven (send-on-delta) dynamics, substrate non-idealities, a cost and energy
model.

* :class:`HardwareModel` -- composable, seeded non-idealities per site (quantisation, noise, mismatch,
  write noise, asymmetric updates, stuck-at faults, drift, ADC/DAC) and the coding scheme
  (``"clock"`` or ``"event"`` with a delta threshold); see :mod:`neurosim.hardware.nonideal`.
* ``ns.Simulator(circuit, ..., hardware=HardwareModel(...))`` trains and relaxes on the modelled substrate
  (event engine in numba with a NumPy twin, :mod:`neurosim.hardware.engine`), counting operations;
  ``sim.hardware`` is its :class:`Substrate` (counts, device time, ``advance``, ``read_weights``).
  ``HardwareSimulator``, the wrapper of earlier versions, was removed (use ``hardware=`` as above).
* :mod:`neurosim.hardware.cost` -- operation counts (:func:`count_pc`, :func:`count_bp`), per-target
  energy and latency tables with sources (``targets/*.json``; add your own file), :func:`energy`,
  :func:`latency`; :mod:`neurosim.hardware.report` writes per-run reports.
* :func:`map_circuit` -- places a circuit on a target's cores or crossbar tiles (the ``resources`` of its file)
  and returns a :class:`Mapping`: cores, chips, routed events, energy and latency per inference and training
  sample (:mod:`neurosim.hardware.mapping`).

Importing this package compiles nothing; the numba kernel compiles (and caches) on first use.
"""
from ..errors import removed_names
from .cost import (COUNTERS, GraphShape, NetworkShape, OpCounts, Target, count_bp, count_events, count_pc,
                   count_spikes, energy, get_target, latency, load_target, targets)
from .engine import EventResult, NumbaEngine, ReferenceEngine
from .mapping import Mapping, map_circuit
from .nonideal import (AIHWKIT_ADC, AIHWKIT_DAC, AdditiveNoise, AsymmetricUpdate, Converter, Device, Drift,
                       HardwareModel, Mismatch, MultiplicativeNoise, Quantize, StuckAt, Transform, WriteNoise,
                       apply_elementwise, read_noise_std)
from .report import cost_report, write_report
from .substrate import HardwareRelaxResult, Substrate

__all__ = [
    "AIHWKIT_ADC", "AIHWKIT_DAC", "AdditiveNoise", "AsymmetricUpdate", "COUNTERS", "Converter", "Device", "Drift",
    "EventResult", "GraphShape", "HardwareModel", "HardwareRelaxResult", "Mapping", "Mismatch",
    "MultiplicativeNoise", "NetworkShape", "NumbaEngine", "OpCounts", "Quantize", "ReferenceEngine", "StuckAt",
    "Substrate", "Target", "Transform",
    "WriteNoise", "apply_elementwise", "cost_report", "count_bp", "count_events", "count_pc", "count_spikes",
    "energy",
    "get_target", "latency", "load_target", "map_circuit", "read_noise_std", "targets", "write_report",
]


_REMOVED = {"HardwareSimulator": "neurosim.hardware.HardwareSimulator was removed: build the simulator with "
                                 "ns.Simulator(circuit, ..., hardware=HardwareModel(...)) and use sim.hardware for "
                                 "counts, device time and advance()"}


__getattr__ = removed_names(__name__, _REMOVED)
