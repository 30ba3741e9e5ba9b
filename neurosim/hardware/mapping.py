r"""Mapping a predictive-coding circuit onto a chip: cores, chips, routed events, energy and latency.

:func:`map_circuit` places a circuit on a target whose file states ``resources`` (see
:data:`~neurosim.hardware.cost.RESOURCE_KEYS`) and returns a :class:`Mapping`.

**What is placed.**  Every population of :math:`n` units is :math:`n` *slots*; a slot holds the unit's value
neuron and, if the population has error units, its error neuron (input populations: the value neuron only, a
spike source).  A slot's pair is kept on one core, so the one-to-one links :math:`x \to \varepsilon` and
:math:`\varepsilon \to x` (two fixed-weight synapses per pair) never leave the core.  Predictive coding reads
every weighted projection twice per step: the prediction :math:`\mu_{post} = W \phi(x_{pre})` (synapses at the
post population's error neurons) and the feedback :math:`W^T \varepsilon_{post}` (synapses at the pre
population's value neurons; none when the pre population is an input or the post population has no errors).

* **Digital neuromorphic targets** (``feedback = "store_transpose"``: Loihi, Loihi 2, SpiNNaker 2) keep each
  synapse at its receiving core and send spikes forward only, so both :math:`W` and :math:`W^T` are stored, and
  every plastic weight is written twice per update.  Slots are placed greedily in topological order (populations
  may share a core); a slot goes to the next core when the current core would exceed ``neurons_per_core``,
  ``synapses_per_core``, ``synapse_memory_bits_per_core`` (synapses x weight bits) or ``fan_in_per_core``
  (distinct presynaptic neurons; a dense projection contributes its whole pre population once per core, an upper
  bound for a convolution).  A convolution's kernel is stored once per core for the output channels the core hosts
  (shared weights, as in Loihi's convolutional synapse encoding; :math:`C_{in} k_h k_w` synapses per channel), its
  synaptic ops are counted per (position, tap) as in :class:`~neurosim.hardware.cost.GraphShape`.  Pooling,
  sums and identities are fixed-weight synapses (one per (unit, tap)).
* **Analog crossbars** (``feedback = "transposed_read"``) store :math:`W` once: a projection of
  :math:`n_{pre} \times n_{post}` weights takes :math:`\lceil n_{pre}/R \rceil \lceil n_{post}/C \rceil` tiles of
  :math:`R \times C` (inputs on rows); the feedback drives the columns of the same tiles and reads the rows.  A
  convolution is unrolled (im2col): :math:`C_{in} k_h k_w` rows by :math:`C_{out}` columns, one MVM per output
  position.  Neurons, pooling and sums are digital periphery and take no tile.

**Routed events.**  A clock-driven step sends every value neuron (the :math:`T + 1` prediction passes of
:func:`~neurosim.hardware.cost.count_pc`) and every error neuron that feeds back (:math:`T` passes).  On a digital
chip a neuron sends one message to every *other* core that holds one of its targets; a message between cores
of one tile costs nothing beyond the within-tile spike (``energy_pJ.events``), between tiles
``hops x hop_energy_pJ`` with the Manhattan distance of the tiles on a mesh ``mesh_width_tiles`` wide.  On a
crossbar every tile receives its slice of the input vector and sends its partial sums: per projection and pass
:math:`n_{pre} \lceil n_{post}/C\rceil + n_{post} \lceil n_{pre}/R\rceil` values (times the output positions of a
convolution), each one hop.  ``activity`` (default 1, clock-driven: every unit sends every step) scales the routed
events; on a digital chip it also scales the synaptic operations and spike events (their energy, and the synaptic
part of each core's step time), since only the units that send cause work there -- every unit is still updated
every step.  A crossbar reads whole tiles whatever sends, so there it scales the routing only.  Or pass the
measured ``counts`` of an event-driven run (activity = measured events / clock-driven events).

**Energy per sample** (batch size 1, online):

.. math::

    E_{inf} = E(\text{count\_pc}(T, \text{learn=False})) + e_{hop} H, \qquad
    E_{train} = E(\text{count\_pc}(T)) + e_{write} U_{copy} + e_{hop} H

with :math:`H` the message hops per sample and :math:`U_{copy}` the second copies of fed-back plastic weights
(store_transpose only).  **Latency per sample**: the cores work in parallel, so a step takes the busiest core's
serial work plus the longest route and the barrier,
:math:`t_{step} = \max_c (s_c t_{sop} + n_c t_{nu}) + h_{max} t_{hop} + t_{barrier}` (digital; :math:`s_c` the
synaptic ops, :math:`n_c` the neurons of core :math:`c` per step) or
:math:`t_{step} = (p_{fwd} + p_{fb}) t_{mvm} + t_{hop}` (crossbar; :math:`p` the most output positions of a
projection), and :math:`t_{inf} = (d + T) t_{step}` for depth :math:`d`; training adds the busiest core's
weight writes.  A target that states a per-timestep latency and no per-core times (SpiNNaker 2, real time)
gives :math:`t_{step}` = ``barrier_latency_s``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import UnsupportedError
from .cost import OpCounts, count_pc, energy, get_target

__all__ = ["Mapping", "map_circuit", "Slice"]

_DIGITAL_NEEDS = ("neurons_per_core", "cores_per_chip")
_ANALOG_NEEDS = ("tile_rows", "tile_cols", "tiles_per_chip")


@dataclass
class _Pop:
    name: str
    size: int
    is_input: bool
    has_err: bool
    channels: int = 1       # for shared (convolution) weights: channel of unit u is u // (size // channels)


@dataclass
class _Conn:
    name: str
    pre: int
    post: int
    kind: str               # "dense" | "conv" | "fixed"
    taps: int               # synapses per post unit (dense: n_pre, conv: C_in kh kw, fixed: window)
    kernel: int = 0         # conv: C_in kh kw (weights per output channel); dense: n_pre
    positions: int = 1      # conv: output positions per channel
    plastic: bool = False
    feedback: bool = False  # PC feeds the post errors back through this connection
    macs: int = 0           # synaptic ops per pass (GraphShape convention)


@dataclass(frozen=True)
class Slice:
    """Units ``[start, stop)`` of population ``population`` placed on core (or tile) ``core``."""

    population: str
    start: int
    stop: int
    core: int


def _layered(circuit):
    from ..plan import ROLE_INPUT, lower
    p = lower(circuit, 0, sample=False)    # shapes only: no weight matrix is drawn (a mapping only counts)
    pops = [_Pop(p.pop_names[i], int(p.pop_size[i]), bool(p.pop_role[i] == ROLE_INPUT), bool(p.pop_has_err[i]))
            for i in range(p.n_pops)]
    conns = []
    for k in range(p.n_proj):
        pre, post = int(p.proj_pre[k]), int(p.proj_post[k])
        if p.w_off[k] < 0 and not p.proj_skip[k]:
            continue
        n_pre, n_post = pops[pre].size, pops[post].size
        fb = (not pops[pre].is_input) and pops[post].has_err
        if p.w_off[k] >= 0:
            conns.append(_Conn(p.proj_names[k], pre, post, "dense", n_pre, n_pre, 1, bool(p.proj_plastic[k]), fb,
                               n_pre * n_post))
        else:   # identity skip: one fixed synapse per unit
            conns.append(_Conn(p.proj_names[k], pre, post, "fixed", 1, 0, 1, False, fb, n_post))
    return pops, conns, int(max(_depths(pops, conns)))


def _graph(circuit):
    from ..graph.plan import (E_CONV, E_DENSE, EI_KH, EI_KIND, EI_KW, EI_PARAM, EI_SRC, OP_AVGPOOL, OP_MAXPOOL,
                              P_PLASTIC, ROLE_INPUT, V_C, V_E0, V_E1, V_H, V_OP, V_PK, V_ROLE, V_SIZE, V_W,
                              lower_graph)
    g = lower_graph(circuit, 0, sample=False)
    VI, EI, PI = g.VI, g.EI, g.PI
    pops = [_Pop(g.v_names[i], int(VI[i, V_SIZE]), bool(VI[i, V_ROLE] == ROLE_INPUT), bool(VI[i, V_ROLE] != ROLE_INPUT),
                 int(VI[i, V_C]) if VI[i, V_C] > 0 else 1) for i in range(g.n_vertices)]
    conns = []
    for i in range(g.n_vertices):
        for e in range(int(VI[i, V_E0]), int(VI[i, V_E1])):
            src, kind, k = int(EI[e, EI_SRC]), int(EI[e, EI_KIND]), int(EI[e, EI_PARAM])
            n_pre, n_post = pops[src].size, pops[i].size
            plastic = bool(k >= 0 and PI[k, P_PLASTIC])
            fb = not pops[src].is_input
            name = f"{g.v_names[src]}->{g.v_names[i]}"
            if kind == E_DENSE:
                conns.append(_Conn(name, src, i, "dense", n_pre, n_pre, 1, plastic, fb, n_pre * n_post))
            elif kind == E_CONV:
                kern = int(VI[src, V_C] * EI[e, EI_KH] * EI[e, EI_KW])
                pos = int(VI[i, V_H] * VI[i, V_W])
                conns.append(_Conn(name, src, i, "conv", kern, kern, pos, plastic, fb, kern * int(VI[i, V_C]) * pos))
            else:
                win = int(VI[i, V_PK]) ** 2 if VI[i, V_OP] in (OP_MAXPOOL, OP_AVGPOOL) else 1
                conns.append(_Conn(name, src, i, "fixed", win, 0, 1, False, fb, n_post * win))
    return pops, conns, int(g.depth)


def _depths(pops, conns):
    d = [0] * len(pops)
    for c in sorted(conns, key=lambda c: c.post):
        d[c.post] = max(d[c.post], d[c.pre] + 1)
    return d


def _check_bits(weight_bits, t):
    wmax = t.resources.get("weight_bits_max")
    if weight_bits is None:
        return float(wmax if wmax is not None else t.bits_reference)
    if isinstance(weight_bits, bool) or not isinstance(weight_bits, (int, float)) or not weight_bits > 0:
        raise ValueError(f"map_circuit: weight_bits must be a number > 0, got {weight_bits!r}")
    if wmax is not None and weight_bits > wmax:
        raise UnsupportedError(
            f"map_circuit: weights of {weight_bits:g} bits are wider than target {t.name!r} stores "
            f"(weight_bits_max = {wmax:g}): quantise the circuit's weights to {wmax:g} bits or fewer "
            f"(HardwareModel(weights=[Quantize({int(wmax)})])) or choose another target")
    return float(weight_bits)


@dataclass
class Mapping:
    """Where a circuit sits on a chip and what it costs there (see the module docstring for the model).

    Attributes
    ----------
    target : str
    kind : "digital" (cores) or "analog" (crossbar tiles)
    circuit : str
    slices : list of :class:`Slice` (digital: units per core; analog: empty)
    tiles : dict projection -> (row blocks, column blocks, positions) (analog)
    cores, chips : int
        Cores (or tiles) used and chips needed.
    crossing : list of str
        Projections (connections) whose synapses link neurons on different cores (analog: split over tiles).
    events_per_step : float
        Messages crossing the router in one relaxation step (values and fed-back errors), at ``activity``.
    hops_per_sample : float
    synapses : int
        Synaptic storage allocated: digital, the synapses on the cores (the pairs' fixed synapses and the stored
        transposes included); analog, the crossbar cells of the tiles used (whole tiles: ``tile_rows x tile_cols``
        each, however few of their cells hold weights).
    energy_inference_J, energy_training_J, latency_inference_s, latency_training_s : float
        Per sample (batch size 1).
    notes : list of str
        How feedback is realised and every split made.
    """

    target: str
    kind: str
    circuit: str
    steps: int
    weight_bits: float
    activity: float
    slices: list
    tiles: dict
    cores: int
    chips: int
    crossing: list
    events_per_step: float
    cross_chip_events_per_step: float
    hops_per_sample: float
    synapses: int
    feedback: str
    energy_inference_J: float
    energy_training_J: float
    routing_energy_J: float
    transpose_write_energy_J: float
    latency_step_s: float
    latency_inference_s: float
    latency_training_s: float
    per_core: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain numbers for ``metrics.json``."""
        return {"target": self.target, "kind": self.kind, "circuit": self.circuit, "steps": self.steps,
                "weight_bits": self.weight_bits, "activity": self.activity, "cores": self.cores,
                "chips": self.chips, "crossing_projections": list(self.crossing),
                "events_per_step_cross_core": self.events_per_step,
                "events_per_step_cross_chip": self.cross_chip_events_per_step,
                "hops_per_sample": self.hops_per_sample, "synapses": self.synapses, "feedback": self.feedback,
                "energy_inference_J": self.energy_inference_J, "energy_training_J": self.energy_training_J,
                "routing_energy_J": self.routing_energy_J, "transpose_write_energy_J": self.transpose_write_energy_J,
                "latency_step_s": self.latency_step_s, "latency_inference_s": self.latency_inference_s,
                "latency_training_s": self.latency_training_s,
                "placement": [[s.population, s.start, s.stop, s.core] for s in self.slices],
                "tiles": {k: list(v) for k, v in self.tiles.items()}, "per_core": [dict(c) for c in self.per_core],
                "notes": list(self.notes)}

    def summary(self) -> str:
        unit, ev = (("cores", "cross-core events") if self.kind == "digital"
                    else ("tiles", "values moved to and from tiles"))
        return (f"{self.circuit} on {self.target}: {self.cores} {unit}, {self.chips} chip(s), "
                f"{self.events_per_step:g} {ev} per step, "
                f"{self.energy_inference_J:.3g} J per inference, {self.energy_training_J:.3g} J per training sample, "
                f"{self.latency_inference_s:.3g} s per inference, {self.latency_training_s:.3g} s per training sample "
                f"(T = {self.steps}, {self.weight_bits:g}-bit weights, activity {self.activity:g})")

    def describe(self) -> str:
        lines = [self.summary(), ""]
        if self.kind == "digital":
            lines.append("placement (population [units) -> core):")
            for s in self.slices:
                lines.append(f"  {s.population}[{s.start}:{s.stop}) -> core {s.core}")
            lines.append("per core: " + ", ".join(f"core {i}: {c['neurons']} neurons, {c['synapses']} synapses"
                                                  for i, c in enumerate(self.per_core)))
        else:
            lines.append("tiles (projection: row blocks x column blocks, output positions):")
            for k, (r, c, pos) in self.tiles.items():
                lines.append(f"  {k}: {r} x {c} tiles, {pos} MVM(s) per pass")
        lines.append("projections crossing cores/tiles: " + (", ".join(self.crossing) or "none"))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    __str__ = describe


def map_circuit(circuit, target, *, steps: int = 20, weight_bits: float | None = None, activity: float = 1.0,
                counts: OpCounts | None = None, neurons_per_core: int | None = None) -> Mapping:
    """Map ``circuit`` (layered :class:`~neurosim.Circuit` or graph circuit) onto ``target`` (name, file or
    :class:`~neurosim.hardware.Target` whose file states ``resources``) for ``steps`` relaxation steps.

    ``weight_bits`` (default: the target's ``weight_bits_max``) prices the synaptic memory and must not exceed
    it; ``activity`` is the fraction of units sending per step (1 = clock-driven); ``counts`` (per-sample
    measured counts of an event-driven run with the same ``steps``) sets the activity from the measurement and
    prices the measured operations instead of the clock-driven ones.  ``neurons_per_core`` (digital targets)
    caps the neurons placed on one core below the target's limit: the circuit spreads over more cores, each
    with less serial work per step (lower latency) and more events crossing the router; without it, a core whose
    units send to more cores than the target's ``fan_out_per_core`` makes the mapping place fewer units per core
    (halving until it fits; the notes say so).  Raises
    :class:`~neurosim.UnsupportedError` when a part cannot fit (naming the limit and the population).
    """
    t = get_target(target)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"map_circuit: steps must be an int >= 1, got {steps!r}")
    T = int(steps)
    wb = _check_bits(weight_bits, t)
    is_graph = getattr(circuit, "is_graph", False)
    pops, conns, depth = _graph(circuit) if is_graph else _layered(circuit)
    cname = getattr(circuit, "name", "") or "circuit"
    clock = count_pc(circuit, T, 1, learn=False)
    if counts is not None:
        if not isinstance(counts, OpCounts) or counts.samples <= 0:
            raise ValueError("map_circuit: counts must be the OpCounts of an event-driven run (samples > 0)")
        activity = (counts.events / counts.samples) / clock.events
    if isinstance(activity, bool) or not isinstance(activity, (int, float, np.integer, np.floating)) or not (
            activity >= 0 and (counts is not None or activity <= 1)):
        raise ValueError(f"map_circuit: activity is the fraction of units sending per step, a number in [0, 1] "
                         f"(1 = clock-driven), got {activity!r}")
    r = t.resources
    if neurons_per_core is not None and (isinstance(neurons_per_core, bool) or not isinstance(
            neurons_per_core, (int, np.integer)) or neurons_per_core < 1):
        raise ValueError(f"map_circuit: neurons_per_core must be an int >= 1, got {neurons_per_core!r}")
    if all(k in r for k in _DIGITAL_NEEDS):
        m = _map_digital_fitting(pops, conns, t, wb, neurons_per_core, activity)
    elif all(k in r for k in _ANALOG_NEEDS):
        m = _map_analog(pops, conns, t)
    else:
        raise UnsupportedError(
            f"map_circuit: target {t.name!r} states no chip resources (its file needs 'resources' with "
            f"{list(_DIGITAL_NEEDS)} for cores or {list(_ANALOG_NEEDS)} for crossbar tiles; see "
            "neurosim.hardware.cost.RESOURCE_KEYS)")
    # ---- energy per sample
    if counts is not None:
        inf_counts = _strip_learning(counts)
        train_counts = counts.scaled(1.0 / counts.samples)
    else:
        inf_counts = clock
        train_counts = count_pc(circuit, T, 1, learn=True)
        if m["kind"] == "digital" and activity != 1.0:
            # an event-driven chip only works for the units that send: synaptic operations and events scale with
            # the activity; every unit is still updated every step (a crossbar reads whole tiles whatever sends)
            inf_counts = _at_activity(inf_counts, activity)
            train_counts = _at_activity(train_counts, activity)
    hops = activity * ((T + 1) * m["hops_value"] + T * m["hops_error"])
    e_route = hops * r.get("hop_energy_pJ", 0.0) * 1e-12
    store_t = t.feedback == "store_transpose"
    copies = sum(c.kernel * (pops[c.post].channels if c.kind == "conv" else pops[c.post].size)
                 for c in conns if c.plastic and c.feedback and c.kind in ("dense", "conv")) if store_t else 0
    # the copy is written at every update, as the weights are: per sample, over the samples of one update (the
    # batch of the measured counts; without them count_pc's batch of 1, as the primary writes are priced).  Every
    # fed-back weight is counted (a bound: the measured primary writes count only the weights that changed).
    per_update = counts.samples / counts.batches if counts is not None and counts.batches > 0 else 1.0
    e_copy = copies * t.energy_pJ["weight_writes"] * 1e-12 / per_update
    e_inf = energy(inf_counts, t)["per_sample_J"] + e_route
    e_train = energy(train_counts, t)["per_sample_J"] + e_route + e_copy
    step = m["step_s"]
    t_inf = (depth + T) * step
    t_train = t_inf + m["update_s"]
    events = activity * (m["events_value"] + m["events_error"])
    notes = list(m["notes"])
    if t.feedback == "store_transpose":
        notes.insert(0, f"feedback W^T eps: target stores a second copy of every fed-back weight matrix "
                        f"({copies} plastic weights written twice per update, {e_copy:.3g} J per sample at "
                        f"{per_update:g} sample(s) per update)")
    elif t.feedback == "transposed_read":
        notes.insert(0, "feedback W^T eps: transposed read of the same crossbar tiles (drive columns, read rows); "
                        "no second copy")
    if counts is not None:
        notes.append(f"activity {activity:.4g} from the measured events ({counts.events / counts.samples:g} per "
                     f"sample) over the clock-driven {clock.events:g}")
    return Mapping(target=t.name, kind=m["kind"], circuit=cname, steps=T, weight_bits=wb, activity=float(activity),
                   slices=m["slices"], tiles=m["tiles"], cores=m["cores"],
                   chips=m["chips"], crossing=m["crossing"], events_per_step=float(events),
                   cross_chip_events_per_step=float(activity * m["chip_events"]), hops_per_sample=float(hops),
                   synapses=int(m["synapses"]), feedback=t.feedback, energy_inference_J=float(e_inf),
                   energy_training_J=float(e_train), routing_energy_J=float(e_route),
                   transpose_write_energy_J=float(e_copy), latency_step_s=float(step),
                   latency_inference_s=float(t_inf), latency_training_s=float(t_train), per_core=m["per_core"],
                   notes=notes)


def _strip_learning(counts: OpCounts) -> OpCounts:
    c = counts.scaled(1.0 / counts.samples)
    c.update_macs = 0.0
    c.weight_writes = 0.0
    return c


# ------------------------------------------------------------------------------------------------- digital
def _at_activity(c, activity):
    """Operation counts ``c`` with the synaptic operations and events of a fraction ``activity`` of the units."""
    import dataclasses
    return dataclasses.replace(c, synaptic_ops=c.synaptic_ops * activity, events=c.events * activity)


class _FanOutError(UnsupportedError):
    """A core's units send to more cores than ``fan_out_per_core`` allows (``n_core``: the neurons per core the
    placement used); :func:`map_circuit` then places fewer units per core."""

    def __init__(self, message, n_core):
        super().__init__(message)
        self.n_core = n_core


def _map_digital_fitting(pops, conns, t, wb, cap, activity):
    """:func:`_map_digital`, placing fewer neurons per core when a core's fan-out exceeds the target's limit:
    ``cap`` (the caller's ``neurons_per_core``) is kept as given; without one the neurons per core are halved
    until every core's output edges fit (the mapping's notes say so).  Fewer units per core means fewer units
    sending from each core, so the output edges of the busiest core fall, at the price of more cores."""
    try:
        return _map_digital(pops, conns, t, wb, cap, activity)
    except _FanOutError as e:
        if cap is not None:
            raise UnsupportedError(f"{e} (with neurons_per_core={cap}); place fewer units per core: a smaller "
                                   "neurons_per_core, or leave it unset and map_circuit lowers it until the "
                                   "fan-out fits") from None
        first, n = e, e.n_core
    while n > 1:
        n = n // 2
        try:
            m = _map_digital(pops, conns, t, wb, n, activity)
        except _FanOutError:
            continue
        m["notes"].append(f"neurons per core capped at {n} (the target holds {int(t.resources['neurons_per_core'])})"
                          f" so that every core's output edges fit fan_out_per_core = "
                          f"{t.resources.get('fan_out_per_core', math.inf):g}; with the full cores: {first}")
        return m
    raise UnsupportedError(f"{first}; even one unit per core does not fit: the circuit's fan-out is too large "
                           "for this target (a target with a larger fan_out_per_core, or narrower layers)") from None


def _map_digital(pops, conns, t, wb, cap=None, activity=1.0):
    r = t.resources
    n_core = int(r["neurons_per_core"]) if cap is None else min(int(cap), int(r["neurons_per_core"]))
    syn_core = r.get("synapses_per_core", math.inf)
    mem_core = r.get("synapse_memory_bits_per_core", math.inf)
    fan_in_core = r.get("fan_in_per_core", math.inf)
    fan_out_core = r.get("fan_out_per_core", math.inf)
    ins = [[c for c in conns if c.post == i] for i in range(len(pops))]
    outs = [[c for c in conns if c.pre == i] for i in range(len(pops))]

    def chan(p, u):
        return u // max(p.size // p.channels, 1)

    # core state: neurons, synapses, source keys (fan-in), shared-kernel keys
    cores = []

    def new_core():
        cores.append({"neurons": 0, "synapses": 0, "sources": {}, "kernels": set(), "pairs": 0})
        return cores[-1]

    def slot_cost(i, u, core):
        """Neurons, synapses, new source keys and new kernel keys the slot (population i, unit u) adds."""
        p = pops[i]
        neurons = 1 + (p.has_err and not p.is_input)
        syn, src, kern = 0, {}, set()
        if p.has_err and not p.is_input:
            syn += 2                                     # x -> eps and eps -> x of the pair
            for c in ins[i]:                             # prediction synapses at the error neuron
                if c.kind == "conv":
                    key = ("k", c.name, chan(p, u))
                    if key not in core["kernels"]:
                        kern.add(key)
                        syn += c.kernel
                else:
                    syn += c.taps
                if ("x", c.pre) not in core["sources"]:
                    src[("x", c.pre)] = pops[c.pre].size
        for c in outs[i]:                                # feedback synapses at the value neuron (store_transpose)
            if not c.feedback:
                continue
            if c.kind == "conv":
                key = ("kt", c.name, chan(p, u))
                if key not in core["kernels"]:
                    kern.add(key)
                    syn += pops[c.post].channels * c.kernel // max(p.channels, 1)
            elif c.kind == "dense":
                syn += pops[c.post].size
            else:
                syn += c.taps
            if ("e", c.post) not in core["sources"]:
                src[("e", c.post)] = pops[c.post].size
        return neurons, syn, src, kern

    placement = []   # (pop, unit, core)
    core = new_core()
    for i, p in enumerate(pops):
        for u in range(p.size):
            n, s, src, kern = slot_cost(i, u, core)
            fan = sum(core["sources"].values()) + sum(src.values()) + core["pairs"] + 2 * (n == 2)
            fits = (core["neurons"] + n <= n_core and core["synapses"] + s <= syn_core
                    and (core["synapses"] + s) * wb <= mem_core and fan <= fan_in_core)
            if not fits and core["neurons"] > 0:
                core = new_core()
                n, s, src, kern = slot_cost(i, u, core)
                fan = sum(src.values()) + 2 * (n == 2)
                fits = n <= n_core and s <= syn_core and s * wb <= mem_core and fan <= fan_in_core
            if not fits and n > n_core:
                by = (f"map_circuit(neurons_per_core={cap}) caps it" if cap is not None
                      and int(cap) < int(r["neurons_per_core"]) else f"target {t.name!r}'s neurons_per_core")
                raise UnsupportedError(
                    f"map_circuit: one unit of population {p.name!r} is {n} neuron(s) "
                    f"({'its value and its error neuron' if n == 2 else 'its value neuron'}), but a core holds "
                    f"{n_core} ({by}): allow at least {n} neurons per core")
            if not fits:
                what = ("neurons_per_core", n, n_core) if n > n_core else \
                    ("synapses_per_core", s, syn_core) if s > syn_core else \
                    ("synapse_memory_bits_per_core", s * wb, mem_core) if s * wb > mem_core else \
                    ("fan_in_per_core", fan, fan_in_core)
                raise UnsupportedError(
                    f"map_circuit: one unit of population {p.name!r} (its value and error neuron with their "
                    f"synapses) needs {what[1]:g} for {what[0]} but a core of target {t.name!r} holds {what[2]:g}; "
                    f"the fan-in of {p.name!r} is too large for one core (splitting a neuron's dendrite over cores "
                    "is not modelled): use fewer or narrower inputs, fewer weight bits, or a target with larger cores")
            core["neurons"] += n
            core["synapses"] += s
            core["sources"].update(src)
            core["kernels"] |= kern
            core["pairs"] += 2 * (n == 2)
            placement.append((i, u, len(cores) - 1))
    where = [np.zeros(p.size, dtype=int) for p in pops]
    for i, u, k in placement:
        where[i][u] = k
    slices = []
    for i, p in enumerate(pops):
        if p.size == 0:
            continue
        start = 0
        for u in range(1, p.size + 1):
            if u == p.size or where[i][u] != where[i][start]:
                slices.append(Slice(p.name, start, u, int(where[i][start])))
                start = u
    n_cores = len(cores)
    per_chip = int(r["cores_per_chip"])
    cpt = int(r.get("cores_per_tile", 1))
    width = int(r.get("mesh_width_tiles", 1 << 30))

    def hops(a, b):
        ta, tb = a // cpt, b // cpt
        return abs(ta % width - tb % width) + abs(ta // width - tb // width)

    core_sets = [set(int(k) for k in w) for w in where]
    # messages: value neuron -> every other core with an error neuron of a post population it predicts
    ev_v = ev_e = hop_v = hop_e = chip_ev = 0.0
    fan_out = [0] * n_cores
    for i, p in enumerate(pops):
        dv = set()
        for c in outs[i]:
            if pops[c.post].has_err:
                dv |= core_sets[c.post]
        de = set()
        if p.has_err and not p.is_input:
            for c in ins[i]:
                if c.feedback:
                    de |= core_sets[c.pre]
        for u in range(p.size):
            k = int(where[i][u])
            for dests, is_err in ((dv, False), (de, True)):
                remote = [d for d in dests if d != k]
                fan_out[k] += len(remote)
                h = sum(hops(k, d) for d in remote)
                x = sum(1 for d in remote if d // per_chip != k // per_chip)
                if is_err:
                    ev_e += len(remote)
                    hop_e += h
                else:
                    ev_v += len(remote)
                    hop_v += h
                chip_ev += x
    for k, f in enumerate(fan_out):
        if f > fan_out_core:
            raise _FanOutError(
                f"map_circuit: core {k} of the mapping onto {t.name!r} needs {f} core-to-core output edges, more than "
                f"fan_out_per_core = {fan_out_core:g}: the populations on it fan out to too many cores", n_core)
    crossing = sorted({c.name for c in conns if core_sets[c.pre] != core_sets[c.post]
                       or len(core_sets[c.pre]) > 1})
    # per-core serial work per step (clock-driven: every synapse of the core active once per step)
    t_sop = r.get("time_per_synaptic_op_s", 0.0)
    t_nu = r.get("time_per_neuron_update_s", 0.0)
    t_su = r.get("time_per_synaptic_update_s", 0.0)
    ops = [0.0] * n_cores
    plastic_syn = [0.0] * n_cores
    for i, p in enumerate(pops):
        for u in range(p.size):
            k = int(where[i][u])
            if p.has_err and not p.is_input:
                for c in ins[i]:
                    ops[k] += c.taps
                    if c.plastic:
                        plastic_syn[k] += c.taps
            for c in outs[i]:
                if c.feedback:
                    # transposed taps per pre unit: dense n_post, convolution C_out kh kw, fixed its window
                    w = pops[c.post].size if c.kind == "dense" else c.taps if c.kind == "fixed" else \
                        pops[c.post].channels * c.kernel // max(p.channels, 1)
                    ops[k] += w
                    if c.plastic:
                        plastic_syn[k] += w
    busiest = max(activity * ops[k] * t_sop + cores[k]["neurons"] * t_nu for k in range(n_cores))
    max_h = max([hops(a, b) for a in range(n_cores) for b in range(n_cores)] or [0]) if n_cores <= 512 else \
        hops(0, n_cores - 1)
    step = busiest + (max_h * r.get("hop_latency_s", 0.0) if n_cores > 1 else 0.0) + r.get("barrier_latency_s", 0.0)
    if not (t_sop or t_nu):   # a real-time target: the step is the barrier (its timestep)
        step = r.get("barrier_latency_s", t.latency_s["timestep"])
    update = max(plastic_syn) * t_su
    notes = []
    split = [p.name for i, p in enumerate(pops) if len(core_sets[i]) > 1]
    if split:
        notes.append("split over several cores: " + ", ".join(f"{pops[i].name} ({len(core_sets[i])} cores)"
                                                              for i in range(len(pops)) if len(core_sets[i]) > 1))
    if any(c.kind == "conv" for c in conns):
        notes.append("convolutions: each core stores the kernel once for each output channel it hosts (shared "
                     "weights); fan-in counted as the whole pre population per core (an upper bound)")
    return {"kind": "digital", "slices": slices, "tiles": {}, "cores": n_cores,
            "chips": -(-n_cores // per_chip), "crossing": crossing, "events_value": ev_v, "events_error": ev_e,
            "hops_value": hop_v, "hops_error": hop_e, "chip_events": chip_ev,
            "synapses": sum(c["synapses"] for c in cores), "step_s": step, "update_s": update,
            "per_core": [{"neurons": c["neurons"], "synapses": c["synapses"],
                          "fan_in": sum(c["sources"].values()) + c["pairs"], "fan_out": fan_out[k],
                          "synaptic_ops_per_step": ops[k]} for k, c in enumerate(cores)], "notes": notes}


# -------------------------------------------------------------------------------------------------- analog
def _map_analog(pops, conns, t):
    r = t.resources
    R, C = int(r["tile_rows"]), int(r["tile_cols"])
    tiles, crossing, notes = {}, [], []
    n_tiles = 0
    msg_v = msg_e = 0.0
    p_fwd = p_fb = 0
    upd = 0.0
    for c in conns:
        if c.kind == "fixed":
            continue
        rows = c.kernel if c.kind == "conv" else pops[c.pre].size
        cols = pops[c.post].channels if c.kind == "conv" else pops[c.post].size
        rb, cb = -(-rows // R), -(-cols // C)
        tiles[c.name] = (rb, cb, c.positions)
        n_tiles += rb * cb
        if rb * cb > 1:
            crossing.append(c.name)
            notes.append(f"{c.name}: {rows} x {cols} weights split over {rb} x {cb} tiles of {R} x {C} "
                         "(partial sums of row blocks added in the digital periphery)")
        msg_v += c.positions * (rows * cb + cols * rb)
        p_fwd = max(p_fwd, c.positions)
        if c.feedback:
            msg_e += c.positions * (cols * rb + rows * cb)
            p_fb = max(p_fb, c.positions)
        if c.plastic:
            upd = max(upd, min(rows, R) * min(cols, C) * t.latency_s["weight_write"])
    if any(c.kind == "conv" for c in conns):
        notes.append("convolutions unrolled (im2col): C_in kh kw rows x C_out columns, one MVM per output position")
    t_mvm = r.get("mvm_latency_s", t.latency_s["timestep"] / 2)
    step = (p_fwd + p_fb) * t_mvm + r.get("hop_latency_s", 0.0)
    per_chip = int(r["tiles_per_chip"])
    return {"kind": "analog", "slices": [], "tiles": tiles, "cores": n_tiles, "chips": max(1, -(-n_tiles // per_chip)),
            "crossing": crossing, "events_value": msg_v, "events_error": msg_e, "hops_value": msg_v,
            "hops_error": msg_e, "chip_events": 0.0,
            "synapses": sum(rb * cb * R * C for rb, cb, _ in tiles.values()), "step_s": step, "update_s": upd,
            "per_core": [], "notes": notes}
