"""Compilation flags for the numba kernels, in one place.

``FASTMATH`` deliberately leaves out ``nnan`` and ``ninf``: the kernels detect diverging runs with
finiteness checks, which LLVM would otherwise be allowed to fold away.  ``reassoc`` permits
reordering of reductions (so that LLVM can vectorise them), which changes results only at the level
of float rounding (the conformance suite compares with the reference backend to 1e-10).

``ERROR_MODEL = "numpy"``: a division by zero gives inf/nan as in NumPy instead of raising
``ZeroDivisionError``; the zero checks of Python's error model put a branch into every loop that
divides and stop LLVM from vectorising it.

``CACHE``: compiled kernels are cached on disk (next to the module, or in ``NUMBA_CACHE_DIR``), so a
new process loads them in a fraction of a second instead of compiling; ``NEUROSIM_NUMBA_CACHE=0``
turns this off.
"""
import os

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
CACHE = os.environ.get("NEUROSIM_NUMBA_CACHE", "1") != "0"
ERROR_MODEL = "numpy"

#: keyword arguments of every ``numba.njit`` in the hot core
JIT_OPTIONS = dict(cache=CACHE, fastmath=FASTMATH, nogil=True, error_model=ERROR_MODEL)

#: the same for functions that only other jitted functions call (the passes of a kernel): not cached on their own
#: and without the wrapper that lets Python call them.  A cached kernel's object code contains its callees' code, so
#: a warm start never compiles them; caching them too would emit their machine code once more at every cold start,
#: and every wrapper is compiled and optimised like a function of its own (together about a fifth of the core's
#: compile time).
JIT_INNER = dict(JIT_OPTIONS, cache=False, no_cpython_wrapper=True)


def kernels_cached() -> bool | None:
    """Whether the numba core's main kernel is in the on-disk cache (False: the next run compiles it, about
    15 s on 2 cores; None: unknown, e.g. caching is off or numba's cache layout changed)."""
    if not CACHE:
        return None
    try:
        from .backends.numba._relax import kernel
        return bool(os.path.exists(kernel(False)._cache._cache_file._index_path))
    except Exception:   # an internal of numba's: if it moves, say nothing rather than something wrong
        return None
