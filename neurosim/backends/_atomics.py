"""Atomic operations on int64 array elements for jitted code, and a spin-wait hint.

numba has no atomics for CPU code; these intrinsics emit LLVM's sequentially consistent ``load atomic``,
``store atomic`` and ``cmpxchg``, so that two threads running nogil kernels can hand work to each other
through a small shared control array (see :mod:`neurosim.backends.numba_backend`, ``threads=2``).  A
sequentially consistent operation is also a full compiler and hardware barrier: ordinary array writes
made before a store are visible to a thread that has loaded the stored value.
"""
from __future__ import annotations

import platform

from llvmlite import ir
from numba.core import cgutils
from numba.core import types as nbtypes
from numba.extending import intrinsic

_I64 = ir.IntType(64)
_machine = platform.machine().lower()
#: x86 has a spin-wait hint (``pause``, as an LLVM intrinsic: numba's JIT has no inline-asm parser);
#: elsewhere the wait loop spins on its atomic load alone
_PAUSE = _machine in ("x86_64", "amd64", "i686", "x86")


def _ptr(context, builder, aryty, ary, idx):
    a = context.make_array(aryty)(context, builder, ary)
    return cgutils.get_item_pointer(context, builder, aryty, a, [idx])


def _check(arr, *ints):
    if not (isinstance(arr, nbtypes.Array) and arr.dtype == nbtypes.int64 and arr.ndim == 1):
        return False
    return all(isinstance(t, nbtypes.Integer) for t in ints)


@intrinsic
def atomic_load(typingctx, arr, idx):
    """``arr[idx]`` read atomically (int64, 1-d)."""
    if not _check(arr, idx):
        return None
    sig = nbtypes.int64(arr, nbtypes.intp)

    def codegen(context, builder, sig, args):
        i = context.cast(builder, args[1], sig.args[1], nbtypes.intp)
        return builder.load_atomic(_ptr(context, builder, sig.args[0], args[0], i), "seq_cst", 8)
    return sig, codegen


@intrinsic
def atomic_store(typingctx, arr, idx, val):
    """``arr[idx] = val`` atomically (int64, 1-d)."""
    if not _check(arr, idx, val):
        return None
    sig = nbtypes.void(arr, nbtypes.intp, nbtypes.int64)

    def codegen(context, builder, sig, args):
        i = context.cast(builder, args[1], sig.args[1], nbtypes.intp)
        v = context.cast(builder, args[2], sig.args[2], nbtypes.int64)
        builder.store_atomic(v, _ptr(context, builder, sig.args[0], args[0], i), "seq_cst", 8)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def atomic_cas(typingctx, arr, idx, expected, new):
    """Atomically: if ``arr[idx] == expected`` set it to ``new`` and return True, else return False."""
    if not _check(arr, idx, expected, new):
        return None
    sig = nbtypes.boolean(arr, nbtypes.intp, nbtypes.int64, nbtypes.int64)

    def codegen(context, builder, sig, args):
        i = context.cast(builder, args[1], sig.args[1], nbtypes.intp)
        e = context.cast(builder, args[2], sig.args[2], nbtypes.int64)
        n = context.cast(builder, args[3], sig.args[3], nbtypes.int64)
        res = builder.cmpxchg(_ptr(context, builder, sig.args[0], args[0], i), e, n, "seq_cst", "seq_cst")
        return builder.extract_value(res, 1)
    return sig, codegen


@intrinsic
def cpu_relax(typingctx):
    """The processor's spin-wait hint (``pause`` on x86; nothing elsewhere)."""
    sig = nbtypes.void()

    def codegen(context, builder, sig, args):
        if _PAUSE:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()
    return sig, codegen
