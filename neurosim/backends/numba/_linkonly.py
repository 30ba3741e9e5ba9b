"""Compile the inner functions of the numba kernels once, as part of their kernel, not once more on their own.

numba compiles a jitted function that another jitted function calls as a library of its own: it optimises that
library's module (LLVM's module passes, O3) and emits its machine code, then the caller links the module into its
own and optimises and emits the whole again.  For the functions of :data:`neurosim.config.JIT_INNER` (the passes
that only kernels call: no Python wrapper, not cached on their own) the first optimisation and the machine code are
never used: the kernel's module optimisation sees their code again after linking (inlining included), and a cached
kernel's object holds its callees' code.  Skipping them takes about a quarter off a cold start (the core kernel,
64-256-256-10 tanh, with an empty cache: 19.2-22.1 s -> 14.3-16.0 s per dtype; ``benchmarks/README.md``).

The kernel's machine code is not the same as before (LLVM optimises the callees once, inside the kernel, and inlines
some small ones it did not), but does the same arithmetic: the weights after 37 training batches were equal to the
bit for float32 and float64 at batch 1 and 256, and kernels compiled both ways, timed in one process, ran within
3% of each other (batch 1, 32 and 256).

:class:`LinkOnlyCompiler` (the ``pipeline_class`` of :data:`JIT_INNER`) gives such a function a library marked
*link-only*.  Two methods of numba's code library and one of its JIT code generator are wrapped (:func:`install`)
so that a link-only library runs only the function-level passes numba runs on every module as it is added, is not
added to the JIT engine and emits no machine code; every other library -- the kernels, and anything a user compiles
in the same process -- goes through numba's own code unchanged, except that a library linking link-only ones then
points their environment globals at their environments (:func:`_set_linked_envs`: numba would have done it when
adding each one's own library to the engine; a function needs it to build Python objects, e.g. an exception with a
computed message).  Kernels loaded from the disk cache are unaffected (their inner functions are not compiled at
all then).  A link-only function cannot be called from Python (no wrapper, as before) nor passed as a first-class
function value (it has no machine code of its own).

These are internals of numba: :func:`install` checks that they exist with the expected signatures and otherwise
leaves numba alone (the inner functions then compile as before, only slower); ``NEUROSIM_LINK_ONLY=0`` turns it off.
``tests/test_link_only.py`` checks that it is active with the installed numba, that an inner function gets no
machine code of its own while its caller runs, that it can raise an exception with a computed message, and that
other jitted functions compiled in the same process are untouched; the conformance suite checks the kernels
compiled this way against the reference backend.
"""
from __future__ import annotations

import ctypes
import inspect
import os

from numba.core import codegen as _cg
from numba.core.compiler import Compiler

try:
    from numba.core.environment import lookup_environment as _lookup_environment
except ImportError:   # checked by _missing: link-only compilation stays off
    _lookup_environment = None

from ...config import JIT_INNER as _JIT_INNER_BASE

#: the newest numba (major, minor) this was checked with (0.59.1, the oldest neurosim allows, and 0.68.1, by
#: tests/test_link_only.py and the conformance suite); on any version it checks numba's internals itself
CHECKED_NUMBA = ("0", "68")

#: set by :func:`install`: whether inner functions are compiled link-only in this process
ACTIVE = {"installed": False, "active": False, "reason": ""}


class LinkOnlyCompiler(Compiler):
    """numba's default compiler, with the function's code library marked link-only (see the module docstring)."""

    def compile_extra(self, func):
        if self.state.library is None and ACTIVE["active"]:
            lib = self.state.targetctx.codegen().create_library(getattr(func, "__qualname__", "inner"))
            lib.enable_object_caching()
            lib._neurosim_link_only = True
            self.state.library = lib
        return super().compile_extra(func)


def _link_only(lib) -> bool:
    return getattr(lib, "_neurosim_link_only", False)


def _links_link_only(lib, seen=None) -> bool:
    """Whether a code library links a link-only one, directly or through the libraries it links."""
    seen = set() if seen is None else seen
    for other in getattr(lib, "_linking_libraries", ()):
        if id(other) in seen:
            continue
        seen.add(id(other))
        if _link_only(other) or _links_link_only(other, seen):
            return True
    return False


def _set_linked_envs(lib) -> None:
    """Point the environment globals of the link-only functions linked into ``lib`` at their environments.

    numba writes a function's environment (what its code needs to build Python objects: a dynamic exception
    message, a ``print``) into its global when the function's own library is added to the JIT engine, which a
    link-only library never is; after linking, the global lives in the kernel's module, so it is set here, once
    the kernel's module is in the engine -- as numba does for every referenced environment when it loads a
    kernel from its disk cache.  Globals already set are left alone."""
    engine = lib._codegen._engine
    for gv in lib._final_module.global_variables:
        if not gv.name.startswith("_ZN08NumbaEnv"):
            continue
        env = _lookup_environment(gv.name)
        addr = engine.get_global_value_address(gv.name)
        if env is None or not addr:
            continue
        cell = (ctypes.c_void_p * 1).from_address(addr)
        if not cell[0]:
            cell[0] = ctypes.c_void_p(id(env))


def _missing(lib_cls, gen_cls, compiler_cls) -> str:
    """Why link-only compilation cannot be installed on these numba classes ("" if it can): a method it wraps or
    calls is missing or has another signature."""
    needed = [(lib_cls, "_optimize_final_module", ["self"]), (lib_cls, "_finalize_final_module", ["self"]),
              (lib_cls, "_finalize_dynamic_globals", ["self"]), (lib_cls, "_verify_declare_only_symbols", ["self"]),
              (gen_cls, "set_env", ["self", "env_name", "env"]), (compiler_cls, "compile_extra", ["self", "func"])]
    if _lookup_environment is None:
        return "numba has no numba.core.environment.lookup_environment"
    for cls, name, params in needed:
        f = getattr(cls, name, None) if cls is not None else None
        try:
            ok = f is not None and list(inspect.signature(f).parameters) == params
        except (TypeError, ValueError):
            ok = False
        if not ok:
            return f"numba has no {getattr(cls, '__name__', cls)}.{name}({', '.join(params)})"
    return ""


def install() -> bool:
    """Wrap numba's code-library methods (once per process); returns whether link-only compilation is active."""
    if ACTIVE["installed"]:
        return ACTIVE["active"]
    ACTIVE["installed"] = True
    if os.environ.get("NEUROSIM_LINK_ONLY", "1") == "0":
        ACTIVE["reason"] = "off (NEUROSIM_LINK_ONLY=0)"
        return False
    lib_cls = getattr(_cg, "CPUCodeLibrary", None)
    gen_cls = getattr(_cg, "JITCPUCodegen", None)
    missing = _missing(lib_cls, gen_cls, Compiler)
    if missing:   # numba's internals moved: compile the usual way
        ACTIVE["reason"] = missing
        return False

    orig_opt = lib_cls._optimize_final_module
    orig_fin = lib_cls._finalize_final_module
    orig_env = gen_cls.set_env

    def _optimize_final_module(self):
        if _link_only(self):
            return   # optimised once, inside the kernel that links it
        orig_opt(self)

    def _finalize_final_module(self):
        if not _link_only(self):
            orig_fin(self)
            if _links_link_only(self):
                _set_linked_envs(self)
            return
        # what numba's own method does, less adding the module to the JIT engine and emitting its machine code
        # (and the back-reference its object-code hooks use: no object code is made)
        self._finalize_dynamic_globals()
        self._verify_declare_only_symbols()
        self._finalized = True

    def set_env(self, env_name, env):
        # a link-only library is not in the engine, so its environment global has no address yet (writing to it
        # would write to address 0); it is set in the kernel that links it (_set_linked_envs)
        if self._engine.get_global_value_address(env_name) == 0:
            return
        orig_env(self, env_name, env)

    lib_cls._optimize_final_module = _optimize_final_module
    lib_cls._finalize_final_module = _finalize_final_module
    gen_cls.set_env = set_env
    ACTIVE["active"] = True
    ACTIVE["reason"] = "active"
    return True


install()

#: the jit options of the kernels' inner functions: :data:`neurosim.config.JIT_INNER`, compiled link-only
JIT_INNER = dict(_JIT_INNER_BASE, pipeline_class=LinkOnlyCompiler)
