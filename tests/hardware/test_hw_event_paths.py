"""The numba event kernel's work-saving paths against the NumPy twin (the specification).

The kernel skips what cannot change: after the first evaluation of a call, populations whose state does not
move (inputs, the clamped target) neither send values nor x events nor recompute their zero outputs -- unless
the value or dac sites draw random numbers, which make every evaluation's output new; it reads currents as plain
sums unless read noise or an adc transform acts; it takes phi' from the phi computed for sending.  Each test
covers circuits where these paths matter: skips, nudge and free modes, dynamic error units, warm starts
(``init="previous"``), deterministic and random substrate sites.
"""
from __future__ import annotations

import numpy as np
import pytest
from test_hw_event import SKIP_CIRCUITS, close, graph_circuit

import neurosim as ns
from neurosim import hardware as hw

def tanh_output():
    """A tanh output population: it moves in nudge and free modes, sends no values (it projects nowhere) and
    receives no feedback (its phi' multiplies nothing)."""
    pops = (ns.ValuePopulation("a", 5, "linear"), ns.ValuePopulation("h", 4, "tanh"),
            ns.ValuePopulation("o", 3, "tanh"))
    errs = (ns.ErrorPopulation("eh", "h", 0.0, 1.0), ns.ErrorPopulation("eo", "o", 0.0, 1.5))
    projs = (ns.Projection("P1", "a", "h", bias=True, plasticity=ns.Hebbian(lr=0.1)),
             ns.Projection("P2", "h", "o", plasticity=ns.Hebbian(lr=0.1)))
    return ns.Circuit(pops, errs, projs, (ns.Clamp("a", "input"), ns.Clamp("o", "target")), (), "tanh-out")


CIRCUITS = {
    "tanh-output": tanh_output,
    "chain-tanh": lambda: ns.hierarchy([5, 4, 3, 2], phi="tanh", lr=0.1, optimizer=ns.SGD(momentum=0.9)),
    "chain-sigmoid-leaky": lambda: ns.hierarchy([5, 6, 4, 2], phi=["sigmoid", "leaky_relu"], lr=0.1,
                                                optimizer=ns.SGD()),
    "graph-tau_eps": lambda: graph_circuit(0.5),
    **{f"skip-{k}": v for k, v in SKIP_CIRCUITS.items()},
}

MODELS = {
    # no substrate site: every read is a plain sum
    "plain": lambda: hw.HardwareModel(coding="event", threshold=0.01, error_threshold=0.005),
    # deterministic sites on values, errors, dac and adc (the adc makes every read go through its transform)
    "sites": lambda: hw.HardwareModel(values=[hw.Mismatch(0.1), hw.Quantize(8, bound=1.0, rounding="nearest")],
                                      errors=[hw.Quantize(10, bound=4.0, rounding="nearest")],
                                      dac=[hw.Converter(10, 2.0)], adc=[hw.Converter(12, 8.0)], coding="event",
                                      threshold=0.01, error_threshold=0.005),
}

RUNS = [("clamp", {}, "feedforward", True), ("nudge", {"beta": 0.5}, "feedforward", True),
        ("clamp", {}, "previous", True), ("free", {}, "feedforward", False), ("free", {}, "previous", False),
        ("clamp", {"tol": 1e-3}, "zeros", False)]


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("name", sorted(CIRCUITS))
def test_work_saving_paths_send_the_events_of_the_numpy_twin(name, model):
    """Same events in every evaluation (exactly), same states, predictions and energies (1e-10), run after run
    (learning between them, warm starts included)."""
    net = CIRCUITS[name]()
    chips = {b: ns.Simulator(net, backend=b, seed=3, dt=0.1, hardware=MODELS[model]()) for b in ("reference", "numba")}
    p = chips["numba"].plan
    rng = np.random.default_rng(4)
    for mode, kw, init, learn in RUNS:
        X, Y = rng.normal(size=(6, p.n_input)), 0.5 * rng.normal(size=(6, p.n_target))
        res = {b: c.run(X, None if mode == "free" else Y, steps=15, mode=mode, init=init, learn=learn, **kw)
               for b, c in chips.items()}
        ref, r = res["reference"], res["numba"]
        what = f"{name}/{model} {mode} {init}"
        assert r.steps == ref.steps, what
        assert np.array_equal(r.events, ref.events), f"{what}: events {r.events.sum()} vs {ref.events.sum()}"
        assert np.array_equal(r.events_init, ref.events_init), what
        assert np.array_equal(r.sops, ref.sops) and np.array_equal(r.skip_ops, ref.skip_ops), what
        close(r.energy, ref.energy, f"energy ({what})", 1e-10)
        for n in ref.populations:
            close(r.x[n], ref.x[n], f"x[{n}] ({what})", 1e-10)
            close(r.mu[n], ref.mu[n], f"mu[{n}] ({what})", 1e-10)
    for k, W in chips["reference"].weights.items():
        close(chips["numba"].weights[k], W, k, 1e-10)


@pytest.mark.parametrize("site", ["values", "dac"])
def test_random_sites_keep_static_populations_sending(site):
    """Noise on the value or dac site makes an input's output new at every evaluation: its units keep sending
    (here nearly all of them in every step, noise 0.05 against threshold 0.01) on both engines -- the kernel
    does not skip a static population whose sites draw random numbers."""
    model = hw.HardwareModel(**{site: [hw.AdditiveNoise(0.05)]}, coding="event", threshold=0.01, seed=1)
    rng = np.random.default_rng(0)
    X, Y = rng.uniform(0, 1, size=(8, 5)), 0.5 * rng.normal(size=(8, 2))
    for backend in ("reference", "numba"):
        chip = ns.Simulator(ns.hierarchy([5, 4, 2], phi="tanh"), backend=backend, seed=0, dt=0.1, hardware=model)
        r = chip.run(X, Y, steps=10, mode="clamp")
        inp = chip.plan.input_pops[0]
        per_step = r.events[1:, inp, 0]
        assert per_step.min() > 0.7 * 8 * 5, (backend, per_step)


def test_static_populations_fall_silent_with_deterministic_sites():
    """Without random sites an input sends in the initial sweep only (and in evaluation 0 on a warm start with
    a new batch); its events are then zero in every later step, as on the NumPy twin."""
    model = hw.HardwareModel(values=[hw.Quantize(8, bound=1.0, rounding="nearest")], coding="event", threshold=0.01)
    rng = np.random.default_rng(0)
    out = {}
    for backend in ("reference", "numba"):
        chip = ns.Simulator(ns.hierarchy([5, 4, 2], phi="tanh"), backend=backend, seed=0, dt=0.1, hardware=model)
        inp = chip.plan.input_pops[0]
        rows = []
        for init in ("feedforward", "previous"):
            X, Y = rng.uniform(0, 1, size=(8, 5)), 0.5 * rng.normal(size=(8, 2))
            r = chip.run(X, Y, steps=10, mode="clamp", init=init)
            rows.append(r.events[:, inp, 0])
            assert r.events[1:, inp, 0].sum() == 0
        assert rows[1][0] > 0   # the warm start sends the new batch's inputs in evaluation 0
        out[backend] = rows
        rng = np.random.default_rng(0)
    for a, b in zip(out["reference"], out["numba"]):
        assert np.array_equal(a, b)


def test_divergence_is_reported_at_the_same_step_and_population():
    """A relaxation that diverges (linear units, weights scaled so that dt exceeds the stable step of the
    feedback) stops at the same step with the same population on both engines (the kernel checks only the
    moving populations' states after step 0)."""
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(4, 4)), rng.normal(size=(4, 3))
    res = {}
    for backend in ("reference", "numba"):
        chip = ns.Simulator(ns.hierarchy([4, 6, 3], phi="linear"), backend=backend, seed=0, dt=0.1,
                            hardware=hw.HardwareModel(coding="event", threshold=0.0))
        chip.load_weights({k: 5.0 * W for k, W in chip.weights.items()})
        with pytest.raises(ns.DivergenceError) as e, np.errstate(all="ignore"):
            chip.run(X, Y, steps=2000, mode="clamp")
        res[backend] = (e.value.step, e.value.population)
    assert res["numba"] == res["reference"] and res["numba"][0] > 100, res


@pytest.mark.parametrize("engine", ["NumbaEngine", "ReferenceEngine"])
def test_engine_relax_checks_dt_as_the_simulator_does(engine):
    """dt = -0.1 ran (the energy grew to 2e4) and dt = 5 too; the engines now refuse what a Simulator refuses."""
    import neurosim as ns
    from neurosim import hardware as hw
    e = getattr(hw, engine)(ns.lower(ns.hierarchy([4, 3, 2]), 0))
    X, Y = np.ones((2, 4)), np.ones((2, 2))
    for dt, match in ((-0.1, "dt must be finite and > 0"), (float("nan"), "dt must be finite"),
                      (5.0, r"dt=5.0 is too large for value population 'h1'.*dt < 2 tau_x / precision")):
        with pytest.raises(ValueError, match=rf"{engine}.relax: {match}"):
            e.relax(X, Y, steps=5, dt=dt)
    pair = getattr(hw, engine)(ns.lower(ns.hierarchy([4, 3, 2], tau_eps=2.0), 0))
    with pytest.raises(ValueError, match=r"oscillating pair"):
        pair.relax(X, Y, steps=5, dt=1.5)
    assert np.all(np.isfinite(e.relax(X, Y, steps=5, dt=0.1).energy))
