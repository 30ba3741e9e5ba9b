"""neurosim: predictive-coding circuits in continuous time.

Declare a :class:`Circuit` (value and error populations, prediction projections, Hebbian plasticity;
stated as populations, or as vertices of a computation graph with :mod:`neurosim.graph`), then run it on a
backend with :class:`Simulator` (``"numba"`` for speed, ``"reference"`` as the NumPy oracle, ``"brian2"``).  ``import neurosim`` compiles nothing; kernels are compiled (and cached) on first use.
"""
from .activations import names as activation_names
from .circuit import (SGD, Adam, Circuit, Clamp, ErrorPopulation, Hebbian, Init, Optimizer, Probe, Projection,
                      ValuePopulation, hierarchy)
from .connectivity import DensePatternWarning, FixedFanIn, Pattern, ReceptiveField
from .errors import CheckpointError, DivergenceError, UnsupportedError
from .plan import Plan, lower
from .simulator import History, RelaxResult, Simulator

__version__ = "0.1.0"

__all__ = [
    "Adam", "Circuit", "Clamp", "DivergenceError", "ErrorPopulation", "Hebbian", "History", "Init", "Optimizer",
    "Plan", "Probe", "Projection", "RelaxResult", "SGD", "Simulator", "UnsupportedError", "ValuePopulation",
    "activation_names", "hierarchy", "lower", "data", "plot", "CheckpointError", "FixedFanIn", "ReceptiveField",
    "Pattern", "DensePatternWarning",
]


def __getattr__(name):  # lazy submodules: plot imports matplotlib, data imports sklearn on use
    if name in ("plot", "data", "theory", "metrics", "algorithms", "hardware", "graph", "mupc"):
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'neurosim' has no attribute {name!r}")
