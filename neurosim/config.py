"""Compilation flags for the numba kernels, in one place.

``FASTMATH`` deliberately leaves out ``nnan`` and ``ninf``: the kernels detect diverging runs with
finiteness checks, which LLVM would otherwise be allowed to fold away.  ``reassoc`` permits
reordering of reductions, which changes results only at the level of float rounding (the conformance
suite compares with the reference backend to 1e-10).
"""
import os

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
CACHE = os.environ.get("NEUROSIM_NUMBA_CACHE", "1") != "0"
