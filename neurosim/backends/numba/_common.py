"""Pieces every numba kernel of a layered plan shares, written once: the ``(B, n)`` view of a population's
block of a flat state buffer and the ``(n_post, n_pre)`` view of a projection's weights, loading the clamped
inputs, accumulating one ``(B, n)`` block into another, the ``out`` summary of a run, and the divergence checks
(the first population whose energy, else whose values, are not finite, as :mod:`neurosim.backends.reference`
reports it; never compiled with ``nnan``/``ninf``, see :mod:`neurosim.config`, so they are not folded away)."""
from __future__ import annotations

import math

from numba import njit, types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

from ...config import install_compile_notice
from ._linkonly import JIT_INNER
from ..tables import P_OFF, P_SIZE

install_compile_notice()   # every numba kernel's module imports this one: the first real compile says so

__all__ = ["view2d", "blk", "wblk", "load_inputs", "read_pop", "add_into", "add_scaled", "add_row", "first_nonfinite",
           "all_finite", "first_bad", "first_bad_rows", "energy_total", "decayed_dt", "report"]


@intrinsic
def view2d(typingctx, buf, start, rows, cols):
    """The C-contiguous ``(rows, cols)`` view of ``buf[start:start + rows * cols]`` for a 1-d C-contiguous ``buf``.

    What ``buf[start:start + rows * cols].reshape(rows, cols)`` gives, without its checks: the callers' offsets come
    from the plan's tables, which are in range by construction.  ``reshape`` would compile its error message (string
    formatting of shape tuples) into every kernel, about a tenth of the core's code (see :mod:`neurosim.config`).
    The view shares ``buf``'s memory and keeps it alive (same meminfo)."""
    if not (isinstance(buf, types.Array) and buf.ndim == 1 and buf.layout == "C"):
        return None
    rettype = types.Array(buf.dtype, 2, "C")
    sig = rettype(buf, types.intp, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        src = make_array(signature.args[0])(context, builder, value=args[0])
        start_, rows_, cols_ = args[1], args[2], args[3]
        out = make_array(rettype)(context, builder)
        itemsize = src.itemsize
        populate_array(out, data=builder.gep(src.data, [start_]),
                       shape=cgutils.pack_array(builder, [rows_, cols_]),
                       strides=cgutils.pack_array(builder, [builder.mul(cols_, itemsize), itemsize]),
                       itemsize=itemsize, meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, rettype, out._getvalue())
    return sig, codegen


@njit(**JIT_INNER)
def blk(buf, B, off, n):
    """The C-contiguous ``(B, n)`` view of the block ``[B off, B (off + n))`` of the flat buffer ``buf``."""
    return view2d(buf, B * off, B, n)


@njit(**JIT_INNER)
def wblk(W, off, n_post, n_pre):
    """The ``(n_post, n_pre)`` view of a projection's weight matrix at offset ``off`` of the flat vector ``W``."""
    return view2d(W, off, n_post, n_pre)


@njit(**JIT_INNER)
def load_inputs(s, x, B, pi, inputs, input_off):
    """Copy the stimulus ``s`` (B, n_input) into the blocks of the input populations of the flat state ``x``."""
    for jj in range(inputs.shape[0]):
        i = inputs[jj]
        n = pi[i, P_SIZE]
        Xi = blk(x, B, pi[i, P_OFF], n)
        for q in range(B):
            for j in range(n):
                Xi[q, j] = s[q, input_off[jj] + j]


@njit(**JIT_INNER)
def read_pop(buf, i, B, pi, out):
    """Copy population ``i``'s block of the flat buffer ``buf`` into the flat ``out`` (B n_i: a C-contiguous
    ``(B, n_i)`` array's memory)."""
    m = B * pi[i, P_SIZE]
    o = B * pi[i, P_OFF]
    src = buf[o:o + m]
    for j in range(m):
        out[j] = src[j]


@njit(**JIT_INNER)
def add_into(dst, src):
    """``dst += src`` for ``(B, n)`` views (a skip projection's prediction or feedback)."""
    for s in range(dst.shape[0]):
        for j in range(dst.shape[1]):
            dst[s, j] += src[s, j]


@njit(**JIT_INNER)
def add_scaled(dst, src, a):
    """``dst += a src`` for ``(B, n)`` views (a weighted projection's product, times its multiplier ``a``)."""
    for s in range(dst.shape[0]):
        for j in range(dst.shape[1]):
            dst[s, j] += a * src[s, j]


@njit(**JIT_INNER)
def add_row(dst, v):
    """``dst[s] += v`` for every row ``s`` of the ``(B, n)`` view ``dst`` (a bias)."""
    for s in range(dst.shape[0]):
        for j in range(dst.shape[1]):
            dst[s, j] += v[j]


@njit(**JIT_INNER)
def first_nonfinite(v):
    """Index of the first non-finite entry of the 1-d array ``v``, else -1."""
    for i in range(v.shape[0]):
        if not math.isfinite(v[i]):
            return i
    return -1


@njit(**JIT_INNER)
def all_finite(v):
    """Whether every entry of the 1-d array ``v`` is finite (no early exit: the loop vectorises)."""
    ok = True
    for j in range(v.shape[0]):
        if not math.isfinite(v[j]):
            ok = False
    return ok


@njit(**JIT_INNER)
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


@njit(**JIT_INNER)
def first_bad_rows(energy, x, pi):
    """:func:`first_bad` for an item-major ``(B, N)`` state ``x`` (population ``i`` owns the columns
    ``[off_i, off_i + n_i)`` of every row), as the event-driven hardware engine keeps it."""
    bad = first_nonfinite(energy)
    if bad >= 0:
        return bad
    for i in range(pi.shape[0]):
        for s in range(x.shape[0]):
            if not all_finite(x[s, pi[i, P_OFF]:pi[i, P_OFF] + pi[i, P_SIZE]]):
                return i
    return -1


@njit(**JIT_INNER)
def energy_total(energy):
    """The total energy ``sum_i energy[i]``, summed in population order."""
    tot = 0.0
    for i in range(energy.shape[0]):
        tot += energy[i]
    return tot


@njit(**JIT_INNER)
def decayed_dt(dt, dt_decay, before, energy):
    """The step size after a step: ``dt * dt_decay`` when ``dt_decay < 1`` and the total energy (see
    :func:`energy_total`) did not decrease from ``before``, else ``dt``."""
    if dt_decay < 1.0 and energy_total(energy) >= before:
        return dt * dt_decay
    return dt


@njit(**JIT_INNER)
def report(out, steps, status, fail_step, fail_pop, n_records):
    """Write a kernel's summary ``out = (steps, status, fail_step, fail_pop, n_records)``."""
    out[0] = steps
    out[1] = status
    out[2] = fail_step
    out[3] = fail_pop
    out[4] = n_records
