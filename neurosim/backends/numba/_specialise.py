"""Copies of numba kernels compiled for one kind of work: the paths a kernel may take are chosen by boolean module
constants, so that a copy compiles only the code its runs can reach -- a graph kernel for a circuit without
convolutions, pooling, products or read noise has none of their code, a core kernel for a circuit without sparse
projections none of theirs (``HAS_SPARSE``; the core's other variants, Euler or general, are closures).

numba reads a global as a constant when it compiles a function and prunes the branches a constant condition rules
out before it types them (``if HAS_CONV: ...``).  :func:`specialise` makes a copy of every jitted function
of the given modules whose globals are its module's with the constants replaced, and whose callees are the copies
too; the copies are compiled on first use like the originals.  The originals keep the modules' values (every path,
chosen per call), so anything that calls them directly works as before.

The copies are compiled link-only (:mod:`._linkonly`: no Python wrapper, no cache files or machine code of their
own), whatever the originals' options: only the kernels called from Python are cached, and each specialisation of
a kernel has its own cache files (its name carries the constants) -- two kernels that call differently specialised
functions never share a cache entry.  The activations (:mod:`.activations`) are copied too, so a kernel compiles
its own link-only ``phi_block``; the originals stay cached and callable from Python.
"""
from __future__ import annotations

import hashlib
import sys
import types
from pathlib import Path

from numba import njit
from numba.core.registry import CPUDispatcher

def core_modules():
    """The modules of the numba core's passes (the default of :func:`specialise`), and its activations."""
    from . import _common, _passes, _plasticity, _products, _sparse, activations
    return (activations, _common, _products, _sparse, _passes, _plasticity)


_COPIES = {}


def _copies(consts: dict, modules) -> dict:
    """``{id(original dispatcher): copy}`` for every jitted function defined in ``modules``, compiled with the
    module constants ``consts``; each copy's calls go to the other copies.  Made once per set of constants."""
    key = (tuple(m.__name__ for m in modules), tuple(sorted(consts.items())))
    if key in _COPIES:
        return _COPIES[key]
    for name in consts:
        if not any(isinstance(vars(m).get(name), bool) for m in modules):
            raise ValueError(f"specialise: {name!r} is not a boolean constant of {[m.__name__ for m in modules]}")
    originals = []
    spaces = []
    for mod in modules:
        g = dict(vars(mod))
        g.update(consts)
        spaces.append(g)
        for name, obj in vars(mod).items():
            if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == mod.__name__:
                originals.append((g, obj))
    copies = {id(d): njit(**_inner_options(d))(_rebind(d.py_func, g)) for g, d in originals}
    for g in spaces:   # calls between the copies resolve to the copies
        _redirect(g, copies)
    _COPIES[key] = copies
    return copies


def _options(d) -> dict:
    """The jit options a dispatcher was made with (``njit`` sets ``nopython`` itself), with its compiler class (the
    inner functions' :class:`~neurosim.backends.numba._linkonly.LinkOnlyCompiler`)."""
    opts = {k: v for k, v in d.targetoptions.items() if k != "nopython"}
    pc = getattr(getattr(d, "_compiler", None), "pipeline_class", None)
    if pc is not None:
        opts["pipeline_class"] = pc
    return opts


def _inner_options(d) -> dict:
    """The jit options of a copy: the original's, compiled link-only (a copy is only ever called by the specialised
    kernel, whose cached object holds its code: no Python wrapper, no cache files or machine code of its own, see
    :mod:`._linkonly`)."""
    from ._linkonly import JIT_INNER
    return dict(_options(d), cache=False, no_cpython_wrapper=True, pipeline_class=JIT_INNER["pipeline_class"])


def _rebind(f, g, suffix=""):
    """The Python function ``f`` with the globals ``g`` (same code, defaults, closure, names; ``suffix`` appended to
    the qualified name, which names its files in numba's cache)."""
    nf = types.FunctionType(f.__code__, g, f.__name__, f.__defaults__, f.__closure__)
    nf.__qualname__, nf.__module__, nf.__doc__ = f.__qualname__ + suffix, f.__module__, f.__doc__
    return nf


def _redirect(g, copies):
    for k, v in list(g.items()):
        if isinstance(v, CPUDispatcher) and id(v) in copies:
            g[k] = copies[id(v)]


_DIGESTS = {}


def _sources_digest(f, modules) -> str:
    """A digest of the source files a kernel is compiled from: its own module's, ``modules``' and every module of
    the numba core's package (activations, helpers).  numba checks only the kernel's own file when it loads a
    cached kernel, so an edited callee would otherwise be run from a stale cache entry; with the digest in the
    kernel's name, an edit gives new cache files."""
    files = {Path(sys.modules[f.__module__].__file__)} | {Path(m.__file__) for m in modules}
    files |= set(Path(__file__).parent.glob("*.py"))
    key = tuple(sorted(str(p) for p in files))
    if key not in _DIGESTS:
        h = hashlib.sha256()
        for p in sorted(files):
            h.update(p.read_bytes())
        _DIGESTS[key] = h.hexdigest()[:12]
    return _DIGESTS[key]


def specialise(f, consts: dict, options: dict, modules=None):
    """The Python function ``f`` (a kernel before jitting, or a jitted kernel's ``py_func``) jitted with ``options``,
    with the module constants ``consts`` (e.g. ``{"HAS_CONV": False}``) and its calls to the jitted functions of
    ``modules`` (default: the core's passes, :func:`core_modules`) going to copies compiled with the same constants.

    The copy's qualified name carries the constants and a digest of the sources (``graph_batch_kernel__HAS_CONV0_
    ..._<digest>``), so each specialisation has its own files in numba's on-disk cache (a cache entry is found
    by the function's file, name and code, which a specialisation does not change) and an edited callee is never
    run from a stale entry (see :func:`_sources_digest`)."""
    modules = core_modules() if modules is None else tuple(modules)
    copies = _copies(consts, modules)
    g = dict(f.__globals__)
    g.update(consts)
    _redirect(g, copies)
    suffix = "__" + "_".join(f"{k}{int(v)}" for k, v in sorted(consts.items())) + "_" + _sources_digest(f, modules)
    return njit(**options)(_rebind(f, g, suffix))
