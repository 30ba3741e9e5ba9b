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
        from .numba_backend import NumbaBackend
        return NumbaBackend
    if name == "brian2":
        raise UnsupportedError(
            "the brian2 backend is not part of this release yet; use backend='numba' or 'reference'"
        )
    raise ValueError(f"unknown backend {name!r}; choose one of {list(BACKENDS[:2])}")
