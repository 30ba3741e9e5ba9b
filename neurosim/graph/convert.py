r"""One model, two forms: a circuit of dense projections can be stated as populations or as vertices.

:func:`from_circuit` writes a circuit as a :class:`~neurosim.graph.Graph` with the same equations -- every
predicted value population becomes a :class:`Dense` vertex whose edges are the projections into it
(:math:`\mu = \sum_k a_k W_k \phi_{pre}(x_{pre}) + b_k`, an identity edge for a skip projection), with the
population's ``tau_x`` and its error population's ``precision`` and ``tau_eps``; every input clamp an
:class:`Input`; the target the graph's output.  Parameters keep the circuit's names (``"W1"``, and
``"W1.b"`` for a bias), so ``graph_sim.load_weights(layered_sim.weights)`` gives both simulators the same
weights, after which they agree to rounding on every setting and algorithm (tested in
``tests/graph/test_convert.py``).  The initial weights are drawn differently (each lowering has its own
random streams), so compare with copied weights.


:func:`to_populations` goes the other way: a circuit stated as vertices whose vertices are all :class:`Input`,
:class:`Dense`, :class:`Sum` (coefficients 1) and :class:`Identity` becomes the population form -- each vertex a
value population (its ``phi`` the activation its weighted out-edges apply; ``tau_x``) with an error population
(``precision``, ``tau_eps``), each weighted edge a :class:`~neurosim.circuit.Projection` named after its weight
parameter (``"W1"``; the vertex's bias rides on its first weighted projection and is keyed ``"W1.b"`` in
``Simulator.weights``), each identity edge (``Dense`` with ``weights=None``, a ``Sum`` term, an ``Identity``) an
identity skip.  That form runs where only the population form runs (brian2's spiking network, the event-driven
hardware engine, brian2's cpp_standalone target); :func:`population_weights` renames a vertex-form simulator's
``weights`` for it, so both start from the same parameters.
"""
from __future__ import annotations

from dataclasses import replace

from ..circuit import Circuit, Clamp, ErrorPopulation, Init, Projection, ValuePopulation
from .declare import Dense, Graph, Identity, Input, Param, Sum

__all__ = ["from_circuit", "to_populations", "population_weights"]


def from_circuit(circuit: Circuit, name: str | None = None) -> Graph:
    """The graph circuit with the equations of ``circuit`` (see the module docstring).

    Raises ``ValueError`` naming the object for what a graph vertex cannot express: several biased projections into one population, a non-input population
    that nothing predicts, a circuit without a target, or a target that predicts other populations.
    """
    if not isinstance(circuit, Circuit):
        raise TypeError(f"from_circuit needs a neurosim Circuit, got {type(circuit).__name__}")
    if circuit.is_graph:   # already stated as vertices
        return circuit
    c = circuit
    where = f"circuit {c.name!r}"
    sparse = [p.name for p in c.projections if p.connectivity is not None]
    if sparse:
        raise ValueError(f"{where}: projection(s) {sparse} are sparse (connectivity=), and the vertex form has dense "
                         "Dense vertices only; a sparse circuit has no vertex form (run it as populations with "
                         "algorithm 'pc' or 'strict' on backend 'numba' or 'reference')")
    if len(c.targets) != 1:
        raise ValueError(f"{where}: a graph circuit has one output; give the circuit one target clamp "
                         f"(ns.Clamp(name, 'target')), it has {list(c.targets)}")
    target = c.targets[0]
    if c.outgoing(target):
        raise ValueError(f"{where}: the target {target!r} predicts {[p.post for p in c.outgoing(target)]}; a graph's "
                         "output must be a sink")
    inputs = set(c.inputs)
    pops = {p.name: p for p in c.populations}
    vertices, params = [], []
    for vname in c.topological_order():
        pop = pops[vname]
        if vname in inputs:
            vertices.append(Input(vname, shape=(pop.size,)))
            continue
        incoming = c.incoming(vname)
        if not incoming:
            raise ValueError(f"{where}: value population {vname!r} is neither an input nor predicted by a projection; "
                             "a graph vertex is a function of its parents (clamp it as an input or add a projection)")
        err = c.error_of(vname)
        if err is None:
            raise ValueError(f"{where}: value population {vname!r} has no error population; every graph vertex has "
                             f"error units (add ns.ErrorPopulation(..., value={vname!r}))")
        prec = err.precision_vector(pop.size)
        prec = float(prec[0]) if len(set(prec)) == 1 else tuple(float(q) for q in prec)
        parents, weights, phis, mults, bias = [], [], [], [], None
        for pr in incoming:
            if pr.weights:
                parents.append(pr.pre)
                weights.append(pr.name)
                phis.append(pops[pr.pre].phi)
                mults.append(float(pr.multiplier))
                params.append(Param(pr.name, init=pr.init, plasticity=pr.plasticity))
            if pr.skip:
                parents.append(pr.pre)
                weights.append(None)
                phis.append("linear")
                mults.append(1.0)
            if pr.bias:
                if bias is not None:
                    raise ValueError(f"{where}: projections {bias[:-2]!r} and {pr.name!r} both give population "
                                     f"{vname!r} a bias; a graph vertex has one bias (keep one)")
                bias = f"{pr.name}.b"
                params.append(Param(bias, init=pr.bias_init, plasticity=pr.plasticity))
        if bias is None and all(w is None for w in weights):   # only identity edges: a weightless sum
            vertices.append(Sum(vname, tuple(parents), coefficients=tuple(mults), precision=prec,
                                tau_x=float(pop.tau_x), tau_eps=float(err.tau_eps)))
            continue
        vertices.append(Dense(vname, tuple(parents), pop.size, weights=tuple(weights), phi=tuple(phis),
                              bias=bias if bias is not None else False, multiplier=tuple(mults),
                              precision=prec, tau_x=float(pop.tau_x), tau_eps=float(err.tau_eps)))
    return Graph(tuple(vertices), output=target, params=tuple(params), plasticity=None,
                 name=name or c.name, probes=c.probes)


def _phi_of(graph, where):
    """The activation each vertex applies when it predicts others (one per vertex in the population form)."""
    phi = {}
    for v in graph.vertices:
        if not isinstance(v, Dense):
            continue
        for p, w, f in zip(v.parents, v.weights, v.phi):
            if w is None:
                continue
            if phi.setdefault(p, f) != f:
                raise ValueError(f"{where}: vertex {p!r} feeds its children through two activations ({phi[p]!r} "
                                 f"and {f!r}, the second on the edge into {v.name!r}); a population applies one "
                                 "activation to everything it predicts (insert an Act vertex, or keep the vertex form)")
    return phi


def _plasticity(graph, name):
    pl = graph.param_settings(name).plasticity
    return graph.plasticity if pl == "default" else pl


def to_populations(graph: Circuit, name: str | None = None) -> Circuit:
    """The population form of a circuit stated as vertices (see the module docstring); a circuit stated as
    populations is returned as it is.

    Raises ``ValueError`` naming the vertex (or parameter) for what the population form cannot express:
    convolutions, pooling, products and activation vertices; a parameter shared by several edges; a vertex whose
    weighted out-edges apply different activations; an identity edge or Sum term with a coefficient other than 1;
    a bias whose settings (initialisation aside) differ from the weight it rides on.
    """
    if not isinstance(graph, Circuit):
        raise TypeError(f"to_populations needs a neurosim Circuit, got {type(graph).__name__}")
    if not graph.is_graph:
        return graph
    g = graph
    where = f"graph {g.name!r}"
    for v in g.vertices:
        if not isinstance(v, (Input, Dense, Sum, Identity)):
            raise ValueError(f"{where}: vertex {v.name!r} is a {type(v).__name__}; the population form has dense "
                             "projections and identity skips only (Input, Dense, Sum and Identity vertices); keep "
                             "the vertex form for convolutions, pooling, products and activation vertices")
    for pname, uses in g.param_uses.items():
        if len(uses) > 1:
            raise ValueError(f"{where}: parameter {pname!r} is shared by vertices {[u.vertex for u in uses]}; the "
                             "population form gives every projection its own weights (keep the vertex form)")
    phi = _phi_of(g, where)
    pops, errs, projs = [], [], []
    used = {v.name for v in g.vertices} | set(g.param_shapes)
    for n in g.order:
        v = g.vertex(n)
        size = g.size(n)
        pops.append(ValuePopulation(n, size, phi.get(n, "linear"), 1.0 if isinstance(v, Input) else v.tau_x))
        if isinstance(v, Input):
            continue
        ename = f"eps_{n}"
        while ename in used:
            ename += "_"
        used.add(ename)
        errs.append(ErrorPopulation(ename, n, v.tau_eps, v.precision))
        edges = []   # (parent, weight parameter or None, multiplier)
        if isinstance(v, Dense):
            edges = list(zip(v.parents, v.weights, v.multiplier))
        elif isinstance(v, Sum):
            edges = [(p, None, c) for p, c in zip(v.parents, v.coefficients)]
        else:   # Identity
            edges = [(v.parent, None, 1.0)]
        bias = v.bias if isinstance(v, Dense) else None
        mine = []
        for p, w, a in edges:
            if w is None:
                if a != 1.0:
                    raise ValueError(f"{where}: the identity edge {p!r} -> {n!r} has coefficient {a!r}; an identity "
                                     "skip of the population form adds x_pre unscaled (keep the vertex form)")
                twin = next((pr for pr in mine if pr.pre == p and pr.weights and not pr.skip), None)
                if twin is not None:
                    mine[mine.index(twin)] = Projection(twin.name, p, n, init=twin.init, multiplier=twin.multiplier,
                                                        skip=True, plasticity=twin.plasticity)
                    continue
                sname = f"{n}.skip.{p}"
                while sname in used:
                    sname += "_"
                used.add(sname)
                mine.append(Projection(sname, p, n, weights=False, skip=True, plasticity=None))
                continue
            init = g.param_settings(w).init or Init("xavier_normal")
            mine.append(Projection(w, p, n, init=init, multiplier=float(a), plasticity=_plasticity(g, w)))
        if bias is not None:
            host = next((k for k, pr in enumerate(mine) if pr.weights), None)
            binit = g.param_settings(bias).init or Init("zeros")
            bpl = _plasticity(g, bias)
            if host is None:   # only identity edges: the bias rides on the first skip
                host = 0
            pr = mine[host]
            wpl = pr.plasticity if pr.weights else bpl
            if wpl is not None and bpl is None:   # a frozen bias on a plastic weight
                plast = replace(wpl, learn_bias=False)
            elif (wpl is None) != (bpl is None) or (wpl is not None and (wpl.lr, wpl.optimizer, wpl.batch_reduction)
                                                    != (bpl.lr, bpl.optimizer, bpl.batch_reduction)):
                raise ValueError(f"{where}: the bias {bias!r} of vertex {n!r} learns with other settings than the "
                                 f"weight {pr.name!r} it would ride on in the population form (a projection's bias "
                                 "shares its plasticity); give them the same Hebbian, or keep the vertex form")
            else:
                plast = wpl
            mine[host] = Projection(pr.name, pr.pre, pr.post, bias=True, init=pr.init, bias_init=binit,
                                    multiplier=pr.multiplier, skip=pr.skip, weights=pr.weights, plasticity=plast)
        projs += mine
    clamps = [Clamp(n, "input") for n in g.inputs] + [Clamp(g.output, "target")]
    probes = []
    for pb in g.probes:
        if pb.variable == "weight_norm":
            if any(pr.name == pb.target and pr.weights for pr in projs):
                probes.append(pb)
                continue
            raise ValueError(f"{where}: probe {pb.name!r} records the norm of bias {pb.target!r}; the population form "
                             "records weight norms of projections only")
        probes.append(pb)
    return Circuit(tuple(pops), tuple(errs), tuple(projs), tuple(clamps), tuple(probes), name or g.name)


def population_weights(graph: Circuit, weights: dict) -> dict:
    """``weights`` of a vertex-form simulator (``{parameter: array}``) renamed for its population form
    (:func:`to_populations`): weight parameters keep their names, a bias is keyed ``"<projection>.b"`` of the
    projection it rides on; load them with ``Simulator.load_weights``."""
    pop = to_populations(graph)
    if pop is graph:
        return dict(weights)
    out = {}
    bias_of = {}
    for v in graph.vertices:
        if isinstance(v, Dense) and v.bias is not None:
            host = next((pr for pr in pop.incoming(v.name) if pr.bias), None)
            bias_of[v.bias] = f"{host.name}.b"
    for k, a in weights.items():
        if k in bias_of:
            out[bias_of[k]] = a
        elif k in graph.param_shapes:
            out[k] = a
        else:
            raise KeyError(f"graph {graph.name!r} has no parameter {k!r}; parameters: {sorted(graph.param_shapes)}")
    return out


def population_form_hint(graph: Circuit) -> str:
    """A sentence for refusals of what only the population form runs: how to get it for ``graph``, or ``""``
    when the graph has none (convolutions, pooling, products, shared parameters, ...)."""
    try:
        to_populations(graph)
    except ValueError:
        return ""
    return (f"; graph {graph.name!r} has only dense projections and identity skips, so its population form runs "
            "there: ns.Simulator(circuit.as_populations(), ...) (load the same parameters with "
            "sim.load_weights(neurosim.graph.population_weights(circuit, weights)))")
