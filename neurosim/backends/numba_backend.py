"""Former module of the numba backend, kept so that ``from neurosim.backends.numba_backend import NumbaBackend``
still works: the backend lives in the package :mod:`neurosim.backends.numba`, split by concern."""
from .numba.backend import NumbaBackend  # noqa: F401
