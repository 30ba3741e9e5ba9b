"""Deprecated: :class:`HardwareSimulator`, the wrapper of earlier versions.

A simulator on a modelled substrate is now built in one call::

    sim = ns.Simulator(circuit, backend="numba", seed=0, hardware=hw.HardwareModel(...))
    sim.train(X, Y)                   # the Simulator's one training loop, on the substrate
    sim.hardware.counts               # operation counts, device time, advance(), the event engine

(see :mod:`neurosim.hardware.substrate`).  ``HardwareSimulator(sim, model)`` still works: it attaches the
substrate to ``sim`` (which, as before, *is* the chip: its weights are the device weights) and forwards
every call to it, with a :class:`DeprecationWarning`.
"""
from __future__ import annotations

import warnings

from ..simulator import Simulator
from .nonideal import HardwareModel
from .substrate import HardwareRelaxResult, Substrate

__all__ = ["HardwareSimulator", "HardwareRelaxResult"]


class HardwareSimulator:
    """Deprecated: use ``ns.Simulator(circuit, ..., hardware=HardwareModel(...))``.

    Attaches a :class:`~neurosim.hardware.substrate.Substrate` for ``model`` to ``sim`` (as
    ``sim.hardware``) and forwards ``run / predict / evaluate / train / reset / reinitialize`` to ``sim`` and
    the substrate's ``counts``, ``time``, ``advance``, ``read_weights``, ``engine`` to ``sim.hardware``.
    """

    def __init__(self, sim: Simulator, model: HardwareModel | None = None):
        warnings.warn("neurosim.hardware.HardwareSimulator is deprecated: build the simulator with "
                      "ns.Simulator(circuit, ..., hardware=HardwareModel(...)) and use sim.hardware for counts, "
                      "device time and advance()", DeprecationWarning, stacklevel=2)
        if not isinstance(sim, Simulator):
            raise TypeError(f"HardwareSimulator needs a neurosim Simulator, got {type(sim).__name__}")
        model = HardwareModel() if model is None else model
        if not isinstance(model, HardwareModel):
            raise TypeError(f"model must be a neurosim.hardware.HardwareModel, got {type(model).__name__}")
        if sim.hardware is not None:
            raise ValueError("HardwareSimulator: this Simulator already runs on hardware (built with hardware=...); "
                             "use it directly")
        sim._check_open()
        sim.hardware = Substrate(sim, model)
        self.sim = sim

    # ------------------------------------------------------------------ the substrate
    hardware = property(lambda self: self.sim.hardware)
    model = property(lambda self: self.sim.hardware.model)
    plan = property(lambda self: self.sim.plan)
    shape = property(lambda self: self.sim.hardware.shape)
    engine = property(lambda self: self.sim.hardware.engine)
    device = property(lambda self: self.sim.hardware.device)
    tables = property(lambda self: self.sim.hardware.tables)
    sigmas = property(lambda self: self.sim.hardware.sigmas)
    counts = property(lambda self: self.sim.hardware.counts)
    time = property(lambda self: self.sim.hardware.time)
    history = property(lambda self: self.sim.history)
    weights = property(lambda self: self.sim.weights)

    def read_weights(self) -> dict:
        return self.sim.hardware.read_weights()

    def advance(self, seconds: float):
        self.sim.hardware.advance(seconds)

    # ------------------------------------------------------------------ runs (the Simulator's)
    def run(self, X, Y=None, **kwargs) -> HardwareRelaxResult:
        return self.sim.run(X, Y, **kwargs)

    def predict(self, X, **kwargs):
        return self.sim.predict(X, **kwargs)

    def evaluate(self, X, Y, **kwargs) -> dict:
        return self.sim.evaluate(X, Y, **kwargs)

    def train(self, X, Y, **kwargs):
        return self.sim.train(X, Y, **kwargs)

    def reset(self):
        self.sim.reset()

    def reinitialize(self):
        self.sim.reinitialize()

    def __repr__(self):
        return f"HardwareSimulator({self.sim!r})"
