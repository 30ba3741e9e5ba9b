r"""Ready-made graph circuits: MLP, CNN, residual network, many-to-one RNN and LSTM (gate-level vertices).

Every builder returns a :class:`neurosim.Circuit` stated as vertices (:func:`~neurosim.graph.declare.Graph`) whose
output vertex is ``"output"``.
Plasticity (learning rate, optimiser) is the graph-wide default ``plasticity``.
"""
from __future__ import annotations

from ..circuit import Circuit, Hebbian, Init
from .declare import Act, Conv2d, Dense, Graph, Input, Param, Pool, Product, Sum

__all__ = ["mlp", "cnn", "residual", "rnn", "lstm", "lstm_cell"]


def _plasticity(plasticity):
    return Hebbian(lr=0.01) if plasticity == "default" else plasticity


def mlp(sizes, phi="tanh", bias=True, output_precision=1.0, plasticity="default", name="mlp") -> Circuit:
    r"""Layered network as a graph: ``"input" -> "h1" -> ... -> "output"``,
    :math:`\mu_l = W_l \phi(x_{l-1}) + b_l` with a linear input (the same network as :func:`neurosim.hierarchy`).
    """
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"mlp: sizes needs at least 2 entries (input, output), got {sizes}")
    names = ["input"] + [f"h{k}" for k in range(1, len(sizes) - 1)] + ["output"]
    verts = [Input("input", sizes[0])]
    for k in range(1, len(sizes)):
        last = k == len(sizes) - 1
        verts.append(Dense(names[k], names[k - 1], sizes[k], weights=f"W{k}", phi="linear" if k == 1 else phi,
                           bias=f"b{k}" if bias else False, precision=output_precision if last else 1.0))
    return Graph(verts, "output", plasticity=_plasticity(plasticity), name=name)


def cnn(input_shape=(1, 8, 8), channels=(8, 16), kernel=3, strides=1, pool="max", pool_size=2, phi="relu",
        hidden=(), n_out=10, act_vertices=False, output_precision=1.0, plasticity="default", name="cnn") -> Circuit:
    r"""Convolutional network: per block a convolution (padding ``kernel // 2``) and a pooling vertex, then
    dense layers and ``"output"``.

    With ``act_vertices=False`` (default) the activation sits on the edges, neurosim's
    :math:`\mu = W \phi(x) + b` convention: ``"conv<k>"`` holds pre-activations, ``"pool<k>"`` pools them,
    and the next convolution / dense vertex applies ``phi`` to its input (the first convolution reads the
    image linearly).  For max pooling this is the usual conv -> phi -> pool network, because a max commutes
    with a non-decreasing ``phi``.  ``act_vertices=True`` makes every activation its own :class:`Act` vertex
    (``conv -> act -> pool``, deeper graph, the same function for max pooling).  ``pool=None`` skips
    pooling; ``strides`` is an int or one per block.
    """
    channels = list(channels)
    strides = [strides] * len(channels) if isinstance(strides, int) else list(strides)
    if len(strides) != len(channels):
        raise ValueError(f"cnn: strides has {len(strides)} entries but there are {len(channels)} conv blocks")
    verts = [Input("input", tuple(input_shape))]
    prev, edge_phi = "input", "linear"
    for k, (c, s) in enumerate(zip(channels, strides), start=1):
        verts.append(Conv2d(f"conv{k}", prev, c, kernel=kernel, stride=s, padding=kernel // 2, phi=edge_phi))
        prev, edge_phi = f"conv{k}", phi
        if act_vertices:
            verts.append(Act(f"act{k}", prev, phi))
            prev, edge_phi = f"act{k}", "linear"
        if pool is not None:
            verts.append(Pool(f"pool{k}", prev, size=pool_size, kind=pool))
            prev = f"pool{k}"
    for k, h in enumerate(hidden, start=1):
        verts.append(Dense(f"fc{k}", prev, h, phi=edge_phi))
        prev, edge_phi = f"fc{k}", phi
    verts.append(Dense("output", prev, n_out, phi=edge_phi, precision=output_precision))
    return Graph(verts, "output", plasticity=_plasticity(plasticity), name=name)


def residual(n_in, width, n_out, blocks=2, phi="tanh", output_precision=1.0, plasticity="default",
             name="residual") -> Circuit:
    r"""Residual network with skips that jump a level (so Z-IL needs :func:`~neurosim.graph.level`).

    ``"input" -> "h0" = W_0 x``; block :math:`k`: ``"a<k>"`` :math:`= W_k \phi(h_{k-1}) + b_k`,
    ``"h<k>"`` :math:`= a_k + h_{k-1}` (a :class:`Sum`: the skip ``h_{k-1} -> h_k`` spans two levels);
    ``"output"`` :math:`= W \phi(h_{blocks}) + b`.
    """
    verts = [Input("input", n_in), Dense("h0", "input", width)]
    prev = "h0"
    for k in range(1, blocks + 1):
        verts.append(Dense(f"a{k}", prev, width, phi=phi))
        verts.append(Sum(f"h{k}", (f"a{k}", prev)))
        prev = f"h{k}"
    verts.append(Dense("output", prev, n_out, phi=phi, precision=output_precision))
    return Graph(verts, "output", plasticity=_plasticity(plasticity), name=name)


def _count(builder: str, name: str, value, least: int = 1) -> int:
    """``value`` as an int of at least ``least`` (NumPy ints too), or a ValueError naming the builder's argument
    (a float step count raised a bare TypeError from ``range``)."""
    import numbers
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{builder}: {name} must be an int, got {value!r}")
    if value < least:
        raise ValueError(f"{builder}: {name} must be >= {least}, got {value}")
    return int(value)


def rnn(n_in, n_hidden, n_out, steps, phi="tanh", output_precision=1.0, plasticity="default", name="rnn") -> Circuit:
    r"""Many-to-one recurrent network unrolled over ``steps`` time steps (shared weights).

    Inputs ``"x1" ... "x<T>"`` (``X`` holds them in time order: ``(B, T * n_in)``, e.g. the rows of an image);
    :math:`h_1 = W_x x_1 + b_h`, :math:`h_t = W_x x_t + W_h \phi(h_{t-1}) + b_h` (``"h<t>"``, values are
    pre-activations), ``"output"`` :math:`= W_y \phi(h_T) + b_y`.  ``Wx``, ``Wh``, ``bh`` are shared by all
    steps; their updates sum the per-step terms (backprop through time).
    """
    n_in, n_hidden, n_out, steps = (_count("rnn", k, v) for k, v in
                                    (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out), ("steps", steps)))
    verts = [Input(f"x{t}", n_in) for t in range(1, steps + 1)]
    verts.append(Dense("h1", "x1", n_hidden, weights="Wx", bias="bh"))
    for t in range(2, steps + 1):
        verts.append(Dense(f"h{t}", (f"x{t}", f"h{t - 1}"), n_hidden, weights=("Wx", "Wh"), phi=("linear", phi),
                           bias="bh"))
    verts.append(Dense("output", f"h{steps}", n_out, weights="Wy", phi=phi, bias="by", precision=output_precision))
    return Graph(verts, "output", plasticity=_plasticity(plasticity), name=name)


def lstm_cell(t: int, x: str, h_prev: str | None, c_prev: str | None, n_hidden: int):
    r"""Vertices of one LSTM step at gate level; returns ``(vertices, h_name, c_name)``.

    .. math::

        z^g_t = W_{gx} x_t + W_{gh} h_{t-1} + b_g \;(g \in f, i, o, c), \quad
        f_t = \sigma(z^f_t),\; i_t = \sigma(z^i_t),\; o_t = \sigma(z^o_t),\; \tilde c_t = \tanh(z^c_t),

    .. math::

        c_t = f_t \odot c_{t-1} + i_t \odot \tilde c_t, \qquad h_t = o_t \odot \tanh(c_t).

    Every line is a vertex (``"zf<t>"``, ``"f<t>"``, ``"fc<t>"`` = :math:`f_t\odot c_{t-1}`, ``"ig<t>"``,
    ``"c<t>"``, ``"tc<t>"``, ``"h<t>"``, ...), so the multiplicative gates and the branching of :math:`c` and
    :math:`h` are graph structure.  The parameters (``"Wfx"``, ``"Wfh"``, ``"bf"``, ...) are shared over time.
    At ``t = 1`` (``h_prev = c_prev = None``) the recurrent terms vanish, :math:`c_1 = i_1 \odot \tilde c_1` and
    there is no forget gate.
    """
    V = []
    acts = {"f": "sigmoid", "i": "sigmoid", "o": "sigmoid", "c": "tanh"}
    for g, phi in acts.items():
        if g == "f" and c_prev is None:
            continue  # no cell state to forget at the first step
        if h_prev is None:
            V.append(Dense(f"z{g}{t}", x, n_hidden, weights=f"W{g}x", bias=f"b{g}"))
        else:
            V.append(Dense(f"z{g}{t}", (x, h_prev), n_hidden, weights=(f"W{g}x", f"W{g}h"), bias=f"b{g}"))
        V.append(Act(f"{g}{t}" if g != "c" else f"g{t}", f"z{g}{t}", phi))
    if c_prev is None:
        V.append(Product(f"c{t}", (f"i{t}", f"g{t}")))
    else:
        V.append(Product(f"fc{t}", (f"f{t}", c_prev)))
        V.append(Product(f"ig{t}", (f"i{t}", f"g{t}")))
        V.append(Sum(f"c{t}", (f"fc{t}", f"ig{t}")))
    V.append(Act(f"tc{t}", f"c{t}", "tanh"))
    V.append(Product(f"h{t}", (f"o{t}", f"tc{t}")))
    return V, f"h{t}", f"c{t}"


def lstm(n_in, n_hidden, n_out, steps, forget_bias=1.0, output_precision=1.0, plasticity="default",
         name="lstm") -> Circuit:
    r"""Many-to-one LSTM unrolled over ``steps`` with gate-level vertices (:func:`lstm_cell`), output
    ``"output"`` :math:`= W_y h_T + b_y`.  Inputs ``"x1" ... "x<T>"`` in time order.  The forget-gate bias
    starts at ``forget_bias`` (a one-step LSTM has no forget gate).  The graph is not levelled (``c_{t-1}`` reaches ``c_t`` in one product but also
    through ``h_{t-1}`` and the gates); Z-IL levels it automatically.
    """
    n_in, n_hidden, n_out, steps = (_count("lstm", k, v) for k, v in
                                    (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out), ("steps", steps)))
    verts = [Input(f"x{t}", n_in) for t in range(1, steps + 1)]
    h = c = None
    for t in range(1, steps + 1):
        V, h, c = lstm_cell(t, f"x{t}", h, c, n_hidden)
        verts.extend(V)
    verts.append(Dense("output", h, n_out, weights="Wy", bias="by", precision=output_precision))
    # the forget gate exists from the second step on (a one-step LSTM has none, so no 'bf' to initialise: declaring
    # it made the graph refuse an unused parameter)
    params = (Param("bf", init=Init("constant", value=float(forget_bias))),) if forget_bias and steps > 1 else ()
    return Graph(verts, "output", params=params, plasticity=_plasticity(plasticity), name=name)
