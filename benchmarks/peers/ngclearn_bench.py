"""ngc-learn (JAX) running neurosim's benchmark workload; executed by ``python -m benchmarks`` in the
peers environment (``python benchmarks/peers/ngclearn_bench.py problem.npz result.json``).

The network is wired from ngc-learn's own components the way its model museum builds a PCN: RateCell
value populations (tau_m = 1, Euler, tanh; stateless input and clamped output), GaussianErrorCell error
populations (sigma = 1), HebbianSynapse forward weights (SGD, no bounds), DenseSynapse feedback weights
tied to W^T, and processes ``advance`` (feedback, values, predictions, errors: one Euler step of
size dt), ``project`` (predictions and errors of the initial state) and ``evolve`` (Hebbian update).
Hidden values start from the feedforward pass.  Both ways of running T steps are timed: ngc-learn's
``Process.scan`` and a Python loop of jitted ``Process.run`` calls; the faster is reported.
"""
import json
import sys
import time

import numpy as np

prob = dict(np.load(sys.argv[1]))
dtype = str(prob["dtype"])
import jax  # noqa: E402

if dtype == "float64":
    jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
from ngclearn import Context, MethodProcess  # noqa: E402
from ngclearn.components import DenseSynapse, GaussianErrorCell, HebbianSynapse, RateCell  # noqa: E402
from ngcsimlib.global_state import stateManager  # noqa: E402

L = int(prob["n_layers"])
Ws = [np.asarray(prob[f"W{i + 1}"], dtype=dtype) for i in range(L)]   # (n_post, n_pre)
X, Y = prob["X"].astype(dtype), prob["Y"].astype(dtype)
T, dt, lr = int(prob["T"]), float(prob["dt"]), float(prob["lr"])
B = X.shape[0]
sizes = [Ws[0].shape[1]] + [W.shape[0] for W in Ws]

with Context("pcn") as ctx:
    z = [RateCell("z0", n_units=sizes[0], tau_m=0., act_fx="identity", batch_size=B)]
    for i in range(1, L):
        z.append(RateCell(f"z{i}", n_units=sizes[i], tau_m=1., act_fx="tanh", prior=("gaussian", 0.),
                          integration_type="euler", batch_size=B))
    z.append(RateCell(f"z{L}", n_units=sizes[L], tau_m=0., act_fx="identity", batch_size=B))
    e = [None] + [GaussianErrorCell(f"e{i}", n_units=sizes[i], batch_size=B) for i in range(1, L + 1)]
    # HebbianSynapse: dW = sign * pre^T post, then SGD W <- W - eta dW; with sign -1, post = eps and
    # eta = lr / B this is neurosim's W += lr mean_b(eps phi(x_pre)^T)
    Wf = [None] + [HebbianSynapse(f"W{i}", shape=(sizes[i - 1], sizes[i]), eta=lr / B, w_bound=0., sign_value=-1.,
                                  optim_type="sgd", batch_size=B) for i in range(1, L + 1)]
    E = [None, None] + [DenseSynapse(f"E{i}", shape=(sizes[i], sizes[i - 1]), batch_size=B) for i in range(2, L + 1)]
    for i in range(1, L + 1):
        z[i - 1].zF >> Wf[i].inputs
        Wf[i].outputs >> e[i].mu
        z[i].z >> e[i].target
        z[i - 1].zF >> Wf[i].pre
        e[i].dmu >> Wf[i].post
    for i in range(2, L + 1):
        e[i].dmu >> E[i].inputs
        E[i].outputs >> z[i - 1].j
        e[i - 1].dtarget >> z[i - 1].j_td
    advance = MethodProcess("advance")
    for c in E[2:] + z + Wf[1:] + e[1:]:
        advance = advance >> c.advance_state
    project = MethodProcess("project")
    for c in Wf[1:] + e[1:]:
        project = project >> c.advance_state
    evolve = MethodProcess("evolve")
    for c in Wf[1:]:
        evolve = evolve >> c.evolve
    reset = MethodProcess("reset")
    for c in z + e[1:] + Wf[1:] + E[2:]:
        reset = reset >> c.reset


def tie_feedback():
    for i in range(2, L + 1):
        E[i].weights.set(Wf[i].weights.get().T)


def batch(use_scan):
    """One training batch: clamp, feedforward init, project, T advances, evolve, re-tie feedback."""
    reset.run()
    x, y = jnp.asarray(X), jnp.asarray(Y)
    h = x
    z[0].j.set(x)
    z[0].z.set(x)
    z[0].zF.set(x)
    for i in range(1, L):   # feedforward initialisation of the hidden values
        h = (h if i == 1 else jnp.tanh(h)) @ Wf[i].weights.get()
        z[i].z.set(h)
        z[i].zF.set(jnp.tanh(h))
    z[L].j.set(y)
    z[L].z.set(y)
    z[L].zF.set(y)
    project.run(t=0., dt=dt)
    if use_scan:
        final, _ = advance.scan(jnp.asarray(advance.pack_rows(T, t=lambda k: k * dt, dt=dt)))
        stateManager.set_state(final)
    else:
        for k in range(T):
            advance.run(t=k * dt, dt=dt)
    energy = -sum(float(e[i].L.get()) for i in range(1, L + 1)) / B
    evolve.run(t=T * dt, dt=dt)
    tie_feedback()
    return energy


def set_weights():
    for i in range(1, L + 1):
        Wf[i].weights.set(jnp.asarray(Ws[i - 1].T))
    tie_feedback()


result = {"library": "ngclearn", "version": __import__("importlib.metadata").metadata.version("ngclearn"),
          "jax": jax.__version__}
for use_scan in (True, False):
    set_weights()
    t0 = time.perf_counter()
    energy = batch(use_scan)
    jax.block_until_ready(Wf[1].weights.get())
    compile_s = time.perf_counter() - t0
    werr = max(float(np.max(np.abs(np.asarray(Wf[i].weights.get()).T - prob[f"Wnext{i}"]))) for i in range(1, L + 1))
    times = []
    cpu0 = time.process_time()
    for _ in range(int(prob["repeats"])):
        t0 = time.perf_counter()
        batch(use_scan)
        jax.block_until_ready(Wf[1].weights.get())
        times.append(time.perf_counter() - t0)
    cpu_per_wall = (time.process_time() - cpu0) / sum(times)   # > 1: more than one thread computed
    key = "scan" if use_scan else "loop"
    result[key] = {"compile_s": compile_s, "times": times, "median_s": float(np.median(times)),
                   "cpu_per_wall": cpu_per_wall, "energy_final": energy, "weights_max_abs_err": werr}
best = min(("scan", "loop"), key=lambda k: result[k]["median_s"])
result["cores"] = len(__import__("os").sched_getaffinity(0))
result.update(mode=best, **{k: result[best][k] for k in ("compile_s", "times", "median_s", "cpu_per_wall",
                                                          "energy_final", "weights_max_abs_err")})
json.dump(result, open(sys.argv[2], "w"))
