"""pcx (JAX) running neurosim's benchmark workload; executed by ``python -m benchmarks`` in the peers
environment (``python benchmarks/peers/pcx_bench.py problem.npz result.json``).

Same network, energy, T and step size as neurosim: mu_l = W_l tanh(x_{l-1}) (linear input, no biases),
F = sum_l 1/2 ||x_l - mu_l||^2 per sample, hidden values from the feedforward pass, T steps of SGD with
learning rate dt on the hidden values (= Euler steps of dx/dt = -dF/dx), then one SGD step of the weights
on the batch-mean energy.  Written with pcx's documented building blocks (EnergyModule, Vode, pxu.step,
pxf.value_and_grad, pxu.Optim), as in pcx's own examples.
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
import optax  # noqa: E402

import pcx.functional as pxf  # noqa: E402
import pcx.nn as pxnn  # noqa: E402
import pcx.predictive_coding as pxc  # noqa: E402
import pcx.utils as pxu  # noqa: E402

Ws = [prob[f"W{i + 1}"] for i in range(int(prob["n_layers"]))]
X, Y = prob["X"].astype(dtype), prob["Y"].astype(dtype)
T, dt, lr = int(prob["T"]), float(prob["dt"]), float(prob["lr"])
B = X.shape[0]


class Net(pxc.EnergyModule):
    """x_1 = vode(W_1 x_0); x_l = vode(W_l tanh(x_{l-1})); the output vode is frozen to the target."""

    def __init__(self, shapes):
        super().__init__()
        self.layers = [pxnn.Linear(n_in, n_out, bias=False) for n_out, n_in in shapes]
        self.vodes = [pxc.Vode() for _ in shapes]
        self.vodes[-1].h.frozen = True

    def __call__(self, x, y):
        h = self.vodes[0](self.layers[0](x))
        for v, layer in zip(self.vodes[1:], self.layers[1:]):
            h = v(layer(jnp.tanh(h)))
        if y is not None:
            self.vodes[-1].set("h", y)
        return self.vodes[-1].get("u")


@pxf.vmap(pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0)), in_axes=(0, 0), out_axes=0)
def forward(x, y, *, model):
    return model(x, y)


@pxf.vmap(pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0)), in_axes=(0,), out_axes=(None, 0),
          axis_name="batch")
def energy(x, *, model):
    y_ = model(x, None)
    return jax.lax.psum(model.energy(), "batch"), y_


@pxf.jit(static_argnums=0)
def train_on_batch(T, x, y, *, model, optim_w, optim_h):
    model.train()
    with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
        forward(x, y, model=model)
    optim_h.init(pxu.M_hasnot(pxc.VodeParam, frozen=True)(model))
    for _ in range(T):
        with pxu.step(model, clear_params=pxc.VodeParam.Cache):
            _, g = pxf.value_and_grad(pxu.M_hasnot(pxc.VodeParam, frozen=True).to([False, True]),
                                      has_aux=True)(energy)(x, model=model)
        optim_h.step(model, g["model"])
    optim_h.clear()
    with pxu.step(model, clear_params=pxc.VodeParam.Cache):
        (e, _), g = pxf.value_and_grad(pxu.M(pxnn.LayerParam).to([False, True]), has_aux=True)(energy)(
            x, model=model)
    optim_w.step(model, g["model"], scale_by=1.0 / x.shape[0])
    return e


def build():
    model = Net([W.shape for W in Ws])
    for layer, W in zip(model.layers, Ws):
        layer.nn.weight.set(jnp.asarray(W, dtype=dtype))
    with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
        forward(jnp.zeros((B, X.shape[1]), dtype=dtype), None, model=model)
        optim_h = pxu.Optim(lambda: optax.sgd(dt))
        optim_w = pxu.Optim(lambda: optax.sgd(lr), pxu.M(pxnn.LayerParam)(model))
    return model, optim_w, optim_h


x, y = jnp.asarray(X), jnp.asarray(Y)
model, optim_w, optim_h = build()
t0 = time.perf_counter()
e = train_on_batch(T, x, y, model=model, optim_w=optim_w, optim_h=optim_h)
e = float(jax.block_until_ready(e))
compile_s = time.perf_counter() - t0
Wn = [np.asarray(layer.nn.weight.get()) for layer in model.layers]
check = {"energy_final": e / B,
         "weights_after": [w.tolist() for w in Wn] if sum(w.size for w in Wn) < 5000 else None,
         "weights_max_abs_err": max(float(np.max(np.abs(w - prob[f"Wnext{i + 1}"]))) for i, w in enumerate(Wn))}
times = []
cpu0 = time.process_time()
for _ in range(int(prob["repeats"])):
    t0 = time.perf_counter()
    jax.block_until_ready(train_on_batch(T, x, y, model=model, optim_w=optim_w, optim_h=optim_h))
    times.append(time.perf_counter() - t0)
cpu_per_wall = (time.process_time() - cpu0) / sum(times)   # > 1: more than one thread computed
json.dump({"library": "pcx", "version": __import__("importlib.metadata").metadata.version("pcx"),
           "jax": jax.__version__, "compile_s": compile_s, "times": times, "cpu_per_wall": cpu_per_wall,
           "cores": len(__import__("os").sched_getaffinity(0)), "median_s": float(np.median(times)),
           **{k: v for k, v in check.items() if k != "weights_after"}}, open(sys.argv[2], "w"))
