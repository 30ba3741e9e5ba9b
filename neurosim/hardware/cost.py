r"""Operation counts, energy and latency of predictive-coding training and of its backprop baseline.

Counters (:class:`OpCounts`, totals over a run):

=================  =========================================================================================
``synaptic_ops``   multiply-accumulates of inference/relaxation passes (dense) or triggered by events
``events``         messages sent by units (every sender per pass when clock-driven; measured when event-driven)
``neuron_updates`` evaluations of a value unit (state update) or an error unit (error computation)
``conversions``    DAC conversions of layer inputs plus ADC conversions of layer outputs
``weight_reads``   weight fetches from memory (each weight once per pass over a batch; once per SOP for events)
``act_reads``      activation/error operand reads (once per unit per pass and sample)
``state_writes``   neuron state writes (one per neuron update)
``update_macs``    MACs of the weight-update outer products
``weight_writes``  stored weights written
=================  =========================================================================================

plus ``samples``, ``batches``, ``relaxation_steps`` and ``serial_steps`` (sequential timesteps; the latency
model charges each one), and the derived ``macs = synaptic_ops + update_macs``,
``mem_reads = weight_reads + act_reads``, ``mem_writes = state_writes + weight_writes``.

Clock-driven PC, one sample, :math:`T` fixed relaxation steps (the count of :func:`count_pc`).  With
:math:`P = \sum_k n^{pre}_k n^{post}_k` over weighted projections, :math:`F = ` the same sum over projections
whose pre-synaptic population is not an input (feedback is never sent into a clamped input), and
:math:`U` over plastic projections:

.. math::

    \text{synaptic ops} = (T + 1) P + T F, \qquad
    \text{neuron updates} = n_{\text{non-input}} + (T + 1) n_{\varepsilon} + T n_{\text{free}},
    \qquad \text{update MACs} = U

(the feedforward sweep is prediction pass 0; predictions are re-read after each of the T steps; feedback is
needed at evaluations 0..T-1; the final errors drive the update).  Backprop on the same network:
:math:`P + F` synaptic ops, :math:`2 n_{\text{non-input}}` neuron updates, :math:`U` update MACs.  Weight
reads are per batch (a weight fetched once serves the whole batch); weight writes are per batch (every
plastic weight and learned bias once: a bound; a chip simulated with ``Simulator(hardware=...)`` counts the
parameters each update changed -- a weight whose gradient is 0 in the whole batch, e.g. from an input that is 0 in
every item, is not written -- by the same rule for clock and event coding and for BP).  So for the synaptic work alone the PC/BP ratio is
:math:`((T + 1) P + T F + U) / (P + F + U)`.

Energy and latency use per-operation tables of a :class:`Target` (JSON files in
``neurosim/hardware/targets/``; add your own file, see :func:`load_target`):

.. math::

    E = \sum_c n_c\, e_c\, (b_w / b_{ref})^{\alpha_c} (b_a / b_{ref})^{\beta_c}, \qquad
    t_{sample} = \frac{1}{n_{samples}}\Big(n_{serial}\, t_{step} + \sum_c n_c\, t_c\Big)

where :math:`b_w, b_a` are the weight and activity widths and :math:`\alpha_c, \beta_c` the target's
precision exponents (``bits_exponent``): a multiplier scales with the product of its operand widths
(Horowitz 2014: int8 multiply 0.2 pJ vs int32 3.1 pJ, a ratio of 15.5 ~ (32 x 32) / (8 x 8)), memory traffic
with the width of what is moved.  Targets with a fixed format (neuromorphic chips, 8-bit crossbars) have no
exponents.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from ..errors import UnsupportedError
from ..plan import ROLE_FREE, ROLE_INPUT, ROLE_TARGET

__all__ = ["OpCounts", "NetworkShape", "GraphShape", "count_pc", "count_bp", "count_events", "Target", "load_target",
           "get_target", "targets", "energy", "latency", "COUNTERS", "LATENCY_KEYS", "RESOURCE_KEYS", "FEEDBACK_MODES",
           "TARGET_DIR"]

#: the counters an array (crossbar) computing whole matrix-vector products does regardless of what sends
_ARRAY_FIELDS = ("synaptic_ops", "conversions", "weight_reads")
COUNTERS = ("synaptic_ops", "events", "neuron_updates", "conversions", "weight_reads", "act_reads",
            "state_writes", "update_macs", "weight_writes")
LATENCY_KEYS = ("timestep", "synaptic_op", "event", "neuron_update", "update_mac", "weight_write")
_LATENCY_COUNTER = {"synaptic_op": "synaptic_ops", "event": "events", "neuron_update": "neuron_updates",
                    "update_mac": "update_macs", "weight_write": "weight_writes"}
_SETTLE = ("synaptic_op", "event", "neuron_update")
EVIDENCE = ("verified", "recalled", "derived", "assumed", "measured", "user")
#: optional resources of a target (``"resources"`` in its file; what :func:`neurosim.hardware.map_circuit` reads):
#: digital neuromorphic cores, their router mesh and per-core timing, and analog crossbar tiles
RESOURCE_KEYS = {
    "cores_per_chip": "neuromorphic cores (processing elements) per chip",
    "neurons_per_core": "neurons (compartments) one core holds; a value unit and an error unit are one each",
    "synapses_per_core": "synapses one core holds (a count limit, whatever their format)",
    "synapse_memory_bits_per_core": "synaptic memory per core in bits (synapses x weight bits must fit)",
    "weight_bits_max": "widest stored weight the target supports (bits)",
    "fan_in_per_core": "distinct presynaptic neurons (input axons) one core can receive from",
    "fan_out_per_core": "core-to-core output edges (one per neuron and destination core) one core can send on",
    "cores_per_tile": "cores sharing one router (tile); a spike between them takes no mesh hop",
    "mesh_width_tiles": "tiles per row of the 2-D router mesh (tiles are placed row by row)",
    "hop_energy_pJ": "energy of one router hop between neighbouring tiles (pJ per message and hop)",
    "hop_latency_s": "latency of one router hop (s)",
    "barrier_latency_s": "barrier synchronisation at the end of every timestep (s)",
    "time_per_synaptic_op_s": "serial time of one synaptic op within a core (s)",
    "time_per_neuron_update_s": "serial time of one neuron update within a core (s)",
    "time_per_synaptic_update_s": "serial time of one learning (weight) update within a core (s)",
    "tile_rows": "crossbar tile rows (inputs)",
    "tile_cols": "crossbar tile columns (outputs)",
    "tiles_per_chip": "crossbar tiles per chip",
    "adcs_per_tile": "ADCs per crossbar tile (columns share them when fewer than tile_cols)",
    "mvm_latency_s": "one matrix-vector product on a tile, DAC to ADC (s)",
}
#: the resources that count things (whole numbers >= 1)
_RESOURCE_COUNTS = ("cores_per_chip", "neurons_per_core", "synapses_per_core", "synapse_memory_bits_per_core",
                    "weight_bits_max", "fan_in_per_core", "fan_out_per_core", "cores_per_tile", "mesh_width_tiles",
                    "tile_rows", "tile_cols", "tiles_per_chip", "adcs_per_tile")
#: how a target realises the feedback (transposed) read of predictive coding
FEEDBACK_MODES = ("store_transpose", "transposed_read")
TARGET_DIR = Path(__file__).resolve().parent / "targets"


@dataclass
class OpCounts:
    """Operation counts (totals over a run; ``sim.hardware.counts`` sums the learning batches,
    ``sim.hardware.last_counts`` is the last batch); add them with ``+``.

    Fields (floats)
    ---------------
    samples, batches : what was counted
    relaxation_steps, serial_steps : steps summed over the samples (per batch: divide by ``samples``); serial steps
        add the feedforward sweep's depth, what a latency model multiplies
    synaptic_ops : multiply-accumulates of predictions, feedback and the sweep (event coding: the measured ones)
    events : values and errors sent (clock coding: every sender every step)
    neuron_updates, state_writes : value and error units evaluated and written
    conversions : DAC and ADC conversions of analog targets
    weight_reads : weights fetched (clock coding: once per pass over a batch; event coding: once per synaptic
        operation, since every event reads the weights of its synapses)
    act_reads : activities read by synapses (clock coding)
    update_macs, weight_writes : the Hebbian outer products and the weights written by the updates
    array_synaptic_ops, array_conversions, array_weight_reads : what an array that computes whole matrix-vector
        products does for the same passes -- the clock-driven synaptic ops, conversions and weight reads, whatever
        sends.  The same as the measured ones under clock coding; under event coding the analytic count of the
        same steps.  An analog target (``kind == "analog"``: a crossbar reads whole tiles) is priced with these
        (:func:`energy`, :func:`latency`), so event coding saves it routing, not array reads.  0 in counts made by
        hand: the measured ones are priced.
    """

    samples: float = 0.0
    batches: float = 0.0
    relaxation_steps: float = 0.0
    serial_steps: float = 0.0
    synaptic_ops: float = 0.0
    events: float = 0.0
    neuron_updates: float = 0.0
    conversions: float = 0.0
    weight_reads: float = 0.0
    act_reads: float = 0.0
    state_writes: float = 0.0
    update_macs: float = 0.0
    weight_writes: float = 0.0
    array_synaptic_ops: float = 0.0
    array_conversions: float = 0.0
    array_weight_reads: float = 0.0

    def __add__(self, other: "OpCounts") -> "OpCounts":
        if not isinstance(other, OpCounts):
            return NotImplemented
        # a term without array counts (made by hand) contributes its measured ones, as it would be priced alone
        a, b = (c if any(getattr(c, "array_" + k) > 0 for k in _ARRAY_FIELDS) else c.with_array_counts()
                for c in (self, other))
        return OpCounts(**{f.name: getattr(a, f.name) + getattr(b, f.name) for f in fields(self)})

    def scaled(self, factor: float) -> "OpCounts":
        return OpCounts(**{f.name: getattr(self, f.name) * factor for f in fields(self)})

    def on_array(self) -> "OpCounts":
        """These counts as an array computing whole matrix-vector products does them: synaptic ops, conversions
        and weight reads replaced by their ``array_*`` counterparts where those are counted (> 0)."""
        import dataclasses
        return dataclasses.replace(self, **{k: getattr(self, "array_" + k) for k in _ARRAY_FIELDS
                                            if getattr(self, "array_" + k) > 0})

    def with_array_counts(self, clock: "OpCounts | None" = None) -> "OpCounts":
        """A copy whose ``array_*`` fields are those of ``clock`` (the clock-driven counts of the same passes), or
        this count's own measured ones (``clock`` None: a clock-driven count)."""
        import dataclasses
        src = self if clock is None else clock
        return dataclasses.replace(self, **{"array_" + k: getattr(src, k) for k in _ARRAY_FIELDS})

    @property
    def macs(self) -> float:
        return self.synaptic_ops + self.update_macs

    @property
    def mem_reads(self) -> float:
        return self.weight_reads + self.act_reads

    @property
    def mem_writes(self) -> float:
        return self.state_writes + self.weight_writes

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(macs=self.macs, mem_reads=self.mem_reads, mem_writes=self.mem_writes)
        return d

    def per_sample(self) -> dict:
        """Every counter divided by the number of samples."""
        if self.samples <= 0:
            raise ValueError("OpCounts.per_sample: no samples counted yet")
        return {k: v / self.samples for k, v in self.to_dict().items() if k != "samples"}


@dataclass(frozen=True)
class NetworkShape:
    """The sizes the cost model needs, read from a :class:`~neurosim.plan.Plan`.

    ``projections`` holds ``(n_pre, n_post, pre_is_input, post_has_error, plastic, learned_bias)`` of every
    weighted projection (plan index in ``weighted_index``); ``learned_bias_units`` counts learned biases
    (also of weightless projections).  ``skips`` holds ``(n, pre_is_input, post_has_error)`` of every identity
    skip: one accumulate per unit and pass (the prediction adds ``x_pre``, the feedback adds ``eps_post``), as
    an identity edge of a graph circuit counts, and no weight fetched.
    """

    projections: tuple
    weighted_index: tuple
    n_non_input: int
    n_error: int
    n_free: int
    n_target_units: int
    depth: int
    value_senders: int
    error_senders: int
    delta_senders: int
    mu_receivers: int
    fb_receivers: int
    learned_bias_units: int
    skips: tuple = ()

    @classmethod
    def from_plan(cls, plan) -> "NetworkShape":
        """The shape of a layered plan; a plan with sparse projections is refused (the formulas count
        ``n_pre x n_post`` synapses per pass of a projection)."""
        p = plan
        sparse = getattr(p, "sparse_projections", [])
        if sparse:
            raise UnsupportedError(
                f"hardware cost model (count_pc, count_bp, map_circuit, NetworkShape): projection(s) {sparse} are "
                "sparse, and its counts are stated for dense matrices (n_pre x n_post synapses per pass); count a "
                "sparse circuit's synaptic operations with the event engines (neurosim.hardware.NumbaEngine("
                "ns.lower(circuit)).relax(X, Y, steps=..., theta=...).sops counts one per synapse touched), or count "
                "its dense twin (connectivity=None)")
        projs, windex, skips = [], [], []
        for k in range(p.n_proj):
            if p.proj_skip[k]:
                pre, post = int(p.proj_pre[k]), int(p.proj_post[k])
                skips.append((int(p.pop_size[post]), bool(p.pop_role[pre] == ROLE_INPUT), bool(p.pop_has_err[post])))
            if p.w_off[k] < 0:
                continue
            windex.append(k)
            n_post, n_pre = p.weight_shape(k)
            pre, post = int(p.proj_pre[k]), int(p.proj_post[k])
            projs.append((n_pre, n_post, bool(p.pop_role[pre] == ROLE_INPUT), bool(p.pop_has_err[post]),
                          bool(p.proj_plastic[k]), bool(p.proj_learn_bias[k])))
        size = p.pop_size
        npop = p.n_pops
        has_out = np.zeros(npop, bool)
        has_in = np.zeros(npop, bool)
        err_send = np.zeros(npop, bool)
        delta_send = np.zeros(npop, bool)
        fb_in = np.zeros(npop, bool)
        depth = np.zeros(npop, dtype=int)
        for k in range(p.n_proj):  # sorted by topological position of post
            pre, post = int(p.proj_pre[k]), int(p.proj_post[k])
            if p.w_off[k] < 0 and not p.proj_skip[k]:
                continue
            has_out[pre] = has_in[post] = True
            depth[post] = max(depth[post], depth[pre] + 1)
            if p.pop_role[pre] != ROLE_INPUT:
                delta_send[post] = True
                if p.pop_has_err[post]:
                    err_send[post] = True
                    fb_in[pre] = True
        non_input = p.pop_role != ROLE_INPUT
        return cls(
            projections=tuple(projs),
            weighted_index=tuple(windex),
            n_non_input=int(size[non_input].sum()),
            n_error=int(size[p.pop_has_err.astype(bool)].sum()),
            n_free=int(size[p.pop_role == ROLE_FREE].sum()),
            n_target_units=int(size[p.pop_role == ROLE_TARGET].sum()),
            depth=int(depth.max()) if npop else 0,
            value_senders=int(size[has_out].sum()),
            error_senders=int(size[err_send].sum()),
            delta_senders=int(size[delta_send & non_input].sum()),
            mu_receivers=int(size[has_in & non_input].sum()),
            fb_receivers=int(size[fb_in].sum()),
            learned_bias_units=int(sum(int(size[p.proj_post[k]]) for k in range(p.n_proj) if p.proj_learn_bias[k])),
            skips=tuple(skips),
        )

    @classmethod
    def from_circuit(cls, circuit, seed: int = 0) -> "NetworkShape":
        """The shape of ``circuit``, counted from its layout without drawing a weight (``lower(sample=False)``)."""
        from ..plan import lower
        return cls.from_plan(lower(circuit, seed, sample=False))

    # sums used by the formulas
    @property
    def P(self) -> int:
        """Synaptic ops of one prediction pass (identity skips: one per unit)."""
        return sum(a * b for a, b, *_ in self.projections) + sum(n for n, *_ in self.skips)

    @property
    def F(self) -> int:
        """Synaptic ops of one PC feedback pass (pre not an input, post with an error unit)."""
        return (sum(a * b for a, b, inp, err, *_ in self.projections if not inp and err)
                + sum(n for n, inp, err in self.skips if not inp and err))

    @property
    def F_bp(self) -> int:
        """Synaptic ops of one backward pass of backprop (pre not an input)."""
        return sum(a * b for a, b, inp, *_ in self.projections if not inp) + sum(n for n, inp, _e in self.skips
                                                                                  if not inp)

    @property
    def U(self) -> int:
        return sum(a * b for a, b, _i, _e, plastic, _b in self.projections if plastic)

    # weights fetched from memory per pass over a batch (a dense weight serves one MAC per sample, so these
    # equal the MAC sums above; :class:`GraphShape` fetches a convolution kernel once per pass)
    @property
    def P_fetch(self) -> int:
        return sum(a * b for a, b, *_ in self.projections)

    @property
    def F_fetch(self) -> int:
        return sum(a * b for a, b, inp, err, *_ in self.projections if not inp and err)

    @property
    def F_bp_fetch(self) -> int:
        return sum(a * b for a, b, inp, *_ in self.projections if not inp)

    @property
    def U_fetch(self) -> int:
        """Weights read by the update of one batch."""
        return self.U

    @property
    def U_writes(self) -> int:
        """Plastic weights written by one update."""
        return self.U


@dataclass(frozen=True)
class GraphShape(NetworkShape):
    r"""The sizes the cost model needs, read from a graph circuit's :class:`~neurosim.graph.plan.GraphPlan`.

    Every edge of the graph is one entry of ``projections`` ``(n_pre, n_post, pre_is_input, True, plastic,
    False)`` (every computing vertex has error units), with its multiply-accumulates per sample and pass in
    ``macs`` and the weights it fetches per pass in ``fetches``:

    ======================  ==========================================  =====================================
    edge                    MACs per sample and pass                    weights fetched per pass
    ======================  ==========================================  =====================================
    dense                   :math:`n_{out} n_{in}`                      :math:`n_{out} n_{in}`
    convolution             :math:`C_{out} C_{in} k_h k_w H_{out} W_{out}`  :math:`C_{out} C_{in} k_h k_w`
    sum, identity, product  :math:`n_{out}` (one operation per unit)    0
    activation, pooling     :math:`n_{out}` (one operation per unit)    0
    ======================  ==========================================  =====================================

    so :math:`P` (:attr:`P`) is the sum of ``macs``, :math:`F` the same over edges whose source is not an input,
    :math:`U` over edges of plastic parameters (the update of a convolution kernel correlates every output
    position, as many MACs as its forward pass; a shared parameter accumulates the terms of every use).  A
    parameter shared by several edges (recurrent weights over time) is fetched once per use, written once per
    update (``plastic_weights``).  Biases (parameters whose first use is a bias) are neuron parameters:
    ``learned_bias_units`` counts their plastic elements.
    """

    macs: tuple = ()
    fetches: tuple = ()
    plastic_weights: int = 0

    @classmethod
    def from_graph_plan(cls, plan) -> "GraphShape":
        from ..graph.plan import (E_CONV, E_DENSE, EI_KH, EI_KIND, EI_KW, EI_PARAM, EI_SRC, P_PLASTIC, P_SIZE,
                                  ROLE_FREE as G_FREE, ROLE_INPUT as G_INPUT, ROLE_TARGET as G_TARGET, V_C, V_E0,
                                  V_E1, V_H, V_ROLE, V_SIZE, V_W)
        VI, EI, PI = plan.VI, plan.EI, plan.PI
        uses = plan.graph.param_uses
        is_bias = [uses[name][0].role == "bias" for name in plan.p_names]
        nv = plan.n_vertices
        size = VI[:, V_SIZE]
        role = VI[:, V_ROLE]
        projs, macs, fetches = [], [], []
        has_out = np.zeros(nv, bool)
        has_in = np.zeros(nv, bool)
        err_send = np.zeros(nv, bool)
        fb_in = np.zeros(nv, bool)
        for i in range(nv):
            for e in range(int(VI[i, V_E0]), int(VI[i, V_E1])):
                src, kind, k = int(EI[e, EI_SRC]), int(EI[e, EI_KIND]), int(EI[e, EI_PARAM])
                n_pre, n_post = int(size[src]), int(size[i])
                if kind == E_DENSE:
                    m = f = n_pre * n_post
                elif kind == E_CONV:
                    f = int(VI[i, V_C] * VI[src, V_C] * EI[e, EI_KH] * EI[e, EI_KW])
                    m = f * int(VI[i, V_H] * VI[i, V_W])
                else:
                    m, f = n_post, 0
                inp = bool(role[src] == G_INPUT)
                projs.append((n_pre, n_post, inp, True, bool(k >= 0 and PI[k, P_PLASTIC]), False))
                macs.append(m)
                fetches.append(f)
                has_out[src] = has_in[i] = True
                if not inp:
                    err_send[i] = True
                    fb_in[src] = True
        non_input = role != G_INPUT
        plastic = [k for k in range(plan.n_params) if PI[k, P_PLASTIC]]
        return cls(
            projections=tuple(projs),
            weighted_index=tuple(range(len(projs))),
            n_non_input=int(size[non_input].sum()),
            n_error=int(size[non_input].sum()),
            n_free=int(size[role == G_FREE].sum()),
            n_target_units=int(size[role == G_TARGET].sum()),
            depth=int(plan.depth),
            value_senders=int(size[has_out].sum()),
            error_senders=int(size[err_send].sum()),
            delta_senders=int(size[err_send & non_input].sum()),
            mu_receivers=int(size[has_in & non_input].sum()),
            fb_receivers=int(size[fb_in].sum()),
            learned_bias_units=int(sum(int(PI[k, P_SIZE]) for k in plastic if is_bias[k])),
            macs=tuple(macs),
            fetches=tuple(fetches),
            plastic_weights=int(sum(int(PI[k, P_SIZE]) for k in plastic if not is_bias[k])),
        )

    def _sum(self, values, which) -> int:
        return int(sum(v for v, (a, b, inp, err, plastic, _b) in zip(values, self.projections)
                       if which(inp, plastic)))

    @property
    def P(self) -> int:
        return self._sum(self.macs, lambda inp, pl: True)

    @property
    def F(self) -> int:
        return self._sum(self.macs, lambda inp, pl: not inp)

    @property
    def F_bp(self) -> int:
        return self.F

    @property
    def U(self) -> int:
        return self._sum(self.macs, lambda inp, pl: pl)

    @property
    def P_fetch(self) -> int:
        return self._sum(self.fetches, lambda inp, pl: True)

    @property
    def F_fetch(self) -> int:
        return self._sum(self.fetches, lambda inp, pl: not inp)

    @property
    def F_bp_fetch(self) -> int:
        return self.F_fetch

    @property
    def U_fetch(self) -> int:
        return self._sum(self.fetches, lambda inp, pl: pl)

    @property
    def U_writes(self) -> int:
        return self.plastic_weights


def _shape(net) -> NetworkShape:
    if isinstance(net, NetworkShape):
        return net
    from ..circuit import Circuit
    from ..plan import Plan
    if isinstance(net, Plan):
        return NetworkShape.from_plan(net)
    from ..graph.plan import GraphPlan, lower_graph
    if isinstance(net, Circuit):
        return (GraphShape.from_graph_plan(lower_graph(net, sample=False)) if net.is_graph
                else NetworkShape.from_circuit(net))
    if isinstance(net, GraphPlan):
        return GraphShape.from_graph_plan(net)
    raise TypeError(f"expected a Circuit, Plan, graph circuit, GraphPlan or NetworkShape, got {type(net).__name__}")


def _check_int(name, v, low=0):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
        raise ValueError(f"{name} must be an int >= {low}, got {v!r}")


def count_pc(net, steps: int, batch_size: int = 1, *, mode: str = "clamp", learn: bool = True,
             sweep: bool = True) -> OpCounts:
    """Counts of one batch of clock-driven PC training (or relaxation when ``learn=False``).

    Parameters
    ----------
    net : Circuit, Plan, NetworkShape, or a graph circuit, its GraphPlan or GraphShape
        (:class:`GraphShape` gives the MACs of convolutions and the per-unit operations of the other vertices)
    steps : int
        Relaxation steps T actually taken.
    batch_size : int
    mode : {"clamp", "nudge", "free"}
        With "clamp" the target units are not updated.
    learn : bool
        Count the weight update.
    sweep : bool
        The values start from a feedforward sweep (``init="feedforward"``), which sets every non-input unit once.
    """
    s = _shape(net)
    _check_int("steps", steps)
    _check_int("batch_size", batch_size, 1)
    if mode not in ("clamp", "nudge", "free"):
        raise ValueError(f"mode must be 'clamp', 'nudge' or 'free', got {mode!r}")
    T, B = int(steps), int(batch_size)
    n_free = s.n_free + (0 if mode == "clamp" else s.n_target_units)
    fwd_conv = sum(a + b for a, b, *_ in s.projections)
    fb = [(a, b) for a, b, inp, err, *_ in s.projections if not inp and err]
    upd_act = sum(a + b for a, b, _i, _e, pl, _b in s.projections if pl)
    neuron = (s.n_non_input if sweep else 0) + (T + 1) * s.n_error + T * n_free
    per_sample = OpCounts(
        synaptic_ops=(T + 1) * s.P + T * s.F,
        events=(T + 1) * s.value_senders + T * s.error_senders,
        neuron_updates=neuron,
        conversions=(T + 1) * fwd_conv + T * sum(a + b for a, b in fb),
        act_reads=(T + 1) * sum(a for a, *_ in s.projections) + T * sum(b for _a, b in fb) + (upd_act if learn else 0),
        state_writes=neuron,
        update_macs=s.U if learn else 0,
        relaxation_steps=T,
        serial_steps=s.depth + T,
        samples=1,
    )
    per_batch = OpCounts(batches=1, weight_reads=(T + 1) * s.P_fetch + T * s.F_fetch + (s.U_fetch if learn else 0),
                         weight_writes=(s.U_writes + s.learned_bias_units) if learn else 0)
    return (per_sample.scaled(B) + per_batch).with_array_counts()


def count_bp(net, batch_size: int = 1, *, learn: bool = True) -> OpCounts:
    """Counts of one batch of backprop training on the same network (forward, backward, update)."""
    s = _shape(net)
    _check_int("batch_size", batch_size, 1)
    B = int(batch_size)
    bwd = [(a, b) for a, b, inp, *_ in s.projections if not inp]
    upd_act = sum(a + b for a, b, _i, _e, pl, _b in s.projections if pl)
    neuron = 2 * s.n_non_input
    per_sample = OpCounts(
        synaptic_ops=s.P + s.F_bp,
        events=s.value_senders + s.delta_senders,
        neuron_updates=neuron,
        conversions=sum(a + b for a, b, *_ in s.projections) + sum(a + b for a, b in bwd),
        act_reads=sum(a for a, *_ in s.projections) + sum(b for _a, b in bwd) + (upd_act if learn else 0),
        state_writes=neuron,
        update_macs=s.U if learn else 0,
        relaxation_steps=0,
        serial_steps=2 * s.depth,
        samples=1,
    )
    per_batch = OpCounts(batches=1, weight_reads=s.P_fetch + s.F_bp_fetch + (s.U_fetch if learn else 0),
                         weight_writes=(s.U_writes + s.learned_bias_units) if learn else 0)
    return (per_sample.scaled(B) + per_batch).with_array_counts()


def _event_batch(net, result, batch_size, mode, sweep):
    """``(shape, B, T, neuron updates, ADC conversions)`` of one event-driven batch: neurons are evaluated every
    step as on a time-stepped chip (the sweep sets every non-input unit once) and every receiving unit converts
    its current once per evaluation (the sweep included)."""
    s = _shape(net)
    _check_int("batch_size", batch_size, 1)
    B = int(batch_size)
    T = int(result.steps)
    n_free = s.n_free + (0 if mode == "clamp" else s.n_target_units)
    neuron = B * ((s.n_non_input if sweep else 0) + (T + 1) * s.n_error + T * n_free)
    adc = B * ((T + 1) * (s.mu_receivers + s.fb_receivers) + (s.mu_receivers if sweep else 0))
    return s, B, T, neuron, adc


def count_events(net, result, batch_size: int, *, mode: str = "clamp", learn: bool = True, sweep: bool = True,
                 weight_writes: int | None = None) -> OpCounts:
    """Counts of one batch of event-driven PC from an :class:`~neurosim.hardware.engine.EventResult`.

    Events and synaptic ops are the measured ones; every synaptic op reads its weight once (the event
    carries its payload, so no activation reads); each event driven into a projection is one DAC
    conversion and every receiving unit converts its current once per evaluation (ADC, the sweep
    included); identity skips add their measured one-to-one ops (``result.skip_ops``: one per x event of the
    pre population and one per error event of the post population) to the synaptic ops, without weight reads
    or conversions, and their x events to the events; neurons are evaluated every step as on a time-stepped chip; the update MACs are those of the
    dense outer product; ``weight_writes`` is the number of stored weights that changed (None: 0).
    """
    s, B, T, neuron, adc = _event_batch(net, result, batch_size, mode, sweep)
    sops = np.asarray(result.sops, dtype=float)
    dac = 0.0
    for k, (n_pre, n_post, *_rest) in zip(s.weighted_index, s.projections):
        dac += sops[k, 0] / n_post + sops[k, 1] / n_pre
    ops = float(sops.sum())
    # identity skips: one accumulate per x event (forward) and per error event (feedback) routed one-to-one,
    # counted as synaptic ops with no weight read and no conversion (a digital route, no crossbar)
    skip_ops = getattr(result, "skip_ops", None)
    skip_ops = float(np.sum(skip_ops)) if skip_ops is not None else 0.0
    return OpCounts(samples=float(B), batches=1, relaxation_steps=T * B, serial_steps=(s.depth + T) * B,
                    synaptic_ops=ops + skip_ops, events=float(np.sum(result.events) + np.sum(result.events_init)),
                    neuron_updates=neuron, conversions=float(dac + adc), weight_reads=ops, act_reads=0.0,
                    state_writes=neuron, update_macs=float(B * s.U) if learn else 0.0,
                    weight_writes=float(weight_writes or 0)).with_array_counts(
        count_pc(s, T, B, mode=mode, learn=learn, sweep=sweep))


def count_spikes(net, report: dict, steps: int, batch_size: int, *, mode: str = "clamp", learn: bool = True,
                 sweep: bool = True) -> OpCounts:
    """Counts of one batch of brian2's spiking network (``report``: the backend's ``last_run``): the spikes are the
    events, every spike delivered to a synapse is a synaptic op that reads its weight (a spike carries no payload to
    convert or fetch: no conversions, no activation reads), the spike-timed weight updates are the update MACs;
    neuron updates, state writes and steps are those of the ``steps`` relaxation steps (:func:`count_pc`), and the
    array counts those of the clock-driven passes.  The weight writes are measured by the substrate."""
    clock = count_pc(net, steps, batch_size, mode=mode, learn=learn, sweep=sweep)
    import dataclasses
    syn = float(report["synaptic_events"])
    return dataclasses.replace(clock.with_array_counts(), events=float(report["spikes"]), synaptic_ops=syn,
                               weight_reads=syn, conversions=0.0, act_reads=0.0,
                               update_macs=float(report.get("weight_updates", 0.0)) if learn else 0.0)


def count_graph_events(net, result, batch_size: int, *, mode: str = "clamp", learn: bool = True,
                       sweep: bool = True) -> OpCounts:
    """Counts of one batch of event-driven PC on a graph circuit from the reference engine's
    :class:`~neurosim.graph.base.GraphBatchResult` (:mod:`neurosim.graph.events`).

    As :func:`count_events`: events and synaptic ops are the measured ones (``result.events``, ``result.sops``);
    the synaptic ops of weighted edges (dense, convolution) each read their weight once, the one-to-one and
    pooling operations read none; every event delivered into a weighted edge is one DAC conversion and every
    receiving unit converts its current once per evaluation (ADC, the sweep included); neurons are evaluated
    every step; the update MACs are those of the clock-driven count (:class:`GraphShape`).
    """
    s, B, T, neuron, adc = _event_batch(net, result, batch_size, mode, sweep)
    sops = np.asarray(result.sops, dtype=float)
    if not isinstance(s, GraphShape) or len(s.fetches) != sops.shape[0]:
        raise ValueError("count_graph_events needs the GraphShape of the graph the events were counted on")
    weighted = np.asarray(s.fetches) > 0   # dense and convolution edges read weights
    edge_events = np.asarray(result.edge_events, dtype=float)
    dac = float(edge_events[weighted].sum())
    reads = float(sops[weighted].sum())
    return OpCounts(samples=float(B), batches=1, relaxation_steps=T * B, serial_steps=(s.depth + T) * B,
                    synaptic_ops=float(sops.sum()), events=float(np.sum(result.events)), neuron_updates=neuron,
                    conversions=dac + adc, weight_reads=reads, act_reads=0.0, state_writes=neuron,
                    update_macs=float(B * s.U) if learn else 0.0,
                    weight_writes=float(s.U_writes + s.learned_bias_units) if learn else 0.0).with_array_counts(
        count_pc(s, T, B, mode=mode, learn=learn, sweep=sweep))


# --------------------------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class Target:
    """Per-operation energy (pJ) and time (s) of a hardware target, each value with its source.

    Attributes
    ----------
    name, description, kind : str
    energy_pJ : dict counter -> float
    latency_s : dict key -> float (keys :data:`LATENCY_KEYS`)
    bits_reference : int
        Operand width the energies refer to.
    bits_exponent : dict counter -> (alpha, beta)
        Energy scales as ``(weight_bits / bits_reference) ** alpha * (activity_bits / bits_reference) ** beta``
        (missing: no scaling).
    sources : dict "energy.<counter>" / "latency.<key>" / "resources.<key>" / "feedback" -> (source, evidence)
    path : str
        The file it was read from.
    resources : dict key -> float
        Optional chip resources (keys :data:`RESOURCE_KEYS`), what mapping a circuit onto the chip reads.
    feedback : str
        How the chip realises the feedback read :math:`W^T \varepsilon` (:data:`FEEDBACK_MODES`; "" = not stated):
        ``"store_transpose"`` keeps a second copy of every fed-back weight matrix at the presynaptic side (event
        chips store synapses at the receiving core), ``"transposed_read"`` drives the same array from its
        columns and reads its rows (a crossbar).
    """

    name: str
    description: str
    kind: str
    energy_pJ: dict
    latency_s: dict
    bits_reference: int
    bits_exponent: dict
    sources: dict
    path: str = ""
    resources: dict = field(default_factory=dict)
    feedback: str = ""

    @property
    def computes_whole_arrays(self) -> bool:
        """Whether the target computes whole matrix-vector products (an analog crossbar: ``kind`` "analog", or
        crossbar tile resources, as :func:`~neurosim.hardware.map_circuit` reads them): event coding then saves
        routing, not array work, and :func:`energy` / :func:`latency` price the ``array_*`` counts."""
        return self.kind == "analog" or all(k in self.resources for k in ("tile_rows", "tile_cols", "tiles_per_chip"))

    def table(self) -> list:
        """Rows (quantity, value, unit, source, evidence) for reports."""
        rows = []
        for c in COUNTERS:
            src, ev = self.sources[f"energy.{c}"]
            rows.append((f"energy per {c}", self.energy_pJ[c], "pJ", src, ev))
        for key in LATENCY_KEYS:
            src, ev = self.sources[f"latency.{key}"]
            rows.append((f"time per {key}", self.latency_s[key], "s", src, ev))
        return rows

    def resource_table(self) -> list:
        """Rows (resource, value, source, evidence) of the chip resources (empty if the file states none)."""
        rows = [(k, v, *self.sources[f"resources.{k}"]) for k, v in self.resources.items()]
        if self.feedback:
            rows.append(("feedback", self.feedback, *self.sources["feedback"]))
        return rows


def _entry(path, section, key, raw):
    where = f"target file {path}: {section}.{key}"
    if not isinstance(raw, dict) or "value" not in raw:
        raise ValueError(f"{where} must be an object {{\"value\": number, \"source\": \"...\", "
                         f"\"evidence\": one of {list(EVIDENCE)}}}")
    v = raw["value"]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{where}: value must be a finite number >= 0, got {v!r}")
    src = raw.get("source")
    if not isinstance(src, str) or not src.strip():
        raise ValueError(f"{where}: every value needs a non-empty 'source' (where the number comes from)")
    ev = raw.get("evidence", "user")
    if ev not in EVIDENCE:
        raise ValueError(f"{where}: evidence must be one of {list(EVIDENCE)}, got {ev!r}")
    return float(v), (src.strip(), ev)


def load_target(path) -> Target:
    """Read a target file (JSON; TOML on Python >= 3.11) and validate it.

    A target file holds ``name``, ``description``, ``kind``, ``bits_reference``, optional ``bits_exponent``,
    and ``energy_pJ`` / ``latency_s`` objects with one ``{"value", "source", "evidence"}`` entry for every
    counter of :data:`COUNTERS` and every key of :data:`LATENCY_KEYS` (use 0 with a source saying why an
    operation costs nothing on this target).  Copy one of ``neurosim/hardware/targets/*.json`` to start.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ValueError(f"cannot read target file {path}: {e.strerror}") from None
    if path.suffix == ".toml":
        try:
            import tomllib
        except ImportError:  # pragma: no cover - Python 3.10
            raise ValueError(f"target file {path}: TOML needs Python >= 3.11; write it as JSON") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"target file {path} is not valid TOML: {e}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"target file {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"target file {path} must hold an object")
    for key in ("name", "energy_pJ", "latency_s"):
        if key not in data:
            raise ValueError(f"target file {path}: missing {key!r}")
    name = data["name"]
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"target file {path}: 'name' must be a non-empty string")
    energy_raw, lat_raw = data["energy_pJ"], data["latency_s"]
    for key, raw in (("energy_pJ", energy_raw), ("latency_s", lat_raw)):
        if not isinstance(raw, dict):
            raise ValueError(f"target file {path}: {key!r} must be an object with one {{\"value\", \"source\", "
                             f"\"evidence\"}} entry per counter, got {type(raw).__name__}")
    missing = [c for c in COUNTERS if c not in energy_raw] + [f"latency_s.{k}" for k in LATENCY_KEYS
                                                              if k not in lat_raw]
    if missing:
        raise ValueError(f"target file {path}: missing entries {missing}; every counter needs a value and a "
                         "source (0 with a reason if the operation is free on this target)")
    unknown = [c for c in energy_raw if c not in COUNTERS] + [k for k in lat_raw if k not in LATENCY_KEYS]
    if unknown:
        raise ValueError(f"target file {path}: unknown entries {unknown}; known counters {list(COUNTERS)}, "
                         f"latency keys {list(LATENCY_KEYS)}")
    energy_pJ, latency_s, sources = {}, {}, {}
    for c in COUNTERS:
        energy_pJ[c], sources[f"energy.{c}"] = _entry(path, "energy_pJ", c, energy_raw[c])
    for k in LATENCY_KEYS:
        latency_s[k], sources[f"latency.{k}"] = _entry(path, "latency_s", k, lat_raw[k])
    bits_ref = data.get("bits_reference", 32)
    if isinstance(bits_ref, bool) or not isinstance(bits_ref, int) or bits_ref < 1:
        raise ValueError(f"target file {path}: bits_reference must be a positive int, got {bits_ref!r}")
    expo = data.get("bits_exponent", {}) or {}
    bad = [c for c in expo if c not in COUNTERS]
    if bad:
        raise ValueError(f"target file {path}: bits_exponent has unknown counters {bad}")
    exponents = {}
    for c in COUNTERS:
        e = expo.get(c, {})
        if not isinstance(e, dict) or set(e) - {"weight", "activity"} or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in e.values()):
            raise ValueError(f"target file {path}: bits_exponent.{c} must be an object like "
                             f"{{\"weight\": 1, \"activity\": 1}}, got {e!r}")
        exponents[c] = (float(e.get("weight", 0.0)), float(e.get("activity", 0.0)))
    res_raw = data.get("resources", {}) or {}
    if not isinstance(res_raw, dict):
        raise ValueError(f"target file {path}: 'resources' must be an object")
    bad = [k for k in res_raw if k not in RESOURCE_KEYS]
    if bad:
        raise ValueError(f"target file {path}: unknown resources {bad}; known {sorted(RESOURCE_KEYS)}")
    resources = {}
    for k in RESOURCE_KEYS:   # a fixed order, whatever the file's
        if k in res_raw:
            resources[k], sources[f"resources.{k}"] = _entry(path, "resources", k, res_raw[k])
            v = resources[k]
            if k in _RESOURCE_COUNTS and not (v >= 1 and v == int(v)):
                raise ValueError(f"target file {path}: resources.{k} is a count ({RESOURCE_KEYS[k]}): a whole "
                                 f"number >= 1, got {v!r}")
    feedback = ""
    if "feedback" in data:
        fb = data["feedback"]
        if not isinstance(fb, dict) or fb.get("value") not in FEEDBACK_MODES:
            raise ValueError(f"target file {path}: 'feedback' must be an object {{\"value\": one of "
                             f"{list(FEEDBACK_MODES)}, \"source\": \"...\", \"evidence\": ...}}, got {fb!r}")
        src, ev = fb.get("source"), fb.get("evidence", "user")
        if not isinstance(src, str) or not src.strip() or ev not in EVIDENCE:
            raise ValueError(f"target file {path}: feedback needs a non-empty 'source' and an evidence of "
                             f"{list(EVIDENCE)}")
        feedback, sources["feedback"] = fb["value"], (src.strip(), ev)
    kind = data.get("kind", "")
    if not isinstance(kind, str):
        raise ValueError(f"target file {path}: 'kind' must be a string (\"analog\" for a crossbar, whose arrays "
                         f"are priced whole; \"digital\", \"neuromorphic\", ...), got {kind!r}")
    return Target(name=name.strip(), description=str(data.get("description", "")), kind=kind,
                  energy_pJ=energy_pJ, latency_s=latency_s, bits_reference=bits_ref,
                  bits_exponent=exponents, sources=sources, path=str(path), resources=resources, feedback=feedback)


def _target_files() -> list:
    dirs = [TARGET_DIR]
    extra = os.environ.get("NEUROSIM_TARGETS", "")
    dirs += [Path(d) for d in extra.split(os.pathsep) if d]
    files = []
    for d in dirs:
        if d.is_dir():
            files += sorted(list(d.glob("*.json")) + list(d.glob("*.toml")))
    return files


def _load_all():
    """``({name: Target}, [(file, error)])`` of every target file (:func:`_target_files`): a file that cannot be
    read is listed with its error instead of hiding every other target."""
    out, broken = {}, []
    for f in _target_files():
        try:
            t = load_target(f)
        except Exception as e:  # noqa: BLE001 - whatever a malformed file makes the loader raise
            broken.append((f, e))
            continue
        out[t.name] = t
    return out, broken


_WARNED_BROKEN = set()


def _warn_broken(broken):
    import warnings
    new = [(f, e) for f, e in broken if (str(f), str(e)) not in _WARNED_BROKEN]
    if new:
        _WARNED_BROKEN.update((str(f), str(e)) for f, e in new)
        warnings.warn("hardware target files that cannot be read were skipped: " + "; ".join(
            f"{f}: {e}" for f, e in new), RuntimeWarning, stacklevel=3)


def targets() -> dict:
    """All known targets by name: the built-in tables plus every file in the directories listed in the
    environment variable ``NEUROSIM_TARGETS`` (``os.pathsep``-separated; a user file overrides a built-in
    of the same name).  A file that cannot be read is skipped with a warning naming it and its error (it made
    every target, the built-in ones too, unusable)."""
    out, broken = _load_all()
    _warn_broken(broken)
    return out


def get_target(name_or_path) -> Target:
    """A target by name (see :func:`targets`) or from a file path."""
    if isinstance(name_or_path, Target):
        return name_or_path
    p = Path(str(name_or_path))
    if p.suffix in (".json", ".toml") and p.exists():
        return load_target(p)
    known, broken = _load_all()
    if name_or_path not in known:
        unread = ("; these target files could not be read (one of them may be the one meant): " + "; ".join(
            f"{f}: {e}" for f, e in broken)) if broken else ""
        raise ValueError(f"unknown hardware target {name_or_path!r}; known: {sorted(known)} (or give the path of "
                         f"a target file; user directories go in NEUROSIM_TARGETS){unread}")
    _warn_broken(broken)
    return known[name_or_path]


def energy(counts: OpCounts, target, bits: float | None = None, *, weight_bits: float | None = None,
           activity_bits: float | None = None) -> dict:
    """Energy of ``counts`` on ``target``: ``{"total_J", "per_sample_J", "breakdown_J": {counter: J}}``.

    ``weight_bits`` / ``activity_bits`` are the operand widths (``bits`` sets both; default: the target's
    reference width); they matter only for targets with ``bits_exponent``.
    """
    t = get_target(target)
    if t.computes_whole_arrays:   # a crossbar reads whole tiles whatever sends (OpCounts.array_*)
        counts = counts.on_array()
    widths = []
    for name, v in (("weight_bits", weight_bits), ("activity_bits", activity_bits)):
        v = v if v is not None else bits if bits is not None else t.bits_reference
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not v > 0:
            raise ValueError(f"{name} must be a number > 0, got {v!r}")
        widths.append(float(v))
    wb, ab = widths
    breakdown = {}
    for c in COUNTERS:
        ew, ea = t.bits_exponent[c]
        scale = (wb / t.bits_reference) ** ew * (ab / t.bits_reference) ** ea
        breakdown[c] = getattr(counts, c) * t.energy_pJ[c] * scale * 1e-12
    total = float(sum(breakdown.values()))
    return {"target": t.name, "total_J": total,
            "per_sample_J": total / counts.samples if counts.samples > 0 else float("nan"),
            "breakdown_J": breakdown, "weight_bits": wb, "activity_bits": ab}


def latency(counts: OpCounts, target) -> dict:
    r"""Time per sample on ``target``: ``{"settle_s", "update_s", "total_s"}`` (per sample).

    ``settle_s`` (time to settle: the inference/relaxation) charges the serial timesteps and the synaptic
    ops, events and neuron updates; ``update_s`` the update MACs and the weight writes.
    """
    t = get_target(target)
    if counts.samples <= 0:
        raise ValueError("latency: no samples counted")
    if t.computes_whole_arrays:   # as energy: whole tiles
        counts = counts.on_array()
    n = counts.samples
    settle = counts.serial_steps * t.latency_s["timestep"] + sum(
        getattr(counts, _LATENCY_COUNTER[k]) * t.latency_s[k] for k in _SETTLE)
    update = sum(getattr(counts, _LATENCY_COUNTER[k]) * t.latency_s[k] for k in ("update_mac", "weight_write"))
    return {"target": t.name, "settle_s": settle / n, "update_s": update / n, "total_s": (settle + update) / n}
