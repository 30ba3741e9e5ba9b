"""What both graph backends share: the schedule of one batch, its result, the parameter/optimiser state."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .plan import OP_INPUT, P_OFF, P_SIZE, V_LEVEL, V_OP, GraphPlan

__all__ = ["ALG_PC", "ALG_FPA", "ALG_ZIL", "ALG_BP", "ALG_IPC", "INIT_FEEDFORWARD", "INIT_ZEROS", "INIT_PREVIOUS", "ALGORITHM_CODES", "Schedule", "GraphBatchResult",
           "ParamState", "used_at_level"]

ALG_PC, ALG_FPA, ALG_ZIL, ALG_BP, ALG_IPC = 0, 1, 2, 3, 4
ALGORITHM_CODES = {"pc": ALG_PC, "fpa": ALG_FPA, "zil": ALG_ZIL, "bp": ALG_BP, "ipc": ALG_IPC}
INIT_FEEDFORWARD, INIT_ZEROS, INIT_PREVIOUS = 0, 1, 2
STATUS_OK, STATUS_DIVERGED = 0, 1


@dataclass(frozen=True)
class Schedule:
    """Scalar settings of one batch (validated by :class:`neurosim.Simulator` and the graph backend).

    algo : ALG_PC / ALG_FPA / ALG_ZIL / ALG_BP / ALG_IPC
    n_steps : relaxation steps (PC: T; FPA: n; Z-IL: the depth of the levelled graph; BP: 0)
    rate : step size on the values (PC: dt; FPA: eta; Z-IL: gamma); divided by each vertex's tau_x
    clamp : the output is clamped to the target (False: it relaxes with the rest; needs no target)
    learn : apply the update through the optimisers
    immediate : Z-IL only -- apply each vertex's contribution at its own step instead of after the sweep
    wavefront : Z-IL only -- at step t move only the vertices at level t + 1 (the ones the error reaches next)
        instead of every free vertex

    The fields below follow :class:`neurosim.backends.base.RunSpec` (same meaning as for layered circuits);
    their defaults give the schedules above unchanged.

    beta : nudge strength: with ``clamp=False`` and ``beta > 0`` the output vertex moves with the extra drive
        ``beta (Y - x_out)`` (``mode="nudge"``)
    init : INIT_FEEDFORWARD (values start at the feedforward pass), INIT_ZEROS (free vertices, and an unclamped
        output, start at 0), INIT_PREVIOUS (start from the ``x_init`` / ``eps_init`` passed to the run; inputs
        and a clamped output are set from X and Y)
    tol : > 0 (PC and iPC): stop before a step once max |dx/dt| (and |d eps/dt|) < tol
    heun : PC only: Heun steps (explicit trapezoid, both stages from the same inputs) instead of Euler
    dt_decay : PC only: < 1 multiplies ``rate`` by this whenever a step fails to lower the total energy
    record_every, record_item : > 0: record x, eps, mu (flat unit layout) of batch item ``record_item`` at steps
        0, record_every, 2 record_every, ... (PC, iPC, FPA and Z-IL; an item beyond the batch records nothing)
    read_m2, read_a2, read_seed : per-read noise of the weighted edges (``reads`` noise of a hardware model:
        :math:`\\sigma_m^2` of MultiplicativeNoise, :math:`\\sigma_a^2` of AdditiveNoise, summed), redrawn at every
        read of every schedule (predictions, feedback, the feedforward pass, backprop's backward pass; see
        :mod:`neurosim.graph.ops`) from the counter-based stream ``read_seed`` (:func:`~neurosim.graph.ops.
        read_normals`; both engines compute the same draws, so they agree to rounding where they read in the same
        order -- the feedforward start of PC, BP -- and in distribution otherwise).  Both 0 (the default): no
        noise, the noiseless code path.
    target_beta : the output options of the layered schedules (:mod:`neurosim.algorithms._common`): != 1 clamps
        (or nudges) the output to the weak target ``y0 + target_beta (Y - y0)`` (``y0``: the feedforward
        prediction) instead of ``Y``
    factor : multiplies the update directions before the optimisers (``compensate``); the reported
        ``directions`` are without it
    all_at_zero : Z-IL only -- take every vertex's parameter term at step 0 instead of at its level (the
        negative control ``update_all_at_zero`` of the layered Z-IL)
    ev_values, ev_errors : >= 0: event (send-on-delta) coding of the value and error units with these thresholds
        (:mod:`neurosim.graph.events`; PC with Euler steps, on the reference, numba and brian2 backends); < 0 (the
        default): clock
        coding, every value read at every step
    """

    algo: int = ALG_PC
    n_steps: int = 20
    rate: float = 0.1
    clamp: bool = True
    learn: bool = False
    immediate: bool = False
    wavefront: bool = False
    beta: float = 0.0
    init: int = INIT_FEEDFORWARD
    tol: float = 0.0
    heun: bool = False
    dt_decay: float = 1.0
    record_every: int = 0
    record_item: int = 0
    read_m2: float = 0.0
    read_a2: float = 0.0
    read_seed: int = 0
    ev_values: float = -1.0
    ev_errors: float = -1.0
    target_beta: float = 1.0
    factor: float = 1.0
    all_at_zero: bool = False


@dataclass
class GraphBatchResult:
    """The outcome of one batch.

    Attributes
    ----------
    steps : int
    energy : ndarray (steps + 1, n_vertices)
        Batch-mean energy :math:`\\tfrac{\\pi_i}{2}\\lVert x_i - \\mu_i\\rVert^2` of every vertex after each step
        (BP: one row, the loss at the output).
    status, fail_step, fail_vertex : int
        Non-zero status: a NaN/inf appeared at ``fail_step`` in vertex ``fail_vertex`` (plan index).
    y0 : ndarray (B, n_out)
        Feedforward prediction of the output.
    y : ndarray (B, n_out)
        Final value of the output vertex.
    directions : ndarray (n_theta,)
        The update direction of every parameter (minus the gradient of the energy / loss; batch mean or sum
        as each parameter's ``batch_reduction``), before the learning rate and the optimiser.
    x, eps, mu : ndarray (B, n_units)
        Final state in the plan's unit layout (``eps``: the error units' values, a state of its own where
        ``tau_eps > 0``).
    rec_steps, rec_x, rec_eps, rec_mu : ndarray (n_records,), (n_records, n_units)
        What ``record_every`` recorded (empty when it is 0).
    events, sops, edge_events : ndarray (steps + 1, n_vertices, 2), (n_edges, 2), (n_edges, 2)
        Event coding only (:mod:`neurosim.graph.events`): value / error events of every vertex per evaluation,
        the synaptic operations they triggered on every edge and the events delivered into every edge (batch
        sums).
    """

    steps: int
    energy: np.ndarray
    status: int = STATUS_OK
    fail_step: int = -1
    fail_vertex: int = -1
    y0: np.ndarray | None = None
    y: np.ndarray | None = None
    directions: np.ndarray | None = None
    x: np.ndarray | None = None
    eps: np.ndarray | None = None
    mu: np.ndarray | None = None
    rec_steps: np.ndarray | None = None
    rec_x: np.ndarray | None = None
    rec_eps: np.ndarray | None = None
    rec_mu: np.ndarray | None = None
    events: np.ndarray | None = None
    sops: np.ndarray | None = None
    edge_events: np.ndarray | None = None


class ParamState:
    """Flat parameters ``theta`` with the optimiser state ``m``, ``v`` (same layout) and ``opt_t`` (per parameter)."""

    def __init__(self, plan: GraphPlan, dtype=np.float64):
        self.plan = plan
        self.dtype = np.dtype(dtype)
        self.theta = plan.theta0.astype(self.dtype).copy()
        self.m = np.zeros_like(self.theta)
        self.v = np.zeros_like(self.theta)
        self.opt_t = np.zeros(plan.n_params, dtype=np.int64)

    def view(self, k: int) -> np.ndarray:
        o, n = int(self.plan.PI[k, P_OFF]), int(self.plan.PI[k, P_SIZE])
        return self.theta[o:o + n].reshape(self.plan.p_shapes[k])

    def reset(self):
        self.theta[:] = self.plan.theta0
        self.m[:] = 0
        self.v[:] = 0
        self.opt_t[:] = 0

    def copy_from(self, other: "ParamState"):
        for a, b in ((self.theta, other.theta), (self.m, other.m), (self.v, other.v), (self.opt_t, other.opt_t)):
            a[:] = b


def used_at_level(plan: GraphPlan, n_steps: int) -> np.ndarray:
    """``(n_steps + 1, n_params)`` int table: 1 where a vertex at level ``t`` uses parameter ``k`` (Z-IL's
    update time of each use)."""
    U = np.zeros((n_steps + 1, plan.n_params), dtype=np.int64)
    for i in range(plan.n_vertices):
        t = int(plan.VI[i, V_LEVEL])
        if plan.VI[i, V_OP] == OP_INPUT or t > n_steps:
            continue
        for k in plan.vertex_params(i):
            U[t, k] = 1
    return U
