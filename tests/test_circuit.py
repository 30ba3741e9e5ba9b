"""Circuit declarations: what a Circuit refuses (beyond the per-object checks of tests/test_errors.py)."""
from __future__ import annotations

import dataclasses

import pytest

import neurosim as ns


def test_a_second_target_clamp_is_refused():
    """One target population per circuit: a second target clamp (on another population) is refused with the
    fix, whether declared directly or added to a built hierarchy; a population clamped twice too."""
    P = ns.ValuePopulation
    pops = [P("i", 2), P("a", 3), P("b", 2)]
    errs = [ns.ErrorPopulation("ea", "a"), ns.ErrorPopulation("eb", "b")]
    projs = [ns.Projection("W1", "i", "a"), ns.Projection("W2", "i", "b")]
    with pytest.raises(ValueError, match=r"has 2 target clamps \['a', 'b'\]; one target population is supported "
                                         r"\(concatenate the outputs into one population\)"):
        ns.Circuit(pops, errs, projs, [ns.Clamp("i"), ns.Clamp("a", "target"), ns.Clamp("b", "target")])
    net = ns.hierarchy([3, 4, 2])
    with pytest.raises(ValueError, match=r"2 target clamps \['output', 'h1'\]"):
        dataclasses.replace(net, clamps=tuple(net.clamps) + (ns.Clamp("h1", "target"),))
    with pytest.raises(ValueError, match="population 'output' is clamped twice"):
        dataclasses.replace(net, clamps=tuple(net.clamps) + (ns.Clamp("output", "target"),))
    # one target is fine
    assert ns.Circuit(pops, errs, projs, [ns.Clamp("i"), ns.Clamp("b", "target")]).targets == ["b"]
