"""Divergence checks of the compiled kernels, written once: the first population whose energy, else whose
values, are not finite (as :mod:`neurosim.backends.reference` reports it).  Never compiled with ``nnan``/``ninf``
(see :mod:`neurosim.config`), so these checks are not folded away."""
from __future__ import annotations

import math

from numba import njit

from ...config import JIT_OPTIONS
from ..tables import P_OFF, P_SIZE

__all__ = ["first_nonfinite", "all_finite", "first_bad"]


@njit(**JIT_OPTIONS)
def first_nonfinite(v):
    """Index of the first non-finite entry of the 1-d array ``v``, else -1."""
    for i in range(v.shape[0]):
        if not math.isfinite(v[i]):
            return i
    return -1


@njit(**JIT_OPTIONS)
def all_finite(v):
    """Whether every entry of the 1-d array ``v`` is finite (no early exit: the loop vectorises)."""
    ok = True
    for j in range(v.shape[0]):
        if not math.isfinite(v[j]):
            ok = False
    return ok


@njit(**JIT_OPTIONS)
def first_bad(energy, x, B, pi):
    """First population with a non-finite energy, else with a non-finite value in the flat population-major
    state ``x`` (population ``i`` owns ``x[B off_i : B (off_i + n_i)]``), else -1."""
    bad = first_nonfinite(energy)
    if bad >= 0:
        return bad
    for i in range(pi.shape[0]):
        o = B * pi[i, P_OFF]
        if not all_finite(x[o:o + B * pi[i, P_SIZE]]):
            return i
    return -1
