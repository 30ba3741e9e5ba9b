"""Memory, probe overhead, start-up time and the cost of numba threads on this machine.

* memory: peak RSS (``VmHWM``) of a fresh process running the largest point of each scaling sweep,
  and the largest T with probes recording x, eps and mu of every population at every step; the RSS
  after imports and kernel loading is reported alongside;
* probes: recording every step against not recording, through ``Simulator.run`` with the records
  stored in ``sim.data`` (interleaved medians);
* start-up: ``neurosim run digits --set epochs=1`` in a fresh process with the numba cache warm: time
  from process start until ``Simulator.train`` is called (after the warm-up batch that loads the cached
  kernels) and until its one epoch is done; the cold compile time of the kernel (empty cache directory,
  first ``Simulator.step``) for comparison;
* threads: the cost of entering and leaving one numba ``prange`` region, which is why the per-step
  loop stays single-threaded (BLAS uses both cores inside the large matrix products).
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

import neurosim as ns

from . import core

ROOT = Path(__file__).resolve().parents[1]

_MEM_CHILD = r"""
import json, numpy as np, neurosim as ns
from benchmarks import core
def hwm_mb():
    # VmHWM of this process (ru_maxrss would carry over the parent's high-water mark through fork + exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
width, depth, B, T, probes = {width}, {depth}, {batch}, {T}, {probes}
sizes = core.net_sizes(width=width, hidden=depth)
pr = []
if probes:
    names = [f"h{{i}}" for i in range(1, depth + 1)] + ["output"]
    pr = [ns.Probe(n, v, every=1, max_records=10**9) for n in names for v in ("x", "eps", "mu")]
    pr.append(ns.Probe("input", "x", every=1, max_records=10**9))
sim = core.simulator(sizes, "numba", probes=pr)
X, Y = core.make_data(B, sizes)
sim.run(X[:1], Y[:1], steps=1, mode="clamp")      # load the kernel
base = hwm_mb()
sim.run(X, Y, steps=T, mode="clamp", learn=True)
peak = hwm_mb()
rec = sum(sim.data[p].nbytes for p in pr) if pr else 0
print(json.dumps({{"rss_after_load_mb": base, "peak_rss_mb": peak, "probe_data_mb": rec / 2**20,
                  "state_mb": sum(a.nbytes for pop in sim.state().values() for a in pop.values()) / 2**20,
                  "weights_mb": sum(w.nbytes for w in sim.weights.values()) / 2**20}}))
"""

MEMORY_CASES = [
    {"case": "width 2048", "width": 2048, "depth": 2, "batch": 32, "T": 20, "probes": False},
    {"case": "depth 64", "width": 256, "depth": 64, "batch": 32, "T": 20, "probes": False},
    {"case": "batch 1024", "width": 256, "depth": 2, "batch": 1024, "T": 20, "probes": False},
    {"case": "T 500", "width": 256, "depth": 2, "batch": 32, "T": 500, "probes": False},
    {"case": "T 500 + probes every step", "width": 256, "depth": 2, "batch": 32, "T": 500, "probes": True},
    {"case": "width 2048, T 500 + probes every step", "width": 2048, "depth": 2, "batch": 32, "T": 500,
     "probes": True},
]


def memory(log=print) -> list:
    rows = []
    for c in MEMORY_CASES:
        code = _MEM_CHILD.format(**{k: c[k] for k in ("width", "depth", "batch", "T", "probes")})
        out = json.loads(core.run_python(code, {"PYTHONPATH": str(ROOT)}).strip().splitlines()[-1])
        rows.append({**c, **out})
        log(f"  {c['case']:40s} peak RSS {out['peak_rss_mb']:7.1f} MB (after load {out['rss_after_load_mb']:6.1f} MB; "
            f"network state {out['state_mb']:.1f} MB, probe data {out['probe_data_mb']:.1f} MB)")
    return rows


def probes(repeats=15, log=print) -> list:
    """Recording every step vs not recording, same workload, interleaved medians, through the public API:
    ``Simulator.run(..., learn=True)`` with probes stored in ``sim.data`` across runs
    (accumulating, as in a training loop), for a typical set (x and eps of every non-input population
    and their energies, as ``neurosim run digits`` records) and for everything (x, eps, mu, energy of
    every population: 13 probes).  Probes keep their default bound (the most recent 10,000 records),
    and the runs are timed once the records have filled it (the steady state of a training loop).
    A last row keeps every record (``max_records=10**9``): then each batch writes its records to
    memory the process has never touched, and the first write to a page is what it costs.
    """
    rows = []
    sizes = core.net_sizes()
    names = ["h1", "h2", "output"]

    def typical(**kw):
        return ([ns.Probe(n, v, every=1, **kw) for n in names for v in ("x", "eps")]
                + [ns.Probe(n, "energy", every=1, **kw) for n in names])

    def everything(**kw):
        return ([ns.Probe(n, v, every=1, **kw) for n in names for v in ("x", "eps", "mu")]
                + [ns.Probe(n, "energy", every=1, **kw) for n in names] + [ns.Probe("input", "x", every=1, **kw)])
    sets = {"typical (9 probes)": typical(), "everything (13 probes)": everything(),
            "everything, every record kept (max_records=10**9)": everything(max_records=10**9)}
    for B, T in ((1, 100), (256, 20)):
        X, Y = core.make_data(B, sizes)
        sims = {"plain": core.simulator(sizes, "numba")}
        sims.update({k: core.simulator(sizes, "numba", probes=v) for k, v in sets.items()})

        def make(sim):
            def f():
                sim.run(X, Y, steps=T, mode="clamp", learn=True)
            return f
        fns = {k: make(s) for k, s in sims.items()}
        fill = -(-10_000 // (T + 1)) + 1   # runs until the default bound is reached
        for k, f in fns.items():
            if k != "plain" and "10**9" not in k:
                for _ in range(fill):
                    f()
        res = core.interleaved(fns, repeats)
        for k in sets:
            ratio = res[k]["median_s"] / res["plain"]["median_s"]
            rec = sims[k].data
            kept_mb = sum(rec[p.name].nbytes for p in sims[k].probes) / 2 ** 20
            rows.append({"level": "simulator", "probes": k, "batch": B, "T": T, "plain_s": res["plain"]["median_s"],
                         "probes_s": res[k]["median_s"], "ratio": ratio, "bounded": "10**9" not in k,
                         "records_mb": kept_mb})
            log(f"  simulator  B={B:<4d} T={T:<4d} {k}: {res['plain']['median_s'] * 1e3:8.3f} ms -> "
                f"{res[k]['median_s'] * 1e3:8.3f} ms: x{ratio:.3f} ({kept_mb:.0f} MB of records kept)")
    return rows


_START_CHILD = r"""
import os, sys, time
T0 = float(os.environ["NS_T0"])
import neurosim as ns
train = ns.Simulator.train
def timed(self, *a, **k):   # wraps the public Simulator.train: when training begins and its first epoch ends
    begin = time.time() - T0
    train(self, *a, **k)
    print("STARTUP", begin, time.time() - T0, flush=True)
    os._exit(0)
ns.Simulator.train = timed
from neurosim.cli import main
main(["run", "digits", "--out", sys.argv[1], "--no-progress", "-q", "--set", "epochs=1"])
"""

_COMPILE_CHILD = r"""
import time, numpy as np
from benchmarks import core
sizes = core.net_sizes()
sim = core.simulator(sizes, "numba", "{dtype}")
X, Y = core.make_data(1, sizes)
t0 = time.perf_counter()
core.train_batch(sim, X, Y, 5)
print("FIRST", time.perf_counter() - t0)
"""

_IMPORT_CHILD = r"""
import time
t0 = time.perf_counter(); import numba; t1 = time.perf_counter()
import neurosim, neurosim.backends.numba.backend; t2 = time.perf_counter()
import sklearn.datasets; t3 = time.perf_counter()
import matplotlib; t4 = time.perf_counter()
print("IMPORTS", t1 - t0, t2 - t1, t3 - t2, t4 - t3)
"""


def startup(repeats=3, log=print) -> dict:
    env = {"PYTHONPATH": str(ROOT)}
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        for dtype in ("float64", "float32"):
            line = core.run_python(_COMPILE_CHILD.format(dtype=dtype), {**env, "NUMBA_CACHE_DIR": cache})
            out[f"cold_compile_s_{dtype}"] = float(line.split("FIRST")[1])
            line = core.run_python(_COMPILE_CHILD.format(dtype=dtype), {**env, "NUMBA_CACHE_DIR": cache})
            out[f"cache_load_s_{dtype}"] = float(line.split("FIRST")[1])
    log(f"  kernel compile (empty cache): float64 {out['cold_compile_s_float64']:.1f} s, float32 "
        f"{out['cold_compile_s_float32']:.1f} s; first call with a warm cache: {out['cache_load_s_float64']:.2f} s")
    imp = core.run_python(_IMPORT_CHILD, env).split("IMPORTS")[1].split()
    out["import_s"] = dict(zip(["numba", "neurosim+kernel module", "sklearn.datasets", "matplotlib"], map(float, imp)))
    runs = []
    with tempfile.TemporaryDirectory() as d:
        for _ in range(repeats + 1):  # the first run warms the default cache and the OS file cache
            line = core.run_python(f"import sys; sys.argv = ['x', {d!r}]\n" + _START_CHILD,
                                   {**env, "NS_T0": str(time.time())})
            begin, done = map(float, line.split("STARTUP")[1].split())
            runs.append((begin, done))
    runs = runs[1:]
    begin = float(np.median([r[0] for r in runs]))
    done = float(np.median([r[1] for r in runs]))
    out.update({"digits_until_training_begins_s": begin, "digits_until_first_epoch_done_s": done,
                "digits_first_epoch_s": done - begin, "runs": runs})
    log(f"  neurosim run digits (warm cache): training begins after {begin:.2f} s, first epoch done after {done:.2f} s"
        f"  (imports: " + ", ".join(f"{k} {v:.2f} s" for k, v in out["import_s"].items()) + ")")
    return out


_THREAD_CHILD = r"""
import time, numpy as np
from numba import njit, prange
@njit(parallel=True)
def region(a, n):
    for k in range(n):
        for i in prange(2):
            a[i] += 1.0
import numba
a = np.zeros(2); region(a, 10)
t0 = time.perf_counter(); region(a, 2000); t1 = time.perf_counter()
print("REGION", (t1 - t0) / 2000, numba.threading_layer())
"""


def threads(log=print) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        line = core.run_python(_THREAD_CHILD, {"NUMBA_CACHE_DIR": cache})
    s, layer = line.split("REGION")[1].split()
    res = {"prange_region_s": float(s), "threading_layer": layer}
    log(f"  one numba prange region (enter + leave, {layer}): {float(s) * 1e6:.1f} us")
    return res


# ----------------------------------------------------------------------------- a busy machine
_BUSY_CHILD = "while True: pass"


def load(batches=(1, 32, 256), T=20, n=31, competitors=2, log=print) -> list:
    """One training batch (64-256-256-10 tanh, float64, T steps) on a quiet machine and with ``competitors``
    CPU-bound processes started here (busy loops, one per core of a 2-core machine), for the default settings
    (``blas_threads=None``), BLAS's own setting (``"blas"``), ``"auto"`` (the per-call load-aware choice of
    :class:`neurosim.backends.numba.backend._LoadAwareBlas`), ``"timed"`` (the timing-based
    :class:`~neurosim.backends.numba.backend._AdaptiveBlas`), ``blas_threads=1`` and ``2``, measured round-robin.  Medians and minima of about ``n`` batches of each
    (``2 n`` for batches above 8 and up to 64, which take a few ms) after
    ``n // 3`` warm-up batches (the adaptive choice settles there); the loaded runs start 2 s after the
    competitors."""
    import subprocess
    import sys
    sizes = core.net_sizes()
    rows = []
    settings = {"default": None, "blas": "blas", "auto": "auto", "timed": "timed", "1 thread": 1, "2 threads": 2}
    for B in batches:
        X, Y = core.make_data(B, sizes)
        sims = {k: core.simulator(sizes, "numba", blas_threads=v) for k, v in settings.items()}
        row = {"batch": B, "T": T}
        for phase in ("quiet", "loaded"):
            procs = []
            if phase == "loaded":
                procs = [subprocess.Popen([sys.executable, "-c", _BUSY_CHILD]) for _ in range(competitors)]
                time.sleep(2.0)
            try:
                fns = {k: core.batch_fn(sim, X, Y, T) for k, sim in sims.items()}
                # round-robin (core.interleaved), so that the settings are compared under the same load; the
                # warm-up lets the adaptive choice settle
                # the pause: after a collapsing two-thread setting, OpenBLAS's worker keeps spinning and would slow
                # the next setting's calls (measured: batch 32, the setting right after BLAS's own took 2x longer)
                # small BLAS batches (8 < B <= 64) are short and their ratio sits near the 2x target: twice the rounds
                nb = 2 * n if 8 < B <= 64 else n
                res = core.interleaved(fns, repeats=max(1, nb // 3), warmup=max(3, n // 3), block=3, pause=0.3)
                for k in sims:
                    row[f"{phase} {k} median_ms"] = 1e3 * res[k]["median_s"]
                    row[f"{phase} {k} min_ms"] = 1e3 * res[k]["min_s"]
                for k in ("auto", "timed"):
                    lr = sims[k].last_run or {}
                    if lr.get("row_blocks", 1) > 1:   # blocks do not consult the load
                        row[f"{phase} {k} choice"] = f"{lr['row_blocks']} row blocks on {lr['block_workers']} workers"
                    else:
                        row[f"{phase} {k} choice"] = "/".join(sorted(set(
                            sims[k].backend._auto_blas.choices().values()))) + " BLAS threads"
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
        for k in settings:
            row[f"{k} loaded/quiet"] = row[f"loaded {k} median_ms"] / row[f"quiet {k} median_ms"]
        row["default loaded / best quiet"] = row["loaded default median_ms"] / min(
            row[f"quiet {k} median_ms"] for k in settings)
        row["default quiet / best quiet"] = row["quiet default median_ms"] / min(
            row[f"quiet {k} median_ms"] for k in settings)
        log(f"  B={B:<4d} T={T}: " + "; ".join(
            f"{k}: quiet {row[f'quiet {k} median_ms']:.2f} ms, loaded {row[f'loaded {k} median_ms']:.2f} ms "
            f"({row[f'{k} loaded/quiet']:.2f}x)" for k in settings)
            + (f" [auto ran: quiet {row.get('quiet auto choice')}, loaded {row.get('loaded auto choice')};"
               f" timed chose: quiet {row.get('quiet timed choice')}, loaded {row.get('loaded timed choice')}]"
               if B > 8 else "") + f" [load average {core.loadavg()}]")
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- cold start (a fresh install)
_COLD_CHILD = r"""
import sys, time
w0 = time.perf_counter()
import numpy as np
from benchmarks import core
sizes = core.net_sizes()
X, Y = core.make_data({B}, sizes)
sim = core.simulator(sizes, "numba", "{dtype}")
X, Y = X.astype("{dtype}"), Y.astype("{dtype}")
w1 = time.perf_counter()
c1 = time.process_time()
sim.learn(X, Y, steps=20)
w2 = time.perf_counter()
out = ["LEARN", w2 - w1, w1 - w0, "learn_cpu", time.process_time() - c1]
for algo in {algos}:
    t = time.perf_counter()
    c = time.process_time()
    sim.step(X, Y, algorithm=algo)
    out += [algo, time.perf_counter() - t, algo + "_cpu", time.process_time() - c]
print(*out)
"""


def _cold_tree(ref: str | None):
    """(path, label, cleanup) of a fresh copy of the tree to measure: this checkout's files (tracked and untracked,
    not ignored: no compiled caches) or commit ``ref``'s (``git archive``), in a temporary directory, so that
    numba's in-tree cache starts empty, as in a new clone, and both trees are timed in one run."""
    import subprocess
    d = tempfile.TemporaryDirectory()
    git = ["git", "-C", str(ROOT)]
    if ref:
        label = subprocess.run(git + ["rev-parse", "--short", ref], capture_output=True, text=True,
                               check=True).stdout.strip()
        arch = subprocess.run(git + ["archive", ref], capture_output=True, check=True).stdout
    else:
        label = "this tree"
        files = subprocess.run(git + ["ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                               capture_output=True, check=True).stdout
        files = b"\0".join(f for f in files.split(b"\0") if f and (ROOT / f.decode()).exists())
        arch = subprocess.run(["tar", "--null", "-T", "-", "-cf", "-"], input=files, capture_output=True,
                              check=True, cwd=str(ROOT)).stdout
    subprocess.run(["tar", "-x", "-C", d.name], input=arch, check=True)
    return d.name, label, d


def pip_install(log=print) -> dict:
    """The whole path of a new user, once: a fresh venv (this interpreter's ``venv``), ``pip install -e`` of a fresh
    copy of this tree (pip's isolated build environment compiles the kernels; packages from pip's cache or the
    registry), then the first ``learn`` (float64 and float32, batch 1, in one new process each) and ``neurosim run
    digits`` with that venv's Python -- the only measurement that goes through pip's build environment (the other
    rows run the install's compile with this interpreter).  Needs the package registry (or pip's cache)."""
    path, _, d = _cold_tree(None)
    try:
        return _pip_install(path, log)
    finally:
        d.cleanup()


def _pip_install(path, log) -> dict:
    import subprocess
    import sys
    out = {}
    with tempfile.TemporaryDirectory() as venv, tempfile.TemporaryDirectory() as res:
        py = str(Path(venv) / "bin" / "python")
        env = {k: v for k, v in __import__("os").environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH")}
        subprocess.run([sys.executable, "-m", "venv", venv], check=True, env=env)
        subprocess.run([py, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True, env=env,
                       capture_output=True)
        t0 = time.perf_counter()
        r = subprocess.run([py, "-m", "pip", "install", "-e", path], env=env, capture_output=True, text=True)
        out["pip_install_s"] = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"pip install -e failed:\n{(r.stdout + r.stderr)[-2000:]}")
        log(f"  pip install -e (fresh venv, kernels compiled in pip's build environment): {out['pip_install_s']:.1f} s")
        for dtype in ("float64", "float32"):
            line = core.run_python(_COLD_CHILD.format(B=1, dtype=dtype, algos=[]), {"NUMBA_CACHE_DIR": ""}, python=py,
                                   cwd=path)
            out[f"first_learn_{dtype}_s"] = float(line.split("LEARN")[1].split()[0])
            log(f"  pip-installed venv, {dtype} B=1: first learn {out[f'first_learn_{dtype}_s']:.2f} s")
        t0 = time.perf_counter()
        r = subprocess.run([str(Path(venv) / "bin" / "neurosim"), "run", "digits", "--out", res], env=env,
                           capture_output=True, text=True, timeout=900, cwd=res)
        out["digits_s"] = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"neurosim run digits failed:\n{r.stderr[-2000:]}")
        m = json.loads((Path(res) / "metrics.json").read_text())
        out["digits_compile_s"] = m.get("compile_s")
        log(f"  pip-installed venv, neurosim run digits: {out['digits_s']:.1f} s in all (compile_s "
            f"{m.get('compile_s', float('nan')):.2f})")
    return out


def coldstart(against: str | None = None, repeats: int = 1, log=print, pip: bool = False) -> dict:
    """What a fresh install pays before its first results, on 64-256-256-10 tanh; every measurement is a new
    process on a fresh copy of the tree (no compiled caches):

    * ``install_compile_s``: the kernels compiled at install (``python -m neurosim.precompile``, which
      ``pip install`` runs from ``setup.py``; wall time, both groups at once); trees without it compile nothing;
    * cache ``installed``: after that, with numba's cache where the install put it (next to the modules;
      ``NUMBA_CACHE_DIR`` unset) -- what a new user's first calls cost;
    * cache ``empty``: with an empty ``NUMBA_CACHE_DIR`` -- the kernels compile on first use, as after
      ``NEUROSIM_PRECOMPILE=0``, with a new ``NUMBA_CACHE_DIR`` or for kernels the install does not compile;

    each for the first ``Simulator.learn`` call (20 steps) for batch 1 and 256, float64 and float32 -- compile or
    load plus one batch; for batch 32 in float64 also the first ``fpa`` and ``ipc`` step after it -- and for
    ``neurosim run digits`` from start to exit (wall time of the whole command, figures included).

    Each first call reports its wall time and its process CPU time (``*_cpu_s``): compiling is single-threaded, so
    on a busy machine the CPU time is the steadier measure of the work (the wall time adds the waiting).

    With ``against`` (a git commit), the same children run on that commit's tree too, interleaved with this
    tree's (A, B, A, B ...), so that the ratios are taken under the same load."""
    import subprocess
    import sys
    probe = "import neurosim; print('FILE', neurosim.__file__)"
    trees = [_cold_tree(None)] + ([_cold_tree(against)] if against else [])
    cases = [("float64", 1, []), ("float32", 1, []), ("float64", 256, []), ("float32", 256, []),
             ("float64", 32, ["fpa", "ipc"])]
    installs = []
    for path, label, _ in trees:   # each child must import the tree it is timing (not the working directory's)
        f = core.run_python(probe, {"PYTHONPATH": path}, cwd=path).split("FILE")[1].strip()
        if not Path(f).resolve().is_relative_to(Path(path).resolve()):
            raise RuntimeError(f"coldstart: the child for {label} imported neurosim from {f}, not from {path}")
        has = (Path(path) / "neurosim" / "precompile.py").exists()
        row = {"tree": label, "install_compile_s": None}
        if has:   # what pip install runs (setup.py): into the copy's __pycache__
            env = dict(__import__("os").environ, PYTHONPATH=path, NUMBA_CACHE_DIR="")
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "neurosim.precompile"], env=env, cwd=path,
                               capture_output=True, text=True, timeout=1800)
            row["install_compile_s"] = time.perf_counter() - t0
            if r.returncode != 0:
                raise RuntimeError(f"coldstart: python -m neurosim.precompile failed on {label}:\n"
                                   f"{(r.stdout + r.stderr)[-2000:]}")
            log(f"  {label:>10} install-time compile (python -m neurosim.precompile): "
                f"{row['install_compile_s']:.1f} s")
        installs.append(row)
    modes = [("installed", [t for t, r in zip(trees, installs) if r["install_compile_s"] is not None]),
             ("empty", trees)]
    rows = []
    for cache, mode_trees in modes:
        for dtype, B, algos in cases:
            for rep in range(repeats):
                for path, label, _ in mode_trees:
                    with tempfile.TemporaryDirectory() as empty:
                        env = {"PYTHONPATH": path, "NUMBA_CACHE_DIR": empty if cache == "empty" else ""}
                        # cwd = the tree: "python -c" puts the working directory first on sys.path
                        line = core.run_python(_COLD_CHILD.format(B=B, dtype=dtype, algos=algos), env, cwd=path)
                    v = line.split("LEARN")[1].split()
                    row = {"tree": label, "cache": cache, "dtype": dtype, "batch": B,
                           "first_learn_s": float(v[0]), "setup_s": float(v[1])}
                    for k in range(2, len(v), 2):
                        row[f"first_{v[k]}_s"] = float(v[k + 1])
                    rows.append(row)
                    log(f"  {label:>10} {cache} cache, {dtype} B={B}: first learn {row['first_learn_s']:.1f} s "
                        f"(cpu {row['first_learn_cpu_s']:.1f} s)"
                        + "".join(f", first {a} {row[f'first_{a}_s']:.1f} s (cpu {row[f'first_{a}_cpu_s']:.1f} s)"
                                  for a in algos))
    digits = []
    for cache, mode_trees in modes:
        for rep in range(repeats):
            for path, label, _ in mode_trees:
                with tempfile.TemporaryDirectory() as empty, tempfile.TemporaryDirectory() as out:
                    env = dict(__import__("os").environ, PYTHONPATH=path,
                               NUMBA_CACHE_DIR=empty if cache == "empty" else "")
                    t0 = time.perf_counter()
                    r = subprocess.run([sys.executable, "-m", "neurosim", "run", "digits", "--out", out], env=env,
                                       capture_output=True, text=True, timeout=900, cwd=path)
                    wall = time.perf_counter() - t0
                    if r.returncode != 0:
                        raise RuntimeError(f"neurosim run digits failed:\n{r.stderr[-2000:]}")
                    m = json.loads((Path(out) / "metrics.json").read_text())
                digits.append({"tree": label, "cache": cache, "wall_s": wall, "compile_s": m.get("compile_s"),
                               "test_accuracy": m.get("test_accuracy")})
                log(f"  {label:>10} {cache} cache, neurosim run digits: {wall:.1f} s in all (compile_s "
                    f"{m.get('compile_s', float('nan')):.1f}, test accuracy {m.get('test_accuracy', float('nan')):.3f})")
    for _, _, d in trees:
        d.cleanup()
    return {"rows": rows, "digits": digits, "installs": installs, "trees": [t[1] for t in trees],
            "pip": pip_install(log=log) if pip else None, "loadavg": core.loadavg()}
