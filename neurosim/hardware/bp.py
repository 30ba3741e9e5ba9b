r"""Backpropagation on the same substrate: the BP baseline under the same non-idealities.

The forward pass is the feedforward reading of the circuit with every signal through the substrate:
:math:`\hat s_{pre} = \mathrm{dac}(\mathrm{values}(\phi(x_{pre})))`,
:math:`x_{post} = \mu_{post} = \mathrm{adc}(\sum_k a_k \tilde W_k \hat s_{pre}) + b` (noisy reads
:math:`\tilde W`).  The backward pass sends deltas through the transposed arrays:

.. math::

    \delta_L = \pi_L (\hat y - t), \qquad
    \delta_{pre} = \phi'(x_{pre}) \odot \mathrm{adc}\Big(\sum_k a_k \tilde W_k^T\,
    \mathrm{dac}(\mathrm{errors}(\delta_{post}))\Big),

and the gradient is :math:`\nabla_{W_k} = a_k\, \mathrm{errors}(\delta_{post})^T \hat s_{pre} / B`
(synapses with the post-synaptic neuron, as for PC).  Identity skips are digital one-to-one routes, as in the
event engine: :math:`x_{post} \mathrel{+}= x_{pre}` (no substrate site, no read noise) and
:math:`\delta_{pre} \mathrel{+}= \mathrm{dac}(\mathrm{errors}(\delta_{post}))` (what the post's error unit
sends, not through :math:`\phi'`).  With no transforms this is :func:`neurosim.algorithms.backprop.gradients`
(tested).
"""
from __future__ import annotations

import numpy as np

from .. import activations as act
from ..plan import ROLE_INPUT
from .nonideal import apply_table

_PHI = {a.code: a.name for a in act.ACTIVATIONS.values()}


def hw_gradients(plan, Wr, b, X, Y, tables, sigmas, rng):
    """Loss, output and BP gradients ``({k: dL/dW_k}, {k: dL/db_k})`` through the substrate."""
    p = plan
    if p.target_pop < 0:
        raise ValueError("backprop needs a circuit with a target clamp")
    kinds, params, counts, mm = tables
    sig_m2, sig_a2 = sigmas
    noisy = sig_m2 > 0 or sig_a2 > 0
    B = X.shape[0]
    sl = [p.units(n) for n in p.pop_names]
    units = [np.arange(s.start, s.stop) for s in sl]
    Wk = {k: Wr[p.w_off[k]:p.w_off[k] + int(np.prod(p.weight_shape(k)))].reshape(p.weight_shape(k))
          for k in range(p.n_proj) if p.w_off[k] >= 0}

    def site(si, v, i):
        if counts[si] == 0:
            return v
        return apply_table(kinds[si], params[si], counts[si], v, units[i], rng, mm[si])

    def noise(v, s2_w, s2_s):
        if not noisy:
            return v
        return v + np.sqrt(np.maximum(0.0, sig_m2 * s2_w + sig_a2 * s2_s)) * rng.standard_normal(v.shape)

    x = np.zeros((B, p.n_units))
    sv = np.zeros((B, p.n_units))
    for j, i in enumerate(p.input_pops):
        x[:, sl[i]] = X[:, p.input_off[j]:p.input_off[j] + p.pop_size[i]]
    has_out = {int(p.proj_pre[k]) for k in Wk}
    for i in range(p.n_pops):
        if p.pop_role[i] != ROLE_INPUT:
            n = int(p.pop_size[i])
            cur = np.zeros((B, n))
            qw, qs = np.zeros((B, n)), np.zeros((B, n))
            bias = np.zeros(n)
            skip = np.zeros((B, n))
            weighted = False
            for k in range(p.in_start[i], p.in_end[i]):
                pre = p.proj_pre[k]
                if k in Wk:
                    weighted = True
                    a = p.proj_mult[k]
                    cur += a * (sv[:, sl[pre]] @ Wk[k].T)
                    if noisy:
                        s2 = sv[:, sl[pre]] ** 2
                        qw += a * a * (s2 @ (Wk[k] ** 2).T)
                        qs += a * a * s2.sum(axis=1, keepdims=True)
                if p.b_off[k] >= 0:
                    bias += b[p.b_off[k]:p.b_off[k] + n]
                if p.proj_skip[k]:
                    skip += x[:, sl[pre]]
            if weighted:
                cur = site(3, noise(cur, qw, qs), i)
            x[:, sl[i]] = cur + bias + skip
        if i in has_out:
            sv[:, sl[i]] = site(2, site(0, act.phi(_PHI[int(p.pop_phi[i])], x[:, sl[i]]), i), i)
    tsl = sl[p.target_pop]
    prec = p.precision[tsl]
    y = x[:, tsl].copy()
    loss = 0.5 * np.sum(prec * (Y - y) ** 2) / B
    delta = np.zeros((B, p.n_units))
    delta[:, tsl] = prec * (y - Y)
    od = np.zeros((B, p.n_units))       # errors-site output of each delta (local, drives the update)
    sent = np.zeros((B, p.n_units))     # what crosses the synapses backwards
    fb = np.zeros((B, p.n_units))
    qw, qs = np.zeros((B, p.n_units)), np.zeros((B, p.n_units))
    fb_in = np.zeros(p.n_pops, dtype=bool)
    for i in reversed(range(p.n_pops)):  # every post of i comes later in topological order
        if p.pop_role[i] == ROLE_INPUT:
            continue
        if fb_in[i]:
            d = act.dphi(_PHI[int(p.pop_phi[i])], x[:, sl[i]]) * site(3, noise(fb[:, sl[i]], qw[:, sl[i]],
                                                                             qs[:, sl[i]]), i)
            delta[:, sl[i]] += d
        od[:, sl[i]] = site(1, delta[:, sl[i]], i)
        sent[:, sl[i]] = site(2, od[:, sl[i]], i)
        for k in range(p.in_start[i], p.in_end[i]):
            pre = p.proj_pre[k]
            if p.pop_role[pre] == ROLE_INPUT:
                continue
            if p.proj_skip[k]:
                delta[:, sl[pre]] += sent[:, sl[i]]
            if k not in Wk:
                continue
            a = p.proj_mult[k]
            fb[:, sl[pre]] += a * (sent[:, sl[i]] @ Wk[k])
            if noisy:
                s2 = sent[:, sl[i]] ** 2
                qw[:, sl[pre]] += a * a * (s2 @ Wk[k] ** 2)
                qs[:, sl[pre]] += a * a * s2.sum(axis=1, keepdims=True)
            fb_in[pre] = True
    gW, gb = {}, {}
    for k in range(p.n_proj):
        d = od[:, sl[p.proj_post[k]]]
        if k in Wk:
            gW[k] = p.proj_mult[k] * (d.T @ sv[:, sl[p.proj_pre[k]]]) / B
        if p.b_off[k] >= 0:
            gb[k] = d.sum(axis=0) / B
    return loss, y, gW, gb
