"""muPC residual PCNs (neurosim.mupc): the parameterisation, forward stability at init up to 128 hidden layers
(theory.md statements 28-29), the same numbers on both backends, and training at depth."""
from __future__ import annotations

import math

import numpy as np
import pytest

import neurosim as ns
from neurosim.algorithms.backprop import forward
from neurosim.mupc import activation_rms, inference_settings, multipliers, mupc_network, residual_network, \
    sp_residual_network

from algo_helpers import BACKENDS, assert_close


def test_parameterisation_matches_the_paper():
    D, N, H = 64, 32, 7
    net = mupc_network(D, N, H, 10)
    L = H + 1
    projs = {p.name: p for p in net.projections}
    assert len(projs) == L
    assert projs["W1"].multiplier == pytest.approx(1 / math.sqrt(D)) and not projs["W1"].skip
    for l in range(2, L):
        assert projs[f"W{l}"].multiplier == pytest.approx(1 / math.sqrt(N * L)) and projs[f"W{l}"].skip
    assert projs[f"W{L}"].multiplier == pytest.approx(1 / N) and not projs[f"W{L}"].skip
    assert all(not p.bias and p.init.kind == "normal" and p.init.std == 1.0 for p in net.projections)
    assert net.population("input").phi == "linear" and net.population("h3").phi == "relu"
    sp = sp_residual_network(D, N, H, 10)
    assert all(p.multiplier == 1.0 for p in sp.projections)
    assert [p.skip for p in sp.projections] == [p.skip for p in net.projections]
    sp_proj = {p.name: p for p in sp.projections}
    assert sp_proj["W1"].init.high == pytest.approx(1 / math.sqrt(D))
    assert sp_proj["W2"].init.high == pytest.approx(1 / math.sqrt(N))
    W = ns.lower(net, seed=0).W
    assert abs(W.std() - 1.0) < 0.05
    assert multipliers(D, N, H, "sp") == [1.0] * L
    with pytest.raises(ValueError, match="unknown parameterisation 'ntk'"):
        residual_network(D, N, H, 10, param="ntk")
    with pytest.raises(ValueError, match="width must be a positive int"):
        mupc_network(D, 0, H, 10)
    assert inference_settings(16, 64, "relu") == {"steps": 16, "dt": 0.5 / 64}
    assert inference_settings(16, 64, "tanh") == {"steps": 16, "dt": 1.0 / 64}


@pytest.mark.parametrize("phi", ["relu", "linear"])
def test_mupc_forward_pass_is_order_one_at_every_depth_and_sp_blows_up(phi):
    """Statements 28-29: unit-variance inputs, W ~ N(0,1): every hidden RMS in [0.5, 3] and RMS(yhat) sqrt(N)
    in [0.5, 3] for H up to 128; the standard parameterisation exceeds 10 by H = 64 and grows with depth."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(128, 32))
    sp_max = {}
    for N in (32, 128):
        for H in (4, 16, 64, 128):
            if N == 128 and H == 128:
                continue
            sim = ns.Simulator(mupc_network(32, N, H, 10, phi=phi), backend="reference", seed=H)
            rms = activation_rms(sim, X)
            hidden = [rms[f"h{l}"] for l in range(1, H + 1)]
            assert 0.5 <= min(hidden) and max(hidden) <= 3.0, (N, H, min(hidden), max(hidden))
            assert 0.5 <= rms["output"] * math.sqrt(N) <= 3.0, (N, H, rms["output"] * math.sqrt(N))
            if N == 32:
                sp = ns.Simulator(sp_residual_network(32, N, H, 10, phi=phi), backend="reference", seed=H)
                r = activation_rms(sp, X)
                sp_max[H] = max(r[f"h{l}"] for l in range(1, H + 1))
    assert sp_max[64] > 10 and sp_max[128] > 100
    assert sp_max[4] < sp_max[16] < sp_max[64] < sp_max[128]


def test_deep_mupc_runs_identically_on_both_backends():
    """A 128-hidden-layer muPC net: feedforward prediction, one clamped relaxation and one pc update agree."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(4, 16))
    Y = np.eye(10)[rng.integers(0, 10, 4)]
    net = mupc_network(16, 8, 128, 10, lr=0.01)
    inf = inference_settings(128, 4)
    sims = {b: ns.Simulator(net, backend=b, seed=0) for b in BACKENDS}
    for s in sims.values():
        s.train(X, Y, epochs=1, batch_size=4, steps=inf["steps"], dt=inf["dt"], progress=False)
    assert_close(sims["numba"].history["energy"], sims["reference"].history["energy"])
    for k in ("W1", "W64", "W129"):
        assert_close(sims["numba"].weights[k], sims["reference"].weights[k], what=k)
    assert_close(sims["numba"].predict(X), sims["reference"].predict(X))
    x = forward(sims["numba"].backend, X)
    assert np.all(np.isfinite(x))


def test_mupc_trains_a_deep_resnet_on_digits_where_sp_does_not():
    """32 hidden layers, width 16, one epoch of PC with the paper's settings: muPC well above chance, and
    better than the standard parameterisation at the same learning rate."""
    from neurosim.data import load_digits
    d = load_digits(scale="standard", seed=0)
    H, B = 32, 64
    inf = inference_settings(H, B)
    acc = {}
    for param in ("mupc", "sp"):
        sim = ns.Simulator(residual_network(64, 16, H, 10, param=param, lr=0.1), backend="numba", seed=0)
        with np.errstate(over="ignore", invalid="ignore"):
            sim.train(d.X_train, d.Y_train, epochs=1, batch_size=B, steps=inf["steps"], dt=inf["dt"], progress=False)
        acc[param] = sim.evaluate(d.X_test, d.Y_test)["accuracy"]
    assert acc["mupc"] > 0.4, acc
    assert acc["mupc"] > acc["sp"] + 0.2, acc


def test_inference_settings_refuse_bad_arguments():
    for args, match in (((4, 0), "batch_size must be a positive int"), ((4.5, 8), "n_hidden must be a non-negative int"),
                        ((4, 8, "relu", -1), "activity_lr must be a finite number > 0"),
                        ((4, 8, "relu", "1"), "activity_lr must be a finite number > 0"),
                        ((4, 8, "relux"), r"unknown activation 'relux'; choose one of")):
        with pytest.raises(ValueError, match=match):
            inference_settings(*args)
