"""Backends run a :class:`~neurosim.plan.Plan`; all share the :class:`~neurosim.backends.base.Backend` API.

Backends are imported lazily so that ``import neurosim`` compiles nothing.
"""
from __future__ import annotations

from ..errors import UnsupportedError

BACKENDS = ("reference", "numba", "brian2")


def get_backend_class(name: str):
    """The backend class registered under ``name``."""
    if name == "reference":
        from .reference import ReferenceBackend
        return ReferenceBackend
    if name == "numba":
        from .numba.backend import NumbaBackend
        return NumbaBackend
    if name == "brian2":
        try:
            import brian2
            if not hasattr(brian2, "NeuronGroup"):   # e.g. a folder named brian2 on sys.path, not the simulator
                raise ImportError(f"'brian2' resolves to {list(getattr(brian2, '__path__', []))}, not the simulator")
        except Exception as e:  # not installed (ImportError), or broken: brian2 2.9 with numpy >= 2.4 (AttributeError)
            raise UnsupportedError(
                "the brian2 backend needs brian2, which could not be imported "
                f"({type(e).__name__}: {e}); install it with: pip install \"neurosim[brian2]\" "
                "(on Python 3.11 this pins numpy<2.4, which brian2 2.9 needs); or use backend='numba' or "
                "'reference'"
            ) from None
        from .brian2 import Brian2Backend
        return Brian2Backend
    raise ValueError(f"unknown backend {name!r}; choose one of {list(BACKENDS)}")
