"""Batches relaxed in row blocks (``neurosim.backends.numba.backend.row_blocks``): the numba backend splits a batch
of ``2 * SPLIT_ROWS`` items or more into independent blocks, relaxes them (on worker threads, or in turn on one) and
learns once from the whole batch.  Here ``SPLIT_ROWS`` is lowered so that small batches take that path; every result
is checked against the NumPy reference and against the same batch relaxed whole."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim.backends.numba import backend as nb_backend

from test_fast_paths import close, compare, compare_inits, dag, layered
from test_sparse import _dag as sparse_dag


def _two_workers():
    return nb_backend._ncpu() >= 2 and nb_backend._blas_default_threads(nb_backend._ncpu()) >= 2


def _blas_get(setter):
    """OpenBLAS's process-wide thread count getter of the library ``setter`` (a ``_BlasThreads``) sets."""
    import ctypes
    get = getattr(setter.lib, "openblas_get_num_threads", None) or getattr(setter.lib, "scipy_openblas_get_num_threads")
    get.restype = ctypes.c_int
    return get


@pytest.fixture
def split10(monkeypatch):
    """Batches of 20 or more items relax in blocks of at least 10 rows (above SMALL_BATCH: BLAS products)."""
    monkeypatch.setattr(nb_backend, "SPLIT_ROWS", 10)


def test_the_blocks_depend_on_the_batch_size_alone():
    rb = nb_backend.row_blocks
    assert nb_backend.SPLIT_ROWS == 128
    assert rb(1) is None and rb(255) is None
    assert rb(256) == [(0, 128), (128, 256)]
    assert rb(300) == [(0, 150), (150, 300)]
    blocks = rb(1000)
    assert len(blocks) == 7 and blocks[0][0] == 0 and blocks[-1][1] == 1000
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
    assert {r1 - r0 for r0, r1 in blocks} == {142, 143}


def test_who_runs_the_blocks(split10):
    """The workers come from the settings, never from the load: an int ``blas_threads``, or for "auto"/"timed" the
    cores (BLAS's own threads); "blas" and one thread run the blocks in turn with the policy's BLAS threads."""
    if not _two_workers():
        pytest.skip("one core (or one BLAS thread): every block runs in turn")
    net = layered("tanh")
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(24, 5)), rng.normal(size=(24, 3))
    default = nb_backend._blas_default_threads(nb_backend._ncpu())
    cases = [(None, 24, 2, 2, 1), ("auto", 24, 2, 2, 1), ("timed", 24, 2, 2, 1), (2, 24, 2, 2, 1),
             (1, 24, 2, 1, 1), ("blas", 24, 2, 1, default), (1, 19, 1, 1, 1)]
    for threads, B, blocks, workers, blas in cases:
        sim = ns.Simulator(net, backend="numba", seed=0, backend_options={"blas_threads": threads})
        sim.learn(X[:B], Y[:B], steps=3)
        lr = sim.last_run
        assert (lr["row_blocks"], lr["block_workers"], lr["blas_threads"]) == (blocks, workers, blas), (threads, B, lr)


@pytest.mark.parametrize("B", [24, 35])
@pytest.mark.parametrize("phi", ["tanh", "leaky_relu"])
def test_blocks_train_as_the_reference(split10, B, phi):
    """Biases, multipliers, precisions and learning over two batches; 2 and 3 blocks (35 = 12 + 12 + 11)."""
    a, _ = compare(layered(phi), B)
    assert a.last_run["row_blocks"] == B // 10


@pytest.mark.parametrize("integrator", ["euler", "heun"])
def test_blocks_on_a_dag_with_dynamic_errors_skips_and_nudging(split10, integrator):
    a, _ = compare(dag(), 24, integrator=integrator, steps=25)
    assert a.last_run["row_blocks"] == 2
    a, _ = compare(dag(), 24, integrator=integrator, steps=25, mode="nudge", learn=False)
    assert a.last_run["row_blocks"] == 2
    compare(layered("tanh"), 24, mode="free", learn=False)


@pytest.mark.parametrize("kind", ["sgd", "adam", "tau_eps"])
def test_blocks_with_sparse_projections(split10, kind):
    net = sparse_dag(kind)
    a = ns.Simulator(net, backend="numba", seed=0)
    b = ns.Simulator(net, backend="reference", seed=0)
    rng = np.random.default_rng(4)
    for _ in range(2):
        X, Y = rng.normal(size=(22, a.plan.n_input)), rng.normal(size=(22, a.plan.n_target))
        ra, rb = a.learn(X, Y, steps=20), b.learn(X, Y, steps=20)
        assert a.last_run["row_blocks"] == 2
        close(ra.energy, rb.energy, "energy")
    for k, v in b.weights.items():
        dense = (lambda w: w.toarray() if hasattr(w, "toarray") else w)
        close(dense(a.weights[k]), dense(v), f"weights[{k}]")


def test_probes_of_an_item_in_a_later_block(split10):
    """The probed item is row 17 of 24: in the second block, at its row 5."""
    probes = [ns.Probe(n, v, every=1, item=17) for n in ("h1", "output") for v in ("x", "eps", "mu")]
    probes += [ns.Probe("h2", "x", every=3, item=17), ns.Probe("h2", "energy", every=1)]
    compare(layered("tanh"), 24, probes=probes, steps=20)


def test_blocks_equal_the_whole_batch_on_one_and_two_threads(monkeypatch):
    """The same batches relaxed whole, in blocks in turn (one thread) and in blocks at once (two threads, set and
    by "auto"): states, outputs and weights agree (the energies are summed in another order)."""
    net = ns.hierarchy([12, 40, 40, 5], phi="tanh", lr=0.01, optimizer=ns.Adam())
    rng = np.random.default_rng(8)
    data = [(rng.normal(size=(48, 12)), rng.normal(size=(48, 5))) for _ in range(3)]
    runs = {}
    for label, rows, threads, workers in (("whole", 10**9, 1, 1), ("blocks, 1 thread", 16, 1, 1),
                                          ("blocks, 2 threads", 16, 2, 2), ("blocks, auto", 16, "auto", 2)):
        if workers > 1 and not _two_workers():
            continue
        monkeypatch.setattr(nb_backend, "SPLIT_ROWS", rows)
        sim = ns.Simulator(net, backend="numba", seed=3, backend_options={"blas_threads": threads})
        res = [sim.step(X, Y, steps=15) for X, Y in data]
        assert sim.last_run["row_blocks"] == (1 if rows > 48 else 3)
        assert sim.last_run["block_workers"] == workers
        runs[label] = (sim, res)
    sim0, res0 = runs.pop("whole")
    for label, (sim, res) in runs.items():
        for r, r0 in zip(res, res0):
            close(r.energy, r0.energy, f"energy ({label})", tol=1e-12)
            close(r.y, r0.y, f"y ({label})", tol=1e-12)
            close(r.y0, r0.y0, f"y0 ({label})", tol=1e-12)
        for k in sim0.weights:
            close(sim.weights[k], sim0.weights[k], f"{k} ({label})", tol=1e-12)
        st, st0 = sim.backend.state(), sim0.backend.state()
        for k in st0:
            close(st[k], st0[k], f"state {k} ({label})", tol=1e-12)


@pytest.mark.parametrize("B", [200, 300])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_real_batches_train_alike_on_one_and_two_threads(dtype, B):
    """At real sizes (batch 200: whole; 300: two blocks of 150), float32 included, training on one thread and on
    two threads gives the same model: the batch size, not the threads, fixes the blocks and so the arithmetic
    (review: with blocks chosen by the thread count, batches of 128-255 in blocks of 64-127 rows on two threads and
    whole on one trained float32 models 4.5e-3 apart)."""
    if not _two_workers():
        pytest.skip("one core: no two-thread run to compare")
    net = ns.hierarchy([16, 48, 48, 6], phi="tanh", lr=0.01, optimizer=ns.Adam())
    rng = np.random.default_rng(3)
    data = [(rng.normal(size=(B, 16)), rng.normal(size=(B, 6))) for _ in range(4)]
    sims = {}
    for threads in (1, 2):
        sim = ns.Simulator(net, backend="numba", seed=1, dtype=dtype, backend_options={"blas_threads": threads})
        for X, Y in data:
            sim.step(X, Y, steps=10)
        assert sim.last_run["row_blocks"] == (2 if B >= 256 else 1)
        sims[threads] = sim
    tol = 1e-6 if dtype == "float32" else 1e-12
    for k, w in sims[1].weights.items():
        np.testing.assert_allclose(sims[2].weights[k], w, rtol=tol, atol=tol, err_msg=k)


def test_previous_state_and_set_state_continue_in_blocks(split10):
    def two_blocks(sim):
        assert sim.last_run["row_blocks"] == 2
    a, b, X, Y = compare_inits(20, two_blocks)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(20, a.plan.n_units))
    e = rng.normal(size=(20, a.plan.n_units))
    a.backend.set_state(x, e)
    b.backend.set_state(x, e)
    ra = a.run(X, Y, steps=10, mode="clamp", init="previous")
    rb = b.run(X, Y, steps=10, mode="clamp", init="previous")
    close(ra.energy, rb.energy, "energy after set_state")
    for name in rb.populations:
        close(ra.x[name], rb.x[name], f"x[{name}] after set_state")


def test_a_tolerance_or_dt_decay_relaxes_the_batch_whole(split10):
    """Both act on the whole batch (max |dx/dt| over every item; the batch's energy), so no blocks."""
    sim = ns.Simulator(layered("tanh"), backend="numba", seed=0)
    rng = np.random.default_rng(2)
    X, Y = rng.normal(size=(24, 5)), rng.normal(size=(24, 3))
    sim.run(X, Y, steps=50, tol=1e-3)
    assert sim.last_run["row_blocks"] == 1
    sim.run(X, Y, steps=20, dt_decay=0.5)
    assert sim.last_run["row_blocks"] == 1
    sim.run(X, Y, steps=20)
    assert sim.last_run["row_blocks"] == 2


@pytest.mark.parametrize("bad_rows", [[3], [13, 22], [22]])
def test_divergence_in_one_block_reports_as_the_whole_batch(monkeypatch, bad_rows):
    """Items that diverge in one block (or in both): the step, the population and the records kept are those of
    the batch relaxed whole."""
    net = ns.hierarchy([4, 6, 3], phi="linear", lr=0.01)
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(24, 4)), rng.normal(size=(24, 3))
    X[bad_rows] *= 1e150
    Y[bad_rows[-1:]] *= 1e155
    out = {}
    for label, rows in (("whole", 10**9), ("blocks", 10)):
        monkeypatch.setattr(nb_backend, "SPLIT_ROWS", rows)
        sim = ns.Simulator(net, backend="numba", seed=0, dt=0.5,
                           probes=[ns.Probe("h1", "x", every=1, item=bad_rows[0])])
        with pytest.raises(ns.DivergenceError) as err:
            sim.learn(X, Y, steps=40)
        out[label] = (err.value.step, err.value.population, sim.data[sim.probes[0]].shape,
                      sim.weights["W1"].copy())
    assert out["blocks"][:3] == out["whole"][:3]
    np.testing.assert_array_equal(out["blocks"][3], out["whole"][3])   # no weight update after a divergence


def test_state_after_blocks_whole_runs_and_checkpoints(split10, tmp_path):
    """The newest state lives in the blocks' buffers after a run in blocks: state(), a following whole-batch run
    from 'previous' (a tolerance stop) and a checkpoint see it."""
    net = layered("tanh", tau_eps=0.3)
    a = ns.Simulator(net, backend="numba", seed=2)
    b = ns.Simulator(net, backend="reference", seed=2)
    rng = np.random.default_rng(9)
    X, Y = rng.normal(size=(24, 5)), rng.normal(size=(24, 3))
    for sim in (a, b):
        sim.learn(X, Y, steps=12)
    sa, sb = a.backend.state(), b.backend.state()
    for k in sb:
        close(sa[k], sb[k], f"state {k}")
    for sim in (a, b):
        sim.learn(X, Y, steps=12, init="previous")
    ra = a.run(X, Y, steps=300, tol=1e-3, init="previous")
    rb = b.run(X, Y, steps=300, tol=1e-3, init="previous")
    assert a.last_run["row_blocks"] == 1 and ra.steps == rb.steps
    for name in rb.populations:
        close(ra.x[name], rb.x[name], f"x[{name}] after a whole run from blocks")
    a.learn(X, Y, steps=12, init="previous")
    path = a.save_checkpoint(tmp_path / "ck.npz")
    c = ns.Simulator(net, backend="numba", seed=2)
    c.load_checkpoint(path)
    for k in ("x", "eps"):
        close(c.backend.state()[k], a.backend.state()[k], f"checkpointed state {k}")
    ra, rc = (s.run(X, Y, steps=10, init="previous") for s in (a, c))
    close(rc.energy, ra.energy, "a run resumed from the checkpoint")


def test_a_failing_block_waits_for_the_others_before_raising(split10, monkeypatch):
    """A block that raises (or an interrupt while waiting) must not leave another block still writing the shared
    buffers after run_batch has returned: it raises only once every started block has finished."""
    import threading
    import time

    if not _two_workers():
        pytest.skip("one core: blocks run in turn")
    finished = []
    started = threading.Barrier(2, timeout=10)

    def fake_kernel(general, sparse=True):
        def run(s, *args):
            started.wait()   # both blocks are running
            if s[0, 0] == 1.0:   # the first block (its result is collected first) fails at once
                finished.append("first")
                raise RuntimeError("block failed")
            time.sleep(0.3)
            finished.append("slow")
        return run

    sim = ns.Simulator(layered("tanh"), backend="numba", seed=0, backend_options={"blas_threads": 2})
    monkeypatch.setattr(nb_backend, "kernel", fake_kernel)
    X, Y = np.ones((24, 5)), np.zeros((24, 3))
    X[12:] = 2.0
    with pytest.raises(RuntimeError, match="block failed"):
        sim.backend.run_batch(X, Y, ns.backends.base.RunSpec(n_steps=3))
    assert finished == ["first", "slow"]
    assert len(nb_backend.block_pool()._threads) <= nb_backend._ncpu()


def test_previous_start_after_the_integrator_changes(split10):
    """Heun and Euler runs keep block buffers of their own: an Euler run from 'previous' after Heun batches (and
    the reverse) starts from the newest state, wherever it is (review: it started from an older one)."""
    net = ns.hierarchy([8, 20, 20, 4], phi="tanh", lr=0.01)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(40, 8)), rng.normal(size=(40, 4))
    for first, then in (("heun", "euler"), ("euler", "heun")):
        a = ns.Simulator(net, backend="numba", seed=0, integrator=first)
        b = ns.Simulator(net, backend="reference", seed=0, integrator=first)
        for sim in (a, b):
            sim.step(X[:20], Y[:20], steps=10)
            sim.step(X[20:], Y[20:], steps=10)
        assert a.last_run["row_blocks"] == 2
        ra = a.run(X[20:], Y[20:], steps=3, integrator=then, init="previous")
        rb = b.run(X[20:], Y[20:], steps=3, integrator=then, init="previous")
        close(ra.energy, rb.energy, f"energy ({first} then {then})")
        for name in rb.populations:
            close(ra.x[name], rb.x[name], f"x[{name}] ({first} then {then})")


@pytest.mark.parametrize("init", ["feedforward", "previous"])
def test_the_state_after_a_divergence_is_the_failing_steps(split10, init):
    """The whole batch stops every item at the failing step; so do the blocks (the healthy one is relaxed again to
    that step), so the state, the outputs and a later 'previous' start are the whole batch's."""
    net = ns.hierarchy([4, 6, 3], phi="linear", lr=0.01)
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(24, 4)), rng.normal(size=(24, 3))
    Xb, Yb = X.copy(), Y.copy()
    Xb[20] *= 1e150
    Yb[20] *= 1e155
    states = {}
    for label, backend, rows in (("reference", "reference", 10), ("whole", "numba", 10**9), ("blocks", "numba", 10)):
        nb_backend.SPLIT_ROWS = rows
        sim = ns.Simulator(net, backend=backend, seed=0, dt=0.5)
        sim.run(X, Y, steps=5)
        with pytest.raises(ns.DivergenceError) as err:
            sim.run(Xb, Yb, steps=40, init=init)
        states[label] = (err.value.step, err.value.population, sim.backend.state())
    for label in ("whole", "blocks"):
        assert states[label][:2] == states["reference"][:2]
        ok = np.ones(24, bool)
        ok[20] = False
        for k in ("x", "mu"):
            close(states[label][2][k][ok], states["reference"][2][k][ok], f"{label} state {k} after the divergence")


def test_an_energy_sum_that_overflows_is_a_divergence_in_blocks_too(split10):
    """Each block's sum of pi d^2 is finite while the batch's overflows: the whole kernel (and the reference) stop
    there, and so do the blocks (review: they returned finite energies of ~1e305)."""
    net = ns.hierarchy([4, 6, 3], phi="linear", lr=0.01)
    X, Y = np.zeros((24, 4)), np.full((24, 3), 2e153)   # pi d^2 = 4e306 per unit: 12 rows sum to 1.4e308
    out = {}
    for label, backend, rows in (("reference", "reference", 10), ("whole", "numba", 10**9), ("blocks", "numba", 10)):
        nb_backend.SPLIT_ROWS = rows
        sim = ns.Simulator(net, backend=backend, seed=0, dt=0.1)
        with pytest.raises(ns.DivergenceError) as err:
            sim.run(X, Y, steps=3)
        out[label] = (err.value.step, err.value.population)
    assert out["blocks"] == out["whole"] == out["reference"]
    nb_backend.SPLIT_ROWS = 10
    sim = ns.Simulator(net, backend="numba", seed=0, dt=0.1)
    r = sim.run(X[:10], Y[:10], steps=3)      # one block of the same rows: its own sum is finite
    assert np.all(np.isfinite(r.energy))


def test_blocks_run_in_turn_once_the_interpreter_shuts_down(tmp_path):
    """concurrent.futures takes no new work once the interpreter has begun to exit (a non-daemon thread still
    training after the main thread returned, an atexit handler): the blocks then run in turn (review: a
    RuntimeError 'cannot schedule new futures after shutdown')."""
    import subprocess
    import sys
    if nb_backend._ncpu() < 2:
        pytest.skip("one core: blocks run in turn anyway")
    script = tmp_path / "late.py"
    script.write_text(
        "import atexit, threading, time\n"
        "import numpy as np\n"
        "import neurosim as ns\n"
        "from neurosim.backends.numba import backend as nb\n"
        "nb.SPLIT_ROWS = 10\n"
        "net = ns.hierarchy([8, 24, 24, 4], phi='tanh', lr=0.01)\n"
        "rng = np.random.default_rng(1)\n"
        "X, Y = rng.normal(size=(24, 8)), rng.normal(size=(24, 4))\n"
        "sim = ns.Simulator(net, backend='numba', seed=0, backend_options={'blas_threads': 2})\n"
        "sim.learn(X, Y, steps=5)\n"
        "assert sim.last_run['block_workers'] == 2, sim.last_run\n"
        "def late(tag):\n"
        "    sim.learn(X, Y, steps=5)\n"
        "    print(tag, 'ok', sim.last_run['row_blocks'], flush=True)\n"
        "def worker():\n"
        "    time.sleep(1.0)\n"
        "    late('thread')\n"
        "threading.Thread(target=worker).start()\n"
        "atexit.register(late, 'atexit')\n")
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "thread ok 2" in res.stdout and "atexit ok 2" in res.stdout, (res.stdout, res.stderr[-2000:])


def test_blocks_do_not_consult_the_load_but_whole_batches_do(split10):
    """Beside busy processes "auto" still relaxes a batch in blocks on two workers (they meet once per relaxation, so
    the load costs them only its share of the cores; one worker chosen from the load was slower, see the class
    docstring), records nothing about the load for it, and keeps choosing one BLAS thread for a whole batch."""
    if not _two_workers():
        pytest.skip("one core: the blocks run in turn")
    sim = ns.Simulator(layered("tanh"), backend="numba", seed=0)
    auto = sim.backend._auto_blas
    if auto.setter is None or auto.fallback is not None:
        pytest.skip("no OpenBLAS per-call threads or no /proc: the load-aware choice does not run")
    auto.ncpu, auto.blas_max = 2, 2
    auto._others = lambda: 5
    X, Y = np.ones((24, 5)), np.zeros((24, 3))
    for _ in range(2):
        sim.step(X, Y, steps=3)
        assert sim.last_run["block_workers"] == 2 and sim.last_run["row_blocks"] == 2
        assert sim.last_run["blas_threads"] == 1
    assert auto.last_share == {} and auto.counts == {}
    sim.step(X[:19], Y[:19], steps=3)     # below 2 * SPLIT_ROWS: whole, and the load decides
    assert sim.last_run["row_blocks"] == 1 and sim.last_run["blas_threads"] == 1
    assert sim.backend.blas_calls == {1: 3}


def test_the_blas_setting_is_restored_across_threads_and_read_as_blas_own(split10):
    """Simulators in two Python threads, one relaxing blocks on two workers and one a whole batch on one BLAS thread,
    change OpenBLAS's process-wide count concurrently: it is BLAS's own again when both end, and the default read
    meanwhile is BLAS's own (review: the process could be left on one thread, and a default cached while a block run
    had set one thread made every later "auto" simulator relax on one worker)."""
    import threading
    if not _two_workers():
        pytest.skip("one core")
    a = ns.Simulator(layered("tanh"), backend="numba", seed=0, backend_options={"blas_threads": 2})
    b = ns.Simulator(layered("tanh"), backend="numba", seed=0, backend_options={"blas_threads": 1})
    if a.backend._one_blas is None:
        pytest.skip("no OpenBLAS per-call thread setting")
    get = _blas_get(a.backend._one_blas)
    before = get()
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(24, 5)), rng.normal(size=(24, 3))
    a.learn(X, Y, steps=2), b.learn(X[:15], Y[:15], steps=2)   # compiled before the race

    seen = []

    def run(sim, n):
        for _ in range(30):
            sim.learn(X[:n], Y[:n], steps=2)
            with nb_backend._BLAS_LOCK:
                if nb_backend._BLAS_STATE["depth"] > 0:
                    seen.append(nb_backend._BLAS_STATE["base"])
    threads = [threading.Thread(target=run, args=(a, 24)), threading.Thread(target=run, args=(b, 15))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert get() == before
    assert all(v == before for v in seen)
    assert nb_backend._BLAS_STATE["depth"] == 0


def test_blocks_on_workers_run_one_blas_thread_and_restore_the_setting(split10, monkeypatch):
    """OpenBLAS's 'per-call' thread setting is the process's in SciPy's pthreads build: the blocks' workers must see
    one thread each for the whole parallel section and the weight update, and the setting must be BLAS's own again
    afterwards (review of this stop: each worker set and restored it, which left the other worker's products on two
    threads, or the whole process on one)."""
    import threading
    if not _two_workers():
        pytest.skip("one core: blocks run in turn")
    sim = ns.Simulator(layered("tanh"), backend="numba", seed=0, backend_options={"blas_threads": 2})
    if sim.backend._one_blas is None:
        pytest.skip("no OpenBLAS per-call thread setting")
    get = _blas_get(sim.backend._one_blas)
    before = get()
    seen = []
    barrier = threading.Barrier(2, timeout=10)

    def fake_kernel(general, sparse=True):
        def run(s, t, iargs, *args):
            if iargs[5] != 2:   # a block (not the LEARN_ONLY call)
                barrier.wait()
            seen.append(get())
        return run

    monkeypatch.setattr(nb_backend, "kernel", fake_kernel)
    X, Y = np.ones((24, 5)), np.zeros((24, 3))
    for _ in range(3):
        sim.backend.run_batch(X, Y, ns.backends.base.RunSpec(n_steps=3, learn=True))
    assert sim.last_run["block_workers"] == 2
    assert seen == [1] * 9          # two blocks and the weight update, three times
    assert get() == before


def test_a_child_forked_during_a_block_run_gets_blas_own_setting_back():
    """A child forked while another thread's call had changed OpenBLAS's count (here: a change in force, as during
    a row-block run) inherits the count but no pop: the fork handler puts BLAS's own setting back and starts the
    count afresh (review: every such child stayed on one BLAS thread with the count at 2)."""
    import os
    if not hasattr(os, "fork") or not _two_workers():
        pytest.skip("no fork, or one core")
    sim = ns.Simulator(layered("tanh"), backend="numba", seed=0, backend_options={"blas_threads": 2})
    setter = sim.backend._one_blas
    if setter is None:
        pytest.skip("no OpenBLAS per-call thread setting")
    get = _blas_get(setter)
    own = get()
    r, w = os.pipe()
    with nb_backend._one_blas_thread(setter):
        assert get() == 1
        pid = os.fork()
        if pid == 0:   # the child: report and leave at once
            try:
                os.write(w, f"{get()} {nb_backend._BLAS_STATE['depth']}".encode())
            finally:
                os._exit(0)
    os.close(w)
    got = os.read(r, 64).decode()
    os.close(r)
    os.waitpid(pid, 0)
    assert got == f"{own} 0", got
    assert get() == own and nb_backend._BLAS_STATE["depth"] == 0
