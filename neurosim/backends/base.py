"""What every backend implements: one relaxation (and optional weight update) of one batch."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..plan import Plan

MODE_FREE, MODE_CLAMP, MODE_NUDGE = 0, 1, 2
INIT_FEEDFORWARD, INIT_ZEROS, INIT_PREVIOUS = 0, 1, 2
EULER, HEUN = 0, 1
STATUS_OK, STATUS_DIVERGED = 0, 1

MODES = {"free": MODE_FREE, "clamp": MODE_CLAMP, "nudge": MODE_NUDGE}
INITS = {"feedforward": INIT_FEEDFORWARD, "zeros": INIT_ZEROS, "previous": INIT_PREVIOUS}
INTEGRATORS = {"euler": EULER, "heun": HEUN}


@dataclass(frozen=True)
class RunSpec:
    """Scalar settings of one batch relaxation (already validated by the Simulator)."""

    mode: int = MODE_CLAMP
    beta: float = 0.0
    init: int = INIT_FEEDFORWARD
    n_steps: int = 100
    tol: float = 0.0          # > 0: stop when max |dstate/dt| < tol
    integrator: int = EULER
    dt: float = 0.1
    dt_decay: float = 1.0     # < 1: multiply dt by this whenever the energy fails to decrease
    learn: bool = False
    probe_every: int = 0      # 0: record nothing
    probe_item: int = 0


@dataclass
class BatchResult:
    """What one relaxation returns.

    ``energy`` is ``(steps + 1, n_pops)``: the batch-mean energy of each population after each step
    (row 0 is the initial state).  ``rec_*`` are ``(n_records, n_units)`` for sample ``probe_item``.
    """

    steps: int
    energy: np.ndarray
    status: int = STATUS_OK
    fail_step: int = -1
    fail_pop: int = -1
    rec_steps: np.ndarray | None = None
    rec_x: np.ndarray | None = None
    rec_eps: np.ndarray | None = None
    rec_mu: np.ndarray | None = None
    y0: np.ndarray | None = None   # (B, n_target): prediction mu of the target population at the start
    y: np.ndarray | None = None    # (B, n_target): value x of the target population at the end

    def __repr__(self):   # a summary (the arrays are attributes)
        e = self.energy
        total = f", energy={float(np.sum(e[-1])):.6g} (final total)" if e is not None and len(e) else ""
        fail = f", diverged at step {self.fail_step} in population {self.fail_pop}" if self.status else ""
        rec = f", records={len(self.rec_steps)}" if self.rec_steps is not None and len(self.rec_steps) else ""
        return f"BatchResult(steps={self.steps}{total}{rec}{fail})"


class Backend:
    """Base class: holds weights, optimiser state and the network state between calls."""

    name = "base"
    #: features this backend can run; the Simulator checks these at build time
    supports = frozenset()

    def __init__(self, plan: Plan, dtype=np.float64, **options):
        if options:
            raise ValueError(f"backend {self.name!r} takes no options, got {sorted(options)}")
        self.plan = plan
        self.dtype = np.dtype(dtype)
        self.W = plan.W.astype(self.dtype).copy()
        self.b = plan.b.astype(self.dtype).copy()
        self.mW = np.zeros_like(self.W)
        self.vW = np.zeros_like(self.W)
        self.mb = np.zeros_like(self.b)
        self.vb = np.zeros_like(self.b)
        self.opt_t = np.zeros(plan.n_proj, dtype=np.int64)
        self.batch_size = 0

    # -- weights -------------------------------------------------------------------------------
    def weight(self, k: int) -> np.ndarray:
        """View of projection k's weight matrix (n_post, n_pre); for a sparse projection a
        ``scipy.sparse.csr_array`` of shape (n_post, n_pre) whose ``data`` is a view of its synapses in ``W``
        (writing ``.data`` in place writes the weights)."""
        p = self.plan
        o = p.w_off[k]
        n_post, n_pre = p.weight_shape(k)
        if p.is_sparse(k):
            import scipy.sparse as sps
            indptr, indices = p.sparse_csr(k)
            view = self.W[o:o + indices.size]
            m = sps.csr_array((view, indices, indptr), shape=(n_post, n_pre))
            m.data = view
            return m
        return self.W[o:o + n_post * n_pre].reshape(n_post, n_pre)

    def bias(self, k: int) -> np.ndarray | None:
        p = self.plan
        o = p.b_off[k]
        if o < 0:
            return None
        n = int(p.pop_size[p.proj_post[k]])
        return self.b[o:o + n]

    def reset(self):
        """Restore the initial weights of the plan and clear optimiser and network state."""
        self.W[:] = self.plan.W
        self.b[:] = self.plan.b
        for a in (self.mW, self.vW, self.mb, self.vb):
            a[:] = 0
        self.opt_t[:] = 0
        self.batch_size = 0

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoint_state(self) -> dict:
        """State beyond the weights, the optimiser state and the network state (``state()``) on which later
        runs depend, as ``{name: ndarray}`` (e.g. a counter that seeds each run's random draws).

        :meth:`neurosim.Simulator.save_checkpoint` saves it; a simulator resumed from the checkpoint passes
        the arrays back to :meth:`set_checkpoint_state` (same names, shapes and dtypes as returned here),
        so that it repeats an uninterrupted run.
        """
        return {}

    def set_checkpoint_state(self, state: dict) -> None:
        """Restore what :meth:`checkpoint_state` returned (already validated)."""
        if state:
            raise ValueError(f"backend {self.name!r} keeps no checkpoint state, got {sorted(state)}")

    def clear_state(self):
        """Forget the network state of the last batch (``state()`` returns None again and
        ``init="previous"`` has nothing to start from); weights and optimiser state are kept.

        Generic form: :meth:`reset` (which clears the state) with the weights and optimiser state put back.
        """
        kept = [a.copy() for a in (self.W, self.b, self.mW, self.vW, self.mb, self.vb, self.opt_t)]
        self.reset()
        for a, v in zip((self.W, self.b, self.mW, self.vW, self.mb, self.vb, self.opt_t), kept):
            a[...] = v

    # -- to implement --------------------------------------------------------------------------
    def run_batch(self, s: np.ndarray, t: np.ndarray | None, spec: RunSpec) -> BatchResult:
        raise NotImplementedError  # abstract: implemented by each backend

    def state(self) -> dict:
        """Current state as ``{"x": (B, n_units), "eps": (B, n_units), "mu": (B, n_units)}`` arrays."""
        raise NotImplementedError  # abstract: implemented by each backend

    def set_state(self, x: np.ndarray, eps: np.ndarray):
        raise NotImplementedError  # abstract: implemented by each backend

    def state_rows(self) -> int | None:
        """The batch size of the current state (None: no state), without copying it (backends that can say so
        cheaply override this)."""
        st = self.state()
        return None if st is None else int(st["x"].shape[0])

    def close(self):
        pass
