"""The composability matrix: every circuit kind x backend x feature, tried through the public API.

Each cell is tried with a tiny circuit and classified:

``works``
    it runs and matches the reference backend to that backend's tolerance (``reference`` itself: it runs
    and gives finite results); brian2 must really have done the work (its run counter advanced), and in
    spiking mode (an approximation of the rate model, not compared number for number) that is the test;
``refused``
    it raises :class:`~neurosim.UnsupportedError` (or a ValueError/TypeError saying what is not supported)
    naming a reason, when the simulator is built or the call starts;
``inexpressible``
    the API has no way to say it (none left since graph circuits run on the one ``Simulator``);
``broken``
    anything else: a silent fallback (brian2 recorded no run), a mismatch with the reference, a crash with
    another exception.

One test per backend column (so that a failure names its column and the columns can run in parallel) asserts
that no cell of the column is broken and that the README's matrix states exactly what the column does (its
symbols and its counts), so the README cannot go stale.  ``python tests/conformance/test_composability.py
--write-readme`` runs every cell and writes the matrix into the README's "Composability" section
(``--out PATH``: to a file instead).
"""
from __future__ import annotations

import os
import re
from collections import Counter

import numpy as np
import pytest

import neurosim as ns

if __name__ == "__main__":   # run as a script (--write-readme): testkit lives in tests/
    import sys
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from testkit import lowered, probe_target, row_circuit as circuit, row_data as data, with_error_dynamics

ROWS = ["layered MLP", "DAG with skips", "muPC residual", "CNN", "RNN", "LSTM"]
GRAPH_ROWS = ("CNN", "RNN", "LSTM")
BACKENDS = ["reference", "numba", "brian2 rate", "brian2 spiking"]
FEATURES = ["run", "probes", "nudge", "tau_eps>0", "heun", "float32", "checkpoint", "pc", "strict", "fpa", "zil",
            "ipc", "bp", "event coding", "quantisation", "read noise"]
ALGORITHMS = ("pc", "strict", "fpa", "zil", "ipc", "bp")
HARDWARE = ("event coding", "quantisation", "read noise")

TOL = {"numba": 1e-8, "brian2 rate": 1e-6}
F32_TOL = 1e-3
#: read noise: backends draw from different random streams, so they agree in distribution, not to rounding: a cell
#: matches when it is within NOISE_TOL (the order of the noise, std 0.01 on every read) or within NOISE_SPREAD times
#: the difference between two reference runs whose only difference is the noise seed (a CNN's loss sums the noise
#: of many reads, so two seeds of the reference itself differ by more than 0.01)
NOISE_TOL = 1e-2
NOISE_SPREAD = 3.0
STEPS = 4
DT = 0.1
SEED = 0

WORKS, REFUSED, INEXPRESSIBLE, BROKEN = "works", "refused", "inexpressible", "broken"
SYMBOL = {WORKS: "✓", REFUSED: "✗", INEXPRESSIBLE: "·", BROKEN: "**!**"}


# ----------------------------------------------------------------------------- building through the public API
def backend_args(backend):
    if backend.startswith("brian2"):
        return {"backend": "brian2", "backend_options": {"mode": backend.split()[1]}}
    return {"backend": backend}


def simulator(c, backend, **kw):
    return ns.Simulator(c, dt=DT, seed=SEED, **backend_args(backend), **kw)


def hardware_simulator(c, backend, model, **kw):
    """A simulator on a modelled substrate: ``Simulator(hardware=model)``."""
    return simulator(c, backend, hardware=model, **kw)


def hardware_model(feature, seed=3):
    from neurosim import hardware as hw
    if feature == "event coding":
        return hw.HardwareModel(coding="event", threshold=0.01)
    if feature == "quantisation":
        return hw.HardwareModel(weights=[hw.Quantize(6, bound=2.0)])
    return hw.HardwareModel(reads=[hw.AdditiveNoise(0.01)], seed=seed)


def brian2_runs(sim):
    """How many runs brian2 has recorded on this simulator's backend (None: not a brian2 backend)."""
    inner = getattr(sim, "sim", sim)    # a hardware simulator wraps a Simulator
    be = inner.backend
    if getattr(be, "name", "") != "brian2":
        return None
    return int(be.checkpoint_state()["n_runs"])


def shared(pool, row, backend):
    """``(simulator, brian2 runs so far)``: one simulator per row and backend for the features that need no
    build-time setting (a brian2 network is built once per simulator and batch size, which is what the brian2
    cells spend their time on).  It is reinitialised (initial weights, no state) before each use, except in
    spiking mode, whose cells are not compared with the reference (and whose reset drops the network)."""
    key = (row, backend)
    if key not in pool:
        pool[key] = simulator(circuit(row), backend)
    sim = pool[key]
    if backend != "brian2 spiking":
        sim.reinitialize()
    return sim, brian2_runs(sim) or 0


def outcome(row, backend, feature, tmp, pool, noise_seed=3):
    """Run ``feature`` on ``backend`` (every circuit kind through the one ``Simulator``); returns ``(arrays,
    [(simulator that did the work, its brian2 runs before)])`` (``noise_seed``: the read-noise model's seed)."""
    c = circuit(row)
    p = lowered(c)
    X, Y = data(p.n_input, p.n_target)
    train = dict(epochs=1, batch_size=4, steps=STEPS, progress=False)
    if feature == "run":
        sim, n0 = shared(pool, row, backend)
        r = sim.run(X, Y, steps=STEPS)
        return {"energy": r.energy, **{f"x.{k}": v for k, v in r.x.items()}}, [(sim, n0)]
    if feature == "probes":
        target = probe_target(c, p)
        sim = simulator(c, backend, probes=[ns.Probe(target, "x", name="px"), ns.Probe(target, "eps", name="pe")])
        sim.run(X, Y, steps=STEPS)
        return {"px": sim.data["px"], "pe": sim.data["pe"]}, [(sim, 0)]
    if feature == "nudge":
        sim, n0 = shared(pool, row, backend)
        r = sim.run(X, Y, steps=STEPS, mode="nudge", beta=0.5)
        return {"energy": r.energy, **{f"x.{k}": v for k, v in r.x.items()}}, [(sim, n0)]
    if feature == "tau_eps>0":
        sim = simulator(with_error_dynamics(c), backend)
        r = sim.run(X, Y, steps=STEPS)
        return {"energy": r.energy, **{f"eps.{k}": v for k, v in r.eps.items()}}, [(sim, 0)]
    if feature == "heun":
        sim = simulator(c, backend, integrator="heun")
        r = sim.run(X, Y, steps=STEPS)
        return {"energy": r.energy, **{f"x.{k}": v for k, v in r.x.items()}}, [(sim, 0)]
    if feature == "float32":
        sim = simulator(c, backend, dtype="float32")
        r = sim.run(X, Y, steps=STEPS)
        return {"energy": r.energy, **{f"x.{k}": v for k, v in r.x.items()}}, [(sim, 0)]
    if feature == "checkpoint":
        path = tmp / f"ck-{abs(hash((row, backend)))}.npz"
        first = simulator(c, backend)
        first.train(X, Y, **{**train, "epochs": 1}, checkpoint=path)
        resumed = simulator(c, backend)
        resumed.train(X, Y, **{**train, "epochs": 2}, checkpoint=path)   # loads epoch 1, trains epoch 2
        # the resumed simulator's brian2 run counter continues from the checkpoint's
        return dict(resumed.weights), [(first, 0), (resumed, brian2_runs(first) or 0)]
    if feature in ALGORITHMS:
        sim, n0 = shared(pool, row, backend)
        h = sim.train(X, Y, **train, algorithm=feature)
        return {**sim.weights, "loss": np.array(h["loss"])}, [(sim, n0)]
    if feature in HARDWARE:
        chip = hardware_simulator(c, backend, hardware_model(feature, noise_seed))
        h = chip.train(X, Y, **train)
        return {**chip.weights, "loss": np.array(h["loss"])}, [(chip, 0)]
    raise KeyError(feature)


def reference_outcome(row, feature, tmp, pool):
    """The reference result a cell is compared with (checkpoint resume: the uninterrupted run)."""
    if feature == "checkpoint":
        c = circuit(row)
        p = lowered(c)
        X, Y = data(p.n_input, p.n_target)
        sim = simulator(c, "reference")
        sim.train(X, Y, epochs=2, batch_size=4, steps=STEPS, progress=False)
        return dict(sim.weights)
    if feature == "float32":
        return outcome(row, "reference", "run", tmp, pool)[0]
    return outcome(row, "reference", feature, tmp, pool)[0]


# ----------------------------------------------------------------------------- classification
_REFUSAL_WORDS = re.compile(r"not supported|unsupported|cannot|only|needs|no way|has no", re.I)


def noise_spread(row, tmp, pool) -> dict:
    """``{array: max |difference|}`` between the reference's read-noise outcomes with noise seeds 3 and 4."""
    a = outcome(row, "reference", "read noise", tmp, pool)[0]
    b = outcome(row, "reference", "read noise", tmp, pool, noise_seed=4)[0]
    return {k: float(np.max(np.abs(np.asarray(a[k], float) - np.asarray(b[k], float)))) for k in a}


def compare(a: dict, b: dict, tol: float, spread: dict | None = None) -> str:
    """'' when every array of ``a`` matches ``b`` to ``tol`` (relative to max(1, |b|)) or, with ``spread``, to
    ``NOISE_SPREAD * spread[array]``, else what differs."""
    if sorted(a) != sorted(b):
        return f"different results {sorted(a)} vs {sorted(b)}"
    for k in b:
        x, y = np.asarray(a[k], dtype=float), np.asarray(b[k], dtype=float)
        if x.shape != y.shape:
            return f"{k}: shape {x.shape} vs {y.shape}"
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            return f"{k}: non-finite values"
        scale = max(1.0, float(np.max(np.abs(y))) if y.size else 1.0)
        err = float(np.max(np.abs(x - y))) if x.size else 0.0
        if err > tol * scale and (spread is None or err > NOISE_SPREAD * spread[k]):
            return f"{k}: differs from the reference by {err:.2e} (tolerance {tol:g} x {scale:.3g}" + (
                f", or {NOISE_SPREAD:g} x the reference's seed-to-seed spread {spread[k]:.2e})" if spread else ")")
    return ""


def classify(row, backend, feature, tmp, cache, pool):
    """``(status, note)`` of one cell."""
    try:
        out, sims = outcome(row, backend, feature, tmp, pool)
    except (ns.UnsupportedError, ValueError, TypeError) as e:
        msg = str(e)
        if isinstance(e, ns.UnsupportedError) or _REFUSAL_WORDS.search(msg):
            return REFUSED, msg
        return BROKEN, f"{type(e).__name__}: {msg}"
    except Exception as e:  # noqa: BLE001 - a crash with another exception is what 'broken' means
        return BROKEN, f"{type(e).__name__}: {e}"
    if backend.startswith("brian2"):
        runs = [(brian2_runs(s), n0) for s, n0 in sims]
        if not all(n is not None and n > n0 for n, n0 in runs):
            return BROKEN, "silent fallback: brian2 recorded no run"
    if not all(np.all(np.isfinite(np.asarray(v, dtype=float))) for v in out.values()):
        return BROKEN, "non-finite results"
    if backend in ("reference", "brian2 spiking"):
        return WORKS, ""
    key = (row, feature)
    if key not in cache:
        cache[key] = reference_outcome(row, feature, tmp, pool)
    tol = F32_TOL if feature == "float32" else NOISE_TOL if feature == "read noise" else TOL[backend]
    spread = None
    if feature == "read noise":
        if (row, "noise spread") not in cache:
            cache[(row, "noise spread")] = noise_spread(row, tmp, pool)
        spread = cache[(row, "noise spread")]
    diff = compare(out, cache[key], tol, spread)
    return (BROKEN, f"mismatch: {diff}") if diff else (WORKS, "")


#: reference results shared by the columns of one process (keyed by row and feature)
_REFERENCE_CACHE: dict = {}


def build_column(backend, tmp, pool=None):
    """``{(row, backend, feature): (status, note)}`` of one backend column."""
    pool = {} if pool is None else pool
    return {(r, backend, f): classify(r, backend, f, tmp, _REFERENCE_CACHE, pool) for r in ROWS for f in FEATURES}


def build_matrix(tmp):
    out = {}
    for b in BACKENDS:
        out.update(build_column(b, tmp))
    return out


# ----------------------------------------------------------------------------- the Markdown table
def counts(matrix):
    out = {b: Counter() for b in BACKENDS}
    for (r, b, f), (status, _) in matrix.items():
        out[b][status] += 1
    return out


def _reason(note):
    """One line of a refusal message, without run-specific names."""
    return " ".join(note.split())


def markdown(matrix) -> str:
    lines = ["Generated by `tests/conformance/test_composability.py` (tiny circuits through the public API).",
             f"{SYMBOL[WORKS]} works (matches the reference to the backend's tolerance; brian2 really ran), "
             f"{SYMBOL[REFUSED]} refused with a reason (UnsupportedError when built or called), "
             f"{SYMBOL[INEXPRESSIBLE]} the API cannot express it, {SYMBOL[BROKEN]} broken.", ""]
    c = counts(matrix)
    lines += ["| backend | works | refused | inexpressible | broken |", "|---|---|---|---|---|"]
    for b in BACKENDS:
        lines.append(f"| {b} | {c[b][WORKS]} | {c[b][REFUSED]} | {c[b][INEXPRESSIBLE]} | {c[b][BROKEN]} |")
    total = sum(c.values(), Counter())
    lines.append(f"| all | {total[WORKS]} | {total[REFUSED]} | {total[INEXPRESSIBLE]} | {total[BROKEN]} |")
    lines.append("")
    for b in BACKENDS:
        lines += [f"**{b}**", "", "| circuit | " + " | ".join(FEATURES) + " |",
                  "|---|" + "---|" * len(FEATURES)]
        for r in ROWS:
            lines.append(f"| {r} | " + " | ".join(SYMBOL[matrix[(r, b, f)][0]] for f in FEATURES) + " |")
        lines.append("")
    reasons = {}
    for (r, b, f), (status, note) in matrix.items():
        if status in (REFUSED, BROKEN):
            reasons.setdefault((status, _reason(note)), []).append(f"{r} / {b} / {f}")
    if reasons:
        lines += ["Refused (and broken) cells and their reasons:", ""]
        for (status, note), cells in sorted(reasons.items(), key=lambda kv: (kv[0][0], kv[1][0])):
            tag = "BROKEN: " if status == BROKEN else ""
            lines.append(f"- {tag}{'; '.join(cells)}: {note}")
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the README
README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
_START = "Generated by `tests/conformance/test_composability.py`"
_END = "## Layout"


def readme_statuses(text: str, backend: str) -> tuple:
    """``({(row, feature): symbol}, counts row)`` the README's matrix states for ``backend``."""
    sec = text[text.index(_START):text.index(_END)]
    head = f"**{backend}**"
    lines = sec[sec.index(head) + len(head):].strip().splitlines()
    table = {}
    for line in lines[2:2 + len(ROWS)]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        table.update({(cells[0], f): sym for f, sym in zip(FEATURES, cells[1:])})
    counts_line = next(ln for ln in sec.splitlines() if ln.startswith(f"| {backend} |"))
    return table, counts_line


def splice_readme(text: str, matrix_md: str) -> str:
    a, b = text.index(_START), text.index(_END)
    return text[:a] + matrix_md.rstrip("\n") + "\n\n" + text[b:]


# ----------------------------------------------------------------------------- the test
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("backend", BACKENDS)
def test_composability_column(backend, tmp_path):
    if backend.startswith("brian2"):
        pytest.importorskip("brian2")
    column = build_column(backend, tmp_path)
    broken = {k: note for k, (status, note) in column.items() if status == BROKEN}
    assert not broken, "broken cells:\n" + "\n".join(f"{k}: {v}" for k, v in broken.items())
    if backend in ("reference", "numba"):   # the core of every circuit kind: the plain relaxation and standard PC
        for r in ROWS:
            assert column[(r, backend, "run")][0] == WORKS and column[(r, backend, "pc")][0] == WORKS, r
    # the README states what this column does (regenerate: python tests/conformance/test_composability.py
    # --write-readme)
    with open(README, encoding="utf-8") as f:
        table, counts_line = readme_statuses(f.read(), backend)
    stale = {(r, f): (table.get((r, f)), SYMBOL[column[(r, backend, f)][0]]) for r in ROWS for f in FEATURES
             if table.get((r, f)) != SYMBOL[column[(r, backend, f)][0]]}
    assert not stale, (f"README's composability matrix is stale for {backend} ((row, feature): (README, now)): "
                       f"{stale}; regenerate it with python tests/conformance/test_composability.py --write-readme")
    c = Counter(status for status, _ in column.values())
    expect = f"| {backend} | {c[WORKS]} | {c[REFUSED]} | {c[INEXPRESSIBLE]} | {c[BROKEN]} |"
    assert counts_line.strip() == expect, (counts_line, expect)


def main(argv=None):
    import argparse
    import tempfile
    from pathlib import Path
    ap = argparse.ArgumentParser(description="run every cell of the composability matrix and write it as Markdown")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--write-readme", action="store_true", help="replace the README's matrix section")
    g.add_argument("--out", type=Path, help="write the Markdown to this file")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        text = markdown(build_matrix(Path(tmp)))
    if a.out:
        a.out.write_text(text + "\n", encoding="utf-8")
    else:
        path = Path(README)
        path.write_text(splice_readme(path.read_text(encoding="utf-8"), text), encoding="utf-8")
    print(text.split("\n\n")[1])   # the counts table
    return 0


if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore")
    sys.exit(main())
