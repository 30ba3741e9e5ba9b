"""Pieces shared by the rate and spiking brian2 networks: brian2 set-up, activations as equation
strings, batch-replicated index arithmetic, and an isolated random stream.

Everything brian2-specific lives in this package; the rest of neurosim never imports brian2.
"""
from __future__ import annotations

import contextlib
import itertools
import re
import warnings

import numpy as np

import brian2 as b2

from ... import activations as act

_COUNTER = itertools.count()

#: brian2 names that cannot be variable names in equations (constants, functions, reserved)
_IDENT = re.compile(r"[^A-Za-z0-9_]")


_LOG_FILTERS_SET = False

#: entries a brian2 in-memory cache may hold before it is emptied (see :func:`trim_brian2_caches`)
CACHE_LIMIT = 1000


def _brian2_caches() -> list:
    """The dicts behind brian2's ``@cached`` functions that building a network fills (an empty list for a brian2
    version without them)."""
    import importlib
    out = []
    try:   # modules by full name: brian2.stateupdaters.exact is also the name of an object in its package
        mod = {m: importlib.import_module(f"brian2.{m}") for m in ("codegen.translation", "equations.equations",
               "parsing.statements", "parsing.sympytools", "stateupdaters.base", "stateupdaters.exact")}
        fns = (mod["codegen.translation"].make_statements, mod["equations.equations"].parse_string_equations,
               mod["parsing.sympytools"]._str_to_sympy, mod["parsing.sympytools"].sympy_to_str,
               mod["parsing.statements"].parse_statement, mod["stateupdaters.base"].StateUpdateMethod.apply_stateupdater,
               mod["stateupdaters.exact"].LinearStateUpdater.__call__)
    except (ImportError, AttributeError):
        return out
    for f in fns:
        cache = getattr(getattr(f, "__wrapped__", None), "_cache", None)
        if isinstance(cache, dict):
            out.append(cache)
    return out


def trim_brian2_caches(limit: int | None = None) -> int:
    """Empty every brian2 in-memory cache holding more than ``limit`` (default :data:`CACHE_LIMIT`) entries;
    returns how many were emptied.

    brian2's ``@cached`` functions keep every result for the life of the process, keyed by the code and the
    variables of each object.  neurosim names every network's objects uniquely (:func:`unique_prefix`), so those
    keys never repeat across networks: without a bound a process that builds many networks (a parameter sweep,
    the test suite) holds every one of them (about 100,000 Python objects per tiny graph network), and every
    garbage collection and network build slows down with it.
    """
    limit = CACHE_LIMIT if limit is None else limit
    n = 0
    for cache in _brian2_caches():
        if len(cache) > limit:
            cache.clear()
            n += 1
    return n


def configure_prefs(target: str = "numpy"):
    """Process-wide brian2 preferences neurosim needs (brian2 keeps these in one global table).

    ``target`` is the runtime code-generation target; float64 everywhere; no log files or script
    copies written to /tmp.  Called before every network is built, it also bounds brian2's in-memory caches
    (:func:`trim_brian2_caches`).
    """
    global _LOG_FILTERS_SET
    b2.prefs.codegen.target = target
    b2.prefs.core.default_float_dtype = np.float64
    b2.prefs.logging.file_log = False
    b2.prefs.logging.delete_log_on_exit = True
    b2.prefs.logging.save_script = False
    b2.prefs.logging.console_log_level = "WARNING"
    trim_brian2_caches()
    if _LOG_FILTERS_SET:   # each call below adds one more filter to brian2's logging handlers
        return
    _LOG_FILTERS_SET = True
    # neurosim reports diverging runs itself (DivergenceError with step and population)
    b2.BrianLogger.suppress_name("invalid_values")
    # event code such as "Ifb_pre += a*w; w += eta*tr_pre" is order-dependent on purpose (feedback uses the
    # weight before the update); brian2 warns about every such block
    b2.BrianLogger.suppress_hierarchy("brian2.codegen.generators.base")


@contextlib.contextmanager
def float_dtype(dtype):
    """Build (or run) brian2 objects with ``dtype`` as brian2's float type, restoring the preference after.

    ``prefs.core.default_float_dtype`` is process-wide and read when brian2 creates a variable's array
    (and when it generates code), so one process can hold float32 and float64 networks side by side as
    long as each is built and run inside this context with its own dtype.
    """
    old = b2.prefs.core.default_float_dtype
    f32 = np.dtype(dtype) == np.float32
    b2.prefs.core.default_float_dtype = np.float32 if f32 else np.float64
    try:
        with warnings.catch_warnings():
            if f32:   # brian2's check for invalid values compares float32 arrays with 1e50 (NumPy warns)
                warnings.filterwarnings("ignore", message="overflow encountered in cast", category=RuntimeWarning)
            yield
    finally:
        b2.prefs.core.default_float_dtype = old


def unique_prefix(tag: str) -> str:
    """A name prefix unique in this process (brian2 object names must not collide)."""
    return f"ns{next(_COUNTER)}{tag}_"


def ident(name: str) -> str:
    """A population/projection name turned into a valid brian2 identifier fragment."""
    return _IDENT.sub("_", name)


PHI_NAMES = {a.code: a.name for a in act.ACTIVATIONS.values()}


def control_group(clock, pfx, F_names, nb_names, extra=()):
    """The one-neuron control group of a rate network: run state (``running``, ``go``, ``steps``), step-size
    decay (``dtf``, ``Fprev``, ``decay``), learning gate (``lrn``, ``learn_on``), stop time ``t_stop`` and
    tolerance ``tolv``, plus ``extra`` variable names; the energy ``Ftot = sum F_names`` and the number of units
    still moving ``nbig = sum nb_names`` are sums of the summed variables ``F_names`` / ``nb_names``."""
    eqs = "\n".join(
        ["running : 1", "go : 1", "dtf : 1", "Fprev : 1", "steps : 1", "lrn : 1", "learn_on : 1",
         "t_stop : second", "tolv : 1", "decay : 1", *[f"{v} : 1" for v in extra]]
        + [f"{f} : 1" for f in list(F_names) + list(nb_names)]
        + [f"Ftot = {' + '.join(F_names) if F_names else '0.0'} : 1",
           f"nbig = {' + '.join(nb_names) if nb_names else '0.0'} : 1"])
    return b2.NeuronGroup(1, eqs, clock=clock, name=pfx + "ctl")


def control_update(every_step: bool, heun: bool = False) -> str:
    """The control group's code for every time step (before the groups): stop once no unit moves by ``tolv``
    or more (``tolv > 0``), ``go`` while running before ``t_stop``, count the steps, ``dtf *= decay`` when the
    energy did not decrease; ``lrn``: learning in every moving step (``every_step``, iPC) or after ``t_stop``.

    ``heun`` (a network whose value step is two time steps of half the step, a predictor and a corrector; the
    group then has the variable ``ph``): ``ph`` flips first (0: predictor, 1: corrector; a run starts with
    ``ph = 1``), and the stop, ``go``, the step count and the ``dt_decay`` rule act in predictor time steps only
    (the corrector keeps them), so they see the states x_0, x_1, ... and never a predicted one;
    ``lrn`` (after ``t_stop``) is the same.  ``every_step`` does not go with ``heun``."""
    if heun:
        if every_step:
            raise ValueError("control_update: heun goes with every_step=False")
        return ("ph = 1 - ph\n"
                "running = ph*running + (1 - ph)*running*(1 - int(tolv > 0)*int(nbig < 0.5))\n"
                "go = ph*go + (1 - ph)*running*int(t < t_stop)\n"
                "steps = steps + (1 - ph)*go\n"
                "dtf = ph*dtf + (1 - ph)*dtf*(1 - (1 - decay)*int(Ftot >= Fprev))\n"
                "Fprev = ph*Fprev + (1 - ph)*Ftot\n"
                "lrn = learn_on*int(t > t_stop)")
    return ("running = running*(1 - int(tolv > 0)*int(nbig < 0.5))\n"
            "go = running*int(t < t_stop)\n"
            "steps = steps + go\n"
            "dtf = dtf*(1 - (1 - decay)*int(Ftot >= Fprev))\n"
            "Fprev = Ftot\n"
            + ("lrn = learn_on*go" if every_step else "lrn = learn_on*int(t > t_stop)"))


#: brian2 expressions of ``phi(v)`` and ``phi'(v)`` by activation code (see :mod:`neurosim.activations`):
#: linear, tanh, sigmoid, relu, leaky relu (``{p}``: the activation parameter, the leak slope)
_PHI_EXPR = ("({v})", "tanh({v})", "(1.0/(1.0 + exp(-({v}))))", "clip({v}, 0, inf)",
             "(clip({v}, 0, inf) + {p!r}*clip({v}, -inf, 0))")
_DPHI_EXPR = ("1.0", "(1.0 - tanh({v})**2)", "((1.0/(1.0 + exp(-({v}))))*(1.0 - 1.0/(1.0 + exp(-({v})))))",
              "(1.0*int(({v}) > 0))", "(1.0*int(({v}) > 0) + {p!r}*int(({v}) <= 0))")


def phi_expr(code: int, param: float, v: str) -> str:
    """``phi(v)`` as a brian2 expression for activation ``code`` (see :mod:`neurosim.activations`)."""
    return _PHI_EXPR[min(code, 4)].format(v=v, p=param)


def dphi_expr(code: int, param: float, v: str) -> str:
    """``phi'(v)`` as a brian2 expression."""
    return _DPHI_EXPR[min(code, 4)].format(v=v, p=param)


def copy_out(a, dtype=None) -> np.ndarray:
    """A NumPy copy of an array taken from brian2 (a variable, a monitor's record, ``var[:]``).

    What brian2 hands out (``m.i[:]``, ``np.asarray(group.x[:])``, ``monitor.t``) is a view of memory that
    brian2 owns; with brian2 >= 2.10 that memory is freed (and reused) when the monitor grows or the network
    is garbage-collected, so a view kept past that point silently reads garbage.  Everything neurosim takes
    from brian2 goes through this function.
    """
    return np.array(a, dtype=dtype, copy=True)


def flat_to_batch(a: np.ndarray, B: int, n: int) -> np.ndarray:
    """brian2 group layout (unit ``b * n + j``) -> ``(B, n)`` (a copy)."""
    return copy_out(a).reshape(B, n)


def raise_if_stopped():
    """Raise ``KeyboardInterrupt`` if the last ``Network.run`` ended early because of Ctrl-C.

    brian2 turns the first SIGINT during ``Network.run`` into a request to stop ("Simulation stop requested.
    Press Ctrl+C again to interrupt."): the run returns early, with the monitors holding fewer steps than
    asked for.  Every network run of this backend calls this right after ``Network.run``, so that Ctrl-C ends a
    neurosim run as it does on the other backends (``metrics.json`` "interrupted", with the partial results)
    instead of failing later on the short records."""
    if getattr(b2.Network, "_globally_stopped", False):
        raise KeyboardInterrupt("Ctrl-C during a brian2 simulation (brian2 stopped the network run early)")


@contextlib.contextmanager
def isolated_seed(seed):
    """Seed brian2's random stream for one run without touching the caller's global NumPy state.

    brian2's runtime targets draw from NumPy's global generator; it is saved before and restored
    after, so a brian2 run never changes the random numbers the rest of a program sees.
    """
    state = np.random.get_state()
    try:
        b2.seed(int(seed) % (2 ** 32))
        yield
    finally:
        np.random.set_state(state)


def batch_connect_all(S, n_pre: int, n_post: int):
    """Connect every pre unit to every post unit *within the same batch copy*.

    Pre unit ``b * n_pre + i`` connects to post units ``b * n_post + j`` for all ``j`` (a generator
    expression, so it also works in cpp_standalone).
    """
    S.connect(j=f"k for k in range((i // {n_pre}) * {n_post}, (i // {n_pre} + 1) * {n_post})", namespace={})


def weight_index_expr(n_pre: int, n_post: int) -> str:
    """Index of the shared weight ``W[j, i]`` (C order) of a batch-replicated synapse ``(b,i) -> (b,j)``."""
    return f"(j % {n_post}) * {n_pre} + (i % {n_pre})"


def set_expr(group, var: str, code: str):
    """``group.var = code`` for a string expression, resolved without looking at the caller's locals."""
    group.state(var, use_units=False).set_item("True", code, namespace={})


def configure_standalone_prefs():
    """Compiler settings for the cpp_standalone target.

    ``make -j2`` (brian2's default ``-j`` starts one compiler per source file at once: a network of this
    kind has over a hundred), ``-O1`` (compiles several times faster than brian2's ``-O3``; the run time
    of these small networks is dominated by the number of steps, not by the loops), and no
    ``-march=native``/``-ffast-math``, so results do not depend on the CPU.
    """
    b2.prefs.devices.cpp_standalone.extra_make_args_unix = ["-j2"]
    b2.prefs.codegen.cpp.extra_compile_args_gcc = ["-w", "-O1", "-std=c++11"]


def stage_summed(pairs):
    """Run every summed variable before the groups in its stage: ``pairs`` holds ``(synapses, {variable: order})``
    (all inputs of a time step are computed from the state at t, stage by stage, before any state advances)."""
    for S, stages in pairs:
        for var, stage in stages.items():
            upd = S.summed_updaters[var]
            upd.when = "before_groups"
            upd.order = stage
