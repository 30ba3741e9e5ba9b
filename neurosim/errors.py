"""Exceptions raised by neurosim."""
from __future__ import annotations


class UnsupportedError(ValueError):
    """A backend cannot run a feature of the circuit; raised when the simulator is built."""


class DivergenceError(FloatingPointError):
    """A run produced NaN or inf.

    Attributes
    ----------
    step : int
        Relaxation step (0 = state after initialisation) at which the non-finite value appeared.
    population : str
        Name of the first population whose energy became non-finite.
    batch : int or None
        Training batch index (``None`` outside training).
    """

    def __init__(self, message: str, step: int, population: str, batch: int | None = None):
        super().__init__(message)
        self.step = step
        self.population = population
        self.batch = batch


class CheckpointError(ValueError):
    """A checkpoint file cannot be used (corrupt, truncated, incomplete, or holding non-finite weights).

    Raised before anything is loaded: the simulator keeps its previous state.  ``path`` is the file.
    """

    def __init__(self, message: str, path=None):
        super().__init__(message)
        self.path = path


def removed_names(module: str, removed: dict):
    """A module ``__getattr__`` for names that were removed: accessing one raises an AttributeError whose
    message (``removed[name]``) names the replacement; any other unknown name raises the usual error."""

    def __getattr__(name):
        if name in removed:
            raise AttributeError(removed[name])
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
