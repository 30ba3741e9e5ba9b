"""Algorithms on the brian2 backend: each one either runs in brian2 or is refused before any work.

``pc`` and ``strict`` relax in the backend's own network (strict PC is the pc network with Euler steps of
size ``eta``), so brian2 runs them; ``ipc``, ``fpa``, ``zil`` and ``bp`` run in the rate network (see
``test_brian2_ipc.py`` and ``test_brian2_fpa_zil_bp.py``) and are refused in spiking mode with an
:class:`~neurosim.UnsupportedError` naming the backend, the algorithm and the reason -- they never run in
NumPy on the host behind brian2's name (which would equal the reference exactly and record no brian2 run).
"""
from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("brian2")

import neurosim as ns  # noqa: E402
from neurosim.algorithms.fpa import fpa_updates  # noqa: E402
from neurosim.algorithms.ipc import ipc_run  # noqa: E402
from neurosim.algorithms.pc import strict_updates  # noqa: E402
from neurosim.algorithms.zil import zil_updates  # noqa: E402

NET = ns.hierarchy([3, 4, 2], phi="tanh", lr=0.05, optimizer=ns.SGD())
MODES = ["rate", "spiking"]
REASON = {"fpa": "frozen|Jacobians", "zil": "own step", "ipc": "every step.*learning window", "bp": "backward pass"}
FIX = {"ipc": "'reference' or 'numba'", "fpa": "mode='rate'", "zil": "mode='rate'", "bp": "mode='rate'"}


def data(B=4):
    rng = np.random.default_rng(3)
    return rng.normal(size=(B, 3)), 0.5 * rng.normal(size=(B, 2))


def brian2_sim(mode):
    return ns.Simulator(NET, backend="brian2", seed=0, dt=0.1, backend_options={"mode": mode})


def n_runs(sim):
    return int(sim.backend.checkpoint_state()["n_runs"])


@pytest.mark.parametrize("mode,algorithm", [("spiking", a) for a in ("fpa", "zil", "ipc", "bp")])
# rate mode runs them: test_brian2_ipc.py, test_brian2_fpa_zil_bp.py
def test_train_refuses_what_brian2_cannot_run_before_any_work(mode, algorithm):
    sim = brian2_sim(mode)
    X, Y = data()
    w0 = sim.weights
    with pytest.raises(ns.UnsupportedError) as e:
        sim.train(X, Y, epochs=1, batch_size=2, steps=3, algorithm=algorithm, progress=False)
    msg = str(e.value)
    assert "backend 'brian2'" in msg and f"mode={mode!r}" in msg and f"algorithm {algorithm!r}" in msg
    assert re.search(REASON[algorithm], msg), msg
    assert FIX[algorithm] in msg                      # the fix
    assert n_runs(sim) == 0 and sim.history["loss"] == []
    for k, w in sim.weights.items():
        np.testing.assert_array_equal(w, w0[k])


@pytest.mark.parametrize("call", ["fpa", "zil", "ipc"])
def test_per_batch_helpers_refuse_brian2(call):
    sim = brian2_sim("spiking")
    X, Y = data()
    with pytest.raises(ns.UnsupportedError, match=f"algorithm {call!r}"):
        if call == "fpa":
            fpa_updates(sim, X, Y)
        elif call == "zil":
            zil_updates(sim, X, Y)
        else:
            ipc_run(sim, X, Y, steps=3, gamma=0.1)
    assert n_runs(sim) == 0


def test_output_options_of_pc_are_refused_on_brian2():
    sim = brian2_sim("rate")
    X, Y = data()
    with pytest.raises(ns.UnsupportedError, match="output options"):
        sim.train(X, Y, epochs=1, batch_size=4, steps=3, algorithm="pc", options={"beta": 0.5}, progress=False)
    with pytest.raises(ns.UnsupportedError, match="output options"):
        strict_updates(sim, X, Y, eta=0.1, n=3, output_precision=0.5)
    assert n_runs(sim) == 0


@pytest.mark.parametrize("algorithm", ["pc", "strict"])
def test_pc_and_strict_run_in_brian2_rate_mode_and_match_the_reference(algorithm):
    X, Y = data()
    sim, ref = brian2_sim("rate"), ns.Simulator(NET, backend="reference", seed=0, dt=0.1)
    for s in (sim, ref):
        s.train(X, Y, epochs=2, batch_size=2, steps=5, algorithm=algorithm, progress=False)
    assert n_runs(sim) == 4                          # brian2 ran every batch
    for k, w in ref.weights.items():
        np.testing.assert_allclose(sim.weights[k], w, rtol=0, atol=1e-9)
    np.testing.assert_allclose(sim.history["loss"], ref.history["loss"], rtol=1e-9)


def test_strict_runs_in_brian2_spiking_mode():
    sim = brian2_sim("spiking")
    X, Y = data()
    w0 = sim.weights
    sim.train(X, Y, epochs=1, batch_size=4, steps=5, algorithm="strict", progress=False)
    assert n_runs(sim) == 1 and sim.backend.last_run is not None
    assert any(not np.array_equal(sim.weights[k], w0[k]) for k in w0)


def test_hardware_bp_on_brian2_runs_in_brian2():
    """bp on a substrate with write effects: brian2 (rate mode) computes the update, the substrate quantises
    it as on the reference backend; spiking mode refuses before any work."""
    from neurosim import hardware as hw
    model = hw.HardwareModel(weights=[hw.Quantize(6, bound=2.0)])
    chip = ns.Simulator(NET, backend="brian2", seed=0, dt=0.1, backend_options={"mode": "rate"}, hardware=model)
    ref = ns.Simulator(NET, backend="reference", seed=0, dt=0.1, hardware=model)
    X, Y = data()
    for c in (chip, ref):
        c.train(X, Y, epochs=1, batch_size=2, algorithm="bp", progress=False)
    assert n_runs(chip) == 2
    for k, w in ref.weights.items():
        np.testing.assert_allclose(chip.weights[k], w, rtol=0, atol=1e-9)
    spk = ns.Simulator(NET, backend="brian2", seed=0, dt=0.1, backend_options={"mode": "spiking"}, hardware=model)
    w0 = spk.weights
    with pytest.raises(ns.UnsupportedError, match="algorithm 'bp'"):
        spk.train(X, Y, epochs=1, batch_size=2, algorithm="bp", progress=False)
    assert n_runs(spk) == 0 and spk.history["loss"] == []
    for k, w in spk.weights.items():
        np.testing.assert_array_equal(w, w0[k])
