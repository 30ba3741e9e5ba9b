"""Parameter declarations shared by the experiments (see :class:`neurosim.experiment.Param`).

Each experiment module declares ``PARAMS`` next to its ``DEFAULTS``: the type and valid range of every
parameter, checked by :func:`neurosim.experiment.run_experiment` before a run starts and shown by
``neurosim show NAME``.
"""
from __future__ import annotations

from functools import lru_cache

from neurosim import algorithms as _algorithms
from neurosim.activations import ACTIVATIONS
from neurosim.experiment import Bool, Choice, Float, Int, ListOf, Param, Str  # noqa: F401 - re-exported for the modules

#: experiments that run on any backend of neurosim.Simulator
ANY_BACKEND = Choice("numba", "reference", "brian2")
#: the prospective-configuration experiments: the PC rule runs on the chosen backend (brian2: rate mode); the
#: backprop baseline is not a neural dynamics and runs on numba when the backend is brian2
PC_BACKEND = Choice("numba", "reference", "brian2", doc="brian2: PC in rate mode, the BP baseline on numba")


def backend_without_brian2(reason: str):
    """The backend of an experiment that cannot use brian2, with the reason ``neurosim run --backend
    brian2`` reports (exit 2)."""
    return Choice("numba", "reference", refused={"brian2": reason})


#: graph experiments (CNN, RNN, LSTM, residual graphs)
GRAPH_BACKEND = backend_without_brian2(
    "its negative controls include Z-IL with shared_updates='immediate' (several optimiser steps of one shared "
    "parameter within a sweep), which brian2's rate network does not run; brian2 runs every graph algorithm (pc, "
    "strict, ipc, fpa, zil, bp) through ns.Simulator(graph, backend='brian2'), and the graph training experiments "
    "(cnn-digits, rnn-sequences, lstm-sequences) take --backend brian2")
#: graph training experiments: every graph algorithm runs in brian2's rate network
GRAPH_TRAINING_BACKEND = Choice("numba", "reference", "brian2",
                                doc="brian2: rate mode (numpy target), far slower than numba: use small settings")
#: experiments built on the fpa / zil / strict / bp schedules of layered circuits (brian2 runs them in its rate
#: network: frozen predictions, gated updates, the exact FPA sweep for bp)
ALGORITHM_BACKEND = Choice("numba", "reference", "brian2",
                           doc="brian2: rate mode, about 20x slower than numba on the tiny settings")
#: experiments whose backprop baseline trains on a Simulator of the chosen backend (algorithm="bp")
BP_BASELINE_BACKEND = backend_without_brian2(
    "its sweep (many depths, thousands of batches each) is not practical on brian2: one 4-layer, one-epoch point "
    "takes about 150 s there against 1 s on numba; brian2 runs its algorithms (pc, bp) -- for one network use "
    "ns.Simulator(net, backend='brian2')")
#: hardware experiments (event-driven engine, quantisation, noise)
HARDWARE_BACKEND = backend_without_brian2(
    "its substrates' relaxation effects (event coding, read noise, activity quantisation) run in the "
    "event-driven engine of the numba and reference backends, and its BP baseline needs a backprop kernel; "
    "brian2 has neither (for spikes on brian2 run brian2-bear or brian2-digits with --set mode=spiking)")
SEED = Int(ge=0, doc="random seed")
PHI = Choice(*ACTIVATIONS)
LR = Float(gt=0)
LRS = ListOf(Float(gt=0))
MOMENTUM = Float(ge=0, lt=1)
COUNT = Int(ge=1)
SIZES = ListOf(Int(ge=1), min_len=0, doc="[] = none")
#: Euler step of value units with tau_x = 1 and precision 1 (explicit Euler diverges at dt >= 2 tau_x)
DT = Float(gt=0, lt=2, doc="in units of tau_x")
DT_DECAY = Float(gt=0, le=1, doc="factor applied to dt when a step fails to lower the energy")
TOL = Float(ge=0, doc="0: always run every step")
#: held-out fraction of the digits (per class): both splits keep digits of every class
TEST_FRACTION = Float(ge=0.05, le=0.95)
SCALE = Choice("standard", "unit", "none")
PROBABILITY = Float(ge=0, le=1)
OPTIMIZER = Choice("sgd", "adam")


def _nonzero(v):
    if v == 0:
        raise ValueError("must not be 0")


NONZERO = Float(check=_nonzero, doc="not 0")


@lru_cache(maxsize=8)
def digits_per_class(test_fraction: float) -> int:
    """Training digits of the smallest class when a fraction ``test_fraction`` of each class is held out."""
    import numpy as np

    from neurosim.data import load_digits
    return int(np.bincount(load_digits(test_fraction=test_fraction).y_train).min())


def _fits_split(v, cfg) -> bool:
    return v <= digits_per_class(float(cfg.get("test_fraction", 0.25)))


#: training digits per class (0 = the whole training split), at most what the split leaves in every class
PER_CLASS = Int(ge=0, doc="0 = all",
                requires=(_fits_split, "at most the training digits per class (130 at test_fraction 0.25)",
                          "more than the training digits of the smallest class at this test_fraction "
                          "(130 at 0.25)"))
#: a training schedule of neurosim.Simulator.train (neurosim.algorithms.names())
ALGORITHM = Choice(_algorithms.names)


def _check_hardware(value):
    from neurosim.hardware.spec import parse_hardware
    parse_hardware(value)   # raises ValueError naming the item and what is valid


def _hardware_trains(value, cfg) -> bool:
    """Whether the substrate ``value`` can train the run's algorithm(s) (``algorithm`` or ``algorithms`` of
    ``cfg``): pc and bp only, and pc only with event (send-on-delta) coding, which event-codes the relaxation
    (checked before the run, not when the first bp batch starts after pc has trained)."""
    from neurosim.hardware.spec import parse_hardware
    try:
        model = parse_hardware(value)
    except ValueError:
        return True   # the value's own check names the problem
    if model is None:
        return True
    algos = set(cfg.get("algorithms") or []) | ({cfg["algorithm"]} if "algorithm" in cfg else set())
    allowed = {"pc"} if model.coding == "event" else {"pc", "bp"}
    return algos <= allowed


_HARDWARE_TRAINS = (_hardware_trains, "with a hardware model: algorithm pc or bp (pc only with coding=event)",
                    "hardware: Simulator(hardware=...) trains with algorithms pc and bp only, and with coding=event "
                    "(which event-codes the PC relaxation) pc only; choose those algorithms, coding=clock, or "
                    "hardware=none")

#: a modelled substrate for the run's Simulator(hardware=...), written as in neurosim.hardware.spec
HARDWARE = Param("str", check=_check_hardware, requires=_HARDWARE_TRAINS,
                 doc="none, or items like weights:Quantize(6, bound=2.0);reads:AdditiveNoise(0.01);"
                     "coding=event;threshold=0.01 (neurosim.hardware.spec)")


#: HARDWARE for experiments that train several algorithms (the same check, on ``algorithms``)
HARDWARE_PC_BP = Param("str", check=_check_hardware, doc=HARDWARE.doc, requires=_HARDWARE_TRAINS)
