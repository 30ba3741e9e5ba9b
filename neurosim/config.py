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
turns this off.  ``pip install`` fills the cache with the kernels of the common runs
(:mod:`neurosim.precompile`, also ``neurosim compile``).

**Compile notice.**  The first time in a process that a neurosim kernel really has to be compiled (numba's
``"numba:compile"`` event, which a load from the on-disk cache does not send), one message goes to the
``neurosim`` logger at WARNING level -- without any logging set up, Python prints it to stderr::

    neurosim: compiling numba kernel run_batch_kernel (neurosim.backends.numba._relax) for its first use with
    these settings: about 10 s per kernel on 2 cores, once; later runs load it from the disk cache ...

It is printed at most once per process (a run may compile several kernels).  Silence it with
``logging.getLogger("neurosim").setLevel(logging.ERROR)``.
"""
import logging
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
#: The numba modules use :data:`neurosim.backends.numba._linkonly.JIT_INNER`: these options, compiled link-only (no
#: optimisation or machine code of their own before their kernel's; this module imports no numba, so it cannot).
JIT_INNER = dict(JIT_OPTIONS, cache=False, no_cpython_wrapper=True)


def kernels_cached() -> bool | None:
    """Whether the numba core's main kernel is in the on-disk cache (False: the next run compiles it, about
    10 s on 2 cores; None: unknown, e.g. caching is off or numba's cache layout changed)."""
    if not CACHE:
        return None
    try:
        from .backends.numba._relax import kernel
        return bool(os.path.exists(kernel(False, False)._cache._cache_file._index_path))
    except Exception:   # an internal of numba's: if it moves, say nothing rather than something wrong
        return None


#: neurosim's logger (the compile notice); ``logging.getLogger("neurosim").setLevel(logging.ERROR)`` silences it
log = logging.getLogger("neurosim")
#: ``installed``: the numba event listener is registered; ``given``: the compile notice was printed (or the CLI
#: printed its own), so it is not printed again in this process
_NOTICE = {"installed": False, "given": False, "compiled": 0}


def compile_notice(func) -> None:
    """Log the one-time notice that the numba kernel ``func`` (its Python function) is being compiled.  Not in a
    process started with ``NEUROSIM_COMPILE_NOTICE=0`` in its environment: the CLI sets it once it has given its own
    notice (or with ``--quiet``), so that the worker processes of a Dask run stay quiet too."""
    if _NOTICE["given"] or os.environ.get("NEUROSIM_COMPILE_NOTICE") == "0":
        return
    _NOTICE["given"] = True
    name = getattr(func, "__name__", "?")
    where = ("later runs load it from the disk cache (NUMBA_CACHE_DIR or next to the module) in a fraction of a "
             "second" if CACHE else "caching is off (NEUROSIM_NUMBA_CACHE=0), so every new process compiles it")
    try:
        from .precompile import mismatch
        why = mismatch()
    except Exception:   # noqa: BLE001 - a notice must never fail
        why = ""
    if why:
        where += (f". The kernels compiled ahead (at install) do not serve this process: {why}; `neurosim compile` "
                  "compiles the common ones for it")
    log.warning("neurosim: compiling numba kernel %s (%s) for its first use with these settings: about 10 s per "
                "kernel on 2 cores, once; %s. (This notice is printed once per process; silence it with "
                "logging.getLogger(\"neurosim\").setLevel(logging.ERROR).)", name, getattr(func, "__module__", "?"),
                where)


def install_compile_notice() -> None:
    """Register the listener of numba's ``"numba:compile"`` events that calls :func:`compile_notice` when a
    neurosim kernel called from Python (not an inner function, which only compiles within its kernel) starts
    compiling.  numba sends the event only for a real compilation, never for a load from its on-disk cache.
    Called when the numba kernels' modules are imported (``import neurosim`` imports no numba)."""
    if _NOTICE["installed"]:
        return
    _NOTICE["installed"] = True
    try:
        from numba.core import event
    except Exception:   # an internal of numba's: if it moves, say nothing rather than fail
        return

    class _CompileListener(event.Listener):
        def on_start(self, ev):
            try:
                d = ev.data.get("dispatcher") if isinstance(ev.data, dict) else None
                f = getattr(d, "py_func", None)
                if (f is not None and str(getattr(f, "__module__", "")).startswith("neurosim.")
                        and not d.targetoptions.get("no_cpython_wrapper", False)):
                    _NOTICE["compiled"] += 1
                    compile_notice(f)
            except Exception:   # a notice must never break a compilation
                pass

        def on_end(self, ev):
            pass

    event.register("numba:compile", _CompileListener())


def kernels_compiled() -> int:
    """How many neurosim kernels this process has really compiled so far (loads from the disk cache do not count;
    0 before the numba modules are imported)."""
    return _NOTICE["compiled"]


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not Linux
        return os.cpu_count() or 1
