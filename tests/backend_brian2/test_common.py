"""neurosim.backends.brian2._common: process-wide brian2 set-up that must not grow with every network built.

A long session (a sweep, the test suite) builds hundreds of networks.  brian2's ``@cached`` functions keep every
result for the life of the process and neurosim names every network's objects uniquely, so without a bound the
caches (about 100,000 Python objects per tiny graph network) slowed the test suite's later brian2 tests about
threefold; and each ``configure_prefs`` call added logging filters to brian2's handlers.
"""
from __future__ import annotations

import numpy as np
import pytest

from testkit import require_brian2  # noqa: E402

b2 = require_brian2()

import neurosim as ns  # noqa: E402
from neurosim.backends.brian2 import _common as C  # noqa: E402


def _build_and_run(seed):
    c = ns.hierarchy([3, 4, 2], phi="tanh", lr=0.05, optimizer=ns.SGD())
    X = np.random.default_rng(seed).normal(size=(2, 3))
    with ns.Simulator(c, backend="brian2", seed=seed) as sim:
        sim.run(X, np.zeros((2, 2)), steps=2)


def test_the_caches_brian2_fills_are_found_and_stay_bounded(monkeypatch):
    caches = C._brian2_caches()
    assert len(caches) >= 5, "brian2's @cached functions were not found (brian2 version changed?)"
    monkeypatch.setattr(C, "CACHE_LIMIT", 3)   # every build then starts from emptied caches
    sizes = []
    for seed in range(5):
        _build_and_run(seed)
        sizes.append(max(len(c) for c in caches))
    assert sizes[0] > 3   # building and running a network fills them
    # without the bound the entries of every network stay (the fifth build would hold about five times the first)
    assert sizes[-1] <= 1.5 * sizes[1], sizes
    assert C.trim_brian2_caches(limit=0) >= 1 and max(len(c) for c in caches) == 0


def test_configure_prefs_adds_brian2_log_filters_once():
    C.configure_prefs("numpy")
    handlers = [h for h in (getattr(b2.BrianLogger, "console_handler", None),
                            getattr(b2.BrianLogger, "file_handler", None)) if h is not None]
    before = [len(h.filters) for h in handlers]
    for _ in range(3):
        C.configure_prefs("numpy")
    assert [len(h.filters) for h in handlers] == before
