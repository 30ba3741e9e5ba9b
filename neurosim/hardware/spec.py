r"""A :class:`~neurosim.hardware.HardwareModel` written as one line of text (``neurosim run ... --set hardware=...``).

Grammar: ``none``, or items separated by ``;``::

    SITE:Transform(args)      a transform at a site: values, errors, dac, adc, reads, updates, weights
    KEY=VALUE                 coding (clock | event), threshold, error_threshold, seed, seconds_per_batch

``Transform`` is a transform class of :mod:`neurosim.hardware` (case-insensitive: ``Quantize``,
``AdditiveNoise``, ``MultiplicativeNoise``, ``Mismatch``, ``WriteNoise``, ``AsymmetricUpdate``, ``StuckAt``,
``Drift``, ``Converter``); its arguments are Python literals (positional or ``name=value``).  Examples::

    weights:Quantize(6, bound=2.0)                          6-bit weights (programmed and written)
    weights:Quantize(4, bound=1.0);weights:WriteNoise(0.02) 4-bit weights, noisy writes
    reads:AdditiveNoise(0.01);seed=3                         read noise (the event-driven engine relaxes)
    coding=event;threshold=0.01                             send-on-delta events

:func:`parse_hardware` returns the model (``None`` for ``none`` or an empty string) or raises ``ValueError``
naming the item and what is valid; :func:`format_hardware` writes a model back in this form.
"""
from __future__ import annotations

import ast

from . import nonideal

__all__ = ["parse_hardware", "format_hardware", "SITES", "KEYS"]

SITES = ("values", "errors", "dac", "adc", "reads", "updates", "weights")
KEYS = {"coding": str, "threshold": float, "error_threshold": float, "seed": int, "seconds_per_batch": float}
_NAMES = ("Quantize", "AdditiveNoise", "MultiplicativeNoise", "Mismatch", "WriteNoise", "AsymmetricUpdate",
          "StuckAt", "Drift", "Converter")
_TRANSFORMS = {name.lower(): getattr(nonideal, name) for name in _NAMES}


def _literal(node, item):
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ValueError(f"hardware item {item!r}: arguments must be literals (numbers, strings, True/False/None), "
                         f"got {ast.unparse(node)!r}") from None


def _transform(text: str, item: str):
    try:
        call = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        call = None
    if isinstance(call, ast.Name):   # a transform without arguments
        call = ast.Call(func=call, args=[], keywords=[])
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        raise ValueError(f"hardware item {item!r}: expected SITE:Transform(args), e.g. weights:Quantize(6, bound=2.0)")
    name = call.func.id.lower()
    if name not in _TRANSFORMS:
        raise ValueError(f"hardware item {item!r}: unknown transform {call.func.id!r}; transforms: "
                         f"{', '.join(_NAMES)}")
    args = [_literal(a, item) for a in call.args]
    kwargs = {k.arg: _literal(k.value, item) for k in call.keywords}
    try:
        return _TRANSFORMS[name](*args, **kwargs)
    except TypeError as e:
        raise ValueError(f"hardware item {item!r}: {e}") from None


def parse_hardware(spec):
    """The :class:`~neurosim.hardware.HardwareModel` that ``spec`` writes (see the module docstring), or
    ``None`` for ``"none"`` / ``""`` / ``None``; a model passes through unchanged."""
    if spec is None or isinstance(spec, nonideal.HardwareModel):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"hardware must be a text like 'weights:Quantize(6, bound=2.0)', got {spec!r}")
    text = spec.strip()
    if text.lower() in ("", "none", "off"):
        return None
    sites = {s: [] for s in SITES}
    kw = {}
    for raw in text.split(";"):
        item = raw.strip()
        if not item:
            continue
        head = item.split("(", 1)[0]
        if ":" in head:
            site, rest = item.split(":", 1)
            site = site.strip().lower()
            if site not in SITES:
                raise ValueError(f"hardware item {item!r}: unknown site {site!r}; sites: {', '.join(SITES)}")
            sites[site].append(_transform(rest, item))
        elif "=" in head:
            key, value = (v.strip() for v in item.split("=", 1))
            if key not in KEYS:
                raise ValueError(f"hardware item {item!r}: unknown setting {key!r}; settings: {', '.join(KEYS)}")
            try:
                if KEYS[key] is int:   # whole numbers only: 3.7 was truncated to 3 without a word
                    f = float(value)
                    if not f.is_integer():
                        raise ValueError
                    kw[key] = int(f)
                else:
                    kw[key] = KEYS[key](value)
            except ValueError:
                raise ValueError(f"hardware item {item!r}: {key} must be {'an int' if KEYS[key] is int else 'a ' + KEYS[key].__name__}"
                                 f", got {value!r}") from None
        else:
            raise ValueError(f"hardware item {item!r}: expected SITE:Transform(args) or KEY=VALUE (sites: "
                             f"{', '.join(SITES)}; settings: {', '.join(KEYS)})")
    return nonideal.HardwareModel(**{s: tuple(ts) for s, ts in sites.items() if ts}, **kw, name=text)


def format_hardware(model) -> str:
    """``model`` in the text form of :func:`parse_hardware` (``"none"`` for ``None``)."""
    if model is None:
        return "none"
    items = []
    for site in SITES:
        for t in getattr(model, site):
            args = ", ".join(f"{f}={getattr(t, f)!r}" for f in t.__dataclass_fields__) \
                if hasattr(t, "__dataclass_fields__") else ""
            items.append(f"{site}:{type(t).__name__}({args})")
    default = nonideal.HardwareModel()
    for key in KEYS:
        if getattr(model, key) != getattr(default, key):
            items.append(f"{key}={getattr(model, key)}")
    return ";".join(items) or "none"
