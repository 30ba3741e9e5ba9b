r"""Closed forms for deep *linear* predictive-coding networks (Innocenti et al., NeurIPS 2024; muPC 2025).

A layered linear circuit (every population that predicts is linear) is a linear-Gaussian chain

.. math::

    z_k = A_k z_{k-1} + c_k + \text{noise}_k, \qquad k = 1..L, \qquad
    A_k = \sum_{j \to k} \big(a_j W_j \;(+\, I \text{ if skip})\big), \quad c_k = \sum_{j \to k} b_j,

with per-unit precisions :math:`\Pi_k` (hidden: the error populations' precision; output: :math:`\lambda`).
The energy of one sample with the input clamped to :math:`x` and the output to :math:`y` is
:math:`F(z) = \sum_k \tfrac12 (z_k - A_k z_{k-1} - c_k)^T \Pi_k (z_k - A_k z_{k-1} - c_k)`; neurosim's
energies are batch means of this.  Everything below follows from it:

* **equilibrium energy** (minimum over the hidden activities),

  .. math::

      F^* = \frac{1}{2B}\sum_i r_i^T S^{-1} r_i, \quad r_i = y_i - \hat y_i, \quad
      S = \Pi_L^{-1} + \sum_{k=1}^{L-1} P_k \Pi_k^{-1} P_k^T, \quad P_k = A_L A_{L-1}\cdots A_{k+1},

  where :math:`\hat y` is the feedforward output (biases included).  :math:`S` is the covariance of the
  output given the input (noise injected at layer :math:`k` reaches the output through :math:`P_k`); with
  unit hidden precisions and :math:`\Pi_L = \lambda I` it is jpc's :math:`S = I/\lambda + \sum_k P_kP_k^T`.
* **activity Hessian** (block tridiagonal over the hidden layers :math:`1..L-1`):
  diagonal block :math:`\Pi_l + A_{l+1}^T \Pi_{l+1} A_{l+1}`, off-diagonal block :math:`(l, l+1)`
  :math:`-A_{l+1}^T \Pi_{l+1}`; and :math:`\nabla_z F = H_z z - b` with
  :math:`b_l = \Pi_l c_l - A_{l+1}^T\Pi_{l+1} c_{l+1} + [l=1]\,\Pi_1 A_1 x + [l=L-1]\,A_L^T\Pi_L y`;
* **equilibrium activities** :math:`z^* = H_z^{-1} b`; since :math:`F` is quadratic, **one Newton step**
  :math:`z - H_z^{-1}\nabla_z F(z)` from any :math:`z` lands on :math:`z^*`;
* **envelope theorem**: at :math:`z^*` the local (Hebbian) weight gradient equals the total derivative of
  :math:`F^*(\theta)`, so PC with perfect inference is gradient descent on :math:`F^*`
  (:func:`equilibrium_weight_gradients`).

Every function takes a :class:`LinearChain` (from :func:`linear_chain`) or anything
:func:`linear_chain` accepts (a :class:`~neurosim.Simulator` -- its current weights --, a
:class:`~neurosim.Plan` -- its initial weights).  Arrays may be complex (complex-step derivatives): only
transposes, never conjugates, are used.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .errors import UnsupportedError
from .plan import Plan

__all__ = ["LinearChain", "linear_chain", "feedforward", "loss", "equilibrium_rescaling", "equilibrium_energy",
           "activity_hessian", "activity_rhs", "condition_number", "energy", "activity_gradient",
           "equilibrium_activities", "newton_step", "split_hidden", "equilibrium_weight_gradients"]


@dataclass(frozen=True)
class LinearChain:
    """A layered linear PCN as matrices.

    Attributes
    ----------
    names : list of str
        Population names ``z_0`` (input) .. ``z_L`` (output).
    sizes : list of int
    A : list of ndarray
        ``A[k-1]`` is the layer map :math:`A_k`, shape ``(n_k, n_{k-1})``.
    c : list of ndarray
        ``c[k-1]`` is the summed bias :math:`c_k`, shape ``(n_k,)``.
    prec : list of ndarray
        ``prec[k-1]`` the per-unit precisions :math:`\\Pi_k` of layer ``k`` (the last one is the output's).
    projections : list of list of tuple
        ``projections[k-1]`` lists ``(name, multiplier, has_weights, has_bias)`` of the projections into
        layer ``k`` (for :func:`equilibrium_weight_gradients`).
    """

    names: list
    sizes: list
    A: list
    c: list
    prec: list
    projections: list

    @property
    def L(self) -> int:
        """Number of weight layers."""
        return len(self.A)

    @property
    def n_hidden(self) -> int:
        """Total number of hidden units (the dimension of :math:`H_z`)."""
        return int(sum(self.sizes[1:-1]))


def linear_chain(source, weights: dict | None = None, output_precision: float | None = None) -> LinearChain:
    """The :class:`LinearChain` of a layered linear circuit.

    Parameters
    ----------
    source : Simulator, Plan or LinearChain
        A Simulator contributes its current weights, a Plan its initial ones.
    weights : dict, optional
        Overrides in the format of ``Simulator.weights`` (``"W1"`` matrices, ``"W1.b"`` biases); may be complex.
    output_precision : float, optional
        Replace the output precision by this scalar :math:`\\lambda`.

    Raises
    ------
    ValueError
        If the circuit is not a chain ``input -> h1 -> ... -> output`` (one input, every population predicted
        only by the previous one), a predicting population is not linear, or ``weights`` names a parameter the
        circuit does not have or gives it another shape.
    UnsupportedError
        For a graph circuit or sparse projections.
    """
    if isinstance(source, LinearChain):
        chain = source
        if weights:
            raise ValueError("linear_chain: weights can only be given with a Simulator or Plan source")
    else:
        plan, current = _plan_and_weights(source)
        for key, w in (weights or {}).items():   # a misspelt key or a wrong shape would give wrong numbers silently
            if key not in current:
                raise ValueError(f"linear_chain: weights has no parameter {key!r}; circuit {plan.circuit.name!r} has "
                                 f"{sorted(current)}")
            if np.shape(w) != np.shape(current[key]):
                raise ValueError(f"linear_chain: weights[{key!r}] has shape {np.shape(w)}, but {key!r} of circuit "
                                 f"{plan.circuit.name!r} has shape {np.shape(current[key])}")
        current.update(weights or {})
        chain = _build(plan, current)
    if output_precision is not None:
        lam = float(np.real(output_precision))
        if not lam > 0:
            raise ValueError(f"linear_chain: output_precision must be > 0, got {output_precision!r}")
        prec = list(chain.prec)
        prec[-1] = np.full_like(prec[-1], lam)
        chain = replace(chain, prec=prec)
    return chain


def _plan_and_weights(source):
    plan = source if isinstance(source, Plan) else getattr(source, "plan", None)
    if plan is not None and not isinstance(plan, Plan):   # a graph circuit's GraphPlan
        raise UnsupportedError(f"theory: the closed forms take a layered circuit, but {type(source).__name__} holds a "
                               f"computation graph ({type(plan).__name__}); build the same linear chain with "
                               "ns.hierarchy(sizes, phi='linear') and load its weights (sim.set_weights)")
    sparse = getattr(plan, "sparse_projections", None)
    if sparse:
        raise UnsupportedError(f"theory: projection(s) {sparse} of circuit {plan.circuit.name!r} are sparse; the "
                               "closed forms take dense weight matrices: state the same circuit without connectivity= "
                               "and load the weights as dense arrays (sim.weights[name].toarray())")
    if isinstance(source, Plan):
        plan = source
        W = {}
        for k, name in enumerate(plan.proj_names):
            if plan.w_off[k] >= 0:
                sh = plan.weight_shape(k)
                W[name] = plan.W[plan.w_off[k]:plan.w_off[k] + sh[0] * sh[1]].reshape(sh).copy()
            if plan.b_off[k] >= 0:
                n = int(plan.pop_size[plan.proj_post[k]])
                W[name + ".b"] = plan.b[plan.b_off[k]:plan.b_off[k] + n].copy()
        return plan, W
    if hasattr(source, "plan") and hasattr(source, "weights"):
        return source.plan, dict(source.weights)
    raise TypeError(f"expected a Simulator, Plan or LinearChain, got {type(source).__name__}")


def _build(plan: Plan, weights: dict) -> LinearChain:
    name = plan.circuit.name
    n = plan.n_pops
    if len(plan.input_pops) != 1 or plan.input_pops[0] != 0 or plan.target_pop != n - 1 or n < 2:
        raise ValueError(
            f"theory: circuit {name!r} is not a layered chain input -> ... -> output (one input population first "
            "and the target population last in topological order); build it with ns.hierarchy")
    for i in range(n - 1):
        if plan.pop_phi[i] != 0:
            from .activations import ACTIVATIONS
            nm = [a.name for a in ACTIVATIONS.values() if a.code == int(plan.pop_phi[i])][0]
            raise ValueError(f"theory: the closed forms need a linear network, but population "
                             f"{plan.pop_names[i]!r} has phi={nm!r}; use phi='linear'")
    A, c, prec, projs = [], [], [], []
    for i in range(1, n):
        ks = list(range(plan.in_start[i], plan.in_end[i]))
        if not ks:
            raise ValueError(f"theory: population {plan.pop_names[i]!r} of circuit {name!r} has no prediction")
        n_post, n_pre = int(plan.pop_size[i]), int(plan.pop_size[i - 1])
        dtype = np.result_type(*[np.asarray(weights.get(plan.proj_names[k], 0.0)) for k in ks],
                               *[np.asarray(weights.get(plan.proj_names[k] + ".b", 0.0)) for k in ks], np.float64)
        Ak = np.zeros((n_post, n_pre), dtype=dtype)
        ck = np.zeros(n_post, dtype=dtype)
        pk = []
        for k in ks:
            pname = plan.proj_names[k]
            if plan.proj_pre[k] != i - 1:
                raise ValueError(
                    f"theory: projection {pname!r} goes from {plan.pop_names[plan.proj_pre[k]]!r} to "
                    f"{plan.pop_names[i]!r}, skipping layers; the closed forms need a chain (skips inside a "
                    "projection, as in muPC, are fine)")
            if plan.w_off[k] >= 0:
                Ak = Ak + plan.proj_mult[k] * np.asarray(weights[pname])
            if plan.proj_skip[k]:
                Ak = Ak + np.eye(n_post, n_pre)
            if plan.b_off[k] >= 0:
                ck = ck + np.asarray(weights[pname + ".b"])
            pk.append((pname, float(plan.proj_mult[k]), bool(plan.w_off[k] >= 0), bool(plan.b_off[k] >= 0)))
        A.append(Ak)
        c.append(ck)
        prec.append(plan.precision[plan.pop_off[i]:plan.pop_off[i] + plan.pop_size[i]].astype(float).copy())
        projs.append(pk)
    return LinearChain(names=list(plan.pop_names), sizes=[int(s) for s in plan.pop_size], A=A, c=c, prec=prec,
                       projections=projs)


def _chain(source) -> LinearChain:
    return source if isinstance(source, LinearChain) else linear_chain(source)


def _xy(chain, X, Y):
    """X (and Y) as float arrays of the chain's sizes, finite (a NaN input gave a NaN energy without a word, where
    the Simulator refuses it)."""
    from .simulator import _real_array
    X = np.atleast_2d(_real_array("X", X, float, "theory: "))
    if X.ndim != 2 or X.shape[1] != chain.sizes[0]:
        raise ValueError(f"theory: X must have shape (B, {chain.sizes[0]}), got {X.shape}")
    if Y is not None:
        Y = np.atleast_2d(_real_array("Y", Y, float, "theory: "))
        if Y.shape != (X.shape[0], chain.sizes[-1]):
            raise ValueError(f"theory: Y must have shape ({X.shape[0]}, {chain.sizes[-1]}), got {Y.shape}")
    for name, a in (("X", X), ("Y", Y)):
        if a is not None and not np.all(np.isfinite(a)):
            raise ValueError(f"theory: {name} holds NaN or inf (e.g. row {int(np.argwhere(~np.isfinite(a))[0][0])}); "
                             "pass finite values")
    return X, Y


# ----------------------------------------------------------------------------- feedforward and loss
def feedforward(source, X) -> list:
    """Feedforward activities ``[z_0 = X, z_1, ..., z_L]`` (each ``(B, n_k)``)."""
    chain = _chain(source)
    X, _ = _xy(chain, X, None)
    z = [X]
    for A, c in zip(chain.A, chain.c):
        z.append(z[-1] @ A.T + c)
    return z


def loss(source, X, Y) -> float:
    r"""Energy of the feedforward state: :math:`\frac{1}{2B}\sum_i (y_i-\hat y_i)^T\Pi_L(y_i-\hat y_i)`
    (= :math:`\lambda\,\mathcal{L}_{MSE}`; the loss of :mod:`neurosim.algorithms.backprop`)."""
    chain = _chain(source)
    X, Y = _xy(chain, X, Y)
    r = Y - feedforward(chain, X)[-1]
    return np.sum(chain.prec[-1] * r * r) / (2 * X.shape[0])


def _products(chain):
    """P_k = A_L ... A_{k+1} for k = 1..L-1 (P[k-1])."""
    L = chain.L
    P = [None] * (L - 1)
    acc = np.eye(chain.sizes[-1])
    for k in range(L - 1, 0, -1):      # P_k = P_{k+1} A_{k+1}, P_{L-1} = A_L
        acc = acc @ chain.A[k]
        P[k - 1] = acc
    return P


def equilibrium_rescaling(source) -> np.ndarray:
    r""":math:`S = \Pi_L^{-1} + \sum_{k=1}^{L-1} P_k \Pi_k^{-1} P_k^T`, shape ``(n_L, n_L)``."""
    chain = _chain(source)
    S = np.diag(1.0 / chain.prec[-1]).astype(np.result_type(*chain.A))
    for k, P in enumerate(_products(chain), start=1):
        S = S + (P / chain.prec[k - 1]) @ P.T
    return S


def equilibrium_energy(source, X, Y) -> float:
    r"""Closed-form equilibrium energy :math:`F^* = \frac{1}{2B}\sum_i r_i^T S^{-1} r_i` (batch mean)."""
    chain = _chain(source)
    X, Y = _xy(chain, X, Y)
    r = Y - feedforward(chain, X)[-1]
    Z = np.linalg.solve(equilibrium_rescaling(chain), r.T)
    return np.sum(r.T * Z) / (2 * X.shape[0])


# ----------------------------------------------------------------------------- activities
def _hidden_offsets(chain):
    sizes = chain.sizes[1:-1]
    return np.concatenate([[0], np.cumsum(sizes)]).astype(int)


def activity_hessian(source) -> np.ndarray:
    r"""The block-tridiagonal activity Hessian :math:`H_z` over the hidden layers, ``(n_hid, n_hid)``.

    Diagonal block :math:`l`: :math:`\Pi_l + A_{l+1}^T\Pi_{l+1}A_{l+1}` (for a muPC skip layer
    :math:`A = I + aW` this is :math:`2I + a(W + W^T) + a^2W^TW`; for the last hidden layer
    :math:`I + \lambda A_L^TA_L`); off-diagonal block :math:`(l, l+1)`: :math:`-A_{l+1}^T\Pi_{l+1}`.
    """
    chain = _chain(source)
    off = _hidden_offsets(chain)
    n = int(off[-1])
    H = np.zeros((n, n), dtype=np.result_type(*chain.A))
    for l in range(1, chain.L):                       # hidden layer l, block l-1
        s = slice(off[l - 1], off[l])
        A_next, p_next = chain.A[l], chain.prec[l]    # A_{l+1}, Pi_{l+1}
        H[s, s] = np.diag(chain.prec[l - 1]) + A_next.T @ (p_next[:, None] * A_next)
        if l + 1 <= chain.L - 1:
            s2 = slice(off[l], off[l + 1])
            H[s, s2] = -(A_next.T * p_next)
            H[s2, s] = H[s, s2].T
    return H


def activity_rhs(source, X, Y) -> np.ndarray:
    r"""The right-hand side :math:`b` of :math:`\nabla_z F = H_z z - b`, one row per sample ``(B, n_hid)``."""
    chain = _chain(source)
    X, Y = _xy(chain, X, Y)
    off = _hidden_offsets(chain)
    L = chain.L
    dtype = np.result_type(*chain.A, *chain.c, X, Y)
    b = np.zeros((X.shape[0], int(off[-1])), dtype=dtype)
    for l in range(1, L):
        s = slice(off[l - 1], off[l])
        b[:, s] += chain.prec[l - 1] * chain.c[l - 1] - (chain.A[l].T @ (chain.prec[l] * chain.c[l]))
        if l == 1:
            b[:, s] += (X @ chain.A[0].T) * chain.prec[0]
        if l == L - 1:
            b[:, s] += (Y * chain.prec[L - 1]) @ chain.A[L - 1]
    return b


def condition_number(source) -> float:
    r"""Condition number :math:`\kappa(H_z) = \lambda_{max}/\lambda_{min}` of the activity Hessian."""
    H = activity_hessian(source)
    if H.size == 0:
        return 1.0
    ev = np.linalg.eigvalsh(H)
    return float(ev[-1] / ev[0])


def split_hidden(source, z) -> dict:
    """``{population name: (B, n)}`` views of a concatenated hidden state ``z`` (B, n_hid)."""
    chain = _chain(source)
    off = _hidden_offsets(chain)
    return {chain.names[l]: z[:, off[l - 1]:off[l]] for l in range(1, chain.L)}


def _layers(chain, X, Y, z):
    off = _hidden_offsets(chain)
    return [X] + [z[:, off[l - 1]:off[l]] for l in range(1, chain.L)] + [Y]


def energy(source, X, Y, z) -> float:
    """Batch-mean energy of the hidden state ``z`` (B, n_hid) with input X and output Y clamped."""
    chain = _chain(source)
    X, Y = _xy(chain, X, Y)
    zs = _layers(chain, X, Y, z)
    F = 0.0
    for k in range(1, chain.L + 1):
        e = zs[k] - zs[k - 1] @ chain.A[k - 1].T - chain.c[k - 1]
        F = F + np.sum(chain.prec[k - 1] * e * e)
    return F / (2 * X.shape[0])


def activity_gradient(source, X, Y, z) -> np.ndarray:
    r"""Per-sample gradient :math:`\partial F/\partial z_l = \Pi_l e_l - A_{l+1}^T \Pi_{l+1} e_{l+1}`,
    computed from the prediction errors (independently of :func:`activity_hessian`), ``(B, n_hid)``."""
    chain = _chain(source)
    X, Y = _xy(chain, X, Y)
    zs = _layers(chain, X, Y, z)
    e = [None] + [chain.prec[k - 1] * (zs[k] - zs[k - 1] @ chain.A[k - 1].T - chain.c[k - 1])
                  for k in range(1, chain.L + 1)]
    g = [e[l] - e[l + 1] @ chain.A[l] for l in range(1, chain.L)]
    return np.concatenate(g, axis=1) if g else np.zeros((X.shape[0], 0))


def equilibrium_activities(source, X, Y) -> np.ndarray:
    r"""Closed-form equilibrium :math:`z^* = H_z^{-1} b`, concatenated hidden layers ``(B, n_hid)``
    (see :func:`split_hidden`)."""
    chain = _chain(source)
    H = activity_hessian(chain)
    b = activity_rhs(chain, X, Y)
    if H.size == 0:
        return b
    return np.linalg.solve(H, b.T).T


def newton_step(source, X, Y, z=None) -> np.ndarray:
    r"""One Newton step :math:`z - H_z^{-1}\nabla_z F(z)` (from the feedforward activities by default)."""
    chain = _chain(source)
    X, Y = _xy(chain, X, Y)
    if z is None:
        zs = feedforward(chain, X)[1:-1]
        z = np.concatenate(zs, axis=1) if zs else np.zeros((X.shape[0], 0))
    g = activity_gradient(chain, X, Y, z)
    H = activity_hessian(chain)
    if H.size == 0:
        return z
    return z - np.linalg.solve(H, g.T).T


def equilibrium_weight_gradients(source, X, Y) -> dict:
    r"""The gradient of :math:`F^*` w.r.t. every weight and bias, via the envelope theorem.

    At :math:`z^*` (``∂F/∂z = 0``) the total derivative equals the partial one, i.e. the local Hebbian
    term: :math:`\partial F^*/\partial W_j = -\frac{a_j}{B}\sum_i \Pi_k e_{k,i}\, z_{k-1,i}^T`,
    :math:`\partial F^*/\partial b_j = -\frac{1}{B}\sum_i \Pi_k e_{k,i}` for projection ``j`` into layer
    ``k``.  Returns ``{"W1": (n_1, n_0), "W1.b": (n_1,), ...}`` like ``Simulator.weights``.
    """
    chain = _chain(source)
    X, Y = _xy(chain, X, Y)
    zs = _layers(chain, X, Y, equilibrium_activities(chain, X, Y))
    B = X.shape[0]
    out = {}
    for k in range(1, chain.L + 1):
        e = chain.prec[k - 1] * (zs[k] - zs[k - 1] @ chain.A[k - 1].T - chain.c[k - 1])
        for name, mult, has_w, has_b in chain.projections[k - 1]:
            if has_w:
                out[name] = -mult * (e.T @ zs[k - 1]) / B
            if has_b:
                out[name + ".b"] = -e.sum(axis=0) / B
    return out
