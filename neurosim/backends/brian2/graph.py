r"""Rate mode for graph circuits: a lowered :class:`~neurosim.graph.plan.GraphPlan` as brian2 NeuronGroups and
Synapses (``Simulator(graph, backend="brian2", backend_options={"mode": "rate"})``).

The equations are those of :mod:`neurosim.graph.ops` and :mod:`neurosim.graph.reference` (the NumPy oracle);
the style is that of the layered rate mapping (:mod:`neurosim.backends.brian2.rate`).  Every batch item is a
copy of the circuit (unit ``b * n + j`` of a group is unit ``j`` of item ``b``); all copies read the shared
parameters.

Objects
-------
``V_<vertex>`` (one neuron per unit and batch item; value and error unit together)
    .. math:: \tau_x \dot x = g\,\big(-\varepsilon + \textstyle\sum_{e} fb_e + \nu\beta(t - x)\big),\qquad
              \varepsilon = \pi (x - \mu)\ \text{ or }\ \tau_\varepsilon\dot\varepsilon = (x - \mu) - \varepsilon/\pi

    ``mu`` is assembled from summed variables written by the vertex's in-edges (below); each ``fb_e`` is the
    vector-Jacobian product of one out-edge ``e``, written by that edge's synapses; ``g`` is 0 for inputs, a
    clamped output and after the run has stopped (``go`` of the control group).  Inputs have ``x`` only.
``P_<parameter>`` (one neuron per element of a weight matrix, kernel or bias)
    ``th`` (the value), the optimiser state ``m``, ``v``, ``opt_t``, and ``g``: the Hebbian term summed over
    every synapse that uses the element (every position of a convolution, every use of a shared parameter,
    every batch item), as one summed variable per use.  Edges read ``th`` as a linked variable, so
    prediction and feedback use one value; the optimiser step is a ``run_regularly`` operation.
edges (Synapses from the parent's group to the vertex's group; ``a`` the edge multiplier, ``c`` a coefficient)
    =========  ===========================================  ===============================================
    kind       prediction (order 0)                         feedback into the parent (order 1)
    =========  ===========================================  ===============================================
    dense      ``mu_e_post = a th phi(x_pre)``, all-to-all  ``fb_e_pre = a th eps_post phi'(x_pre)``
               within a batch item, ``th`` indexed ``(j, i)``
    conv2d     the same on the sparse connectivity of the   the same; the Hebbian synapses ``V -> P`` share
               convolution; every synapse indexes its       one kernel element among all positions
               kernel element ``(o, i, u, v)``
    scale      ``mu_e_post = c x_pre`` (one-to-one)         ``fb_e_pre = c eps_post``
    bias       linked variable ``b = th[unit or channel]``  (Hebbian: ``g_post = eps_pre``)
    act        ``mu_e_post = phi(x_pre)`` (one-to-one)      ``fb_e_pre = phi'(x_pre) eps_post``
    product    ``fac_e_post = x_pre``; ``mu = prod_e fac_e``  ``fb_e_pre = eps_post prod_{m != e} fac_m_post``
    avgpool    ``mu_e_post = x_pre / k^2`` over the windows ``fb_e_pre = eps_post / k^2``
    maxpool    one Synapses object per window position      ``fb_e_q_pre = eps_post ind_q_post``: the error
               ``q``: ``w_q_post = x_pre``; ``ind_q`` = 1   goes to the first maximum only, as
               at the first maximum (exact comparisons),    :func:`neurosim.graph.ops.pool_vjp`
               ``mu = sum_q ind_q w_q``
    =========  ===========================================  ===============================================

    Hebbian synapses ``V_<vertex> -> P_<parameter>`` sum :math:`a\,\varepsilon_{post}\phi(x_{pre})` (read through
    a linked variable) into the parameter element they use.
``ctl`` (one neuron)
    receives the energy of every vertex and the count of units still moving faster than ``tol``, and holds
    ``go`` (0 once the run is over or has converged), the ``dt_decay`` factor and ``lrn`` (1 in the time steps
    whose optimiser step acts).

Update order inside one time step (all from the state at t, then all states advance)::

    before_groups, order 0   summed: predictions (mu parts, product factors, pool window values)
    before_groups, order 1   summed: feedback, Hebbian sums, energies, error-unit tol counts
    before_groups, order 2   summed: value tol counts (they read the feedback)
    before_groups, order 3   ctl: converged? go, steps, dt_decay, lrn
    before_groups, order 4   monitors
    groups                   Euler step of x (and eps) of every vertex
    after_groups             optimiser steps (standard PC: the last time step of a learning run only;
                             every_step (iPC): every time step that moves the values)

A run of ``n`` steps is ``n + 1`` brian2 time steps: the last evaluates (and records) the final state without
moving it and, for standard PC, applies the Hebbian update from it.  The clock's ``dt`` is the schedule's rate
(``dt``; strict PC's ``eta tau_x``; iPC's ``gamma``), so one brian2 step is one step of the reference.  The
initial state (feedforward sweep, zeros, or the previous state) is set from the host with the reference's
NumPy code, as the layered rate mapping does; the relaxation, the Hebbian sums and the optimiser run in brian2.

Sweep schedules (``fpa``, ``zil``, ``bp``; :mod:`neurosim.graph.reference` states them)
---------------------------------------------------------------------------------------
A network built with ``schedule="fpa"`` gives every group the frozen feedforward value ``xh`` (set from the
host's feedforward pass) and reads every prediction, Jacobian (``phi'``, product factors, pool indicators) and
Hebbian presynaptic rate there, so :math:`\mu_i = g_i(\hat x)` and the value step is
:math:`x \leftarrow x + (\mathrm{rate}\cdot\mathrm{gain}/\tau_x)(-\varepsilon + J(\hat x)^T\varepsilon)`.
Backprop is that sweep with ``rate = 1`` and ``gain = tau_x / precision`` on every vertex: each step then sets
:math:`\varepsilon_i \leftarrow \sum_c J_{c,i}(\hat x)^T\varepsilon_c` with the output's error fixed, so after
``depth`` steps every error is the backpropagated one exactly (Rosenbaum 2022); the update is the optimiser step
of the last time step, as for FPA.  ``schedule="zil"`` runs the PC dynamics from the feedforward state; each
parameter group sums, in ``Gz``, the Hebbian term of every use at the time step equal to the level of the vertex
that uses it (``int(abs(t - t0 - level dt) < dt/2)``), so a parameter shared across levels (an unrolled RNN)
sums every use at its own step, and its optimiser step acts once on ``Gz`` after the sweep; with
``wavefront=True`` a vertex moves only in the time step ``level - 1``.  An unlevelled graph runs on its levelled
plan (identity vertices inserted, same parameters).  Z-IL's ``shared_updates="immediate"`` (several optimiser
steps of one shared parameter within a sweep, a negative control) is refused.

Per-read noise (``hardware=HardwareModel(reads=[AdditiveNoise(...), MultiplicativeNoise(...)])``)
--------------------------------------------------------------------------------------------------
A network built with ``noisy=True`` gives every weighted synapse (dense and convolution edges) four normals
``zf1, zf2, zb1, zb2``, redrawn by a ``run_regularly`` operation before every time step's summed variables, and
reads its weight as ``wl (1 + sm zf1) + sa zf2`` in the prediction and ``wl (1 + sm zb1) + sa zb2`` in the
feedback: a fresh draw of every weight at every read (Heun's predictor and corrector are two reads), which is
the law the graph kernels sample at the level of the currents (:mod:`neurosim.graph.ops`); ``sm``, ``sa`` are
the standard deviations of the multiplicative and additive noise.  brian2's generator is seeded with the
batch's noise seed for the run (:func:`~neurosim.backends.brian2._common.isolated_seed`: the caller's NumPy
state is restored after), so a run is reproducible; the draws differ from the NumPy and numba ones, so the backends
agree in distribution, not sample by sample.  Edges without weights (skips, sums, products, activations,
pooling) read no device and draw nothing.

Event coding (``hardware=HardwareModel(coding="event", threshold=...)``, standard PC, Euler)
-------------------------------------------------------------------------------------------
A network built with ``event=True`` states :mod:`neurosim.graph.events` in brian2: every group with children
holds the sent copy ``xr`` of its values and, first in every time step (``before_groups``, order -2), sends the
units that moved by more than ``thv`` (``sv = int(abs(x - xr) > thv)``, ``xr = sv x + (1 - sv) xr``); every edge
reads ``xr_pre`` where it read ``x_pre`` (predictions, Jacobians, Hebbian rates).  Every group with a non-input
parent sends its errors the same way after the predictions (stage 1; ``er``, threshold ``the``; not in the last
time step, which feeds nothing back), and the feedback reads ``er_post``; the feedback and the sums move to stage
2.  The control group sums the events of every group per time step (recorded as the energies are), and every unit
counts its sends over the run, from which the host forms each edge's synaptic operations (the fan-out and fan-in
of :func:`~neurosim.graph.events.edge_fans`).

Heun (``integrator="heun"``, standard PC; the construction of the layered rate mapping)
---------------------------------------------------------------------------------------
One Heun step of size ``h`` (the rate, times the ``dt_decay`` factor ``dtf``) is two brian2 time steps of
``h / 2``: a predictor (``ph = 0`` on the control group) and a corrector (``ph = 1``).  ``x`` (and ``eps``
where ``tau_eps > 0``) are then plain variables moved by one ``run_regularly`` operation per vertex group
(``when="groups"``), which first takes both rates ``rx = go dtf free drive / tau_x`` and
``rxe = go dtf ((x - mu) - eps/pi) / tau_eps`` (``drive`` reads ``eps``, ``rxe`` reads ``x``) and then

.. math:: \text{predictor: } k = r(v_t),\ s = v_t,\ v \leftarrow v_t + h\,k;\qquad
          \text{corrector: } v_{t+1} = s + \tfrac{h}{2}\big(k + r(\tilde v)\big)

for ``v = x, eps``.  Every input of the corrector (predictions, products, pool indicators, feedback) is
computed by the summed variables at the predicted state :math:`\tilde v`, as the reference's second stage
is.  The control acts in predictor time steps only (:func:`~neurosim.backends.brian2._common.control_update`
with ``heun``): the tol stop, ``go``, the step count and ``dt_decay`` see the states :math:`x_0, x_1, \dots`;
records and energies are those of the predictor time steps, and the Hebbian update acts in the last time
step (``2n``), at :math:`x_n`.  A run of ``n`` steps is ``2n + 1`` brian2 time steps.
"""
from __future__ import annotations

import functools

import numpy as np

import brian2 as b2

from ... import activations
from ...graph.plan import (BIAS_CHANNEL, E_CONV, E_DENSE, E_SCALE, EI_KIND, EI_PAD, EI_PARAM, EI_PHI,
                           EI_SRC, EI_STRIDE, OP_ACT, OP_AFFINE, OP_AVGPOOL, OP_INPUT, OP_MAXPOOL, OP_PRODUCT,
                           P_MEAN, P_OFF, P_OPT, P_PLASTIC, P_SIZE, PF_B1, PF_B2, PF_EPS, PF_LR, PF_MOM, PF_WD, V_BIAS,
                           V_BKIND, V_C, V_E0, V_E1, V_H, V_LEVEL, V_OP, V_PHI, V_PK, V_PS, V_SIZE, V_W, VF_TAU,
                           VF_TAU_EPS)
from ...errors import UnsupportedError
from ...graph.backend import GraphBackend, reduce_directions
from ...graph.ops import conv_connectivity, pool_connectivity
from ...graph.base import (ALG_BP, ALG_FPA, ALG_IPC, ALG_PC, ALG_ZIL, INIT_PREVIOUS, INIT_ZEROS, STATUS_DIVERGED,
                           STATUS_OK, GraphBatchResult)
from ...graph.plan import ROLE_FREE, ROLE_TARGET, V_ROLE
from . import _common as C
from .rate import _HEUN_CODE, SCHEDULES, TIME_UNIT, _optimizer_code

__all__ = ["GraphBrian2Backend", "GraphRateNetwork", "conv_connectivity", "pool_connectivity"]


def _phi(code, v):
    return C.phi_expr(int(code), float(activations.get(int(code)).param), v)


def _dphi(code, v):
    return C.dphi_expr(int(code), float(activations.get(int(code)).param), v)


def _tile(idx_pre, idx_post, n_pre, n_post, B):
    """Batch copies of one item's connectivity: item ``b`` adds ``b n`` to the indices."""
    off = np.arange(B)[:, None]
    return (np.asarray(idx_pre)[None, :] + off * n_pre).ravel(), (np.asarray(idx_post)[None, :] + off * n_post).ravel()


def _spiking_blockers(plan) -> list:
    """What in a graph plan has no form in the spiking network (for the refusal's message)."""
    ops = set(int(o) for o in plan.VI[:, V_OP])
    kinds = set(int(k) for k in plan.EI[:, EI_KIND]) if plan.EI.size else set()
    out = [name for flag, name in ((E_CONV in kinds, "convolutions"), (OP_MAXPOOL in ops, "max pooling"),
                                   (OP_AVGPOOL in ops, "average pooling"), (OP_PRODUCT in ops, "products (gates)"))
           if flag]
    used = [int(k) for k in plan.EI[:, EI_PARAM] if k >= 0] if plan.EI.size else []
    if len(used) != len(set(used)):
        out.append("parameters shared by several edges (e.g. an unrolled RNN's recurrent weights)")
    return out


def _edge_model(fwd_var, fwd, fb_var, fb, fb_on, so=0):
    """The summed variables of one edge synapse and their stages: ``{fwd_var}_post = sum fwd`` (stage 0, the
    forward pass) and, when ``fb_on``, ``{fb_var}_pre = sum fb`` (stage ``1 + so``, the feedback; ``so = 1`` in an
    event-coded network, whose error units send at stage 1)."""
    model = [f"{fwd_var}_post = {fwd} : 1 (summed)"]
    stages = {f"{fwd_var}_post": 0}
    if fb_on:
        model.append(f"{fb_var}_pre = {fb} : 1 (summed)")
        stages[f"{fb_var}_pre"] = 1 + so
    return model, stages


#: event coding: a value group's sent copy ``xr``, this step's send indicator ``sv``, its count over the run
#: ``nsv`` and the threshold; the send (``xr`` set exactly to ``x`` where sent) runs first in every time step
_SEND_X_EQS = "\nxr : 1\nsv : 1\nnsv : 1\nthv : 1 (shared)"
_SEND_X_CODE = "sv = int(abs(x - xr) > thv)\nxr = sv*x + (1 - sv)*xr\nnsv = nsv + sv"
#: the error units' send, after the predictions and only in time steps followed by a step (``t < t_end``: the
#: last evaluation feeds nothing back)
_SEND_E_EQS = "\ner : 1\nse : 1\nnse : 1\nthe : 1 (shared)\nt_end : second (shared)"
_SEND_E_CODE = "se = int(t < t_end)*int(abs(eps - er) > the)\ner = se*eps + (1 - se)*er\nnse = nse + se"


class GraphRateNetwork:
    """The brian2 objects of one graph plan for one batch size and step size, and how to run them.

    Parameters
    ----------
    plan : GraphPlan
    B, probe_item :
        As for :class:`~neurosim.backends.brian2.rate.RateNetwork`: the batch size and the monitored item.
    rate : float
        Step size (the clock's dt) in plan time units.
    every_step : bool
        False (standard and strict PC): the optimiser step acts once, in the last (evaluation) time step of
        a learning run.  True (iPC): it acts in every time step that moves the values, from the same state.
    heun : bool
        False: Euler steps.  True: Heun steps, each a predictor and a corrector time step of half the step
        (see the module docstring, "Heun"); goes with ``every_step=False``.
    schedule : {"pc", "fpa", "zil"}
        What the network computes (see the module docstring, "Sweep schedules"): ``"fpa"`` reads every
        prediction, Jacobian and Hebbian presynaptic rate at the frozen feedforward value ``xh``; ``"zil"``
        gates each parameter use's Hebbian term to the time step of its vertex's level and sums them.  Both take
        Euler steps with a per-vertex step ``gain`` and the standard (last time step) optimiser step.
    wavefront : bool
        ``"zil"`` only: at time step ``t`` only the vertices at level ``t + 1`` move.
    noisy : bool
        Per-read weight noise (see the module docstring, "Per-read noise"): every weighted synapse draws
        fresh normals for its prediction read and its feedback read in every time step; the standard
        deviations ``sm``, ``sa`` are set per run.
    event : bool
        Event (send-on-delta) coding (see the module docstring, "Event coding"): the groups send their values
        and errors on delta and the synapses read the sent copies; the thresholds are set per run.
    """

    def __init__(self, plan, B, rate, probe_item=None, every_step=False, dtype=np.float64, heun=False,
                 schedule="pc", wavefront=False, noisy=False, event=False):
        self.noisy = bool(noisy)
        self.event = bool(event)
        if self.event and (heun or every_step or schedule != "pc"):
            raise ValueError("GraphRateNetwork: event coding goes with the PC relaxation in Euler steps")
        if schedule not in SCHEDULES:
            raise ValueError(f"GraphRateNetwork: schedule must be one of {SCHEDULES}, got {schedule!r}")
        self.schedule = schedule
        self.wavefront = bool(wavefront) and schedule == "zil"
        if schedule != "pc" and (heun or every_step):
            raise ValueError(f"GraphRateNetwork: schedule {schedule!r} takes Euler steps with the standard update")
        #: brian2's float type for every variable of this network (float64 or float32), set while it is built
        #: and while it runs (:func:`~neurosim.backends.brian2._common.float_dtype`)
        self.dtype = np.dtype(dtype)
        self.heun = bool(heun)
        if self.heun and every_step:
            raise ValueError("GraphRateNetwork: heun goes with every_step=False (iPC takes Euler steps)")
        #: brian2 time steps per value step (Heun: a predictor and a corrector time step)
        self.sub = 2 if self.heun else 1
        with C.float_dtype(self.dtype):
            self._build(plan, B, rate, probe_item, every_step)

    def _build(self, plan, B, rate, probe_item, every_step):
        self.plan = p = plan
        self.B = B
        self.rate = float(rate)
        self.every_step = bool(every_step)
        self.probe_item = probe_item
        self.pfx = pfx = C.unique_prefix("g")
        self.clock = b2.Clock(dt=self.rate / self.sub * TIME_UNIT, name=pfx + "clock")
        syn = functools.partial(b2.Synapses, clock=self.clock)
        VI, VF, EI, EF, PI, PF = p.VI, p.VF, p.EI, p.EF, p.PI, p.PF
        nv = p.n_vertices
        objs = []
        summed = []   # (synapses, {variable: order})
        self._noisy_syn = []   # weighted synapses that draw per-read noise
        zeros = lambda n: np.zeros(n, dtype=int)  # noqa: E731
        comp = [i for i in range(nv) if VI[i, V_OP] != OP_INPUT]
        self.comp = comp
        fpa, zil = self.schedule == "fpa", self.schedule == "zil"
        ev = self.event
        # where predictions, Jacobians and Hebbian rates are read (fpa: frozen; event coding: the sent copies)
        xv = "xh" if fpa else "xr" if ev else "x"
        ev_eps = "er" if ev else "eps"   # the error the feedback reads (event coding: the sent copy)
        so = 1 if ev else 0   # event coding: the error units send (stage 1) before the feedback and the sums
        sweep = fpa or zil
        # error units with a state of their own (tau_eps > 0) in PC and iPC; the sweeps (fpa, zil, and bp, which
        # allows tau_eps since its errors are a backward pass) have instantaneous error units
        self.lagged = [] if sweep else [i for i in comp if VF[i, VF_TAU_EPS] > 0]
        shape = lambda i: (int(VI[i, V_C]), int(VI[i, V_H]), int(VI[i, V_W]))  # noqa: E731
        size = lambda i: int(VI[i, V_SIZE])  # noqa: E731

        # ---- control group
        F_names = [f"F_{i}" for i in comp]
        nb_names = [f"nbv_{i}" for i in comp] + [f"nbe_{i}" for i in self.lagged]
        ev_names = [f"nev_{i}" for i in range(nv)] + [f"nee_{i}" for i in range(nv)] if ev else []
        self.ctl = ctl = C.control_group(self.clock, pfx, F_names, nb_names,
                                         extra=(("ph",) if self.heun else ()) + tuple(ev_names))
        ctl.run_regularly(C.control_update(self.every_step, self.heun), when="before_groups", order=3 + so,
                          name=pfx + "ctl_update")
        objs.append(ctl)
        self.F_names = {i: f"F_{i}" for i in comp}

        # ---- what every group needs to know: its out-edges (feedback terms) and its parameters' uses
        fb_terms = {i: [] for i in range(nv)}     # names of the feedback summed variables on group i
        g_terms = {k: [] for k in range(p.n_params)}   # names of the Hebbian summed variables on P_k
        g_level = {}   # Hebbian summed variable -> level of the vertex whose use it is (Z-IL's update step)
        for i in comp:
            for e in range(int(VI[i, V_E0]), int(VI[i, V_E1])):
                src = int(EI[e, EI_SRC])
                if VI[src, V_OP] == OP_INPUT:
                    continue   # inputs are clamped: the reference sends them no feedback
                if VI[i, V_OP] == OP_MAXPOOL:
                    k = int(VI[i, V_PK])
                    fb_terms[src] += [f"fb{e}_{q}" for q in range(k * k)]
                else:
                    fb_terms[src].append(f"fb{e}")
            if VI[i, V_OP] == OP_AFFINE:
                for e in range(int(VI[i, V_E0]), int(VI[i, V_E1])):
                    if EI[e, EI_KIND] in (E_DENSE, E_CONV):
                        g_terms[int(EI[e, EI_PARAM])].append(f"g{e}")
                        g_level[f"g{e}"] = int(VI[i, V_LEVEL])
                if VI[i, V_BIAS] >= 0:
                    g_terms[int(VI[i, V_BIAS])].append(f"gb{i}")
                    g_level[f"gb{i}"] = int(VI[i, V_LEVEL])

        # event coding: who sends values (a vertex with children) and errors (one with a non-input parent)
        self.sends_v, self.sends_e = set(), set()
        if ev:   # the senders of neurosim.graph.events
            from ...graph.events import edge_fans, edge_lists
            out_edges, in_edges = edge_lists(p, edge_fans(p))
            self.sends_v = {i for i in range(nv) if out_edges[i]}
            self.sends_e = {i for i in range(nv) if in_edges[i]}

        # ---- parameter groups
        opt_t_decl = "opt_t : 1" if self.every_step else "opt_t : 1 (shared)"
        self.P = {}
        self._opt = []
        for k in range(p.n_params):
            n = int(PI[k, P_SIZE])
            gs = g_terms[k]
            eqs = ["th : 1", "m : 1", "v : 1", opt_t_decl, "gfac : 1 (shared)", "lrn : 1 (linked)",
                   f"g = {' + '.join(gs) if gs else '0.0'} : 1", *[f"{x} : 1" for x in gs]]
            if self.every_step:   # iPC's direction is the sum of the Hebbian terms of the steps taken
                eqs += ["Dacc : 1", "go : 1 (linked)"]
            if zil:   # Z-IL's direction: every use's Hebbian term at the time step of its vertex's level
                eqs += ["Gz : 1", "t0 : second (shared)"]
            P = b2.NeuronGroup(n, "\n".join(eqs), clock=self.clock, name=f"{pfx}P{k}")
            P.lrn = b2.linked_var(ctl, "lrn", index=zeros(n))
            P.gfac = 1.0
            if self.every_step:
                P.go = b2.linked_var(ctl, "go", index=zeros(n))
                P.run_regularly("Dacc = Dacc + go*g", when="after_groups", order=-1, name=f"{pfx}Dacc{k}")
            if zil and gs:
                by_level = {}
                for x in gs:
                    by_level.setdefault(g_level[x], []).append(x)
                terms = [f"int(abs(t - t0 - {d}*dt) < 0.5*dt)*({' + '.join(xs_)})" for d, xs_ in sorted(by_level.items())]
                P.run_regularly(f"Gz = Gz + {' + '.join(terms)}", when="after_groups", order=-1, name=f"{pfx}Gz{k}")
            self.P[k] = P
            objs.append(P)
            if PI[k, P_PLASTIC]:
                pf = PF[k]
                scale = 1.0 / B if PI[k, P_MEAN] else 1.0
                self._opt.append(P.run_regularly(
                    _optimizer_code(int(PI[k, P_OPT]), pf[PF_LR], pf[PF_MOM], pf[PF_WD], pf[PF_B1], pf[PF_B2],
                                    pf[PF_EPS], scale, "Gz" if zil else "g", "th", self.every_step),
                    when="after_groups", name=f"{pfx}opt{k}"))

        # ---- vertex groups
        self.V = {}
        for i in range(nv):
            n = size(i)
            N = B * n
            if VI[i, V_OP] == OP_INPUT:
                V = b2.NeuronGroup(N, "x : 1" + ("\nxh : 1" if fpa else "") + (_SEND_X_EQS if i in self.sends_v
                                                                               else ""),
                                   clock=self.clock, name=f"{pfx}V{i}")
                if i in self.sends_v:
                    V.run_regularly(_SEND_X_CODE, when="before_groups", order=-2, name=f"{pfx}sendx{i}")
                self.V[i] = V
                objs.append(V)
                continue
            op = int(VI[i, V_OP])
            e0, e1 = int(VI[i, V_E0]), int(VI[i, V_E1])
            parts = []   # summed variables (and linked bias) the prediction is made of
            if op == OP_AFFINE:
                parts = [f"mu{e}" for e in range(e0, e1)]
                parts += ["mub"] if VI[i, V_BIAS] >= 0 else []
                mu_expr = " + ".join(parts)
            elif op == OP_PRODUCT:
                parts = [f"fac{e}" for e in range(e0, e1)]
                mu_expr = "*".join(parts)
            elif op == OP_ACT or op == OP_AVGPOOL:
                parts = [f"mu{e0}"]
                mu_expr = parts[0]
            else:   # OP_MAXPOOL: the value at the first maximum of the window
                kk = int(VI[i, V_PK]) ** 2
                parts = [f"w{q}" for q in range(kk)]
                mu_expr = " + ".join(f"ind{q}*w{q}" for q in range(kk))
            fbs = fb_terms[i]
            tau, tau_eps = float(VF[i, VF_TAU]), (0.0 if sweep else float(VF[i, VF_TAU_EPS]))
            prec = np.tile(plan.UP[plan.units(i)], B)   # one precision per unit (plan.UP), per batch item
            if self.heun:   # the two stages as a run_regularly operation (below); rx, rxe: the rates of a stage
                xeq = ["x : 1", "xs : 1", "k1 : Hz", "rx : Hz", "drv = go*dtf*free*drive/tau_x : Hz",
                       "ph : 1 (linked)"]
            elif sweep:   # a per-vertex step gain (bp: tau_x/(rate prec)); zil's wavefront moves one level per step
                lvl = int(VI[i, V_LEVEL])
                mov = f"int(abs(t - t0 - {lvl - 1}*dt) < 0.5*dt)*" if self.wavefront else ""
                xeq = [f"dx/dt = go*dtf*free*gain*{mov}drive/tau_x : 1", "gain : 1", "t0 : second (shared)"]
                if fpa:
                    xeq.append("xh : 1")
            else:
                xeq = ["dx/dt = go*dtf*free*drive/tau_x : 1"]
            eqs = [*xeq,
                   "drive = -eps + fb + nud*beta*(tgt - x) : 1",
                   f"fb = {' + '.join(fbs) if fbs else '0.0'} : 1",
                   *[f"{f} : 1" for f in fbs],
                   f"mu = {mu_expr} : 1",
                   *[f"{x} : 1" for x in parts],
                   "tgt : 1", "free : 1", "nud : 1 (shared)", "beta : 1 (shared)",
                   "tau_x : second (shared, constant)", "taup : 1 (shared, constant)",
                   "prec : 1 (constant)", "go : 1 (linked)", "dtf : 1 (linked)"]
            if op == OP_MAXPOOL:
                kk = int(VI[i, V_PK]) ** 2
                for q in range(kk):
                    cond = [f"int(w{q} > w{m})" for m in range(q)] + [f"int(w{q} >= w{m})" for m in range(q + 1, kk)]
                    eqs.append(f"ind{q} = {'*'.join(cond) if cond else '1'} : 1")
            if tau_eps > 0 and self.heun:
                eqs += ["eps : 1", "es : 1", "ke : Hz", "rxe : Hz", "rate_e = go*dtf*((x - mu) - eps/prec)/tau_eps : Hz",
                        "tau_eps : second (shared, constant)", "taue : 1 (shared, constant)"]
            elif tau_eps > 0:
                eqs += ["deps/dt = go*dtf*((x - mu) - eps/prec)/tau_eps : 1",
                        "tau_eps : second (shared, constant)", "taue : 1 (shared, constant)"]
            else:
                eqs.append("eps = prec*(x - mu) : 1")
            if i in self.sends_v:
                eqs.append(_SEND_X_EQS.strip())
            if i in self.sends_e:
                eqs.append(_SEND_E_EQS.strip())
            V = b2.NeuronGroup(N, "\n".join(eqs), method="euler", clock=self.clock, name=f"{pfx}V{i}")
            if i in self.sends_v:
                V.run_regularly(_SEND_X_CODE, when="before_groups", order=-2, name=f"{pfx}sendx{i}")
            if i in self.sends_e:   # after the predictions (stage 0), before the feedback (stage 2)
                V.run_regularly(_SEND_E_CODE, when="before_groups", order=1, name=f"{pfx}sende{i}")
            V.tau_x = tau * TIME_UNIT
            V.taup = tau
            V.prec = prec
            if tau_eps > 0:
                V.tau_eps = tau_eps * TIME_UNIT
                V.taue = tau_eps
            V.go = b2.linked_var(ctl, "go", index=zeros(N))
            V.dtf = b2.linked_var(ctl, "dtf", index=zeros(N))
            if self.heun:   # both rates first (drive reads eps, rate_e reads x), then both stages
                V.ph = b2.linked_var(ctl, "ph", index=zeros(N))
                code = ["rx = drv"] + (["rxe = rate_e"] if tau_eps > 0 else [])
                code.append(_HEUN_CODE.format(v="x", k="k1", s="xs", r="rx"))
                if tau_eps > 0:
                    code.append(_HEUN_CODE.format(v="eps", k="ke", s="es", r="rxe"))
                V.run_regularly("\n".join(code), when="groups", name=f"{pfx}heun{i}")
            self.V[i] = V
            objs.append(V)

        # ---- edges
        for i in comp:
            V = self.V[i]
            op = int(VI[i, V_OP])
            n = size(i)
            for e in range(int(VI[i, V_E0]), int(VI[i, V_E1])):
                src = int(EI[e, EI_SRC])
                U = self.V[src]
                ns_ = size(src)
                fb_on = VI[src, V_OP] != OP_INPUT
                kind = int(EI[e, EI_KIND])
                coef = float(EF[e])
                cf = "" if coef == 1.0 else f"{coef!r}*"
                if op == OP_AFFINE and kind in (E_DENSE, E_CONV):
                    code = int(EI[e, EI_PHI])
                    k = int(EI[e, EI_PARAM])
                    # the weight as read: per-read noise draws zf (prediction) and zb (feedback) every time step
                    wf, wb = ("(wl*(1 + sm*zf1) + sa*zf2)", "(wl*(1 + sm*zb1) + sa*zb2)") if self.noisy else ("wl", "wl")
                    model = ["wl : 1 (linked)", "widx : integer (constant)",
                             f"mu{e}_post = {cf}{wf}*{_phi(code, xv + '_pre')} : 1 (summed)"]
                    stages = {f"mu{e}_post": 0}
                    if fb_on:
                        model.append(f"fb{e}_pre = {cf}{wb}*{ev_eps}_post*{_dphi(code, xv + '_pre')} : 1 (summed)")
                        stages[f"fb{e}_pre"] = 1 + so
                    if self.noisy:
                        model += ["zf1 : 1", "zf2 : 1", "zb1 : 1", "zb2 : 1", "sm : 1 (shared)", "sa : 1 (shared)"]
                    if kind == E_DENSE:
                        jj, ii = np.meshgrid(np.arange(n), np.arange(ns_), indexing="ij")
                        pre1, post1, widx1 = ii.ravel(), jj.ravel(), (jj * ns_ + ii).ravel()
                    else:
                        pre1, post1, widx1 = conv_connectivity(shape(src), shape(i), p.p_shapes[k],
                                                               int(EI[e, EI_STRIDE]), int(EI[e, EI_PAD]))
                    pre, post = _tile(pre1, post1, ns_, n, B)
                    widx = np.tile(widx1, B)
                    S = syn(U, V, "\n".join(model), name=f"{pfx}S{e}")
                    S.connect(i=pre, j=post)
                    S.widx = widx
                    S.wl = b2.linked_var(self.P[k], "th", index="widx")
                    if self.noisy:   # before every summed variable of the time step (they are at orders 0-2)
                        S.run_regularly("zf1 = randn()\nzf2 = randn()" + ("\nzb1 = randn()\nzb2 = randn()" if fb_on
                                                                           else ""),
                                        when="before_groups", order=-1, name=f"{pfx}Z{e}")
                        self._noisy_syn.append(S)
                    summed.append((S, stages))
                    # Hebbian: a eps_post phi(x_pre) into the parameter element each synapse uses
                    H = syn(V, self.P[k], "\n".join([
                        "xl : 1 (linked)", "pidx : integer (constant)",
                        f"g{e}_post = {cf}eps_pre*{_phi(code, 'xl')} : 1 (summed)"]), name=f"{pfx}H{e}")
                    H.connect(i=post, j=widx)
                    H.pidx = pre
                    H.xl = b2.linked_var(U, xv, index="pidx")
                    summed.append((H, {f"g{e}_post": 1 + so}))
                    objs += [S, H]
                    continue
                if op == OP_AFFINE:   # E_SCALE: skip / sum / identity
                    assert kind == E_SCALE
                    model, stages = _edge_model(f"mu{e}", f"{cf}{xv}_pre", f"fb{e}", f"{cf}{ev_eps}_post", fb_on, so)
                elif op == OP_ACT:
                    code = int(VI[i, V_PHI])
                    model, stages = _edge_model(f"mu{e}", _phi(code, xv + "_pre"), f"fb{e}",
                                                f"{_dphi(code, xv + '_pre')}*{ev_eps}_post", fb_on, so)
                elif op == OP_PRODUCT:
                    others = [f"fac{m}_post" for m in range(int(VI[i, V_E0]), int(VI[i, V_E1])) if m != e]
                    model, stages = _edge_model(f"fac{e}", f"{xv}_pre", f"fb{e}",
                                                f"{ev_eps}_post{''.join('*' + o for o in others)}", fb_on, so)
                elif op == OP_AVGPOOL:
                    kp, sp = int(VI[i, V_PK]), int(VI[i, V_PS])
                    inv = 1.0 / (kp * kp)
                    model, stages = _edge_model(f"mu{e}", f"{xv}_pre*{inv!r}", f"fb{e}", f"{ev_eps}_post*{inv!r}", fb_on,
                                                so)
                    pre1, post1 = zip(*[pool_connectivity(shape(src), shape(i), kp, sp, q) for q in range(kp * kp)])
                    pre, post = _tile(np.concatenate(pre1), np.concatenate(post1), ns_, n, B)
                    S = syn(U, V, "\n".join(model), name=f"{pfx}S{e}")
                    S.connect(i=pre, j=post)
                    summed.append((S, stages))
                    objs.append(S)
                    continue
                else:   # OP_MAXPOOL: one Synapses object per window position q
                    kp, sp = int(VI[i, V_PK]), int(VI[i, V_PS])
                    for q in range(kp * kp):
                        model, stages = _edge_model(f"w{q}", f"{xv}_pre", f"fb{e}_{q}", f"{ev_eps}_post*ind{q}_post",
                                                    fb_on, so)
                        pre1, post1 = pool_connectivity(shape(src), shape(i), kp, sp, q)
                        pre, post = _tile(pre1, post1, ns_, n, B)
                        S = syn(U, V, "\n".join(model), name=f"{pfx}S{e}_{q}")
                        S.connect(i=pre, j=post)
                        summed.append((S, stages))
                        objs.append(S)
                    continue
                S = syn(U, V, "\n".join(model), name=f"{pfx}S{e}")   # one-to-one
                S.connect(j="i", namespace={})
                summed.append((S, stages))
                objs.append(S)
            if VI[i, V_BIAS] >= 0:   # bias element -> every unit (and position) it adds to; its Hebbian term
                kb = int(VI[i, V_BIAS])   # is eps summed over those units and the batch
                C_, H, W = shape(i)
                bidx = np.tile(np.repeat(np.arange(C_), H * W) if VI[i, V_BKIND] == BIAS_CHANNEL else np.arange(n), B)
                Sb = syn(self.P[kb], V, f"mub_post = th_pre : 1 (summed)\ngb{i}_pre = eps_post : 1 (summed)",
                         name=f"{pfx}Sb{i}")
                Sb.connect(i=bidx, j=np.arange(B * n))
                summed.append((Sb, {"mub_post": 0, f"gb{i}_pre": 1 + so}))
                objs.append(Sb)

        # ---- energies and tol counters
        self._tol_syn = []
        for i in comp:
            V = self.V[i]
            Se = syn(V, ctl, f"F_{i}_post = 0.5*prec_pre*(x_pre - mu_pre)**2/{float(B)!r} : 1 (summed)",
                     name=f"{pfx}F{i}")
            Se.connect(namespace={})
            summed.append((Se, {f"F_{i}_post": 1 + so}))
            Sv = syn(V, ctl, f"nbv_{i}_post = int(abs(free_pre*drive_pre/taup_pre) >= tolv_post) : 1 (summed)",
                     name=f"{pfx}tolV{i}")
            Sv.connect(namespace={})
            summed.append((Sv, {f"nbv_{i}_post": 2 + so}))
            objs += [Se, Sv]
            self._tol_syn.append(Sv)
            if i in self.lagged:
                St = syn(V, ctl, f"nbe_{i}_post = int(abs(((x_pre - mu_pre) - eps_pre/prec_pre)/taue_pre) >= "
                                 "tolv_post) : 1 (summed)", name=f"{pfx}tolE{i}")
                St.connect(namespace={})
                summed.append((St, {f"nbe_{i}_post": 1 + so}))
                objs.append(St)
                self._tol_syn.append(St)

        if ev:   # events of every group per time step, summed into the control group
            for i in range(nv):
                parts = ([f"nev_{i}_post = sv_pre : 1 (summed)"] if i in self.sends_v else []) + \
                        ([f"nee_{i}_post = se_pre : 1 (summed)"] if i in self.sends_e else [])
                if not parts:
                    continue
                Sc = syn(self.V[i], ctl, "\n".join(parts), name=f"{pfx}nev{i}")
                Sc.connect(namespace={})
                summed.append((Sc, {f"{v}_{i}_post": 1 + so for v in (["nev"] if i in self.sends_v else []) +
                                    (["nee"] if i in self.sends_e else [])}))
                objs.append(Sc)

        C.stage_summed(summed)

        # ---- monitors
        self.mon_F = b2.StateMonitor(ctl, (F_names + ev_names) or ["steps"], record=[0], when="before_groups",
                                     order=4 + so, name=pfx + "monF")
        objs.append(self.mon_F)
        self.mon = {}
        if probe_item is not None and probe_item < B:
            for i in range(nv):
                n = size(i)
                idx = list(range(probe_item * n, (probe_item + 1) * n))
                self.mon[i] = b2.StateMonitor(self.V[i], ["x"] if i not in comp else ["x", "eps", "mu"], record=idx,
                                              when="before_groups", order=4 + so, name=f"{pfx}mon{i}")
                objs.append(self.mon[i])
        self.net = b2.Network(*objs, name=pfx + "net")

    # ------------------------------------------------------------------ one run
    def run(self, xs, es, Y, n_steps, clamp, beta, learn, tol, dt_decay, theta, m, v, opt_t, xh=None, gain=None,
            noise=None, event=None):
        """Run ``n_steps`` steps from the per-vertex values ``xs`` (and error states ``es`` where
        ``tau_eps > 0``); returns a dict of results (copied out of brian2).

        ``xh`` (schedule ``"fpa"``): the frozen feedforward value of every vertex; ``gain`` (``"fpa"``, ``"zil"``):
        the step gain of every computing vertex (default 1).  ``event`` (an ``event`` network): the thresholds
        ``(theta_values, theta_errors)``; the result then holds ``events``, ``sops`` and ``edge_events`` as
        :class:`~neurosim.graph.base.GraphBatchResult` does.  ``noise`` (a ``noisy`` network):
        ``(sigma_m^2, sigma_a^2, seed)`` of the per-read noise; brian2's random numbers are seeded with ``seed``.

        ``clamp``: the output is clamped (else it moves; ``beta > 0`` nudges it to ``Y``).  ``theta``, ``m``,
        ``v`` (flat, the plan's parameter layout) and ``opt_t`` (per parameter, the step count the next
        optimiser step uses) are set before the run.
        """
        p, B = self.plan, self.B
        T = p.target
        t0 = float(self.net.t)
        t_end = float(t0 + (self.sub * n_steps - 0.5) * self.rate / self.sub * float(TIME_UNIT)) * b2.second
        for i, V in self.V.items():
            V.x[:] = xs[i].ravel()
            if self.schedule == "fpa":
                V.xh[:] = xh[i].ravel()
            if i in self.sends_v:   # the sent copies start at 0: the first time step sends the initial state
                V.xr[:] = 0.0
                V.nsv[:] = 0.0
                V.thv = float(event[0])
            if i in self.sends_e:
                V.er[:] = 0.0
                V.nse[:] = 0.0
                V.the = float(event[1])
                V.t_end = t_end
            if i not in self.comp:
                continue
            if self.schedule != "pc":
                V.gain = 1.0 if gain is None else np.tile(np.asarray(gain[i], dtype=float).ravel(), B)
                V.t0 = t0 * b2.second
            movable = not (i == T and clamp)
            V.free[:] = 1.0 if movable else 0.0
            nudged = i == T and not clamp and beta > 0
            V.nud = 1.0 if nudged else 0.0
            V.beta = float(beta)
            V.tgt[:] = np.asarray(Y, dtype=float).ravel() if (i == T and Y is not None) else 0.0
            if i in self.lagged:
                V.eps[:] = es[i].ravel()
        for k, P in self.P.items():
            o, n = int(p.PI[k, P_OFF]), int(p.PI[k, P_SIZE])
            P.th[:] = theta[o:o + n]
            P.m[:] = m[o:o + n]
            P.v[:] = v[o:o + n]
            P.opt_t[:] = float(opt_t[k])
            if self.every_step:
                P.Dacc[:] = 0.0
            if self.schedule == "zil":
                P.Gz[:] = 0.0
                P.t0 = t0 * b2.second
        c = self.ctl
        c.running = 1.0
        c.go = 1.0
        c.dtf = 1.0
        c.Fprev = 1e308 if self.dtype == np.float64 else 3e38   # the largest float32 is 3.4e38
        c.steps = 0.0
        c.lrn = 0.0
        c.learn_on = 1.0 if learn else 0.0
        c.t_stop = float(t0 + (self.sub * n_steps - 0.5) * self.rate / self.sub * float(TIME_UNIT)) * b2.second
        if self.heun:
            c.ph = 1.0   # flips to 0: the first time step is a predictor
        c.tolv = float(tol)
        c.decay = float(dt_decay)
        for S in self._tol_syn:
            for u in S.summed_updaters.values():
                u.active = tol > 0
        for r in self._opt:
            r.active = bool(learn)
        for mon in [self.mon_F, *self.mon.values()]:
            mon.resize(0)
        seed = 0
        if self.noisy:
            m2, a2, seed = noise if noise is not None else (0.0, 0.0, 0)
            for S in self._noisy_syn:
                S.sm = float(np.sqrt(m2))
                S.sa = float(np.sqrt(a2))
        # brian2 draws from NumPy's global generator: seeded for this run, the caller's state restored after
        with C.isolated_seed(seed), C.float_dtype(self.dtype):
            self.net.run((self.sub * n_steps + 1) * self.rate / self.sub * TIME_UNIT, namespace={})
            C.raise_if_stopped()
        out = self._collect(n_steps)
        if self.event:
            out.update(self._collect_events(n_steps))
        return out

    def _collect_events(self, n_steps):
        """Events per vertex and time step (from the control group's sums) and, from every unit's send counts, the
        synaptic operations and delivered events of every edge (:func:`neurosim.graph.events.edge_fans`)."""
        from ...graph.events import edge_fans
        p, B = self.plan, self.B
        nv = p.n_vertices
        rows = n_steps + 1
        events = np.zeros((rows, nv, 2), np.int64)
        for i in range(nv):
            for col, (name, on) in enumerate(((f"nev_{i}", i in self.sends_v), (f"nee_{i}", i in self.sends_e))):
                if on:
                    events[:, i, col] = np.rint(C.copy_out(getattr(self.mon_F, name))[0][:rows]).astype(np.int64)
        fans = edge_fans(p)
        sops = np.zeros((len(fans), 2))
        edge_events = np.zeros((len(fans), 2))
        sent_v = {i: C.copy_out(self.V[i].nsv[:]).reshape(B, -1).sum(axis=0) for i in self.sends_v}
        sent_e = {i: C.copy_out(self.V[i].nse[:]).reshape(B, -1).sum(axis=0) for i in self.sends_e}
        for e, (dst, src, fo, fi) in enumerate(fans):
            if src in sent_v:
                sops[e, 0], edge_events[e, 0] = float(sent_v[src] @ fo), float(sent_v[src].sum())
            if dst in sent_e and p.VI[src, V_OP] != OP_INPUT:
                sops[e, 1], edge_events[e, 1] = float(sent_e[dst] @ fi), float(sent_e[dst].sum())
        return {"events": events, "sops": sops, "edge_events": edge_events}

    def _collect(self, n_steps):
        p, B = self.plan, self.B
        nv = p.n_vertices
        x = np.zeros((B, p.n_units))
        eps = np.zeros_like(x)
        mu = np.zeros_like(x)
        for i, V in self.V.items():
            sl = p.units(i)
            n = int(p.VI[i, V_SIZE])
            x[:, sl] = C.copy_out(V.x[:]).reshape(B, n)
            if i in self.comp:
                eps[:, sl] = C.copy_out(V.eps[:]).reshape(B, n)
                mu[:, sl] = C.copy_out(V.mu[:]).reshape(B, n)
        rows = n_steps + 1
        sub = self.sub   # Heun: the records of the predictor time steps (the states x_0 ... x_n)
        energy = np.zeros((rows, nv))
        for i, name in self.F_names.items():
            energy[:, i] = C.copy_out(getattr(self.mon_F, name))[0, ::sub][:rows]
        out = {"x": x, "eps": eps, "mu": mu, "energy": energy,
               "steps": int(round(float(C.copy_out(self.ctl.steps[:])[0])))}
        if self.mon:
            rec = {key: np.zeros((rows, p.n_units)) for key in ("x", "eps", "mu")}
            for i, mon in self.mon.items():
                sl = p.units(i)
                for key in (("x",) if i not in self.comp else ("x", "eps", "mu")):
                    rec[key][:, sl] = C.copy_out(getattr(mon, key)).T[::sub][:rows]
            out.update(rec_x=rec["x"], rec_eps=rec["eps"], rec_mu=rec["mu"])
        G = np.zeros(p.theta0.shape[0])
        th, m, v = np.zeros_like(G), np.zeros_like(G), np.zeros_like(G)
        for k, P in self.P.items():
            o, n = int(p.PI[k, P_OFF]), int(p.PI[k, P_SIZE])
            G[o:o + n] = C.copy_out(P.g[:])
            th[o:o + n] = C.copy_out(P.th[:])
            m[o:o + n] = C.copy_out(P.m[:])
            v[o:o + n] = C.copy_out(P.v[:])
        if self.every_step or self.schedule == "zil":
            for k, P in self.P.items():
                o, n = int(p.PI[k, P_OFF]), int(p.PI[k, P_SIZE])
                G[o:o + n] = C.copy_out((P.Dacc if self.every_step else P.Gz)[:])
        out.update(G=G, theta=th, m=m, v=v)
        return out


# ---------------------------------------------------------------------------------------------- the backend
def _noise(sch):
    """``((sigma_m^2, sigma_a^2, seed), noisy)`` of a schedule's per-read noise (``noisy``: any variance > 0)."""
    m2, a2 = float(sch.read_m2), float(sch.read_a2)
    return (m2, a2, int(sch.read_seed)), (m2 > 0 or a2 > 0)


class GraphBrian2Backend(GraphBackend):
    """Graph circuits on brian2 in rate mode (:class:`GraphRateNetwork`): ``pc``, ``strict``, ``ipc``, ``fpa``,
    ``zil`` and ``bp``.

    ``theta`` and the optimiser state live on the host (``W``, ``mW``, ``vW``, ``opt_t`` as for the other graph
    backends, so checkpoints, hardware writes and ``weights`` are the same code); each batch copies them into
    the network, brian2 relaxes and learns, and the results are copied back.  A network is built once per batch
    size, step size, probe item and kind of schedule (standard or every-step) and reused.

    Heun steps (``integrator="heun"``, standard PC) run as a predictor and a corrector brian2 time step each
    (:class:`GraphRateNetwork` with ``heun=True``); ``strict`` and ``ipc`` take Euler steps on every graph
    backend (refused with Heun when they start, :meth:`~neurosim.graph.backend.GraphBackend.schedule`).

    Not run here (refused with :class:`~neurosim.UnsupportedError` when the simulator is built, or when ``train``
    starts for an algorithm): ``mode="spiking"``, ``target="cpp_standalone"``, and Z-IL's
    ``shared_updates="immediate"`` (they run on ``numba`` / ``reference``).  Per-read noise of a hardware model
    is drawn in the network (``noisy`` networks) and its event coding runs there too (``event`` networks; see the
    module docstring).  A batch that diverges leaves the
    parameters as they were before it (iPC on the reference keeps the updates of the steps before the
    divergence); ``train`` raises :class:`~neurosim.DivergenceError` either way.
    """

    name = "brian2"
    mode = "rate"
    options = ("mode", "target")
    supports = frozenset({"euler", "heun", "tol", "nudge", "tau_eps", "probes", "graph", "bias", "adam", "dt_decay",
                          "multiplier", "skip", "float32"})

    def __init__(self, plan, dtype=np.float64, mode="rate", target="numpy"):
        if mode not in ("rate", "spiking"):
            raise ValueError(f"backend 'brian2': mode must be 'rate' or 'spiking', got {mode!r}")
        from ...graph.convert import population_form_hint
        if mode == "spiking":
            what = _spiking_blockers(plan)
            raise UnsupportedError(
                f"backend 'brian2' (mode='spiking') cannot run circuits stated as vertices (graph "
                f"{plan.graph.name!r}" + (f" has {', '.join(what)}" if what else "") + "): the spiking network "
                "carries signed error events between populations joined by dense synapses, each projection with its "
                "own weights and event-driven plasticity; use mode='rate' (the same graph as brian2 rate neurons), "
                "or a circuit stated as populations (ns.hierarchy, ns.Circuit) for spikes"
                + population_form_hint(plan.graph))
        if target != "numpy":
            raise UnsupportedError(f"backend 'brian2': circuits stated as vertices run on the numpy code-generation "
                                   f"target only (got target={target!r}); use target='numpy'"
                                   + population_form_hint(plan.graph))
        super().__init__(plan, dtype)
        self.target = target
        C.configure_prefs("numpy")
        self._nets = {}
        self._n_runs = 0

    def schedule(self, algorithm, options, spec):
        if algorithm == "zil" and options.get("shared_updates", "deferred") == "immediate":
            raise UnsupportedError(
                "backend 'brian2' runs algorithm 'zil' with shared_updates='deferred' (every use's term summed and "
                "applied after the sweep); 'immediate' (a negative control: several optimiser steps of one shared "
                "parameter inside a sweep) runs on backend 'numba' or 'reference'")
        return super().schedule(algorithm, options, spec)

    def _network(self, plan, B, rate, probe_item, every_step, heun=False, schedule="pc", wavefront=False,
                 noisy=False, event=False):
        key = (plan is self.plan, B, float(rate), probe_item, bool(every_step), bool(heun), schedule, bool(wavefront),
               bool(noisy), bool(event))
        if key not in self._nets:
            if len(self._nets) >= 4:   # keep a few networks (e.g. pc and ipc, two batch sizes), drop the oldest
                self._nets.pop(next(iter(self._nets)))
            self._nets[key] = GraphRateNetwork(plan, B, rate, probe_item, every_step, dtype=self.dtype,
                                               heun=heun, schedule=schedule, wavefront=wavefront, noisy=noisy,
                                               event=event)
        return self._nets[key]

    def _sweep_run(self, plan, X, Y, sch):
        """FPA, Z-IL and backprop (as the FPA sweep with the step ``tau_x / precision`` of every vertex, which
        makes each error the backpropagated one after ``depth`` steps, Rosenbaum 2022) in the rate network."""
        from ...graph.reference import feedforward, noise_of
        p = plan
        B = X.shape[0]
        T = p.target
        noise, noisy = _noise(sch)
        if Y is None:
            raise ValueError("backend 'brian2': algorithms 'fpa', 'zil' and 'bp' clamp the output to the target Y")
        xs = feedforward(p, self.params.theta, X, noise_of(sch))
        y0 = xs[T].copy()
        bp = sch.algo == ALG_BP
        xh = [a.copy() for a in xs] if sch.algo != ALG_ZIL else None
        ff = [a.copy() for a in xs]
        xs[T] = np.array(Y, dtype=float, copy=True)
        if bp:
            n, rate = int(p.depth), 1.0
            gain = {i: float(p.VF[i, VF_TAU]) / (rate * p.UP[p.units(i)]) for i in range(p.n_vertices)
                    if p.VI[i, V_OP] != OP_INPUT}
        else:
            n, rate, gain = int(sch.n_steps), float(sch.rate), None
        schedule = "zil" if sch.algo == ALG_ZIL else "fpa"
        net = self._network(p, B, rate, None, False, False, schedule, bool(sch.wavefront), noisy)
        out = net.run(xs, {}, Y, n, True, 0.0, bool(sch.learn), 0.0, 1.0, self.params.theta, self.params.m,
                      self.params.v, self.opt_t + 1, xh=xh, gain=gain, noise=noise)
        self._n_runs += 1
        energy = out["energy"][:1] if bp else out["energy"]
        steps = 0 if bp else n
        status, fail_step, fail_vertex = STATUS_OK, -1, -1
        bad = np.nonzero(~np.all(np.isfinite(out["energy"]), axis=1))[0]
        if bad.size or not np.all(np.isfinite(out["eps"])):
            status = STATUS_DIVERGED
            fail_step = min(int(bad[0]) if bad.size else n, steps)
            row = out["energy"][int(bad[0])] if bad.size else out["energy"][-1]
            fail_vertex = int(np.argmax(~np.isfinite(row))) if bad.size else T
        D = reduce_directions(p, out["G"], B)
        if bp:   # backprop's result is the feedforward pass and the backpropagated errors, as the reference's
            flat = np.zeros((B, p.n_units))
            for i in range(p.n_vertices):
                flat[:, p.units(i)] = ff[i]
            mu = flat.copy()
            for i in p.inputs:
                mu[:, p.units(int(i))] = 0.0
            res = GraphBatchResult(steps=0, energy=energy.copy(), status=status, fail_step=fail_step,
                                   fail_vertex=fail_vertex, y0=y0, y=y0.copy(), directions=D, x=flat, eps=out["eps"],
                                   mu=mu)
        else:
            res = GraphBatchResult(steps=steps, energy=energy.copy(), status=status, fail_step=fail_step,
                                   fail_vertex=fail_vertex, y0=y0, y=out["x"][:, p.units(T)].copy(), directions=D,
                                   x=out["x"], eps=out["eps"], mu=out["mu"])
        if sch.learn and status == STATUS_OK:
            for k in np.flatnonzero(p.PI[:, P_PLASTIC] > 0):
                sl = slice(int(p.PI[k, P_OFF]), int(p.PI[k, P_OFF]) + int(p.PI[k, P_SIZE]))
                self.params.theta[sl] = out["theta"][sl]
                self.params.m[sl] = out["m"][sl]
                self.params.v[sl] = out["v"][sl]
                self.params.opt_t[k] += 1
        return res

    def _engine_run(self, plan, X, Y, sch, used, x_init, eps_init):
        from ...graph.reference import _Net, feedforward, noise_of
        p = plan
        noise, noisy = _noise(sch)
        B = X.shape[0]
        if sch.target_beta != 1.0 or sch.factor != 1.0 or sch.all_at_zero or \
                (sch.algo in (ALG_FPA, ALG_ZIL) and sch.record_every > 0):
            raise UnsupportedError("backend 'brian2': its graph network does not take the layered schedules' output "
                                   "options (a weak target, a compensation factor), Z-IL's all_at_zero or records "
                                   "of an FPA/Z-IL sweep")
        if sch.algo in (ALG_FPA, ALG_ZIL, ALG_BP):
            return self._sweep_run(plan, X, Y, sch)
        if sch.algo not in (ALG_PC, ALG_IPC):
            raise UnsupportedError(f"backend 'brian2': unknown graph schedule code {sch.algo}")
        if Y is None and (sch.clamp or sch.beta > 0):
            raise ValueError("backend 'brian2': a clamped or nudged output needs the target Y")
        ipc = sch.algo == ALG_IPC
        if sch.heun and ipc:   # schedule() refuses it first ("algorithm 'ipc' takes discrete (Euler) steps")
            raise UnsupportedError("backend 'brian2': graph iPC takes Euler steps (its weights step with the "
                                   "values from one state); use integrator='euler'")
        T = p.target
        # ---- the start (host, the reference's NumPy code, as the layered rate mapping does)
        net0 = _Net(p, self.params, B)
        role = p.VI[:, V_ROLE]
        movable = [i for i in net0.comp if role[i] == ROLE_FREE or (role[i] == ROLE_TARGET and not sch.clamp)]
        net0.noise = noise_of(sch)   # the start's feedforward pass and predictions read with the same noise law
        xs = feedforward(p, self.params.theta, X, net0.noise)
        if sch.init == INIT_PREVIOUS and x_init is not None:
            for i in net0.comp:
                xs[i] = np.asarray(x_init, dtype=float)[:, p.units(i)].copy()
        if sch.clamp:
            xs[T] = np.array(Y, dtype=float, copy=True)
        if sch.init == INIT_ZEROS:
            for i in movable:
                xs[i] = np.zeros_like(xs[i])
        mus0 = net0.predictions(xs)
        es = {}
        for i in net0.comp:
            if p.VF[i, VF_TAU_EPS] > 0:
                if sch.init == INIT_PREVIOUS and x_init is not None and eps_init is not None:
                    es[i] = np.asarray(eps_init, dtype=float)[:, p.units(i)].copy()
                else:
                    es[i] = net0.p(i, xs[i]) * (xs[i] - mus0[i])
        y0 = mus0[T].copy()
        # ---- the run (brian2)
        track = sch.record_every > 0 and sch.record_item < B
        event = sch.ev_values >= 0
        if event and (ipc or sch.heun):
            raise UnsupportedError("backend 'brian2': event coding runs the PC relaxation with Euler steps")
        net = self._network(p, B, sch.rate, int(sch.record_item) if track else None, ipc, bool(sch.heun),
                            noisy=noisy, event=event)
        opt_t = self.opt_t + 1
        out = net.run(xs, es, Y, int(sch.n_steps), bool(sch.clamp), float(sch.beta), bool(sch.learn),
                      float(sch.tol), float(sch.dt_decay), self.params.theta, self.params.m, self.params.v, opt_t,
                      noise=noise, event=(float(sch.ev_values), float(sch.ev_errors)) if event else None)
        self._n_runs += 1
        n = int(sch.n_steps)
        energy = out["energy"]
        steps = min(out["steps"], n)
        status, fail_step, fail_vertex = STATUS_OK, -1, -1
        bad = np.nonzero(~np.all(np.isfinite(energy), axis=1))[0]
        if bad.size and bad[0] <= steps:
            status, fail_step = STATUS_DIVERGED, int(bad[0])
            fail_vertex = int(np.argmax(~np.isfinite(energy[fail_step])))
            steps = fail_step
        D = reduce_directions(p, out["G"], B)
        res = GraphBatchResult(steps=steps, energy=energy[:steps + 1].copy(), status=status, fail_step=fail_step,
                               fail_vertex=fail_vertex, y0=y0, y=out["x"][:, p.units(T)].copy(), directions=D,
                               x=out["x"], eps=out["eps"], mu=out["mu"])
        if event:
            res.events, res.sops, res.edge_events = out["events"][:steps + 1], out["sops"], out["edge_events"]
        if track:
            ks = np.arange(0, steps + 1, int(sch.record_every))
            res.rec_steps = ks.astype(np.int64)
            res.rec_x, res.rec_eps, res.rec_mu = out["rec_x"][ks], out["rec_eps"][ks], out["rec_mu"][ks]
        if sch.learn and status == STATUS_OK:
            plastic = p.PI[:, P_PLASTIC] > 0
            for k in np.flatnonzero(plastic):
                sl = slice(int(p.PI[k, P_OFF]), int(p.PI[k, P_OFF]) + int(p.PI[k, P_SIZE]))
                self.params.theta[sl] = out["theta"][sl]
                self.params.m[sl] = out["m"][sl]
                self.params.v[sl] = out["v"][sl]
                self.params.opt_t[k] += steps if ipc else 1
        return res

    def checkpoint_state(self):
        return {"n_runs": np.array(self._n_runs, dtype=np.int64)}

    def set_checkpoint_state(self, state):
        self._n_runs = int(state["n_runs"])

    def reset(self):
        super().reset()
        self._n_runs = 0

    def close(self):
        self._nets = {}
