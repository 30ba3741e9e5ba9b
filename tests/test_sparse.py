"""Sparse projections (``Projection(connectivity=...)``): every kind against the dense equivalent (a dense matrix
with zeros off the pattern, its plasticity masked) on the reference and numba backends, the event-driven engines,
validation errors, weights and checkpoints."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sps

import neurosim as ns
from neurosim.connectivity import FixedFanIn, Pattern, ReceptiveField

TOL = 1e-10


def _replace(c, **conns):
    projs = tuple(dataclasses.replace(p, connectivity=conns[p.name]) if p.name in conns else p
                  for p in c.projections)
    return dataclasses.replace(c, projections=projs)


def _random_pattern(n_post, n_pre, density, seed):
    m = sps.random(n_post, n_pre, density=density, random_state=seed, format="csr")
    m = m + sps.eye(n_post, n_pre, format="csr")     # no empty row
    return sps.csr_array(m)


def _dag(kind):
    """Two inputs -> h (one sparse and one dense projection into h, so their sums accumulate) -> out, plus a
    sparse projection input a -> out (feedback of a fixed input is skipped) and one h -> out."""
    P = ns.ValuePopulation
    pops = (P("a", 12), P("b", 7), P("h", 16, "tanh"), P("out", 5))
    errs = (ns.ErrorPopulation("eps_h", "h", tau_eps=0.5 if kind == "tau_eps" else 0.0),
            ns.ErrorPopulation("eps_out", "out"))
    opt = ns.Adam() if kind == "adam" else ns.SGD(momentum=0.9, weight_decay=1e-3)
    heb = ns.Hebbian(lr=0.05, optimizer=opt)
    projs = (ns.Projection("Wa", "a", "h", bias=True, plasticity=heb, multiplier=0.7,
                           connectivity=_random_pattern(16, 12, 0.2, 3)),
             ns.Projection("Wb", "b", "h", plasticity=heb),
             ns.Projection("Wo", "h", "out", bias=True, plasticity=heb, multiplier=0.8,
                           connectivity=FixedFanIn(4, seed=2)),
             ns.Projection("Wao", "a", "out", plasticity=heb, connectivity=(np.arange(6) * 2, np.arange(10))))
    return ns.Circuit(pops, errs, projs, (ns.Clamp("a"), ns.Clamp("b"), ns.Clamp("out", "target")), name="dag")


def circuits():
    """(label, sparse circuit)."""
    import warnings
    base = ns.hierarchy([20, 30, 6], phi="tanh")
    with warnings.catch_warnings():   # "pattern"'s W2 = FixedFanIn(30) over 30 units is dense on purpose
        warnings.simplefilter("ignore", ns.DensePatternWarning)
        full = _replace(base, W1=_random_pattern(30, 20, 0.15, 0), W2=FixedFanIn(30, seed=0))
    out = [
        ("fanin+rf1d", _replace(base, W1=FixedFanIn(5, seed=1), W2=ReceptiveField(7))),
        ("rf2d", _replace(ns.hierarchy([36, 16, 9], phi="tanh", optimizer=ns.Adam(), lr=0.01,
                                       multipliers=[0.5, 1.5]),
                          W1=ReceptiveField(3, dims=2), W2=ReceptiveField(2, dims=2))),
        ("pattern", full),
        ("dag", _dag("sgd")),
        ("dag-adam", _dag("adam")),
        ("dag-tau_eps", _dag("tau_eps")),
    ]
    return out


def _data(c, B, seed):
    rng = np.random.default_rng(seed)
    n_in = sum(c.population(n).size for n in c.inputs)
    n_out = c.population(c.targets[0]).size
    return rng.normal(size=(B, n_in)), rng.normal(size=(B, n_out)) * 0.5


def _dense_twin(c):
    return dataclasses.replace(c, projections=tuple(dataclasses.replace(p, connectivity=None)
                                                    for p in c.projections))


def _pattern_mask(sim, name):
    p = sim.plan
    k = p.proj_index(name)
    indptr, indices = p.sparse_csr(k)
    m = np.zeros(p.weight_shape(k), dtype=bool)
    m[np.repeat(np.arange(indptr.size - 1), np.diff(indptr)), indices] = True
    return m


def _dense_weights(sim):
    return {k: (v.toarray() if isinstance(v, sps.csr_array) else v) for k, v in sim.weights.items()}


def _train(sim, c, B, masks=None, batches=3, steps=8, integrator_ok=True):
    """``batches`` learning steps; with ``masks`` (dense twin) the weights off the pattern are zeroed after each
    update (every optimiser here is elementwise, so this is the masked plasticity).  Returns the per-batch
    (y0, final energy) and the final run's y."""
    out = []
    for i in range(batches):
        X, Y = _data(c, B, 10 + i)
        r = sim.step(X, Y, steps=steps)
        out.append((np.asarray(r.y0).copy(), np.asarray(r.energy).copy()))
        if masks:
            for name, m in masks.items():
                W = sim.weights[name]
                W[~m] = 0.0
                sim.set_weights(name, W=W)
    X, Y = _data(c, B, 99)
    res = sim.run(X, Y, steps=steps)
    return out, res


def _compare(a, b, label):
    (ha, ra), (hb, rb) = a, b
    for (y0a, ea), (y0b, eb) in zip(ha, hb):
        np.testing.assert_allclose(y0a, y0b, rtol=TOL, atol=TOL, err_msg=label)
        np.testing.assert_allclose(ea, eb, rtol=TOL, atol=TOL, err_msg=label)
    _close_state(ra.x, rb.x, TOL, label)


def _close_state(a, b, tol, label=""):
    """Two ``RelaxResult.x`` ({population: array}) to ``tol``."""
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(np.asarray(a[k]), np.asarray(b[k]), rtol=tol, atol=tol, err_msg=f"{label}: {k}")


def _close_weights(sa, sb, label):
    wa, wb = _dense_weights(sa), _dense_weights(sb)
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], rtol=TOL, atol=TOL, err_msg=f"{label}: {k}")


@pytest.mark.parametrize("label,c", circuits(), ids=[lab for lab, _ in circuits()])
@pytest.mark.parametrize("B", [1, 12])
def test_sparse_matches_dense_twin(label, c, B):
    """A sparse circuit relaxes and learns as its dense twin with zeros off the pattern and masked plasticity
    (reference backend), and the numba backend matches the reference (B=1: the small-batch loops; B=12: BLAS
    path of the dense parts), to 1e-10."""
    ref = ns.Simulator(c, backend="reference", dt=0.1, seed=0)
    dense = ns.Simulator(_dense_twin(c), backend="reference", dt=0.1, seed=0)
    dense.load_weights(_dense_weights(ref))
    masks = {name: _pattern_mask(ref, name) for name in ref.plan.sparse_projections}
    assert masks, label
    a = _train(ref, c, B)
    b = _train(dense, c, B, masks=masks)
    _compare(a, b, f"{label} reference sparse vs dense")
    _close_weights(ref, dense, label)
    nb = ns.Simulator(c, backend="numba", dt=0.1, seed=0)
    d = _train(nb, c, B)
    _compare(d, a, f"{label} numba vs reference")
    _close_weights(nb, ref, label)


def test_dense_circuits_run_a_kernel_compiled_without_sparse_code():
    """A circuit without sparse projections runs the numba kernel compiled without their code (``HAS_SPARSE``
    false in its passes); the kernel with it gives that circuit the same numbers, and a sparse circuit gets it."""
    from neurosim.backends.numba import _relax
    c = circuits()[0][1]
    dense = _dense_twin(c)
    assert ns.Simulator(c, backend="numba", seed=0).backend.has_sparse is True
    for B in (1, 12):   # the small-batch loops and the BLAS path
        a = ns.Simulator(dense, backend="numba", dt=0.1, seed=0)
        b = ns.Simulator(dense, backend="numba", dt=0.1, seed=0)
        assert a.backend.has_sparse is False
        b.backend.has_sparse = True   # the kernel sparse circuits run
        _compare(_train(a, c, B), _train(b, c, B), f"dense circuit, kernel without vs with sparse code, B={B}")
        _close_weights(a, b, f"B={B}")
    assert "HAS_SPARSE0" in _relax.kernel(False, False).py_func.__qualname__
    assert "HAS_SPARSE1" in _relax.kernel(False, True).py_func.__qualname__


def test_sparse_heun_nudge_tol_float32():
    """The general relaxation path (Heun, nudge, tol) and float32 run sparse projections on numba as on the
    reference."""
    c = circuits()[0][1]
    X, Y = _data(c, 3, 0)
    for kw, tol in (({"integrator": "heun"}, TOL), ({"dtype": "float32"}, 1e-4)):
        r = ns.Simulator(c, backend="reference", seed=0, **kw)
        n = ns.Simulator(c, backend="numba", seed=0, **kw)
        for mode in ("clamp", "nudge"):
            ra = r.run(X, Y, steps=10, mode=mode, beta=0.3) if mode == "nudge" else r.run(X, Y, steps=10, tol=1e-3)
            rb = n.run(X, Y, steps=10, mode=mode, beta=0.3) if mode == "nudge" else n.run(X, Y, steps=10, tol=1e-3)
            assert ra.steps == rb.steps
            _close_state(ra.x, rb.x, tol, f"{kw} {mode}")
        r.step(X, Y)
        n.step(X, Y)
        _close_weights(n, r, str(kw)) if tol == TOL else None


# ------------------------------------------------------------------------------------------------ patterns
def test_fixed_fan_in_pattern():
    ip, ix = FixedFanIn(7, seed=3).pattern(50, 40, "W")
    assert np.array_equal(ip, np.arange(51) * 7)
    rows = ix.reshape(50, 7)
    assert all(len(set(r)) == 7 for r in rows) and np.all(np.diff(rows, axis=1) > 0)
    assert rows.min() >= 0 and rows.max() < 40
    ip2, ix2 = FixedFanIn(7, seed=3).pattern(50, 40, "W")
    assert np.array_equal(ix, ix2)                      # deterministic in its own seed
    assert not np.array_equal(ix, FixedFanIn(7, seed=4).pattern(50, 40, "W")[1])
    _, ix3 = FixedFanIn(30, seed=0).pattern(5, 40, "W")   # k > n_pre / 4: per-row choice without replacement
    assert all(len(set(r)) == 30 for r in ix3.reshape(5, 30))


def test_receptive_field_windows():
    # 1-D: 4 post units over 12 pre units, width 3: centres (i + 1/2) * 3 - 1/2 = 1, 4, 7, 10
    ip, ix = ReceptiveField(3).pattern(4, 12, "W")
    assert ix.reshape(4, 3).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    # edges are shifted inside: 3 post over 5 pre, width 4: centres 1/3, 2, 11/3 -> 0, 2, 4 -> starts 0, 1, 1
    ip, ix = ReceptiveField(4).pattern(3, 5, "W")
    assert ix.reshape(3, 4).tolist() == [[0, 1, 2, 3], [1, 2, 3, 4], [1, 2, 3, 4]]
    # 2-D: a 2x2 post grid over a 4x4 pre grid, 2x2 patches: post (r, c) sees pre rows/cols 2r..2r+1, 2c..2c+1
    ip, ix = ReceptiveField(2, dims=2).pattern(4, 16, "W")
    assert ix.reshape(4, 4).tolist() == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]


def test_receptive_field_windows_are_centred_for_even_widths_too():
    """Away from the edges every window's centre ``start + (width - 1) / 2`` lies within 1/2 unit of the post
    unit's position ``c_i = (i + 1/2) n_pre / n_post - 1/2``, for odd and even widths (before, an even window was
    centred on ``round(c_i) + 1/2``, up to a whole unit off: 3 post units over 4 pre units with width 2 gave
    post units 1 and 2 the same window [2, 3])."""
    ip, ix = ReceptiveField(2).pattern(3, 4, "W")     # c = 1/6, 3/2, 17/6 -> centres 1/2, 3/2, 5/2
    assert ix.reshape(3, 2).tolist() == [[0, 1], [1, 2], [2, 3]]
    ip, ix = ReceptiveField(4).pattern(3, 12, "W")    # c = 3/2, 11/2, 19/2: exactly centred
    assert ix.reshape(3, 4).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    for n_post in range(1, 14):
        for n_pre in range(1, 20):
            for w in range(1, n_pre + 1):
                start = ReceptiveField(w).pattern(n_post, n_pre, "W")[1].reshape(n_post, w)[:, 0]
                c = (np.arange(n_post) + 0.5) * n_pre / n_post - 0.5
                inside = (c - (w - 1) / 2 >= 0) & (c + (w - 1) / 2 <= n_pre - 1)
                assert np.all(np.abs(start + (w - 1) / 2 - c)[inside] <= 0.5 + 1e-12), (n_post, n_pre, w)
    # 2-D: the same rule per axis (a 3x3 post grid over a 4x4 pre grid, 2x2 patches: rows/cols 0-1, 1-2, 2-3)
    ip, ix = ReceptiveField(2, dims=2).pattern(9, 16, "W")
    assert ix.reshape(9, 4)[4].tolist() == [5, 6, 9, 10]


def test_a_pattern_connecting_everything_warns_that_it_is_dense():
    """FixedFanIn(k) with k = n_pre (or any pattern holding all n_post x n_pre synapses) warns, naming the fix
    (drop connectivity=), and still runs as sparse with the dense results; k < n_pre does not warn."""
    import warnings
    base = ns.hierarchy([10, 8, 3])
    with pytest.warns(ns.DensePatternWarning, match=r"Projection 'W1': FixedFanIn\(k=10, seed=0\) connects every "
                                                    r"one of its 8 post units to all 10 pre units.*drop connectivity="):
        c = _replace(base, W1=FixedFanIn(10))
    with pytest.warns(ns.DensePatternWarning, match=r"Projection 'W2': ReceptiveField\(width=8, dims=1\)"):
        _replace(base, W2=ReceptiveField(8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _replace(base, W1=FixedFanIn(9))
    X, Y = _data(c, 2, 0)
    a = ns.Simulator(c, backend="reference").run(X, Y, steps=5, mode="free")
    b = ns.Simulator(base, backend="reference").run(X, Y, steps=5, mode="free")
    for n in ("h1", "output"):
        np.testing.assert_allclose(a.x[n], b.x[n], rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match=r"FixedFanIn\(k=11\).*use k < 10, or drop connectivity= for a dense"):
        _replace(base, W1=FixedFanIn(11))


def test_validation_errors_name_the_projection_and_fix():
    base = ns.hierarchy([10, 8, 3])
    with pytest.raises(ValueError, match=r"Projection 'W1'.*k <= the 10 units.*use k < 10"):
        _replace(base, W1=FixedFanIn(11))
    with pytest.raises(ValueError, match=r"FixedFanIn: k must be an int >= 1"):
        FixedFanIn(0)
    with pytest.raises(ValueError, match=r"Projection 'W1'.*wider than its pre population"):
        _replace(base, W1=ReceptiveField(11))
    with pytest.raises(ValueError, match=r"Projection 'W1'.*square populations.*8 units"):
        _replace(base, W1=ReceptiveField(2, dims=2))
    with pytest.raises(ValueError, match=r"Projection 'W2'.*post unit\(s\) \[1\] receive no synapse"):
        _replace(base, W2=(np.array([0, 1, 1, 2]), np.array([0, 3])))
    with pytest.raises(ValueError, match=r"Projection 'W2'.*post unit 0 receives pre unit 2 twice"):
        _replace(base, W2=(np.array([0, 2, 3, 4]), np.array([2, 2, 1, 5])))
    with pytest.raises(ValueError, match=r"Projection 'W2'.*indices must lie in \[0, 8\)"):
        _replace(base, W2=(np.array([0, 1, 2, 3]), np.array([0, 8, 1])))
    with pytest.raises(ValueError, match=r"Projection 'W2'.*n_post \+ 1 = 4"):
        _replace(base, W2=(np.array([0, 1, 2]), np.array([0, 1])))
    with pytest.raises(ValueError, match=r"Projection 'W2'.*shape \(3, 7\) but the projection is .* \(3, 8\)"):
        _replace(base, W2=sps.eye(3, 7, format="csr"))
    with pytest.raises(ValueError, match=r"Projection 'W1'.*connectivity must be None"):
        _replace(base, W1="sparse")
    with pytest.raises(ValueError, match=r"Projection 'W1'.*orthogonal.*needs a dense matrix"):
        ns.Projection("W1", "a", "b", init=ns.Init("orthogonal"), connectivity=FixedFanIn(2))


def test_describe_and_init_scale():
    c = _replace(ns.hierarchy([200, 100, 10]), W1=FixedFanIn(20, seed=0))
    text = c.describe()
    assert "W1: input -> h1 bias [sparse FixedFanIn(k=20, seed=0): 2000 synapses, 20 per post unit]" in text
    p = ns.lower(c, seed=0)
    k = p.proj_index("W1")
    assert p.weight_size(k) == 2000
    w = p.W[p.w_off[k]:p.w_off[k] + 2000]
    # xavier_normal with fan_in = nnz / n_post = 20, fan_out = nnz / n_pre = 10: std sqrt(2 / 30) = 0.258
    assert abs(w.std() - np.sqrt(2 / 30)) < 0.02
    assert p.W.size == 2000 + 100 * 10                  # memory grows with the synapses


# ------------------------------------------------------------------------------------------------ weights, checkpoints
def test_weights_round_trip_and_checkpoint(tmp_path):
    c = circuits()[0][1]
    sim = ns.Simulator(c, backend="numba", seed=0)
    X, Y = _data(c, 4, 0)
    sim.step(X, Y)
    w = sim.weights
    assert isinstance(w["W1"], sps.csr_array) and w["W1"].shape == (30, 20) and w["W1"].nnz == 150
    other = ns.Simulator(c, backend="reference", seed=1)
    other.load_weights(w)                              # csr_array back in
    _close_weights(other, sim, "load_weights")
    other.set_weights("W2", W=w["W2"].toarray())       # a dense matrix with zeros off the pattern
    other.set_weights("W2", W=w["W2"].data)            # the synapses in CSR order
    _close_weights(other, sim, "set_weights")
    bad = w["W2"].toarray()
    bad[0, 29] = 1.0
    assert not _pattern_mask(sim, "W2")[0, 29]
    with pytest.raises(ValueError, match=r"projection 'W2' is sparse.*off its pattern"):
        other.set_weights("W2", W=bad)
    with pytest.raises(ValueError, match=r"projection 'W2' is sparse.*off its pattern"):
        other.set_weights("W2", W=sps.csr_array(bad))
    path = sim.save_checkpoint(tmp_path / "ck.npz")
    sim.step(X, Y)
    after = _dense_weights(sim)
    resumed = ns.Simulator(c, backend="numba", seed=0)
    resumed.load_checkpoint(path)
    resumed.step(X, Y)
    for k, v in _dense_weights(resumed).items():
        np.testing.assert_array_equal(v, after[k])     # same code path: exact


def test_weight_norm_probe_reads_synapses():
    c = circuits()[0][1].with_probes(ns.Probe("W1", "weight_norm"))
    sim = ns.Simulator(c, backend="reference", seed=0)
    X, Y = _data(c, 4, 0)
    sim.train(X, Y, epochs=1, batch_size=4, progress=False)
    np.testing.assert_allclose(sim.data["W1.weight_norm"][-1, 0], np.linalg.norm(sim.weights["W1"].data))


# ------------------------------------------------------------------------------------------------ refusals
def test_unsupported_paths_refuse_clearly():
    c = circuits()[0][1]
    with pytest.raises(ns.UnsupportedError, match=r"sparse.*backend='numba' or 'reference'"):
        ns.Simulator(c, backend="brian2")
    with pytest.raises(ValueError, match=r"projection\(s\) \['W1', 'W2'\] are sparse.*vertex form"):
        c.as_graph()
    X, Y = _data(c, 4, 0)
    for backend in ("numba", "reference"):
        sim = ns.Simulator(c, backend=backend)
        for algo in ("fpa", "zil", "ipc", "bp"):
            with pytest.raises(ns.UnsupportedError, match=rf"algorithm '{algo}'.*sparse projection.*'pc' or 'strict'"):
                sim.train(X, Y, epochs=1, algorithm=algo, progress=False)
    lin = _replace(ns.hierarchy([6, 5, 3], phi="linear"), W1=FixedFanIn(2))
    with pytest.raises(ns.UnsupportedError, match=r"theory: projection\(s\) \['W1'\].*sparse.*toarray"):
        ns.theory.equilibrium_energy(ns.Simulator(lin, backend="reference"), X[:, :6], Y[:, :3])
    with pytest.raises(ns.UnsupportedError, match=r"hardware=.*\['W1', 'W2'\] are sparse.*NumbaEngine"):
        ns.Simulator(c, backend="numba", hardware=ns.hardware.HardwareModel(coding="event"))


def test_the_sparse_refusals_name_a_call_that_runs_the_circuit_event_driven():
    """Simulator(hardware=...) and count_pc refuse a sparse circuit and name the engines' public ``relax``; the
    call as written in each message (``...`` filled in) runs the sparse circuit and equals the engine's own
    ``run`` with the same settings (same code path: exactly)."""
    import re

    import neurosim
    from neurosim.hardware.engine import NumbaEngine
    c = dict(circuits())["fanin+rf1d"]
    X, Y = _data(c, 3, 1)
    msgs = []
    for f in (lambda: ns.Simulator(c, backend="numba", hardware=ns.hardware.HardwareModel(coding="event")),
              lambda: ns.hardware.count_pc(c, 5)):
        with pytest.raises(ns.UnsupportedError) as e:
            f()
        msgs.append(str(e.value))
    for msg in msgs:
        call = re.search(r"neurosim\.hardware\.NumbaEngine\(ns\.lower\(circuit\)\)\.relax\([^)]*\)", msg).group(0)
        call = call.replace("steps=...", "steps=6").replace("theta=...", "theta=0.05")
        res = eval(call, {"neurosim": neurosim, "ns": ns, "circuit": c, "X": X, "Y": Y})
        _, ref = _engine_run(NumbaEngine, c, X, Y, 0.05, learn=False)
        np.testing.assert_array_equal(res.y, ref.y)
        np.testing.assert_array_equal(res.sops, ref.sops)
        assert res.sops.sum() > 0 and res.steps == 6
    with pytest.raises(ValueError, match="relax: mode 'clamp' needs the targets Y"):
        NumbaEngine(ns.lower(c)).relax(X)


def test_cost_model_and_map_circuit_refuse_sparse():
    """The clock-driven cost model and the chip mapping count dense matrices (n_pre x n_post synapses per pass):
    they refuse a sparse circuit by name instead of pricing synapses it does not have; its dense twin is counted."""
    c = dict(circuits())["fanin+rf1d"]
    with pytest.raises(ns.UnsupportedError, match=r"count_pc.*\['W1', 'W2'\] are sparse.*sops"):
        ns.hardware.count_pc(c, 5)
    with pytest.raises(ns.UnsupportedError, match=r"map_circuit.*\['W1', 'W2'\] are sparse"):
        ns.hardware.map_circuit(c, "loihi")
    assert ns.hardware.count_pc(_dense_twin(c), 5).synaptic_ops > 0


# ------------------------------------------------------------------------------------------------ event engines
def _engine_run(engine_cls, c, X, Y, theta, seed=0, W=None, learn=True, steps=6, init="feedforward", **kw):
    from neurosim.backends.base import INITS, RunSpec
    from neurosim.hardware.nonideal import Device
    plan = ns.lower(c, seed=seed)
    dev = Device(ns.hardware.HardwareModel(), plan)
    eng = engine_cls(plan)
    spec = RunSpec(n_steps=steps, dt=0.1, learn=learn, init=INITS[init])
    Wr = plan.W.copy() if W is None else W
    return plan, eng.run(X, Y, spec, Wr, plan.b.copy(), dev.tables(), dev.read_sigmas, theta, theta, seed)


def _dense_flat(plan_sparse, plan_dense):
    """The sparse plan's weights laid out as the dense twin's flat W (zeros off the pattern)."""
    W = np.zeros(plan_dense.W.size)
    for k in range(plan_sparse.n_proj):
        o, od = plan_sparse.w_off[k], plan_dense.w_off[k]
        if o < 0:
            continue
        sh = plan_sparse.weight_shape(k)
        if plan_sparse.is_sparse(k):
            indptr, indices = plan_sparse.sparse_csr(k)
            M = sps.csr_array((plan_sparse.W[o:o + indices.size], indices, indptr), shape=sh).toarray()
        else:
            M = plan_sparse.W[o:o + sh[0] * sh[1]].reshape(sh)
        W[od:od + M.size] = M.ravel()
    return W


def _sparse_grad_of_dense(plan_sparse, plan_dense, gW_dense):
    """The dense twin's flat Hebbian directions read on the sparse pattern (CSR order)."""
    out = np.zeros(plan_sparse.W.size)
    for k in range(plan_sparse.n_proj):
        o, od = plan_sparse.w_off[k], plan_dense.w_off[k]
        if o < 0:
            continue
        sh = plan_sparse.weight_shape(k)
        G = gW_dense[od:od + sh[0] * sh[1]].reshape(sh)
        if plan_sparse.is_sparse(k):
            indptr, indices = plan_sparse.sparse_csr(k)
            out[o:o + indices.size] = G[np.repeat(np.arange(sh[0]), np.diff(indptr)), indices]
        else:
            out[o:o + G.size] = G.ravel()
    return out


@pytest.mark.parametrize("label", ["fanin+rf1d", "dag"])
@pytest.mark.parametrize("theta", [0.0, 0.02])
def test_event_engines_sparse_vs_dense_and_twins(label, theta):
    """The event engines on a sparse circuit: the numba kernel equals its NumPy twin, and both equal the dense
    twin with zeros off the pattern (values, events, Hebbian directions on the pattern); synaptic ops count the
    synapses only, so they are fewer than the dense twin's."""
    from neurosim.hardware.engine import NumbaEngine, ReferenceEngine
    c = dict(circuits())[label]
    X, Y = _data(c, 3, 5)
    ps, rs = _engine_run(ReferenceEngine, c, X, Y, theta)
    _, ns_ = _engine_run(NumbaEngine, c, X, Y, theta)
    d = _dense_twin(c)
    pd = ns.lower(d, seed=0)
    _, rd = _engine_run(ReferenceEngine, d, X, Y, theta, W=_dense_flat(ps, pd))
    for a, b, what in ((ns_, rs, "numba vs numpy twin"), (rs, rd, "sparse vs dense")):
        np.testing.assert_allclose(a.x, b.x, rtol=TOL, atol=TOL, err_msg=what)
        np.testing.assert_allclose(a.energy, b.energy, rtol=TOL, atol=TOL, err_msg=what)
        np.testing.assert_array_equal(a.events, b.events, err_msg=what)
    np.testing.assert_array_equal(ns_.sops, rs.sops)
    np.testing.assert_allclose(ns_.gW, rs.gW, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(rs.gW, _sparse_grad_of_dense(ps, pd, rd.gW), rtol=TOL, atol=TOL)
    assert rs.sops.sum() < rd.sops.sum()


@pytest.mark.parametrize("engine", ["reference", "numba"])
def test_event_engine_sparse_read_noise_equals_dense(engine):
    """Per-read multiplicative noise has the variance sigma^2 sum_j w_j^2 s_j^2 of a read, which the zero weights
    off the pattern do not change: with one seed the sparse engine draws the same noise as its dense twin and
    ends in the same state (1e-10).  (The two engines draw from different generators: each against its own
    dense twin.)"""
    from neurosim.hardware.engine import ENGINES
    from neurosim.backends.base import RunSpec
    from neurosim.hardware.nonideal import Device
    cls = ENGINES[engine]
    c = dict(circuits())["fanin+rf1d"]
    d = _dense_twin(c)
    X, Y = _data(c, 2, 1)
    model = ns.hardware.HardwareModel(reads=[ns.hardware.MultiplicativeNoise(0.05)])
    spec = RunSpec(n_steps=5, dt=0.1, learn=True)
    out = []
    for circ in (c, d):
        plan = ns.lower(circ, seed=0)
        dev = Device(model, plan)
        W = plan.W.copy() if circ is c else _dense_flat(ns.lower(c, seed=0), plan)
        out.append(cls(plan).run(X, Y, spec, W, plan.b.copy(), dev.tables(), dev.read_sigmas, 0.0, 0.0, 7))
    np.testing.assert_allclose(out[0].x, out[1].x, rtol=TOL, atol=TOL)
    plan = ns.lower(c, seed=0)
    dev = Device(ns.hardware.HardwareModel(), plan)
    quiet = cls(plan).run(X, Y, spec, plan.W.copy(), plan.b.copy(), dev.tables(), dev.read_sigmas, 0.0, 0.0, 7)
    assert np.abs(quiet.x - out[0].x).max() > 1e-4     # the noise was drawn


@pytest.mark.parametrize("label", ["fanin+rf1d", "dag-tau_eps"])
@pytest.mark.parametrize("sites", [False, True])
def test_event_kernel_sparse_branches_warm_starts_and_modes(label, sites):
    """The numba event kernel's sparse branches against its NumPy twin in runs that reach each of them: the send
    loops (a value event over the unit's out-synapses, an error event over its in-synapses), the rebuild of the
    currents at a warm start (``init='previous'`` after the weights changed: every sent value and error goes out
    again over the synapses), nudge and free modes (the target moves and sends), with and without deterministic
    sites on values, errors, dac and adc.  Same events and synaptic ops exactly, states and Hebbian directions to
    1e-10, run after run on one engine each."""
    from neurosim import hardware as hw
    from neurosim.backends.base import INITS, MODES, RunSpec
    from neurosim.hardware.engine import NumbaEngine, ReferenceEngine
    from neurosim.hardware.nonideal import Device
    c = dict(circuits())[label]
    plan = ns.lower(c, seed=0)
    model = (hw.HardwareModel(values=[hw.Mismatch(0.1), hw.Quantize(8, bound=1.0, rounding="nearest")],
                              errors=[hw.Quantize(10, bound=4.0, rounding="nearest")],
                              dac=[hw.Converter(10, 2.0)], adc=[hw.Converter(12, 8.0)]) if sites
             else hw.HardwareModel())
    dev = Device(model, plan)
    engines = {"numba": NumbaEngine(plan), "reference": ReferenceEngine(plan)}
    rng = np.random.default_rng(5)
    W = plan.W.copy()
    runs = [("clamp", "feedforward"), ("clamp", "previous"), ("nudge", "previous"), ("free", "previous"),
            ("nudge", "zeros")]
    for n, (mode, init) in enumerate(runs):
        X, Y = _data(c, 3, 20 + n)
        spec = RunSpec(n_steps=8, dt=0.1, learn=True, init=INITS[init], mode=MODES[mode], beta=0.5)
        res = {name: e.run(X, None if mode == "free" else Y, spec, W, plan.b.copy(), dev.tables(),
                           dev.read_sigmas, 0.01, 0.005, 3) for name, e in engines.items()}
        a, b = res["numba"], res["reference"]
        what = f"{label} {mode} {init}"
        np.testing.assert_array_equal(a.events, b.events, err_msg=what)
        np.testing.assert_array_equal(a.events_init, b.events_init, err_msg=what)
        np.testing.assert_array_equal(a.sops, b.sops, err_msg=what)
        np.testing.assert_allclose(a.x, b.x, rtol=TOL, atol=TOL, err_msg=what)
        np.testing.assert_allclose(a.energy, b.energy, rtol=TOL, atol=TOL, err_msg=what)
        np.testing.assert_allclose(a.gW, b.gW, rtol=TOL, atol=TOL, err_msg=what)
        if init == "previous":
            assert a.events_init.sum() > 0, what    # the warm start resent what was sent before
        W = W + 0.05 * b.gW                         # new weights: the next warm start rebuilds the currents
    assert a.sops.sum() > 0


def test_event_engine_synaptic_ops_hand_checked():
    """A 3 -> 2 -> 1 chain with explicit patterns: W1 rows {0, 2} and {1} (pre unit 0 has out-degree 1, unit 1
    out-degree 1, unit 2 out-degree 1; post unit 0 in-degree 2, post unit 1 in-degree 1), W2 row {1}.  With
    theta = 0, B = 1, 0 steps, linear units and nonzero inputs: the sweep sends the 3 input values (3 value
    events over W1: 1 + 1 + 1 = 3 ops), then the 2 hidden values (over W2: out-degrees 0 and 1 -> 1 op); the
    evaluation sends nothing new (values unchanged), then the errors: h1's 2 error units fire (pre of W1 is the
    input: no feedback into an input, so no ops) and output's 1 error unit fires over W2 into h1 (in-degree 1 ->
    1 op)."""
    from neurosim.hardware.engine import NumbaEngine, ReferenceEngine
    P = ns.ValuePopulation
    c = ns.Circuit((P("a", 3), P("h", 2), P("o", 1)),
                   (ns.ErrorPopulation("eh", "h"), ns.ErrorPopulation("eo", "o")),
                   (ns.Projection("W1", "a", "h", connectivity=(np.array([0, 2, 3]), np.array([0, 2, 1]))),
                    ns.Projection("W2", "h", "o", connectivity=(np.array([0, 1]), np.array([1])))),
                   (ns.Clamp("a"), ns.Clamp("o", "target")), name="tiny")
    X, Y = np.array([[1.0, 2.0, 3.0]]), np.array([[5.0]])
    for eng in (ReferenceEngine, NumbaEngine):
        plan, r = _engine_run(eng, c, X, Y, 0.0, steps=0, learn=False)
        k1, k2 = plan.proj_index("W1"), plan.proj_index("W2")
        assert r.sops[k1].tolist() == [3, 0], eng
        # h's units are h0 = W[0,0] * 1 + W[0,2] * 3 and h1 = W[1,1] * 2 (non-zero): both send; out-degree in W2
        # of h0 is 0 and of h1 is 1 -> 1 op; the clamped output's error goes back over its 1 synapse -> 1 op
        assert r.sops[k2].tolist() == [1, 1], eng
        assert r.events_init[plan.pop_index("a"), 0] == 3 and r.events_init[plan.pop_index("h"), 0] == 2


def test_strict_and_pc_output_options_train_sparse_as_reference():
    """The other schedules a sparse circuit trains with ('strict' with its own eta and n, 'pc' with an output
    precision) run on numba as on the reference backend."""
    c = circuits()[3][1]
    X, Y = _data(c, 4, 2)
    for algo, opts in (("strict", {"eta": 0.05, "n": 7}), ("pc", {"output_precision": 0.5})):
        sims = [ns.Simulator(c, backend=b, seed=0) for b in ("reference", "numba")]
        for s in sims:
            s.train(X, Y, epochs=2, batch_size=2, algorithm=algo, options=opts, steps=6, progress=False)
        _close_weights(sims[1], sims[0], algo)
        w0 = ns.Simulator(c, backend="reference", seed=0).weights["Wa"].data
        assert np.abs(sims[0].weights["Wa"].data - w0).max() > 1e-4     # it learned


def test_from_circuit_refuses_sparse():
    from neurosim import graph as ng
    with pytest.raises(ValueError, match=r"projection\(s\) \['W1'\] are sparse.*no vertex form"):
        ng.from_circuit(_replace(ns.hierarchy([6, 5, 3]), W1=FixedFanIn(2)))


def test_directions_have_the_pattern():
    """``sim.directions`` of a sparse projection is a csr_array with its pattern, equal on numba and the
    reference, and equal on the pattern to the dense twin's direction."""
    c = circuits()[0][1]
    X, Y = _data(c, 5, 3)
    ref = ns.Simulator(c, backend="reference", seed=0)
    nb = ns.Simulator(c, backend="numba", seed=0)
    dense = ns.Simulator(_dense_twin(c), backend="reference", seed=0)
    dense.load_weights(_dense_weights(ref))
    dr, dn, dd = (s.directions(X, Y, algorithm="pc", steps=8) for s in (ref, nb, dense))
    for name in ("W1", "W2"):
        assert isinstance(dr[name], sps.csr_array) and dr[name].nnz == ref.weights[name].nnz
        np.testing.assert_allclose(dn[name].toarray(), dr[name].toarray(), rtol=TOL, atol=TOL)
        m = _pattern_mask(ref, name)
        np.testing.assert_allclose(dr[name].toarray()[m], dd[name][m], rtol=TOL, atol=TOL)


def test_plot_weights_draws_sparse_weights():
    import matplotlib
    matplotlib.use("Agg")
    sim = ns.Simulator(circuits()[0][1], backend="reference", seed=0)
    fig = ns.plot.weights(sim.weights)
    assert fig.axes
    with pytest.raises(ValueError, match=r"sparse 5000 x 5000 matrix.*draw a block"):
        ns.plot.weights({"W": sps.random(5000, 5000, density=1e-5, format="csr")})


def test_a_checkpoint_of_another_pattern_is_refused(tmp_path):
    """Two circuits that differ only in their synapses (same sizes, same number of synapses) are different
    circuits: a checkpoint of one must not load its weights onto the other's synapses."""
    base = ns.hierarchy([12, 10, 3], phi="tanh", name="pat")
    a = _replace(base, W1=FixedFanIn(4, seed=0))
    b = _replace(base, W1=FixedFanIn(4, seed=1))
    sa, sb = ns.Simulator(a, backend="reference", seed=0), ns.Simulator(b, backend="reference", seed=0)
    path = sa.save_checkpoint(tmp_path / "a.npz")
    with pytest.raises(ns.CheckpointError, match="different circuit"):
        sb.load_checkpoint(path)
    ns.Simulator(a, backend="reference", seed=3).load_checkpoint(path)    # the same pattern loads


def test_set_weights_refuses_non_finite_values_and_says_how_to_densify():
    c = _replace(ns.hierarchy([12, 10, 3], phi="tanh", name="nan"), W1=FixedFanIn(4, seed=0))
    sparse = ns.Simulator(c, backend="reference", seed=0)
    dense = ns.Simulator(ns.hierarchy([12, 10, 3], phi="tanh", name="nan"), backend="reference", seed=0)
    W = sparse.weights["W1"]
    with pytest.raises(ValueError, match=r"projection 'W1' is dense .*W.toarray\(\)"):
        dense.set_weights("W1", W)
    dense.set_weights("W1", W.toarray())
    bad = W.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match=r"projection 'W1': W holds NaN or inf"):
        sparse.set_weights("W1", bad)
    with pytest.raises(ValueError, match=r"projection 'W2': W holds NaN or inf"):
        dense.set_weights("W2", np.full((3, 10), np.inf))


def test_with_connectivity_makes_a_sparse_copy_and_names_mistakes():
    base = ns.hierarchy([12, 10, 3], phi="tanh", name="wc")
    c = base.with_connectivity(FixedFanIn(4, seed=0), ["W1"])
    assert c.projection("W1").connectivity == FixedFanIn(4, seed=0) and base.projection("W1").connectivity is None
    assert c.projection("W2").connectivity is None
    sim = ns.Simulator(c, backend="reference", seed=0)
    assert sim.weights["W1"].nnz == 40
    with pytest.raises(ValueError, match=r"no projection\(s\) \['W9'\]"):
        base.with_connectivity(FixedFanIn(4), ["W9"])


def _old_window(n_post, n_pre, w):
    """The rule before ties were made symmetric (round half to even; even widths: the centre above)."""
    c = (np.arange(n_post) + 0.5) * (n_pre / n_post) - 0.5
    start = np.rint(c).astype(np.int64) - (w - 1) // 2 if w % 2 else np.floor(c).astype(np.int64) - w // 2 + 1
    return np.clip(start, 0, n_pre - w)


def test_receptive_field_ties_are_mirror_symmetric_and_nothing_else_changed():
    ip, ix = ReceptiveField(3).pattern(4, 8, "W")     # c = 1/2, 5/2, 9/2, 13/2: all ties
    assert ix.reshape(4, 3).tolist() == [[0, 1, 2], [2, 3, 4], [3, 4, 5], [5, 6, 7]]
    for n_post in range(1, 14):
        for n_pre in range(1, 20):
            num = (2 * np.arange(n_post) + 1) * n_pre - n_post   # 2 c_i n_post
            for w in range(1, n_pre + 1):
                start = ReceptiveField(w).pattern(n_post, n_pre, "W")[1].reshape(n_post, w)[:, 0]
                tie = (num % n_post == 0) & ((num // n_post) % 2 == (1 if w % 2 else 0))
                mid = num == (n_pre - 1) * n_post                 # a tie at the axis middle: no symmetric choice
                same = ~tie | mid
                assert np.array_equal(start[same], _old_window(n_post, n_pre, w)[same]), (n_post, n_pre, w)
                if not mid.any():
                    assert np.array_equal(start, (n_pre - w - start)[::-1]), (n_post, n_pre, w)
