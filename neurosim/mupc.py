r"""muPC residual predictive-coding networks (Innocenti et al., NeurIPS 2025) and their standard twin.

Architecture (jpc's ``make_mlp`` + ``make_skip_model``): ``H`` hidden layers of width ``N``,
``L = H + 1`` weight layers, activation *before* the linear map, no activation on the raw input, an
identity skip on every layer except the first (input -> h1) and the last (h_H -> output), no biases:

.. math::

    \mu_1 = a_1 W_1 x, \qquad \mu_l = x_{l-1} + a_l W_l\,\phi(x_{l-1}) \;(l = 2..H), \qquad
    \mu_L = a_L W_L\,\phi(x_H).

=================  ==============  =====================  ==========  =======================================
parameterisation   :math:`a_1`     :math:`a_l` (branches)  :math:`a_L`  weights
=================  ==============  =====================  ==========  =======================================
``"mupc"``         :math:`1/\sqrt D`  :math:`1/\sqrt{N L}`   :math:`1/N`  :math:`W \sim \mathcal N(0, 1)`
``"sp"``           1               1                      1           :math:`U(\pm 1/\sqrt{\text{fan-in}})`
=================  ==============  =====================  ==========  =======================================

With muPC the forward pass stays :math:`O(1)` at any depth (each branch adds a variance of order
:math:`1/L`), and the output is :math:`O(1/\sqrt N)` at initialisation; in the standard parameterisation the
residual stream grows geometrically with depth.  Inference settings of the paper
(:func:`inference_settings`): gradient descent on the activities from the feedforward pass, ``T = H``
steps, activity learning rate 0.5 (ReLU) or 1.0 (linear, tanh) on jpc's *batch-mean* energy, i.e. a
per-sample step ``lr / B``; weights: Adam, lr 0.1 (MNIST), one update per batch.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .circuit import Adam, Circuit, Init, Optimizer, hierarchy

__all__ = ["PARAMETERISATIONS", "multipliers", "residual_network", "mupc_network", "sp_residual_network",
           "inference_settings", "activation_rms"]

PARAMETERISATIONS = ("mupc", "sp")


def _check(n_input, width, n_hidden, n_output):
    for nm, v in (("n_input", n_input), ("width", width), ("n_hidden", n_hidden), ("n_output", n_output)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"residual network: {nm} must be a positive int, got {v!r}")


def multipliers(n_input: int, width: int, n_hidden: int, param: str = "mupc") -> list:
    r"""Forward multipliers :math:`a_1, \dots, a_L` (``L = n_hidden + 1``) of a parameterisation."""
    _check(n_input, width, n_hidden, 1)
    L = n_hidden + 1
    if param == "mupc":
        return [1.0 / math.sqrt(n_input)] + [1.0 / math.sqrt(width * L)] * (n_hidden - 1) + [1.0 / width]
    if param == "sp":
        return [1.0] * L
    raise ValueError(f"unknown parameterisation {param!r}; choose one of {list(PARAMETERISATIONS)}")


def residual_network(n_input: int, width: int, n_hidden: int, n_output: int, *, param: str = "mupc",
                     phi: str = "relu", lr: float = 0.1, optimizer: Optimizer | None = None,
                     output_precision: float = 1.0, name: str | None = None) -> Circuit:
    """A residual PCN of ``n_hidden`` hidden layers of ``width`` units in parameterisation ``param``.

    Parameters
    ----------
    n_input, width, n_hidden, n_output : int
        ``D``, ``N``, ``H`` and the output size; ``L = H + 1`` weight layers ``W1..WL``.
    param : {"mupc", "sp"}
        See the module docstring.
    phi : str
        Hidden activation (applied to a population when it predicts the next one).
    lr, optimizer
        Hebbian/BP learning rate and optimiser (default ``ns.Adam()``, as in the paper).
    output_precision : float
        Precision of the output errors.

    Returns
    -------
    Circuit
        ``ns.hierarchy`` layout: populations ``input, h1..hH, output``, projections ``W1..WL``.
    """
    _check(n_input, width, n_hidden, n_output)
    L = n_hidden + 1
    mult = multipliers(n_input, width, n_hidden, param)
    skips = [False] + [True] * (n_hidden - 1) + [False]
    init = Init("normal", std=1.0) if param == "mupc" else Init("uniform", low=-1 / math.sqrt(width),
                                                                 high=1 / math.sqrt(width))
    net = hierarchy([n_input] + [width] * n_hidden + [n_output], phi=phi, bias=False, init=init, lr=lr,
                    optimizer=optimizer or Adam(), output_precision=output_precision, multipliers=mult, skips=skips,
                    name=name or f"{param}-resnet-H{n_hidden}-N{width}")
    if param == "sp":  # the first layer's fan-in is the input size
        a = 1 / math.sqrt(n_input)
        projs = tuple(replace(p, init=Init("uniform", low=-a, high=a)) if p.name == "W1" else p
                      for p in net.projections)
        net = replace(net, projections=projs)
    assert len(net.projections) == L
    return net


def mupc_network(n_input: int, width: int, n_hidden: int, n_output: int, **kwargs) -> Circuit:
    """muPC residual PCN (see :func:`residual_network`)."""
    return residual_network(n_input, width, n_hidden, n_output, param="mupc", **kwargs)


def sp_residual_network(n_input: int, width: int, n_hidden: int, n_output: int, **kwargs) -> Circuit:
    """The same residual PCN in the standard parameterisation (see :func:`residual_network`)."""
    return residual_network(n_input, width, n_hidden, n_output, param="sp", **kwargs)


def inference_settings(n_hidden: int, batch_size: int, phi: str = "relu", activity_lr: float | None = None) -> dict:
    """The paper's inference budget as ``Simulator.train`` arguments: ``{"steps": H, "dt": lr / B}``.

    ``activity_lr`` is jpc's learning rate on the batch-mean energy (default 0.5 for ReLU, 1.0 otherwise);
    neurosim's per-sample Euler step is ``activity_lr / batch_size``.
    """
    for name, v in (("n_hidden", n_hidden), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if name == "n_hidden" else 1):
            raise ValueError(f"inference_settings: {name} must be a{' non-negative' if name == 'n_hidden' else ' positive'}"
                             f" int, got {v!r}")
    from .activations import get as get_activation
    try:
        phi = get_activation(phi).name   # 'relux' chose the default of the non-ReLU activations silently
    except ValueError as e:
        raise ValueError(f"inference_settings: {e}") from None
    if activity_lr is None:
        activity_lr = 0.5 if phi == "relu" else 1.0
    if isinstance(activity_lr, bool) or not isinstance(activity_lr, (int, float, np.number)) or \
            not (np.isfinite(activity_lr) and activity_lr > 0):
        raise ValueError(f"inference_settings: activity_lr must be a finite number > 0 (jpc's step on the batch-mean "
                         f"energy), got {activity_lr!r}")
    return {"steps": int(n_hidden), "dt": float(activity_lr) / int(batch_size)}


def activation_rms(sim, X) -> dict:
    """Root-mean-square of every population's feedforward activity ``{name: rms}`` for inputs ``X``."""
    from .algorithms.backprop import forward
    x = forward(sim.backend, np.asarray(X, dtype=sim.backend.dtype))
    return {n: float(np.sqrt(np.mean(x[:, sim.plan.units(n)] ** 2))) for n in sim.plan.pop_names}
