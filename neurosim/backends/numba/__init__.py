r"""The numba backend: a whole batch relaxation (all populations, T steps, the weight update) in one
jitted call.

Memory layout
-------------
Each state buffer is one flat vector; population ``i`` owns the C-contiguous block
``[B * off_i, B * (off_i + n_i))`` viewed as ``(B, n_i)``.  Matrix products go to BLAS (``np.dot`` on
these contiguous views) for batches above :data:`SMALL_BATCH` and to hand-written, vectorised loops
below it, where call overhead dominates.  No allocation happens inside the relaxation loop.

What one step costs
-------------------
The kernel mirrors :mod:`neurosim.backends.reference` (the conformance suite checks it to 1e-10 in
float64) but does only the work whose result can change:

* predictions :math:`\mu_i` of populations whose inputs are all fixed (clamped inputs, a clamped
  target) are computed once per batch, not once per step;
* feedback :math:`a W^T \varepsilon` is computed only into populations that move;
* :math:`\phi(x)` is computed only for populations that project through weights, fused with the
  Euler update of :math:`x`; :math:`\phi'` is taken from :math:`\phi` (tanh: :math:`1 - \phi^2`,
  sigmoid: :math:`\phi (1 - \phi)`);
* errors, energy and the value update are each one fused pass over a population's block;
* for batches up to :data:`SMALL_BATCH`, a population whose only input is one weighted projection gets
  its prediction, error, energy and the feedback into its input population from one pass over the
  weight matrix (:func:`_fused`): row j gives :math:`\mu_j` and :math:`\varepsilon_j` and is reused for
  :math:`fb \mathrel{+}= a \varepsilon_j W_j` while it is in L1 (one read of W per step, not two);
* plain SGD on a small batch updates W in one rank-B pass without a gradient buffer.

Loops run over views indexed from 0 (numba's negative-index wrap-around on ``x[o + j]`` turns loads
into gathers), accumulate in the arrays' precision (float32 runs use 16-lane vectors), and helpers with
array arguments stay out of inner loops (each call costs reference-count updates).  Probe records go to
the caller's record store (``rec_out``: the Simulator's, so nothing is copied) or to a buffer reused
across calls.  ``backend_options={"blas_threads": n}`` limits the BLAS threads of the
products during a call (see :class:`_BlasThreads`).

Elementwise transcendental functions are vectorised: the activations of
:mod:`neurosim.backends.numba.activations` (shared by every numba kernel) write :func:`tanh` and
:func:`sigmoid` with a Cody-Waite reduced exponential and a Cephes rational approximation (max error
against NumPy's ``tanh`` 3 ulp, see ``tests/test_activations.py``) so that LLVM can vectorise the loops
(the libm scalar ``tanh`` costs ~20 ns per element).  Kernels are compiled with ``error_model="numpy"`` (divisions without
Python's zero checks, which would block vectorisation) and the fast-math flags of
:mod:`neurosim.config` (never ``nnan``/``ninf``: divergence is detected with finiteness checks).

Modules
-------
:mod:`.activations` (phi, dphi, the vectorisable tanh/sigmoid: every numba kernel's one copy),
:mod:`._common` (block views, inputs, divergence checks), :mod:`._products` (small-batch GEMV / BLAS), :mod:`._passes` (the
pieces of a step), :mod:`._plasticity` (Hebbian updates, optimisers), :mod:`._relax` (one batch in one
jitted call), :mod:`.backend` (:class:`NumbaBackend`).  The table columns are those of
:mod:`neurosim.backends.tables`.  Importing this package does not import numba; its modules do.
"""
from __future__ import annotations

__all__ = ["NumbaBackend"]


def __getattr__(name):
    if name == "NumbaBackend":
        from .backend import NumbaBackend
        return NumbaBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
