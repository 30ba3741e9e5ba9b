"""``fpa``, ``zil`` and ``bp`` on the brian2 backend (rate mode): brian2 runs them, equal to the reference.

* ``fpa``: the rate network whose value groups hold the frozen feedforward values ``xh``; predictions,
  ``phi'`` and the Hebbian presynaptic rates are computed from them, brian2's ``dt`` = ``eta``, the update in
  the last time step.
* ``zil``: the standard rate network (``dt`` = ``gamma``) whose parameter groups each take their optimiser
  step in their own time step ``d(k)`` (a ``run_regularly`` gated by the time).
* ``bp``: the FPA error sweep with a step of ``tau_x / precision`` per unit, which is backprop exactly
  (Rosenbaum 2022): the errors move down one layer per step.

The reference backend (the NumPy loops, and ``backprop.gradients``) is the specification: weights after
several batches, the loss and energy history, probes, the update directions of ``Simulator.directions`` and
the output options must agree to 1e-9 (observed: about 1e-16).  Every comparison checks that brian2 ran
(its run counter), so a host fallback would fail.  Z-IL on the unlevelled DAG runs on its levelled twin;
the spiking mode refuses all three.
"""
from __future__ import annotations

import numpy as np
import pytest

from testkit import require_brian2  # noqa: E402

brian2 = require_brian2()

import neurosim as ns  # noqa: E402
from neurosim.algorithms.fpa import fpa_updates  # noqa: E402
from neurosim.algorithms.zil import zil_updates  # noqa: E402
from testkit import lowered, row_circuit as circuit, row_data as data  # noqa: E402

TOL = 1e-9     # float64, relative to max(1, |value|): observed about 1e-16
pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated.*")   # pyparsing names used by brian2 2.9

ROWS = ["layered MLP", "DAG with skips", "muPC residual"]
CASES = [(r, a) for r in ROWS for a in ("fpa", "zil", "bp") if (r, a) != ("DAG with skips", "zil")]


def close(a, b, tol=TOL, what=""):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, f"{what}: shapes {a.shape} != {b.shape}"
    assert np.all(np.isfinite(a)), what
    scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    assert err <= tol * scale, f"{what}: max difference {err:.3e} > {tol:g} x {scale:.3g}"


def n_runs(sim):
    return int(sim.backend.checkpoint_state()["n_runs"])


def pair(c, mode="rate", **kw):
    return (ns.Simulator(c, backend="brian2", seed=0, dt=0.1, backend_options={"mode": mode}, **kw),
            ns.Simulator(c, backend="reference", seed=0, dt=0.1, **kw))


@pytest.mark.parametrize("row,algorithm", CASES)
def test_train_runs_in_brian2_and_matches_the_reference(row, algorithm):
    c = circuit(row)
    p = lowered(c)
    X, Y = data(p.n_input, p.n_target, B=6)
    sim, ref = pair(c)
    w0 = sim.weights
    for s in (sim, ref):
        s.train(X, Y, epochs=2, batch_size=2, steps=4, algorithm=algorithm, progress=False)
    assert n_runs(sim) == 6                              # brian2 ran every batch
    assert any(not np.allclose(sim.weights[k], w0[k]) for k in w0)   # and learned
    for k, w in ref.weights.items():
        close(sim.weights[k], w, what=f"{row}/{algorithm} weights {k}")
    for key in ("loss", "energy", "steps"):
        close(sim.history[key], ref.history[key], what=f"{row}/{algorithm} history {key}")
    assert np.array_equal(sim.backend.opt_t, ref.backend.opt_t)


OPTIONS = {"fpa": [{}, {"eta": 0.5, "n": 3, "beta": 0.5, "output_precision": 2.0},
                    {"n": 2, "convention": "torch2pc", "compensate": False, "beta": 0.7}],
           "zil": [{}, {"gamma": 0.9, "update_all_at_zero": True, "beta": 0.3}],
           "bp": [{}]}


@pytest.mark.parametrize("row,algorithm", CASES)
def test_directions_are_computed_by_brian2(row, algorithm):
    c = circuit(row)
    p = lowered(c)
    X, Y = data(p.n_input, p.n_target)
    sim, ref = pair(c)
    for i, opts in enumerate(OPTIONS[algorithm]):
        d, dr = sim.directions(X, Y, algorithm, opts), ref.directions(X, Y, algorithm, opts)
        assert n_runs(sim) == i + 1
        assert sorted(d) == sorted(dr)
        for k in dr:
            close(d[k], dr[k], what=f"{row}/{algorithm}/{opts} direction {k}")
    if algorithm in ("fpa", "zil"):    # once exact, the directions are backprop's
        close(np.concatenate([v.ravel() for v in sim.directions(X, Y, algorithm).values()]),
              np.concatenate([v.ravel() for v in ref.directions(X, Y, "bp").values()]), 1e-9)


def test_bp_is_exact_with_precisions_time_constants_adam_and_sum_reduction():
    """The per-unit step tau_x / precision makes the sweep backprop for any hidden precision and tau_x."""
    c = ns.hierarchy([3, 5, 4, 2], phi="tanh", lr=0.01, optimizer=ns.Adam(), tau_x=2.0, precision=0.5,
                     output_precision=3.0, batch_reduction="sum")
    rng = np.random.default_rng(5)
    X, Y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    sim, ref = pair(c)
    close(np.concatenate([v.ravel() for v in sim.directions(X, Y, "bp").values()]),
          np.concatenate([v.ravel() for v in ref.directions(X, Y, "bp").values()]), what="bp directions")
    for s in (sim, ref):
        s.train(X, Y, epochs=3, batch_size=2, algorithm="bp", progress=False)
    assert n_runs(sim) == 7
    for k, w in ref.weights.items():
        close(sim.weights[k], w, 1e-8, what=f"weights {k}")   # Adam divides by sqrt(v): rounding grows a little


@pytest.mark.parametrize("algorithm,opts", [("fpa", {"eta": 0.5, "n": 4}), ("zil", {"gamma": 0.8})])
def test_per_batch_results_and_probes(algorithm, opts):
    c = circuit("muPC residual")
    p = lowered(c)
    X, Y = data(p.n_input, p.n_target)
    probes = [ns.Probe("input", "x", name="input.x")] + [
        ns.Probe(name, var, name=f"{name}.{var}") for name in ("h2", "output") for var in ("x", "eps", "mu")]
    sim, ref = pair(c, probes=probes)
    fn = fpa_updates if algorithm == "fpa" else zil_updates
    (r, (gW, gb)), (rr, (gWr, gbr)) = fn(sim, X, Y, learn=True, **opts), fn(ref, X, Y, learn=True, **opts)
    assert n_runs(sim) == 1
    assert r.steps == rr.steps
    close(r.energy, rr.energy, what="energy")
    for a, b in ((r.y0, rr.y0), (r.y, rr.y), (r.rec_x, rr.rec_x), (r.rec_eps, rr.rec_eps), (r.rec_mu, rr.rec_mu)):
        close(a, b, what="result arrays")
    for k in gWr:
        close(gW[k], gWr[k], what=f"gW {k}")
    for k in gbr:
        close(gb[k], gbr[k], what=f"gb {k}")
    for k, w in ref.weights.items():
        close(sim.weights[k], w, what=f"weights {k}")
    for s in (sim, ref):   # probes through train
        s.train(X, Y, epochs=1, batch_size=4, algorithm=algorithm, options=opts, progress=False)
    for name in ref.data:
        close(sim.data[name], ref.data[name], what=f"probe {name}")


def test_zil_on_the_unlevelled_dag_runs_in_brian2_on_its_levelled_twin():
    """Z-IL levels the DAG (identity populations on the short paths, a twin simulator on the same backend):
    brian2 runs it, its runs count on the user's simulator, and the weights equal the reference's."""
    c = circuit("DAG with skips")
    p = lowered(c)
    X, Y = data(p.n_input, p.n_target)
    sim, ref = pair(c)
    for s in (sim, ref):
        s.train(X, Y, epochs=1, batch_size=2, algorithm="zil", progress=False)
    assert n_runs(sim) == 2
    for k, w in ref.weights.items():
        close(sim.weights[k], w, what=k)


@pytest.mark.parametrize("algorithm", ["fpa", "zil", "bp"])
def test_spiking_mode_refuses_with_a_reason(algorithm):
    c = circuit("layered MLP")
    X, Y = data(3, 2)
    sim = ns.Simulator(c, backend="brian2", seed=0, dt=0.1, backend_options={"mode": "spiking"})
    with pytest.raises(ns.UnsupportedError, match=f"mode='spiking'.*algorithm '{algorithm}'.*mode='rate'"):
        sim.train(X, Y, epochs=1, batch_size=4, algorithm=algorithm, progress=False)
    assert n_runs(sim) == 0


def test_a_sweep_network_and_a_pc_network_in_one_simulator():
    """Switching schedules rebuilds the network; pc after fpa still equals the reference."""
    c = circuit("layered MLP")
    X, Y = data(3, 2)
    sim, ref = pair(c)
    for s in (sim, ref):
        for algorithm in ("fpa", "pc", "zil", "bp", "pc"):
            s.train(X, Y, epochs=1, batch_size=4, steps=3, algorithm=algorithm, progress=False)
    assert n_runs(sim) == 5
    for k, w in ref.weights.items():
        close(sim.weights[k], w, what=f"weights {k}")


# ----------------------------------------------------------------------------- float32 (rate mode)
@pytest.mark.parametrize("row", ["DAG with skips"])   # the richest row (skips, biases, multipliers); CI time
def test_float32_network_is_float32_and_close_to_the_float64_reference(row):
    """The rate network's brian2 arrays are float32; results within 1e-3 of the float64 reference (observed
    about 1e-7) and not equal to the float64 brian2 run; brian2's float preference is restored, so a float64
    network built next to it stays float64."""
    b2 = brian2
    c = circuit(row)
    p = lowered(c)
    X, Y = data(p.n_input, p.n_target)
    pref = b2.prefs.core.default_float_dtype
    s32 = ns.Simulator(c, backend="brian2", seed=0, dt=0.1, dtype="float32")
    s64, ref = pair(c)
    a, b, r = s32.run(X, Y, steps=4), s64.run(X, Y, steps=4), ref.run(X, Y, steps=4)
    assert b2.prefs.core.default_float_dtype is pref
    net32, net64 = s32.backend._net, s64.backend._net
    for i in range(p.n_pops):
        assert np.asarray(net32.V[i].x[:]).dtype == np.float32
        assert np.asarray(net64.V[i].x[:]).dtype == np.float64
    for k in net32.Wg:
        assert np.asarray(net32.Wg[k].w[:]).dtype == np.float32
    assert all(v.dtype == np.float32 for v in a.x.values())
    for k in r.x:
        close(a.x[k], r.x[k], 1e-3, what=f"x {k}")
    close(a.energy, r.energy, 1e-3, what="energy")
    assert max(float(np.max(np.abs(a.x[k] - b.x[k]))) for k in b.x) > 0   # not secretly float64
    for s in (s32, ref):
        s.train(X, Y, epochs=2, batch_size=2, steps=4, progress=False)
        s.train(X, Y, epochs=1, batch_size=4, algorithm="bp", progress=False)
    assert n_runs(s32) == 6
    for k, w in ref.weights.items():
        assert s32.weights[k].dtype == np.float32
        close(s32.weights[k], w, 1e-3, what=f"weights {k}")


# ----------------------------------------------------------------------------- Heun (rate mode)
@pytest.mark.parametrize("row, tau_eps", [("layered MLP", 0.0), ("DAG with skips", 0.5), ("muPC residual", 0.5)])
def test_heun_equals_the_reference_heun_with_tol_dt_decay_probes_and_learning(row, tau_eps):
    """One Heun step = a predictor and a corrector brian2 time step; runs, tol stopping, dt_decay, nudging,
    probes and learning equal the reference's Heun to 1e-9."""
    from testkit import probe_target, with_error_dynamics
    c = circuit(row)
    c = with_error_dynamics(c, tau_eps) if tau_eps else c
    p = lowered(c)
    X, Y = data(p.n_input, p.n_target)
    tgt = probe_target(c, p)
    probes = [ns.Probe(tgt, "x", name="px"), ns.Probe(tgt, "eps", name="pe"), ns.Probe(tgt, "mu", name="pm", every=2)]
    sim, ref = pair(c, integrator="heun", probes=probes)
    out = {}
    for name, s in (("b", sim), ("r", ref)):
        out[name] = [s.run(X, Y, steps=6), s.run(X, Y, steps=40, tol=0.05, mode="nudge", beta=0.5),
                     s.run(X, Y, steps=8, dt=0.5, dt_decay=0.5)]
        s.train(X, Y, epochs=2, batch_size=2, steps=5, progress=False)
    assert n_runs(sim) == 7
    for a, b in zip(out["b"], out["r"]):
        assert a.steps == b.steps
        close(a.energy, b.energy, what=f"{row} energy")
        for k in b.x:
            close(a.x[k], b.x[k], what=f"{row} x {k}")
            close(a.eps[k], b.eps[k], what=f"{row} eps {k}")
    assert out["r"][1].steps < 40                          # tol stopped the run early
    for k, w in ref.weights.items():
        close(sim.weights[k], w, what=f"{row} weights {k}")
    for k in ("px", "pe", "pm"):
        close(sim.data[k], ref.data[k], what=f"{row} probe {k}")
    e = ns.Simulator(c, backend="reference", seed=0, dt=0.1).run(X, Y, steps=6)   # Heun is not Euler
    assert max(float(np.max(np.abs(e.x[k] - out["b"][0].x[k]))) for k in e.x) > 1e-6
