"""The numba backend with ``threads=2``: small batches split their large one-pass prediction/feedback
between the calling thread and a helper thread.  It must reproduce the reference backend (as the
single-threaded kernel does), give the same numbers whichever thread computed a half, never hang when
the helper is late or absent, and stop its thread on close.

``split_min=1`` makes every fused pass with at least two rows split, so the tiny conformance circuits
exercise the split; the wide net exercises blocks of 8 rows on both sides of the split.
"""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim.backends import numba_backend as nb

from test_backends import TOL, assert_close, assert_results_equal, assert_weights_equal, data, dag_circuit, \
    random_hierarchy

THREADED = {"threads": 2, "split_min": 1}


def wide(phi="tanh", **kw):
    kw.setdefault("optimizer", ns.SGD())
    return ns.hierarchy([5, 40, 37, 3], phi=phi, bias=True, lr=0.02, **kw)


def train_pair(circuit, B, batches=4, steps=30, seed=0, mode="clamp", beta=0.0, integrator="euler", **kw):
    a = ns.Simulator(circuit, backend="numba", seed=seed, backend_options=THREADED, integrator=integrator, **kw)
    r = ns.Simulator(circuit, backend="reference", seed=seed, integrator=integrator, **kw)
    n_in, n_out = a.plan.n_input, a.plan.n_target
    out = []
    for i in range(batches):
        X, Y = data(seed + i, B, n_in, n_out)
        out.append((a.run(X, Y, steps=steps, mode=mode, beta=beta, learn=True),
                    r.run(X, Y, steps=steps, mode=mode, beta=beta, learn=True)))
    return a, r, out


@pytest.mark.parametrize("B", [1, 3, 8])
@pytest.mark.parametrize("make", [lambda: wide(), lambda: wide("sigmoid", tau_eps=0.0),
                                  lambda: random_hierarchy(3), lambda: dag_circuit(tau_eps=0.0)],
                         ids=["wide-tanh", "wide-sigmoid", "random-hierarchy", "dag"])
def test_threaded_training_matches_reference(make, B):
    a, r, out = train_pair(make(), B)
    for res, ref in out:
        assert_results_equal(res, ref)
    assert_weights_equal(a, r)
    a.close()


@pytest.mark.parametrize("mode,beta", [("free", 0.0), ("nudge", 0.5)])
def test_threaded_modes_match_reference(mode, beta):
    a, r, out = train_pair(wide(), 2, batches=2, mode=mode, beta=beta)
    for res, ref in out:
        assert_results_equal(res, ref)
    a.close()


def test_threaded_heun_and_large_batches_fall_back_to_one_thread():
    a, r, out = train_pair(wide(), 2, batches=2, integrator="heun")
    for res, ref in out:
        assert_results_equal(res, ref)
    assert a._backend._helper is None       # Heun never starts the helper
    b, rb, out = train_pair(wide(), 16, batches=2)   # above SMALL_BATCH: BLAS products, no split
    for res, ref in out:
        assert_results_equal(res, ref)
    assert b._backend._helper is None


def _run(sim, batches, seed=7):
    n_in, n_out = sim.plan.n_input, sim.plan.n_target
    res = []
    for i in range(batches):
        X, Y = data(seed + i, 2, n_in, n_out)
        res.append(sim.run(X, Y, steps=25, mode="clamp", learn=True))
    return res


def _bitwise(ra, rb, sa, sb):
    for x, y in zip(ra, rb):
        np.testing.assert_array_equal(x.energy, y.energy)
        for n in x.populations:
            np.testing.assert_array_equal(x.x[n], y.x[n])
            np.testing.assert_array_equal(x.eps[n], y.eps[n])
    for k in sa.weights:
        np.testing.assert_array_equal(sa.weights[k], sb.weights[k])


def test_result_does_not_depend_on_which_thread_computed_a_half(monkeypatch):
    """All halves by the helper (the kernel waits for it), all halves taken back by the kernel (no
    helper thread at all), and the normal race: bitwise the same numbers."""
    helper_all = ns.Simulator(wide(), backend="numba", seed=1, backend_options=THREADED)
    _run(helper_all, 1)                                   # creates the helper
    helper_all._backend._helper.ctl[nb.C_NOTAKE] = 1
    count0 = int(helper_all._backend._helper.ctl[nb.C_COUNT])
    ra = _run(helper_all, 3)
    assert helper_all._backend._helper.ctl[nb.C_COUNT] - count0 >= 3 * 25   # every step's pass of h2 went to the helper

    race = ns.Simulator(wide(), backend="numba", seed=1, backend_options=THREADED)
    _run(race, 1)
    rc = _run(race, 3)

    monkeypatch.setattr(nb._Helper, "begin", lambda self, args: None)   # the helper never runs
    alone = ns.Simulator(wide(), backend="numba", seed=1, backend_options=THREADED)
    _run(alone, 1)
    rb = _run(alone, 3)
    assert alone._backend._helper.ctl[nb.C_COUNT] == 0
    _bitwise(ra, rb, helper_all, alone)
    _bitwise(rc, rb, race, alone)
    for s in (helper_all, race, alone):
        s.close()


def test_threaded_probes_and_divergence_match_reference():
    probes = [ns.Probe(n, v, every=2) for n in ("h1", "h2", "output") for v in ("x", "eps", "mu")]
    a = ns.Simulator(wide(), backend="numba", backend_options=THREADED, probes=probes)
    r = ns.Simulator(wide(), backend="reference", probes=probes)
    X, Y = data(0, 1, 5, 3)
    for sim in (a, r):
        sim.run(X, Y, steps=20, mode="clamp", learn=True)
    for p in probes:
        assert_close(a.data[p.name], r.data[p.name], TOL, p.name)
    errs = []
    for sim in (a, r):
        with pytest.raises(ns.DivergenceError) as e:
            sim.run(X * 1e200, Y * 1e200, steps=20, mode="clamp")
        errs.append((e.value.step, e.value.population))
    assert errs[0] == errs[1]
    a.close()


def test_threads_option_is_checked_and_close_stops_the_helper():
    with pytest.raises(ValueError, match="threads must be 1 or 2"):
        ns.Simulator(wide(), backend="numba", backend_options={"threads": 4})
    with pytest.raises(ValueError, match="split_min"):
        ns.Simulator(wide(), backend="numba", backend_options={"threads": 2, "split_min": 0})
    sim = ns.Simulator(wide(), backend="numba", backend_options=THREADED)
    _run(sim, 1)
    thread = sim._backend._helper._thread
    assert thread.is_alive()
    sim.close()
    thread.join(timeout=5)
    assert not thread.is_alive()


def _child_after_fork(sim, X, Y, want, q):
    try:
        res = sim.run(X, Y, steps=25, mode="clamp")
        sim.close()
        q.put(float(np.max(np.abs(res.x["h2"] - want))))
    except BaseException as e:  # pragma: no cover - reported to the parent
        q.put(repr(e))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_threaded_simulator_survives_fork():
    """A process forked while the helper thread is alive (e.g. a Dask worker forked from a notebook)
    starts its own helper: same numbers, and closing it does not wait for the parent's thread."""
    import multiprocessing as mp
    sim = ns.Simulator(wide(), backend="numba", seed=2, backend_options=THREADED)
    X, Y = data(3, 2, 5, 3)
    sim.run(X, Y, steps=25, mode="clamp")
    sim._backend._helper.ctl[nb.C_SPIN] = 10 ** 15        # keep the helper polling through the fork
    sim.run(X, Y, steps=25, mode="clamp")
    assert not sim._backend._helper._idle.is_set()
    want = sim.run(X, Y, steps=25, mode="clamp").x["h2"]  # no learning: the same result again
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_after_fork, args=(sim, X, Y, want, q))
    p.start()
    p.join(timeout=120)
    assert p.exitcode == 0, f"child exit code {p.exitcode}"
    out = q.get(timeout=5)
    assert out == 0.0, out
    sim.close()
