r"""One model: a layered or DAG :class:`~neurosim.circuit.Circuit` is a graph circuit of :class:`Dense` vertices.

:func:`from_circuit` writes a circuit as a :class:`~neurosim.graph.Graph` with the same equations -- every
predicted value population becomes a :class:`Dense` vertex whose edges are the projections into it
(:math:`\mu = \sum_k a_k W_k \phi_{pre}(x_{pre}) + b_k`, an identity edge for a skip projection), with the
population's ``tau_x`` and its error population's ``precision`` and ``tau_eps``; every input clamp an
:class:`Input`; the target the graph's output.  Parameters keep the circuit's names (``"W1"``, and
``"W1.b"`` for a bias), so ``graph_sim.load_weights(layered_sim.weights)`` gives both simulators the same
weights, after which they agree to rounding on every setting and algorithm (tested in
``tests/graph/test_convert.py``).  The initial weights are drawn differently (each lowering has its own
random streams), so compare with copied weights.
"""
from __future__ import annotations

from ..circuit import Circuit
from .declare import Dense, Graph, Input, Param

__all__ = ["from_circuit"]


def from_circuit(circuit: Circuit, name: str | None = None) -> Graph:
    """The graph circuit with the equations of ``circuit`` (see the module docstring).

    Raises ``ValueError`` naming the object for what a graph vertex cannot express: a per-unit precision
    vector with different values, several biased projections into one population, a non-input population
    that nothing predicts, a circuit without a target, or a target that predicts other populations.
    """
    if not isinstance(circuit, Circuit):
        raise TypeError(f"from_circuit needs a neurosim Circuit, got {type(circuit).__name__}")
    if circuit.is_graph:   # already stated as vertices
        return circuit
    c = circuit
    where = f"circuit {c.name!r}"
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
        if len(set(prec)) != 1:
            raise ValueError(f"{where}: error population {err.name!r} has a per-unit precision vector; a graph vertex "
                             "has one precision (split the population, or use one value)")
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
        vertices.append(Dense(vname, tuple(parents), pop.size, weights=tuple(weights), phi=tuple(phis),
                              bias=bias if bias is not None else False, multiplier=tuple(mults),
                              precision=float(prec[0]), tau_x=float(pop.tau_x), tau_eps=float(err.tau_eps)))
    return Graph(tuple(vertices), output=target, params=tuple(params), plasticity=None,
                 name=name or c.name)
