r"""Step-counting conventions against peers (option ``convention`` of ``fpa``, ``strict`` and ``pc``).

Hand-derived numbers on a 1-1-1 linear chain, asserted on both backends to 1e-12, plus the same conventions on
a nonlinear MLP against the naive oracle of ``tests/pc_oracle.py``.

The chain (``ns.hierarchy([1, 1, 1], phi="linear", bias=False)``, unit precisions, ``tau_x = 1``, one sample,
batch mean = the sample):

    input x0 = 1,  hidden h,  output y clamped to t = 3,   mu_h = w1 x0,  mu_y = w2 h,   w1 = 0.5,  w2 = 2,
    eps_h = h - w1 x0,   eps_y = t - w2 h,   drive of h:  -eps_h + w2 eps_y,
    update directions (SGD ascends them, lr = 1/8):  g1 = eps_h * x0,   g2 = eps_y * (presynaptic h).

Feedforward pass: h_hat = 0.5, y_hat = 1, so eps_y = 2 at the feedforward state.  Backprop's negative gradient
of L = (t - y_hat)^2 / 2 is  g1 = (t - y_hat) w2 x0 = 4,  g2 = (t - y_hat) h_hat = 1.

All step sizes are powers of two, so every number below is exact in binary floating point.
"""
from __future__ import annotations

import types

import numpy as np
import pytest

import neurosim as ns
from neurosim import algorithms
from neurosim.algorithms.fpa import fpa_updates
from neurosim.algorithms.pc import strict_updates

import pc_oracle as oracle
from algo_helpers import BACKENDS, assert_close, data, mlp

TOL = 1e-12
W1, W2, X0, T, LR = 0.5, 2.0, 1.0, 3.0, 0.125
X = np.array([[X0]])
Y = np.array([[T]])


def chain(backend, **kw):
    net = ns.hierarchy([1, 1, 1], phi="linear", bias=False, lr=LR, optimizer=ns.SGD(), **kw)
    sim = ns.Simulator(net, backend=backend)
    sim.set_weights("W1", [[W1]])
    sim.set_weights("W2", [[W2]])
    return sim


def directions(res_dirs):
    res, (gW, _) = res_dirs
    return float(gW[0][0, 0]), float(gW[1][0, 0]), res.steps


def trained(sim, **train_kw):
    """Directions recovered from the weights after one training batch (SGD: w' = w + lr g)."""
    sim.train(X, Y, epochs=1, batch_size=1, shuffle=False, progress=False, **train_kw)
    w = sim.weights
    return (float(w["W1"][0, 0]) - W1) / LR, (float(w["W2"][0, 0]) - W2) / LR


def close(a, b):
    assert abs(a - b) <= TOL * max(1.0, abs(b)), f"{a!r} != {b!r}"


# ----------------------------------------------------------------------------- fpa
# Predictions frozen at the feedforward pass: mu_h = h_hat = 0.5, eps_y = t - y_hat = 2 (fixed source).
# With h^(0) = h_hat:  eps_h^(k+1) = eps_h^(k) + eta (-eps_h^(k) + w2 eps_y) = (1 - eta) eps_h^(k) + 4 eta, so
#     eps_h^(k) = (1 - (1 - eta)^k) * 4,       g1 = eps_h^(k) x0,   g2 = eps_y h_hat = 1 (every k).
# eta = 1/4:
#     k = 3 updates: (1 - 27/64) * 4 = 37/16 = 2.3125    <- neurosim, n = 3
#     k = 2 updates: (1 -  9/16) * 4 =  7/4  = 1.75      <- Torch2PC FixedPred, n = 3 (errors before its 3rd
#                                                            update: vhat - v after 2 updates)
# Torch2PC by hand, n = 3, eta = 1/4 (its eps = vhat - v = -eps_h, its output error dL/dy = y_hat - t = -2):
#     i=0: eps = 0,     dv = 0 - w2 * (-2) = 4,       v = 0.5 + 1    = 1.5
#     i=1: eps = -1,    dv = -1 + 4 = 3,              v = 1.5 + 0.75 = 2.25
#     i=2: eps = -1.75, dv = 2.25,                    v = 2.8125       -> returned eps = -1.75, g1 = 1.75.
FPA = {"neurosim": (2.3125, 1.0, 3), "torch2pc": (1.75, 1.0, 2)}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("conv", list(FPA))
def test_fpa_chain_hand_numbers(backend, conv):
    g1, g2, steps = directions(fpa_updates(chain(backend), X, Y, eta=0.25, n=3, convention=conv))
    close(g1, FPA[conv][0])
    close(g2, FPA[conv][1])
    assert steps == FPA[conv][2]
    t1, t2 = trained(chain(backend), algorithm="fpa", options={"eta": 0.25, "n": 3, "convention": conv})
    close(t1, FPA[conv][0])
    close(t2, FPA[conv][1])


# eta = 1: eps_h^(k) = 4 for every k >= 1 (one update reaches BP's error), 0 at k = 0.  Both defaults are exact:
# neurosim's n = L = 2 updates, Torch2PC's n = L = 2 iterations = 1 update.  Torch2PC's n = 1 takes no update.
@pytest.mark.parametrize("backend", BACKENDS)
def test_fpa_eta_one_exact_in_both_conventions(backend):
    for conv in ("neurosim", "torch2pc"):
        g1, g2, _ = directions(fpa_updates(chain(backend), X, Y, eta=1.0, convention=conv))
        close(g1, 4.0)
        close(g2, 1.0)
        for n in (2, 3, 5):
            g1, g2, _ = directions(fpa_updates(chain(backend), X, Y, eta=1.0, n=n, convention=conv))
            close(g1, 4.0)
            close(g2, 1.0)
    g1, g2, steps = directions(fpa_updates(chain(backend), X, Y, eta=1.0, n=1, convention="torch2pc"))
    close(g1, 0.0)
    close(g2, 1.0)
    assert steps == 0


# ----------------------------------------------------------------------------- strict and pc
# Predictions recomputed from the beliefs:  eps_h = h - 0.5,  eps_y = 3 - 2h,  drive = 6.5 - 5h.
# Euler with eta = dt = 1/4:  h^(k+1) = h^(k) + (6.5 - 5 h^(k)) / 4 = -h^(k) / 4 + 1.625:
#     h^(0) = 0.5,  h^(1) = 1.5,  h^(2) = 1.25,  h^(3) = 1.3125
#     state 2: eps_h = 0.75,    eps_y = 0.5
#     state 3: eps_h = 0.8125,  eps_y = 0.375
# neurosim (strict and pc), n = steps = 3:  g1 = 0.8125,  g2 = eps_y^(3) h^(3) = 0.375 * 1.3125 = 0.4921875
# Torch2PC Strict, n = 3:  errors of its last iteration (state 2), beliefs it returns (state 3):
#                          g1 = 0.75 x0 = 0.75,  g2 = eps_y^(2) h^(3) = 0.5 * 1.3125 = 0.65625
# Song et al. PCTrainer, T = 3 (update_p_at="last"): gradients at t = T - 1, before that iteration's x-step,
#                          i.e. state 2:  g1 = 0.75,  g2 = eps_y^(2) h^(2) = 0.5 * 1.25 = 0.625
STRICT = {"neurosim": (0.8125, 0.4921875, 3), "torch2pc": (0.75, 0.65625, 2)}
PC = {"neurosim": (0.8125, 0.4921875), "song2024": (0.75, 0.625)}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("conv", list(STRICT))
def test_strict_chain_hand_numbers(backend, conv):
    g1, g2, steps = directions(strict_updates(chain(backend), X, Y, eta=0.25, n=3, convention=conv))
    close(g1, STRICT[conv][0])
    close(g2, STRICT[conv][1])
    assert steps == STRICT[conv][2]
    t1, t2 = trained(chain(backend), algorithm="strict", options={"eta": 0.25, "n": 3, "convention": conv})
    close(t1, STRICT[conv][0])
    close(t2, STRICT[conv][1])


# With tau_x = 2, hidden precision 1/2, output precision 2 (the extra belief step must use eta, not dt = eta tau_x,
# and the state's errors with their precisions):  eps_h = (h - 0.5) / 2,  eps_y = 2 (3 - 2h),
# drive = -(h - 0.5)/2 + 2 * 2 (3 - 2h) = 12.25 - 8.5 h;  eta = 1/8:  h^(k+1) = -h^(k)/16 + 1.53125:
#     h^(0) = 0.5,  h^(1) = 1.5,  h^(2) = 1.4375,  h^(3) = 1.44140625
#     Torch2PC, n = 3:  g1 = eps_h^(2) = 0.46875,  g2 = eps_y^(2) h^(3) = 0.25 * 1.44140625 = 0.3603515625
@pytest.mark.parametrize("backend", BACKENDS)
def test_strict_torch2pc_chain_with_tau_and_precisions(backend):
    kw = dict(tau_x=2.0, precision=0.5, output_precision=2.0)
    g1, g2, _ = directions(strict_updates(chain(backend, **kw), X, Y, eta=0.125, n=3, convention="torch2pc"))
    close(g1, 0.46875)
    close(g2, 0.3603515625)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("conv", list(PC))
def test_pc_chain_hand_numbers(backend, conv):
    t1, t2 = trained(chain(backend), algorithm="pc", steps=3, dt=0.25, options={"convention": conv})
    close(t1, PC[conv][0])
    close(t2, PC[conv][1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_defaults_unchanged(backend):
    """Without the option every schedule gives the neurosim numbers above (today's behaviour)."""
    g1, g2, _ = directions(fpa_updates(chain(backend), X, Y, eta=0.25, n=3))
    close(g1, FPA["neurosim"][0])
    close(g2, FPA["neurosim"][1])
    g1, g2, _ = directions(strict_updates(chain(backend), X, Y, eta=0.25, n=3))
    close(g1, STRICT["neurosim"][0])
    close(g2, STRICT["neurosim"][1])
    for algo, kw in (("fpa", dict(options={"eta": 0.25, "n": 3})),
                     ("strict", dict(options={"eta": 0.25, "n": 3})),
                     ("pc", dict(steps=3, dt=0.25))):
        t1, t2 = trained(chain(backend), algorithm=algo, **kw)
        ref = {"fpa": FPA, "strict": STRICT, "pc": PC}[algo]["neurosim"]
        close(t1, ref[0])
        close(t2, ref[1])
    for a in ("fpa", "strict", "pc"):
        assert algorithms.get(a).options["convention"] == "neurosim"


# ----------------------------------------------------------------------------- nonlinear MLP
@pytest.mark.parametrize("backend", BACKENDS)
def test_conventions_on_a_tanh_mlp(backend):
    """fpa/torch2pc n = fpa n - 1; pc/song2024 T = pc T - 1; strict/torch2pc = the naive oracle's errors after
    n - 1 Euler steps with its beliefs after n (biases, tau_x = 2, precisions != 1)."""
    X_, Y_ = data(n=5, n_in=5, n_out=4, seed=2)
    net = mlp((5, 7, 6, 4), tau_x=2.0, precision=0.7, output_precision=1.4)

    def sim():
        return ns.Simulator(net, backend=backend, seed=4)

    a = fpa_updates(sim(), X_, Y_, eta=0.4, n=4, convention="torch2pc")[1][0]
    b = fpa_updates(sim(), X_, Y_, eta=0.4, n=3)[1][0]
    for k in b:
        assert_close(a[k], b[k], TOL, f"fpa W{k}")

    s1, s2 = sim(), sim()
    s1.train(X_, Y_, epochs=1, batch_size=5, steps=5, dt=0.1, options={"convention": "song2024"}, progress=False)
    s2.train(X_, Y_, epochs=1, batch_size=5, steps=4, dt=0.1, progress=False)
    for k, w in s2.weights.items():
        assert_close(s1.weights[k], w, TOL, f"pc {k}")

    eta, n = 0.15, 4
    s = sim()
    W = s.weights
    x = oracle.feedforward(net, W, X_, Y_)
    for _ in range(n - 1):
        x, _ = oracle.step(net, W, x, {}, eta * 2.0)     # dt = eta tau_x
    eps = oracle.derivatives(net, W, x)[2]
    x_n, _ = oracle.step(net, W, x, {}, eta * 2.0)
    gW, gb = strict_updates(s, X_, Y_, eta=eta, n=n, convention="torch2pc")[1]
    for k, pr in enumerate(net.projections):
        pre = oracle.phi(next(p for p in net.populations if p.name == pr.pre).phi, x_n[pr.pre])
        assert_close(gW[k], eps[pr.post].T @ pre / X_.shape[0], 1e-10, f"strict {pr.name}")
        assert_close(gb[k], eps[pr.post].mean(axis=0), 1e-10, f"strict {pr.name}.b")


# ----------------------------------------------------------------------------- errors
def test_convention_errors_name_the_fix():
    sim = chain("reference")
    with pytest.raises(ValueError, match=r"option 'convention' must be one of \['neurosim', 'torch2pc'\]"):
        fpa_updates(sim, X, Y, convention="song2024")
    with pytest.raises(ValueError, match=r"option 'convention' must be one of \['neurosim', 'song2024'\]"):
        sim.train(X, Y, epochs=1, progress=False, options={"convention": "torch2pc"})
    with pytest.raises(ValueError, match=r"n must be >= 1.*convention='neurosim' with n=0"):
        fpa_updates(sim, X, Y, n=0, convention="torch2pc")
    with pytest.raises(ValueError, match=r"n must be >= 1"):
        strict_updates(sim, X, Y, n=0, convention="torch2pc")
    with pytest.raises(ValueError, match=r"convention='song2024'.*steps must be >= 1"):
        sim.train(X, Y, epochs=1, steps=0, progress=False, options={"convention": "song2024"})
    with pytest.raises(ValueError, match=r"use mode='clamp'"):
        strict_updates(sim, X, Y, n=3, mode="nudge", nudge_beta=0.5, convention="torch2pc")
    with pytest.raises(ValueError, match=r"leave tol=None and dt_decay=1"):
        strict_updates(sim, X, Y, n=3, tol=1e-3, convention="torch2pc")
    assert sim.weights["W1"][0, 0] == W1 and sim.weights["W2"][0, 0] == W2   # nothing was applied


def test_strict_torch2pc_refused_on_a_backend_without_state():
    """A backend that does not expose its state (brian2) refuses before any work, naming the fix."""
    sim = chain("reference")
    fake = types.SimpleNamespace(backend=types.SimpleNamespace(name="brian2", mode="rate"), plan=sim.plan)
    with pytest.raises(ns.UnsupportedError, match=r"backend 'brian2' \(mode='rate'\).*convention='torch2pc'.*"
                                                  r"use backend 'reference' or 'numba'"):
        algorithms.check_backend("strict", fake, {"convention": "torch2pc"})
    algorithms.check_backend("strict", fake, {"convention": "neurosim"})   # the default runs there
    algorithms.check_backend("pc", fake, {"convention": "song2024"})       # a pure re-count: runs everywhere
