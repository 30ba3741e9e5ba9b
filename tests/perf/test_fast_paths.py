"""Correctness of the optimised paths of the numba core (no timing here: see ``python -m benchmarks``).

The numba kernel takes different code paths than the NumPy reference: vectorised tanh/logistic, the
fused one-pass prediction/error/feedback for batches up to ``SMALL_BATCH``, BLAS above it, predictions
of clamped-input populations computed once, feedback only into moving populations, the fused Euler
update.  Every path must reproduce the reference backend (the executable specification) to 1e-10 in
float64 (the activations themselves are checked against NumPy in ``tests/test_activations.py``).
"""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim.backends.base import HEUN, RunSpec
from neurosim.backends.numba import _products, _relax

TOL = 1e-10


def close(a, b, what, tol=TOL):
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape, what
    assert np.all(np.isfinite(a)), what
    scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    assert err <= tol * scale, f"{what}: max abs difference {err:.3e} > {tol:g} * {scale:.3g}"


# ----------------------------------------------------------------------------- whole relaxations on every path
def layered(phi="tanh", **kw):
    defaults = dict(bias=True, multipliers=[1.3, 0.7, 1.1], precision=0.8, output_precision=1.7, lr=0.05,
                    optimizer=ns.SGD())
    defaults.update(kw)
    return ns.hierarchy([5, 9, 7, 3], phi=phi, **defaults)


def compare(net, B, *, steps=30, mode="clamp", integrator="euler", tol=None, dt_decay=1.0, learn=True, seed=0,
            probes=(), dt=0.1, batches=2):
    kw = dict(dt=dt, seed=seed, integrator=integrator, probes=probes)
    a = ns.Simulator(net, backend="numba", **kw)
    b = ns.Simulator(net, backend="reference", **kw)
    rng = np.random.default_rng(seed + 100)
    for _ in range(batches):
        X = rng.normal(size=(B, a.plan.n_input))
        Y = rng.normal(size=(B, a.plan.n_target))
        args = dict(steps=steps, mode=mode, beta=1.5 if mode == "nudge" else 0.0, tol=tol, dt_decay=dt_decay,
                    learn=learn)
        ra, rb = a.run(X, Y, **args), b.run(X, Y, **args)
        assert ra.steps == rb.steps
        close(ra.energy, rb.energy, "energy")
        close(ra.y0, rb.y0, "y0")
        for name in rb.populations:
            for var in ("x", "eps", "mu"):
                close(getattr(ra, var)[name], getattr(rb, var)[name], f"{var}[{name}]")
    for k, v in b.weights.items():
        close(a.weights[k], v, f"weights[{k}]")
    for p in probes:
        close(a.data[p], b.data[p], p.name)
        np.testing.assert_array_equal(a.data.steps(p), b.data.steps(p))
    return a, b


@pytest.mark.parametrize("B", [1, 3, _products.SMALL_BATCH, _products.SMALL_BATCH + 1, 24])
@pytest.mark.parametrize("phi", ["tanh", "sigmoid", "leaky_relu"])
def test_layered_training_matches_reference_small_and_blas_paths(B, phi):
    """B <= SMALL_BATCH: fused one-pass prediction/error/feedback; above: BLAS; with biases, multipliers,
    precisions, learning over two batches."""
    compare(layered(phi), B)


@pytest.mark.parametrize("B", [1, 16])
@pytest.mark.parametrize("mode", ["free", "nudge"])
def test_moving_output_matches_reference(B, mode):
    """With the output free or nudged it moves: it needs phi', feedback of its own and no fused shortcut."""
    compare(layered("tanh"), B, mode=mode, learn=False)


@pytest.mark.parametrize("B", [1, 16])
def test_general_path_heun_tol_decay(B):
    """The non-fused step path (Heun, tolerance stop, dt decay) with fused forward passes underneath."""
    compare(layered("tanh"), B, integrator="heun", steps=200, tol=1e-4, dt=0.2)
    compare(layered("tanh"), B, steps=40, dt_decay=0.7, dt=0.3)


def dag(plastic=True):
    """Two inputs; g's only inputs are clamped (its prediction is constant during a relaxation); h has two
    weighted inputs (not fused) plus a skip; out has a weighted input from h and one from the input a."""
    plast = ns.Hebbian(lr=0.05) if plastic else None
    pops = (ns.ValuePopulation("a", 4), ns.ValuePopulation("b", 3),
            ns.ValuePopulation("g", 4, phi="tanh"),
            ns.ValuePopulation("h", 4, phi="tanh", tau_x=0.7),
            ns.ValuePopulation("out", 2, tau_x=1.3))
    errs = (ns.ErrorPopulation("eg", "g", precision=(0.5, 1.0, 1.5, 2.0)),
            ns.ErrorPopulation("eh", "h", tau_eps=0.3, precision=1.2),
            ns.ErrorPopulation("eo", "out", precision=0.9))
    projs = (ns.Projection("Wag", "a", "g", bias=True, plasticity=plast),
             ns.Projection("Wbg", "b", "g", multiplier=0.6, plasticity=plast),
             ns.Projection("Wgh", "g", "h", plasticity=plast),
             ns.Projection("Wbh", "b", "h", bias=True, plasticity=plast),
             ns.Projection("skip", "g", "h", skip=True, weights=False),
             ns.Projection("Who", "h", "out", bias=True, multiplier=1.2, plasticity=plast),
             ns.Projection("Wao", "a", "out", plasticity=plast))
    clamps = (ns.Clamp("a", "input"), ns.Clamp("b", "input"), ns.Clamp("out", "target"))
    return ns.Circuit(pops, errs, projs, clamps, name="perf-dag")


@pytest.mark.parametrize("B", [1, 5, 12])
@pytest.mark.parametrize("integrator", ["euler", "heun"])
def test_dag_constant_predictions_and_accumulated_feedback(B, integrator):
    compare(dag(), B, integrator=integrator, steps=25)
    compare(dag(), B, integrator=integrator, steps=25, mode="nudge", learn=False)


def test_probes_every_step_on_the_fused_path():
    probes = [ns.Probe(n, v, every=1, item=0) for n in ("h1", "h2", "output") for v in ("x", "eps", "mu")]
    probes.append(ns.Probe("h2", "energy", every=1))
    compare(layered("tanh"), 1, probes=probes, steps=20)


def compare_inits(B, after_each=None):
    """numba against the reference over feedforward, previous, zeros and previous starts of one batch of ``B``
    (``after_each(numba_simulator)`` checks something after each run); returns the two simulators."""
    net = layered("tanh", tau_eps=0.2)
    a = ns.Simulator(net, backend="numba", seed=1)
    b = ns.Simulator(net, backend="reference", seed=1)
    rng = np.random.default_rng(5)
    X, Y = rng.normal(size=(B, 5)), rng.normal(size=(B, 3))
    for init in ("feedforward", "previous", "zeros", "previous"):
        ra = a.run(X, Y, steps=15, mode="clamp", init=init)
        rb = b.run(X, Y, steps=15, mode="clamp", init=init)
        if after_each is not None:
            after_each(a)
        close(ra.energy, rb.energy, f"energy ({init})")
        for name in rb.populations:
            close(ra.x[name], rb.x[name], f"x[{name}] ({init})")
    return a, b, X, Y


def test_previous_state_and_zero_init_on_small_batches():
    compare_inits(2)


@pytest.mark.parametrize("B", [1, 16])
def test_float32_close_to_float64_and_really_float32(B):
    net = layered("tanh")
    a = ns.Simulator(net, backend="numba", seed=3, dtype="float32")
    b = ns.Simulator(net, backend="reference", seed=3)
    rng = np.random.default_rng(7)
    X, Y = rng.normal(size=(B, 5)), rng.normal(size=(B, 3))
    ra, rb = a.learn(X, Y, steps=40), b.learn(X, Y, steps=40)
    assert ra.x["h1"].dtype == np.float32
    close(ra.energy, rb.energy, "energy", tol=1e-4)
    for k, v in b.weights.items():
        close(a.weights[k], v, k, tol=1e-4)
    assert max(np.max(np.abs(a.weights[k] - v)) for k, v in b.weights.items()) > 0


def test_one_compiled_specialisation_per_dtype_and_variant():
    """Every kind of run reuses the compiled kernel of its variant (the warm start loads one cached function per
    variant): settings travel in packed arrays, not as arguments of varying type.  The variants are the fused Euler
    path and the general path (Heun or a tolerance); each holds both batch paths (hand loops up to SMALL_BATCH,
    BLAS above), chosen per call."""
    net = layered("tanh")
    for dtype in ("float64", "float32"):
        probes = [ns.Probe("h1", "x")]
        sim = ns.Simulator(net, backend="numba", seed=0, dtype=dtype, probes=probes)
        X = np.random.default_rng(0).normal(size=(3, 5))
        Y = np.zeros((3, 3))
        sim.run(X, Y, steps=5, mode="clamp")                                           # Euler, probes
        sim.run(X, None, steps=5, mode="free", init="previous", tol=1e-3, integrator="heun")   # general, probes
        sim.run(X, Y, steps=5, mode="nudge", beta=1.0, init="zeros", dt_decay=0.5, learn=True)
        Xr = np.array(X[:1])
        Xr.setflags(write=False)
        sim.backend.run_batch(Xr, None, RunSpec(n_steps=3))                              # Euler, no probes
        sim.backend.run_batch(Xr, None, RunSpec(n_steps=3, integrator=HEUN))             # general, no probes
        sim.predict(X)
    for key in (False, True):
        sigs = _relax.kernel(key, False).signatures   # (the dense circuits kernel: no sparse projections)
        assert len(sigs) == 2, (key, sigs)
        assert {str(s[0].dtype) for s in sigs} == {"float64", "float32"}


def test_a_plain_run_compiles_no_general_path():
    """A plain run (Euler, fixed steps) takes the Euler variant, which has no Heun or tolerance code; a Heun run or
    one with a tolerance gets the general variant.  An Euler run of the general variant (a tolerance that is never
    reached) gives the Euler variant's numbers to rounding."""
    assert _relax.kernel(False) is not _relax.kernel(True)
    assert _relax.kernel(False) is _relax.kernel(False)
    net = layered("tanh")
    X, Y = np.ones((2, 5)), np.zeros((2, 3))
    a = ns.Simulator(net, backend="numba", seed=0)
    b = ns.Simulator(net, backend="numba", seed=0)
    ra = a.run(X, Y, steps=4, mode="clamp", learn=True)
    rb = b.run(X, Y, steps=4, mode="clamp", learn=True, tol=1e-300)
    assert ra.steps == rb.steps == 4
    np.testing.assert_allclose(ra.energy, rb.energy, rtol=1e-12, atol=0)
    for k in a.weights:
        np.testing.assert_allclose(a.weights[k], b.weights[k], rtol=1e-12, atol=1e-15)


def test_heun_buffers_only_allocated_for_heun():
    net = layered("tanh")
    sim = ns.Simulator(net, backend="numba", seed=0)
    X, Y = np.ones((4, 5)), np.zeros((4, 3))
    sim.run(X, Y, steps=3, mode="clamp")
    assert sim.backend._work2[False].size == _relax.N_WORK2
    sim.run(X, Y, steps=3, mode="clamp", integrator="heun")
    assert sim.backend._work2[True].shape == (_relax.N_WORK2, 4 * sim.plan.n_units)


def test_blas_threads_option_same_result_and_validated():
    """``backend_options={"blas_threads": 1}`` only changes how many threads the BLAS products use."""
    net = layered("tanh")
    rng = np.random.default_rng(11)
    X, Y = rng.normal(size=(24, 5)), rng.normal(size=(24, 3))
    a = ns.Simulator(net, backend="numba", seed=2, backend_options={"blas_threads": 1})
    b = ns.Simulator(net, backend="reference", seed=2)
    ra, rb = a.learn(X, Y, steps=25), b.learn(X, Y, steps=25)
    close(ra.energy, rb.energy, "energy")
    for k, v in b.weights.items():
        close(a.weights[k], v, k)
    for bad in (0, -1, 1.5, True, "2", "Auto"):
        with pytest.raises(ValueError, match="blas_threads"):
            ns.Simulator(net, backend="numba", backend_options={"blas_threads": bad})
    from neurosim.backends.numba.backend import _ncpu
    n = _ncpu()
    with pytest.raises(ValueError, match=rf"blas_threads={n + 1} exceeds the {n} core\(s\).*Use at most {n}"):
        ns.Simulator(net, backend="numba", backend_options={"blas_threads": n + 1})


def test_removed_and_unknown_backend_options_are_refused_with_the_valid_keys():
    """The helper thread of ``threads=2`` is gone: passing ``threads`` (or its ``split_min``) says it was
    removed and lists the keys that remain; a typo lists them too."""
    net = layered("tanh")
    for key, val in (("threads", 2), ("threads", 1), ("split_min", 1)):
        with pytest.raises(ValueError, match=rf"its options: \['blas_threads'\]; '{key}' was removed"):
            ns.Simulator(net, backend="numba", backend_options={key: val})
    with pytest.raises(ValueError, match=r"no option\(s\) \['blas_thread'\]; its options: \['blas_threads'\]$"):
        ns.Simulator(net, backend="numba", backend_options={"blas_thread": 1})


def test_the_default_blas_threading_follows_the_measured_speed():
    """``blas_threads="auto"``: the first call of a workload is not measured, the next TRIAL calls alternate one
    thread and the default, then the option with the lower recent median runs and every EXPLORE-th call tries
    the other -- driven here with made-up timings, no clock."""
    from neurosim.backends.numba.backend import _AdaptiveBlas
    auto = _AdaptiveBlas()
    if auto.one is None:
        pytest.skip("no OpenBLAS with a per-call thread setting: BLAS's default always runs")
    key = ("pc", 256, 20, False, True)
    speed = {True: 0.036, False: 0.024}   # quiet machine: the default (two threads) is faster

    def call():
        one = auto.pick(key)
        auto.record(key, one, speed[one])
        return one
    first = [call() for _ in range(1 + auto.TRIAL)]
    assert first == [False] + [True, False] * (auto.TRIAL // 2)     # compile call, then alternate
    seq = [call() for _ in range(16)]                                # calls 8..23: explorations at 8, 16
    assert [i for i, one in enumerate(seq) if one] == [0, 8]
    speed.update({True: 0.054, False: 0.175})                       # busy machine: the default collapses
    seq = [call() for _ in range(24)]
    assert sum(seq[8:]) >= 14                                        # one thread within a few calls
    assert auto.choices()[key] == "1"
    speed.update({True: 0.036, False: 0.024})                       # quiet again
    seq = [call() for _ in range(40)]
    assert sum(seq[24:]) <= 2 and auto.choices()[key] == "default"  # back within a few exploration periods


def test_default_and_single_threaded_blas_train_alike():
    from neurosim.backends.numba.backend import _ncpu
    """blas_threads="auto" may run a batch with one or two BLAS threads: training agrees with one and two threads
    and with the default (OpenBLAS splits a GEMM's output between its threads, so each element is summed in the
    same order)."""
    net = ns.hierarchy([12, 40, 40, 5], phi="tanh", lr=0.01)
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(64, 12)), rng.normal(size=(64, 5))
    sims = [ns.Simulator(net, backend="numba", seed=1, backend_options=o)
            for o in ({"blas_threads": "auto"}, {"blas_threads": 1}, {"blas_threads": min(2, _ncpu())}, None)]
    for _ in range(6):
        for sim in sims:
            sim.step(X, Y, steps=10)
    for k in sims[0].weights:
        close(sims[1].weights[k], sims[0].weights[k], k)
        close(sims[2].weights[k], sims[0].weights[k], k)
        close(sims[3].weights[k], sims[0].weights[k], k)


def test_load_aware_blas_threading_decides_from_the_injected_signals():
    """``blas_threads="auto"``: before each call, threads = min(BLAS's, max(1, cores - runnable threads of other
    processes)), and one thread after a call in which the calling thread was descheduled (CPU share below
    CPU_SHARE_MIN) -- driven with injected signals, no clock and no /proc."""
    from neurosim.backends.numba.backend import _LoadAwareBlas
    others = {"n": 0}
    auto = _LoadAwareBlas(ncpu=2, others=lambda: others["n"], blas_max=2)
    if auto.setter is None:
        pytest.skip("no OpenBLAS with a per-call thread setting: BLAS's default always runs")
    key = ("pc", 256, 20, False, True)
    assert auto.threads(key) is None                  # quiet: BLAS's own setting (2 threads)
    for n in (1, 2, 5):                               # any other runnable process on 2 cores: one thread
        others["n"] = n
        assert auto.threads(key) == 1
    others["n"] = 0
    auto.record(key, None, 0.050, 0.030)             # descheduled for 40% of the previous call
    assert auto.threads(key) == 1
    auto.record(key, 1, 0.030, 0.0295)              # ran undisturbed: back to BLAS's setting
    assert auto.threads(key) is None
    assert auto.threads(("pc", 64, 20, False, True)) is None   # another workload has its own history
    big = _LoadAwareBlas(ncpu=8, others=lambda: others["n"], blas_max=8)
    assert [big.decide(o, 1.0) for o in (0, 1, 3, 7, 12)] == [8, 7, 5, 1, 1]
    assert big.decide(0, 0.5) == 1
    assert [_LoadAwareBlas(ncpu=8, others=lambda: 0, blas_max=4).decide(o, 1.0) for o in (0, 3, 5)] == [4, 4, 3]


def test_load_aware_blas_reads_the_machine_and_trains_alike():
    """On Linux the signals come from /proc (a non-negative count); training with ``"auto"``, ``"timed"`` and
    ``"blas"`` agrees with one thread."""
    from neurosim.backends.numba.backend import _LoadAwareBlas, _ProcSignals
    try:
        sig = _ProcSignals.shared()
    except OSError:
        pytest.skip("no /proc")
    assert sig.others_running() >= 0
    assert _LoadAwareBlas().fallback is None
    net = ns.hierarchy([12, 40, 40, 5], phi="tanh", lr=0.01)
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(32, 12)), rng.normal(size=(32, 5))
    sims = [ns.Simulator(net, backend="numba", seed=1, backend_options={"blas_threads": o})
            for o in (1, "auto", "timed", "blas")]
    for _ in range(4):
        for sim in sims:
            sim.step(X, Y, steps=10)
    for sim in sims[1:]:
        for k in sims[0].weights:
            close(sim.weights[k], sims[0].weights[k], k)


def test_what_the_blas_threading_chose_is_public():
    """``sim.last_run`` (the numba backend's ``last_run``) states the BLAS threads each kernel call ran with and the
    setting, and ``backend.blas_calls`` counts them: "auto" driven with injected signals (one thread beside other
    runnable processes, BLAS's two when none), a fixed int, and a batch up to SMALL_BATCH (no BLAS: None)."""
    net = ns.hierarchy([12, 40, 40, 5], phi="tanh", lr=0.01)
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(32, 12)), rng.normal(size=(32, 5))
    sim = ns.Simulator(net, backend="numba", seed=1)
    assert sim.last_run is None
    auto = sim.backend._auto_blas
    if auto.setter is None or auto.fallback is not None:
        pytest.skip("no OpenBLAS with a per-call thread setting or no /proc: the load-aware choice does not run")
    auto.ncpu, auto.blas_max, auto.CPU_SHARE_MIN = 2, 2, 0.0
    auto._others = lambda: 3
    sim.step(X, Y, steps=3)
    assert sim.last_run == {"blas_policy": "auto", "blas_threads": 1, "batch_size": 32, "row_blocks": 1, "block_workers": 1}
    auto._others = lambda: 0
    sim.step(X, Y, steps=3)
    assert sim.last_run == {"blas_policy": "auto", "blas_threads": 2, "batch_size": 32, "row_blocks": 1, "block_workers": 1}
    sim.step(X[:4], Y[:4], steps=3)
    assert sim.last_run == {"blas_policy": "auto", "blas_threads": None, "batch_size": 4, "row_blocks": 1, "block_workers": 1}
    assert sim.backend.blas_calls == {1: 1, 2: 1, None: 1}
    one = ns.Simulator(net, backend="numba", seed=1, backend_options={"blas_threads": 1})
    one.step(X, Y, steps=3)
    assert one.last_run == {"blas_policy": 1, "blas_threads": 1, "batch_size": 32, "row_blocks": 1, "block_workers": 1}
    assert ns.Simulator(net, backend="reference").last_run is None


def test_a_kernels_cache_name_follows_its_sources(tmp_path, monkeypatch):
    """numba checks only a cached kernel's own file; the digest of every source a kernel is compiled from is part
    of its name, so an edited callee gives new cache files instead of a stale kernel."""
    import sys
    import types

    from neurosim.backends.numba import _specialise
    src = tmp_path / "fake_callees.py"
    src.write_text("X = 1\n")
    mod = types.ModuleType("fake_callees")
    mod.__file__ = str(src)
    monkeypatch.setitem(sys.modules, "fake_callees", mod)

    def f():
        return 0
    f.__module__ = "fake_callees"
    monkeypatch.setattr(_specialise, "_DIGESTS", {})
    d1 = _specialise._sources_digest(f, (mod,))
    src.write_text("X = 2\n")
    monkeypatch.setattr(_specialise, "_DIGESTS", {})
    d2 = _specialise._sources_digest(f, (mod,))
    assert d1 != d2
    assert _relax.kernel(False).py_func.__qualname__.endswith(_specialise._sources_digest(
        _relax._make_kernel(False), _specialise.core_modules()))
