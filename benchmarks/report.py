"""Tables (Markdown) from a results dictionary; ``write_readme`` regenerates ``benchmarks/README.md``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

HEADER = """# neurosim benchmarks

`python -m benchmarks` measures the numba core against the NumPy reference backend, the machine's own
matrix-product roofline and the peer libraries pcx and ngc-learn, prints the tables below and writes
every figure with the machine description to `benchmarks/results/latest.json` (this file is
regenerated from it). `python -m benchmarks --quick` is a shorter run; `--only workloads peers ...`
selects suites; `--no-peers` skips the peers.

**Method.** One *batch* is the standard PC training schedule on a 64-256-256-10 tanh network (no biases,
linear input): input and target clamped, hidden values from the feedforward pass, T Euler steps of
size 0.1, one SGD weight update. Timings are medians of repeats after a warm-up call; the compared
implementations are timed in the same run, numba right before and right after each other one (the mean of the
two medians), never round-robin with NumPy's products (NumPy's and SciPy's OpenBLAS each keep workers spinning
after a product, which took cores from the other); compile and cache-load times are reported separately. The roofline is the workload's
matrix-product FLOPs, `2B[(T+1) sum n_in n_out + T sum_(l>=2) n_in n_out + sum n_in n_out]`, divided by
the NumPy GEMV (batch 1) or GEMM (batch > 1) rate measured in the same run (the best of blocks of ~20 ms, and the
better of a measurement before and one after the kernels, since other users' load only ever lowers a rate; the
per-workload lines the suite prints while it runs use the first one; all rates first, then a
1 s pause so that NumPy's BLAS threads are idle while the kernels are timed); elementwise work is not
counted. The numba kernel does not recompute predictions whose inputs are clamped (the first layer's),
so it performs fewer FLOPs than the formula and its fraction of roofline can exceed 100%.

**Load.** The machine has 2 cores shared with other users; the run waits for a quiet machine
(`--wait-quiet`) and records the load average. When other processes keep the cores busy, OpenBLAS'
two-thread GEMMs wait for their descheduled half and large batches become slower, by how much depending on
the load: 2-3x beside the two busy processes of the load table below (column "blas" against "1 thread"),
up to 10x at load 3.5 (a test suite running beside it; batch 256, T = 20: 916 ms with BLAS's own two threads,
72 ms with one). The numba
backend's default (`backend_options={"blas_threads": "auto"}`) therefore picks the BLAS threads of a batch
below 256 items from the machine's load (see the load section); a batch of 256 or more relaxes in row blocks on
both cores whatever the load (one BLAS thread per block; the blocks' threads meet once per relaxation, not inside
every product, so a busy machine costs them only its share of the cores). The "1 BLAS thread" rows below show one
thread (row blocks in turn from 256 items) on a quiet machine. The NumPy reference, the NumPy loop and the roofline's GEMM rate use BLAS's own setting.

**Peers** run in their own environment (JAX): `python3 -m venv /work/venv-peers &&
/work/venv-peers/bin/pip install -r benchmarks/peers/requirements.txt` (or set `NEUROSIM_PEERS_PYTHON`).
Each peer is given the same initial weights and batch, runs the same network, energy, T and step size
with its documented API (`benchmarks/peers/*_bench.py`), and is timed only if its final energy and
weight update match neurosim's (float64: relative error < 1e-9). The plain NumPy loop
(`benchmarks/numpy_loop.py`) is timed the same way, in a process of its own with this interpreter: in one process
NumPy's OpenBLAS (the loop's products) and SciPy's (numba's) keep their worker threads spinning after a product
and each took cores from the other. Each peer runs `3 x repeats` batches in a row after an untimed one; numba is
timed right before and right after it, and the ratio uses the mean of the two medians.
"""


def _ms(s):
    return f"{s * 1e3:.2f}" if s < 10 else f"{s * 1e3:.0f}"


def _pct(x):
    return f"{x:.0%}"


def machine_section(r):
    m = r["machine"]
    blas = ", ".join(f"{b.get('internal_api')} {b.get('version')} ({b.get('num_threads')} threads, "
                     f"{b.get('architecture')})" for b in m.get("blas", []))
    la = m.get("loadavg_start")
    lae = r.get("loadavg_end")
    return (f"## Machine\n\n{m.get('cpu', '?')}, {m.get('cpu_count')} cores, Python {m['python']}, NumPy "
            f"{m['numpy']}, numba {m['numba']}; BLAS: {blas or 'unknown'}. Measured {r['date']}; load average "
            f"at start {la[0]:.2f} (1 min), at end {lae[0]:.2f}. Total benchmark time {r['total_s'] / 60:.1f} min.\n"
            + "".join(f"\nSuite `{s}` measured again {u['date']} (`{u['command']}`; load average at start "
                      f"{(u.get('loadavg_start') or [float('nan')])[0]:.2f}); the other suites are of the run above.\n"
                      for s, u in (r.get("updated") or {}).items())
            if la and lae else f"## Machine\n\n{m}\n")


def workloads_section(w):
    lines = ["## Workloads: numba vs the NumPy reference and the roofline\n",
             "| workload | batch | T | dtype | numba ms/batch | reference ms/batch | numba / reference | roofline "
             "(rate) | fraction of roofline |", "|---|---|---|---|---|---|---|---|---|"]
    for x in w["rows"]:
        lines.append(f"| {x['workload']} | {x['batch']} | {x['T']} | {x['dtype']} | {_ms(x['numba_s'])} | "
                     f"{_ms(x['reference_s'])} | **{x['speedup_vs_reference']:.1f}x** | {_ms(x['roofline_s'])} ms "
                     f"({x['roofline_kind']} {x['matmul_rate_gflops']:.1f} GFLOP/s) | **{_pct(x['fraction_of_roofline'])}** |")
        if "numba_1thread_s" in x:
            lines.append(f"| {x['workload']}, 1 BLAS thread | {x['batch']} | {x['T']} | {x['dtype']} | "
                         f"{_ms(x['numba_1thread_s'])} | {_ms(x['reference_s'])} | {x['speedup_1thread_vs_reference']:.1f}x "
                         + (f"| {_ms(x['roofline_1thread_s'])} ms (GEMM, 1 thread, {x['matmul_rate_1thread_gflops']:.1f} "
                            f"GFLOP/s) | {_pct(x['fraction_of_roofline_1thread'])} |" if "roofline_1thread_s" in x
                            else f"| (same) | {_pct(x['fraction_of_roofline_1thread'])} |"))
    b1 = [x for x in w["rows"] if "load_bound_s" in x]
    if b1:
        lines.append("\n**Batch-1 load bound.** At batch 1 a step is two matrix-vector products with the same weights "
                     "(the prediction W phi(x), then the feedback W^T eps, which needs the finished errors), so every "
                     "weight of the projections that change is loaded twice per step whatever the implementation; "
                     "the kernel does both in one pass over W in blocks of 8 rows, the second load hitting L1. "
                     "The bound below is that load count at the rate of an L1-resident numba dot product measured "
                     "in this run (two loads per element); matrix rows from L2, elementwise work and the "
                     "per-step bookkeeping are not counted, so it cannot be reached.\n")
        lines += ["| workload | dtype | load rate (G elements/s) | load bound ms | numba ms | fraction of load bound | "
                  "reference / load bound |", "|---|---|---|---|---|---|---|"]
        for x in b1:
            lines.append(f"| {x['workload']} B={x['batch']} T={x['T']} | {x['dtype']} | {x['load_rate_gelem']:.1f} | "
                         f"{_ms(x['load_bound_s'])} | {_ms(x['numba_s'])} | **{_pct(x['fraction_of_load_bound'])}** | "
                         f"{x['reference_s'] / x['load_bound_s']:.1f}x |")
    fc = w.get("first_numba_call_s", {})
    if fc:
        lines.append("\nFirst numba call in the benchmark process (compile or cache load): " +
                     ", ".join(f"{k} {v:.2f} s" for k, v in fc.items()) + ".")
    f32 = [x for x in w["rows"] if "float32_error" in x]
    if f32:
        lines += ["\n**float32 error** (numba float32 against the float64 reference, same batch):\n",
                  "| workload | batch | T | final energy rel. error | updated weights max abs error | final x max abs error |",
                  "|---|---|---|---|---|---|"]
        for x in f32:
            e = x["float32_error"]
            lines.append(f"| {x['workload']} | {x['batch']} | {x['T']} | {e['energy_rel_err']:.1e} | "
                         f"{e['weights_max_abs_err']:.1e} | {e['x_max_abs_err']:.1e} |")
    return "\n".join(lines) + "\n"


def peers_section(p):
    one = p.get("one_thread")
    title = ("## Peers on one thread: numba (1 BLAS thread), a NumPy loop (1 BLAS thread), pcx and ngc-learn (XLA "
             "without its thread pool), each peer process pinned to one core\n\nJAX's CPU runtime ran pcx's batch-256 "
             "products on both cores despite the one-thread XLA flags (1.7-1.9 CPU seconds per wall second before "
             "2026-12-07), so every peer of this table runs pinned to one core and a result that used more than "
             "1.15 CPU seconds per wall second is not compared.\n"
             if one else "## Peers: pcx and ngc-learn on the same workloads\n")
    loop = any("numpy_loop_s" in x for x in p["rows"])
    lines = [title,
             "numba ms: the mean of every numba timing of the row; each ratio uses numba timed right before and right "
             "after that peer (in brackets), as the machine's load drifts between peers.\n",
             "| workload | batch | T | dtype | numba ms | pcx ms | pcx / numba | ngc-learn ms | ngc-learn / numba |"
             + (" NumPy loop ms | NumPy loop / numba |" if loop else ""),
             "|---|---|---|---|---|---|---|---|---|" + ("---|---|" if loop else "")]
    notes = []
    def around(x, lib):   # the numba time a ratio uses: numba timed right before and after that peer
        v = x.get(f"numba_s_around_{lib}")
        return f" (numba {_ms(0.5 * (v[0] + v[1]))})" if v else ""
    for x in p["rows"]:
        cells = []
        for lib in ("pcx", "ngclearn"):
            res = x["peers"].get(lib, {})
            if res.get("ok"):
                cells += [_ms(res["median_s"]), f"**{res['ratio_peer_over_numba']:.2f}x**{around(x, lib)}"]
            else:
                cells += ["not run", res.get("reason", "?")]
        if loop:
            cells += ([_ms(x["numpy_loop_s"]), f"**{x['ratio_numpy_loop_over_numba']:.2f}x**{around(x, 'numpy_loop')}"]
                      if "numpy_loop_s" in x else ["not run", ""])
        lines.append(f"| {x['workload']} | {x['batch']} | {x['T']} | {x['dtype']} | {_ms(x['numba_s'])} | "
                     + " | ".join(cells) + " |")
        t1 = [x.get(f"numba_1thread_s_around_{lib}") for lib in ("pcx", "ngclearn")]
        if all(v is not None for v in t1):
            cells = []
            for lib, t in zip(("pcx", "ngclearn"), t1):
                res = x["peers"].get(lib, {})
                cells += ([_ms(res["median_s"]), f"{res['median_s'] / t:.2f}x"] if res.get("ok")
                          else ["not run", res.get("reason", "?")])
            lines.append(f"| {x['workload']}, numba with 1 BLAS thread | {x['batch']} | {x['T']} | {x['dtype']} | "
                         f"{_ms(sum(t1) / 2)} | " + " | ".join(cells) + (" | | |" if loop else " |"))
    for x in p["rows"]:
        for lib, res in x["peers"].items():
            if res.get("ok"):
                extra = f", mode {res['mode']}" if "mode" in res else ""
                if "cpu_per_wall" in res:
                    extra += f"; {res['cpu_per_wall']:.2f} CPU s per wall s"
                notes.append(f"{lib} {res.get('version')} (JAX {res.get('jax')}) B={x['batch']} T={x['T']} "
                             f"{x['dtype']}: compile {res['compile_s']:.1f} s{extra}; final energy rel. error vs "
                             f"neurosim {res['energy_rel_err']:.1e}, weights max abs error "
                             f"{res['weights_max_abs_err']:.1e}")
    if notes:
        lines.append("\nChecks before timing (compile excluded from the times):\n")
        lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def scaling_section(s):
    b = s["base"]
    lines = [f"## Scaling (numba, float64; base: batch {b['batch']}, width {b['width']}, {b['depth']} hidden "
             f"layers, T {b['T']})\n"]
    for param, sw in s["sweeps"].items():
        pts = sw["points"]
        lines.append(f"**{param}**: time ~ {param}^{sw['growth_exponent']:.2f} over the sweep, "
                     f"^{sw['growth_exponent_upper_half']:.2f} over its upper half\n")
        lines.append("| " + param + " | " + " | ".join(str(p[param]) for p in pts) + " |")
        lines.append("|---|" + "---|" * len(pts))
        lines.append("| ms/batch | " + " | ".join(_ms(p["numba_s"]) for p in pts) + " |")
        lines.append("| GFLOP/s | " + " | ".join(f"{p['gflops']:.1f}" for p in pts) + " |")
        lines.append("| fraction of roofline | " + " | ".join(_pct(p["fraction_of_roofline"]) for p in pts) + " |\n")
    return "\n".join(lines)


def memory_section(rows):
    lines = ["## Memory (peak RSS of a fresh process)\n",
             "| case | batch | width | hidden layers | T | peak RSS MB | RSS after imports and kernel load MB | "
             "network state MB | probe data MB |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['batch']} | {r['width']} | {r['depth']} | {r['T']} | {r['peak_rss_mb']:.0f} | "
                     f"{r['rss_after_load_mb']:.0f} | {r.get('state_mb', r.get('state_buffers_mb', 0.0)):.1f} | {r['probe_data_mb']:.1f} |")
    return "\n".join(lines) + "\n"


def probes_section(rows, note=None):
    lines = ["## Probes recording every step\n"] + ([note + "\n"] if note else []) + [
             "`Simulator.run(..., learn=True)` with the "
             "records stored in `sim.data`, accumulating over the runs as in training; the probes keep their "
             "default bound (the most recent 10,000 records) and are timed once it is full, when stored "
             "records go into recycled buffers. The last rows keep every record: each batch then writes "
             "its records (1.3 MB at B=1, T=100) to pages the process has never touched, and on this VM "
             "the first write to a page costs 0.6-0.9 ms per MB, ten times the copy itself; at that rate "
             "a training run would also fill the machine's memory within minutes.\n",
             "| level | probes | batch | T | without ms | with ms | ratio | records kept MB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        kept = f"{r['records_mb']:.0f}" if "records_mb" in r else ""
        lines.append(f"| {r.get('level', 'simulator')} | {r.get('probes', '')} | {r['batch']} | {r['T']} | "
                     f"{_ms(r['plain_s'])} | {_ms(r['probes_s'])} | **{r['ratio']:.2f}** | {kept} |")
    return "\n".join(lines) + "\n"


def startup_section(s, th=None):
    imp = ", ".join(f"{k} {v:.2f} s" for k, v in s["import_s"].items())
    text = (f"## Start-up\n\n- `neurosim run digits` with a warm numba cache: training begins "
            f"**{s['digits_until_training_begins_s']:.2f} s** after the process starts (after the warm-up batch that "
            f"loads the cached kernels); its first epoch is done at {s['digits_until_first_epoch_done_s']:.2f} s.\n"
            f"- Import times in one fresh process (a single cold run; `sklearn.datasets` and `matplotlib` are not "
            f"imported before training starts): {imp}.\n"
            f"- Kernel compile with an empty cache: float64 {s['cold_compile_s_float64']:.1f} s, float32 "
            f"{s['cold_compile_s_float32']:.1f} s; first call with a warm cache {s['cache_load_s_float64']:.2f} s. "
            f"The kernel takes packed int/float settings arrays, so there is one compiled specialisation per dtype.\n")
    if th:
        text += (f"- One numba `prange` region (enter and leave, {th['threading_layer']} layer) costs "
                 f"{th['prange_region_s'] * 1e6:.1f} us in this run; while developing, on the same machine under load, "
                 f"it took 0.5-1.4 ms (the worker's core was busy). A relaxation step at batch 1 takes ~13 us, so a "
                 f"parallel region per step cannot pay: the kernel runs on the calling thread, and BLAS uses both "
                 f"cores inside the products of batches above 8; from 256 items the batch's row blocks run on "
                 f"worker threads of their own, which meet once per relaxation.\n")
    return text


def coldstart_section(c):
    """The cold-start table: one row per case and cache state, a column per tree (this one, and the ``--against``
    commit); results made before the install-time compile have only the empty-cache rows."""
    trees = c["trees"]
    def med(rows, key):
        v = [x[key] for x in rows if x.get(key) is not None]
        return float(np.median(v)) if v else float("nan")
    def fmt(v):
        return "n/a" if v != v else f"{v:.1f} s"
    lines = ["## Cold start (a fresh install)\n",
             "Each number is a new process on a fresh copy of the tree (64-256-256-10 tanh; `learn` is the first "
             "`Simulator.learn` call, 20 steps: compile or load plus one batch; `fpa`/`ipc` the first step of that "
             "schedule after it, batch 32; median of the repeats; `cpu`: the child's process CPU time, steadier "
             "than wall time on a busy machine since compiling is single-threaded). **installed**: after the "
             "kernels the install compiles (`python -m neurosim.precompile`, which `pip install` runs from "
             "`setup.py`; its wall time is the first row), with numba's cache where the install put it -- what a "
             "new user's first calls cost. **empty**: with an empty `NUMBA_CACHE_DIR`, so every kernel compiles on "
             "first use (as after `NEUROSIM_PRECOMPILE=0`, with a new `NUMBA_CACHE_DIR`, or for kernels the "
             "install does not compile). "
             + (f"The trees were run interleaved in one run: {', '.join(trees)}." if len(trees) > 1 else "") + "\n",
             "| first call | cache | " + " | ".join(trees) + (" | ratio |" if len(trees) > 1 else " |"),
             "|---|---|" + "---|" * (len(trees) + (1 if len(trees) > 1 else 0))]
    def add(name, cache, vals):
        row = f"| {name} | {cache} | " + " | ".join(fmt(v) for v in vals)
        lines.append(row + (f" | {vals[1] / vals[0]:.2f}x |" if len(trees) > 1 and vals[0] == vals[0]
                            and vals[1] == vals[1] else (" | |" if len(trees) > 1 else " |")))
    if c.get("installs"):
        add("install-time compile (`python -m neurosim.precompile`)", "-",
            [med([x for x in c["installs"] if x["tree"] == t], "install_compile_s") for t in trees])
    caches = [k for k in ("installed", "empty") if any(x.get("cache", "empty") == k for x in c["rows"])]
    for cache in caches:
        keys = []
        for x in c["rows"]:
            if x.get("cache", "empty") != cache:
                continue
            for k in x:
                if k.startswith("first_") and (x["dtype"], x["batch"], k) not in keys:
                    keys.append((x["dtype"], x["batch"], k))
        for dtype, B, k in keys:
            vals = [med([x for x in c["rows"] if x["tree"] == t and x.get("cache", "empty") == cache
                         and x["dtype"] == dtype and x["batch"] == B], k) for t in trees]
            add(f"`{k[len('first_'):-len('_s')]}`, {dtype}, batch {B}", cache, vals)
        if c.get("digits"):
            add("`neurosim run digits` (whole command)", cache,
                [med([d for d in c["digits"] if d["tree"] == t and d.get("cache", "empty") == cache], "wall_s")
                 for t in trees])
    pip = c.get("pip")
    if pip:
        lines.append(f"\n**A new user's whole path** (`--pip`, once, this tree): a fresh venv, `pip install -e` "
                     f"{pip['pip_install_s']:.1f} s (dependencies from pip's cache; pip's isolated build environment "
                     f"compiles the kernels), then the first `learn` at batch 1 {pip['first_learn_float64_s']:.2f} s "
                     f"(float64) / {pip['first_learn_float32_s']:.2f} s (float32), and `neurosim run digits` "
                     f"{pip['digits_s']:.1f} s in all (compile_s {pip.get('digits_compile_s') or 0:.2f}).")
    lines.append(f"\nLoad average at the end: {c.get('loadavg')}.\n")
    return "\n".join(lines) + "\n"


def events_section(e):
    """Wall time against events of the hw-event-driven relaxation, per threshold, before and after."""
    lines = ["## Event-driven relaxation: wall time against events (`--only events`)\n",
             "The relaxation `neurosim run hw-event-driven` times per threshold: 64-32-10 tanh PCN, a clamped test "
             "batch of 32 digits, 100 Euler steps, fixed weights, numba event engine, `Simulator.run` timed "
             "round-robin over the thresholds (per sample = per batch item; CPU = thread time; kernel = "
             "`event_kernel` alone). Fit: least squares `time = fixed + slope * synaptic ops` over the sweep.\n"]
    names = [n for n in ("before", "after") if n in e]
    if "baseline" in e:
        lines.append(f"before = git revision `{e['baseline']['ref']}` ({e['baseline']['commit']}), after = this "
                     f"tree, in alternating subprocesses.\n")
    head = "| threshold | events/sample | synaptic ops/sample |"
    sep = "|---|---|---|"
    for n in names:
        head += f" {n}: wall ms/sample | {n}: CPU ms/sample | {n}: kernel ms/sample |"
        sep += "---|---|---|"
    lines += [head, sep]
    for i, x in enumerate(e[names[-1]]["rows"]):
        row = f"| {x['threshold']:g} | {x['events_per_sample']:.1f} | {x['synaptic_ops_per_sample']:.0f} |"
        for n in names:
            y = e[n]["rows"][i]
            row += (f" {y['wall_ms_per_sample']:.4f} | {y['cpu_ms_per_sample']:.4f} | "
                    f"{y['kernel_wall_ms_per_sample']:.4f} |")
        lines.append(row)
    lines.append("")
    for n in names:
        f = e[n]["fit"]
        lines.append(f"- {n}: {f['wall']['ns_per_synaptic_op']:.2f} ns per synaptic op + "
                     f"{f['wall']['fixed_us_per_sample']:.1f} us fixed per sample (wall); kernel alone "
                     f"{f['kernel_wall']['ns_per_synaptic_op']:.2f} ns/op + "
                     f"{f['kernel_wall']['fixed_us_per_sample']:.1f} us")
    if e.get("count_mismatch"):
        lines.append(f"- event counts differ between before and after at thresholds {e['count_mismatch']}")
    return "\n".join(lines) + "\n"


def _num(v, spec):
    """``v`` formatted with ``spec``, or "n/a" (a NaN is stored as null in the JSON results)."""
    return "n/a" if v is None or v != v else format(v, spec)


def sparse_section(s):
    """Tables of the ``sparse`` suite (benchmarks/sparse.py)."""
    n = s.get("sizes", [])
    lines = [f"## Sparse projections: {sum(n):,d} value units ({' -> '.join(f'{v:,d}' for v in n)}), FixedFanIn(k)\n",
             "Clock-driven, numba, batch 1 and 32 (one `step`: relax T steps with the target clamped, then learn). "
             "Synaptic operations per batch: `2 nnz + 2 T nnz_out` (sweep, T x (output prediction + its feedback), "
             "Hebbian update); see `benchmarks/sparse.py`.\n",
             "| fan-in k | synapses | T | ms/batch (median) | ns per synaptic op | weights MiB | indices MiB | dense "
             "weights would be GiB |", "|---|---|---|---|---|---|---|---|"]
    c = s["clock"]
    lines[-2] = lines[-2].replace("| fan-in k | synapses | T |", "| fan-in k | synapses | batch | T |")
    lines[-1] = "|---" + lines[-1]
    for x in c["rows"] + c.get("batched_rows", []):
        lines.append(f"| {x['fan_in']} | {x['synapses']:,d} | {x['batch']} | {x['T']} | {_ms(x['median_s'])} | "
                     f"{x['ns_per_sop']:.2f} | "
                     f"{x['weights_bytes'] / 2**20:.1f} | {x['indices_bytes'] / 2**20:.1f} | "
                     f"{x['dense_equivalent_weights_bytes'] / 2**30:.1f} |")
    lines.append(f"\nAt batch 1, time grows as (synapses x steps)^**{_num(c.get('exponent_vs_sops'), '.2f')}** (fit over every point); against "
                 "synapses at fixed T: " + ", ".join(f"T={t}: ^{_num(v, '.2f')}" for t, v in c["exponent_vs_synapses"].items())
                 + "; against T at fixed k: " + ", ".join(f"k={k}: ^{_num(v, '.2f')}" for k, v in c["exponent_vs_T"].items())
                 + ". As a line per T (time = fixed + per_op x ops; the fixed part is the per-unit work): "
                 + ", ".join(f"T={t}: {_num(v['per_op_ns'], '.2f')} ns/op + {_num(v['fixed_ms'], '.1f')} ms"
                             for t, v in c.get("linear_per_T", {}).items()) + ".\n")
    m = s.get("memory")
    if m:
        lines += ["| fan-in k | synapses | weights + indices MB | peak RSS growth MB |", "|---|---|---|---|"]
        for x in m["rows"]:
            lines.append(f"| {x['fan_in']} | {x['synapses']:,d} | {x['weights_plus_indices_mb']:.1f} | "
                         f"{x['growth_mb']:.1f} |")
        lines.append(f"\nPeak RSS growth ~ synapses^**{_num(m.get('exponent_vs_synapses'), '.2f')}** (a fresh process: building the "
                     "simulator and training one batch; includes the optimiser state and the gradient buffer).\n")
    e = s.get("event")
    if e:
        lines += ["Event-driven (`neurosim.hardware.NumbaEngine`, send-on-delta, batch 1, T=10, no learning): a value "
                  "event touches the unit's out-synapses, an error event its in-synapses.\n",
                  "| fan-in k | threshold | events | synaptic ops | ms | ms without events | ns per synaptic op (time beyond "
                  "the no-event run) |", "|---|---|---|---|---|---|---|"]
        for x in e["rows"]:
            lines.append(f"| {x['fan_in']} | {x['theta']:g} | {x['events']:,d} | {x['sops']:,d} | {_ms(x['median_s'])} | "
                         f"{_ms(x['no_event_s'])} | {x['ns_per_sop']:.2f} |")
        lin = e.get("linear", {})
        lines.append(f"\nEvent-driven time grows as (events x fan-out)^**{_num(e.get('exponent_vs_sops'), '.2f')}**, the time beyond "
                     f"the no-event run as ^**{_num(e.get('exponent_event_part_vs_sops'), '.2f')}**, which is "
                     f"{_num(e.get('ns_per_event'), '.0f')} ns per event + **{_num(e.get('ns_per_sop'), '.2f')} "
                     f"ns per synaptic op** (least squares); the whole time as a line: "
                     f"{_num(lin.get('per_op_ns'), '.2f')} ns per synaptic op + "
                     f"{_num(lin.get('fixed_ms'), '.0f')} ms of per-unit work that does not depend on the "
                     f"synapses (its synaptic part grows as ^{_num(lin.get('exponent_of_synaptic_part'), '.2f')}).\n")
    return "\n".join(lines) + "\n"


def checklist(r):
    w = {(x["workload"], x["batch"], x["T"], x["dtype"]): x for x in r.get("workloads", {}).get("rows", [])}
    lines = ["## The issue's targets, as measured in this run\n"]
    on = w.get(("online", 1, 100, "float64"))
    if on:
        ok = on["speedup_vs_reference"] >= 10 and on["fraction_of_roofline"] >= 0.5
        lines.append(f"- batch 1 (float64), one thread (the default): numba {on['speedup_vs_reference']:.1f}x the "
                     f"reference (target 10x), {_pct(on['fraction_of_roofline'])} of the GEMV roofline (target 50%): "
                     f"{'met' if ok else 'NOT met'}")
        if "fraction_of_load_bound" in on:
            lines.append(f"  - the load bound of this workload (each weight read twice per step at the measured L1 "
                         f"load rate, elementwise work free) is {_ms(on['load_bound_s'])} ms, "
                         f"{on['reference_s'] / on['load_bound_s']:.1f}x below the reference; numba reaches "
                         f"{_pct(on['fraction_of_load_bound'])} of it (see the workloads section)")
    on32 = w.get(("online", 1, 100, "float32"))
    if on32:
        lines.append(f"  - float32 (an option; error in the workloads section): {on32['speedup_vs_reference']:.1f}x "
                     f"the float32 reference, {_pct(on32['fraction_of_roofline'])} of the float32 GEMV roofline")
    for dtype in ("float64", "float32"):
        for T in (20, 100):
            b = w.get(("batched", 256, T, dtype))
            if not b:
                continue
            one = "roofline_1thread_s" in b   # runs before 2026-12-07 divided it by the two-thread rate
            extra = (f"; with 1 BLAS thread {_pct(b['fraction_of_roofline_1thread'])} of the one-thread GEMM roofline"
                     if one else "")
            ok = b["fraction_of_roofline"] >= 0.8 and (not one or b["fraction_of_roofline_1thread"] >= 0.8)
            lines.append(f"- batch 256, T={T} ({dtype}): {_pct(b['fraction_of_roofline'])} of the GEMM roofline with "
                         f"the default threading{extra} (target 80%; the roofline counts the first layer's "
                         f"prediction at every step, which the kernel computes once): {'met' if ok else 'NOT met'}")
    p = r.get("peers")
    if p:
        worst = []
        for x in p["rows"]:
            for lib, res in x["peers"].items():
                if res.get("ok"):
                    worst.append((res["ratio_peer_over_numba"], lib, x["batch"], x["T"], x["dtype"]))
        if worst:
            m = min(worst)
            lines.append(f"- default threading: faster than pcx and ngc-learn on every workload: slowest margin "
                         f"{m[0]:.2f}x ({m[1]}, B={m[2]}, T={m[3]}, {m[4]}): {'met' if m[0] > 1 else 'NOT met'}")
    c = r.get("coldstart")
    if c:
        mine = c["trees"][0]
        # a fresh install: the rows after the install-time compile where there are any (older results: empty)
        cache = "installed" if any(x.get("cache") == "installed" for x in c["rows"]) else "empty"
        for dtype in ("float64", "float32"):
            v = [x["first_learn_s"] for x in c["rows"] if x["tree"] == mine and x["dtype"] == dtype
                 and x.get("cache", "empty") == cache]
            if v:
                lines.append(f"- first `learn` of a fresh install, {dtype}: {max(v):.1f} s at most over batch 1 and 256 "
                             f"(target < 5 s): {'met' if max(v) < 5 else 'NOT met'}")
        d = [x["wall_s"] for x in c.get("digits", []) if x["tree"] == mine and x.get("cache", "empty") == cache]
        if d:
            m = float(np.median(d))
            lines.append(f"- `neurosim run digits` on a fresh install: {m:.1f} s in all (target < 15 s): "
                         f"{'met' if m < 15 else 'NOT met'}")
        ic = [x["install_compile_s"] for x in c.get("installs", []) if x["tree"] == mine
              and x.get("install_compile_s") is not None]
        if ic and cache == "installed":
            lines.append(f"- (the install compiles the common kernels first: {ic[0]:.1f} s more in `pip install`; "
                         f"the first `learn` that has to compile its kernel: see the empty-cache rows)")
    for key, what in (("peers", "default threading"), ("peers_one_thread", "one thread")):
        rows = (r.get(key) or {}).get("rows", [])
        pcx = [(x["peers"]["pcx"]["ratio_peer_over_numba"], x) for x in rows if x["peers"].get("pcx", {}).get("ok")]
        loop = [(x["ratio_numpy_loop_over_numba"], x) for x in rows if "ratio_numpy_loop_over_numba" in x]
        if pcx:
            m, x = min(pcx, key=lambda v: v[0])
            lines.append(f"- {what}: at least 1.2x faster than pcx on every workload: slowest margin {m:.2f}x "
                         f"(B={x['batch']}, T={x['T']}, {x['dtype']}): {'met' if m >= 1.2 else 'NOT met'}")
        if loop:
            m, x = min(loop, key=lambda v: v[0])
            lines.append(f"- {what}: at least as fast as a plain NumPy loop on every workload: slowest margin {m:.2f}x "
                         f"(B={x['batch']}, T={x['T']}, {x['dtype']}): {'met' if m >= 1.0 else 'NOT met'}")
    ld = r.get("load")
    if ld:
        worst = max(ld, key=lambda x: x["default loaded/quiet"])
        # batches up to 8 call no BLAS: every setting runs the same code there, so their quiet spread is noise
        blas_rows = [x for x in ld if x["batch"] > 8] or ld
        q = max(blas_rows, key=lambda x: x["default quiet / best quiet"])
        lines.append(f"- a busy machine, default settings: loaded / quiet at most {worst['default loaded/quiet']:.2f}x "
                     f"(B={worst['batch']}; target 2x): {'met' if worst['default loaded/quiet'] <= 2 else 'NOT met'}; "
                     f"default quiet / best quiet at most {q['default quiet / best quiet']:.2f} (B={q['batch']}; "
                     f"target 1.10; batches above 8, where the settings differ): "
                     f"{'met' if q['default quiet / best quiet'] <= 1.10 else 'NOT met'}")
    s = r.get("startup")
    if s:
        t = s["digits_until_training_begins_s"]
        lines.append(f"- warm start of `neurosim run digits`: training begins after {t:.2f} s (target < 2 s): "
                     f"{'met' if t < 2 else 'NOT met'}")
    pr = r.get("probes")
    if pr:
        for level in ("kernel", "simulator"):
            sel = [x for x in pr if x.get("level", "simulator") == level and x.get("bounded", True)]
            if sel:
                m = max(sel, key=lambda x: x["ratio"])
                lines.append(f"- probes every step, {level} level: time changes by at most {m['ratio'] - 1:+.0%} "
                             f"({m.get('probes')}, B={m['batch']}, T={m['T']}; target 20%): "
                             f"{'met' if m['ratio'] <= 1.2 else 'NOT met'}")
            unb = [x for x in pr if x.get("level") == level and not x.get("bounded", True)]
            if unb:
                m = max(unb, key=lambda x: x["ratio"])
                lines.append(f"  - keeping every record instead (memory grows by the records of each batch): "
                             f"{m['ratio'] - 1:+.0%} (B={m['batch']}, T={m['T']}), the cost of first-touching "
                             f"fresh memory (see the probes section)")
    ev = r.get("events")
    if ev:
        rows = ev["after"]["rows"]
        hi, lo = max(rows, key=lambda x: x["events_per_sample"]), min(rows, key=lambda x: x["events_per_sample"])
        f = ev["after"]["fit"]["wall"]
        lines.append(f"- event-driven relaxation (hw-event-driven): {hi['events_per_sample']:.0f} -> "
                     f"{lo['events_per_sample']:.0f} events per sample take {hi['wall_ms_per_sample']:.3f} -> "
                     f"{lo['wall_ms_per_sample']:.3f} ms per sample (fit: {f['ns_per_synaptic_op']:.2f} ns per "
                     f"synaptic op + {f['fixed_us_per_sample']:.1f} us fixed per sample, the Euler integration of "
                     f"every moving unit): wall time falls with the events: "
                     f"{'met' if lo['wall_ms_per_sample'] < hi['wall_ms_per_sample'] else 'NOT met'}")
        if "before" in ev:
            b = {x["threshold"]: x for x in ev["before"]["rows"]}
            sp = [b[x["threshold"]]["wall_ms_per_sample"] / x["wall_ms_per_sample"] for x in rows]
            lines.append(f"  - against `{ev['baseline']['ref']}`: {min(sp):.0f}x to {max(sp):.0f}x faster per "
                         f"threshold")
    sp = r.get("sparse")
    if sp:
        c, m, e = sp["clock"], sp.get("memory", {}), sp.get("event", {})
        lin = list(c.get("linear_per_T", {}).values())
        lines.append(f"- sparse projections, {sum(sp['sizes']):,d} value units, 10-100 synapses each: peak memory grows as "
                     f"synapses^{_num(m.get('exponent_vs_synapses'), '.2f')}; clock-driven time as (synapses x steps)^"
                     f"{_num(c.get('exponent_vs_sops'), '.2f')}"
                     + (f" ({_num(lin[-1]['per_op_ns'], '.1f')} ns per synaptic op at the largest T, beside per-unit "
                        f"work)" if lin else "")
                     + f"; event-driven time beyond the no-event run as (events x fan-out)^"
                     f"{_num(e.get('exponent_event_part_vs_sops'), '.2f')} ({_num(e.get('ns_per_sop'), '.1f')} ns per "
                     f"synaptic op + {_num(e.get('ns_per_event'), '.0f')} ns per event)")
    return "\n".join(lines) + "\n"


def markdown(r) -> str:
    parts = [HEADER] + [f"**Note.** {n}\n" for n in r.get("notes", [])] + [machine_section(r), checklist(r)]
    if "workloads" in r:
        parts.append(workloads_section(r["workloads"]))
    if "peers" in r:
        parts.append(peers_section(r["peers"]))
    if "peers_one_thread" in r:
        parts.append(peers_section(r["peers_one_thread"]))
    if "load" in r:
        parts.append(load_section(r["load"]))
    if "scaling" in r:
        parts.append(scaling_section(r["scaling"]))
    if "memory" in r:
        parts.append(memory_section(r["memory"]))
    if "probes" in r:
        parts.append(probes_section(r["probes"], r.get("probes_note")))
    if "startup" in r:
        parts.append(startup_section(r["startup"], r.get("threads")))
    if "coldstart" in r:
        parts.append(coldstart_section(r["coldstart"]))
    if "events" in r:
        parts.append(events_section(r["events"]))
    if "sparse" in r:
        parts.append(sparse_section(r["sparse"]))
    parts.append(KERNEL_NOTES)
    return "\n".join(parts)


KERNEL_NOTES = """## What the numba core does (neurosim/backends/numba/)

- One jitted call per batch (initialisation, T steps, weight update) on the calling thread; settings are
  packed into an int and a float array, so one compiled specialisation serves every run of a dtype, and
  kernels are cached on disk.
- Batches of 256 or more relax in row blocks of about 128 (a function of the batch size alone, so the numbers
  do not depend on the threads): one kernel call per block, on one worker thread per thread the settings allow
  (one BLAS thread each; the load is not consulted) or in turn, then one weight update from the whole batch.
  With two threads every core does its block's elementwise work as well as its products, and the threads meet
  once per relaxation instead of inside every product.
- Batch <= 8: hand-written loops. A population whose only input is one weighted projection gets its
  prediction, error, energy and the feedback into its input layer from **one pass over W** in blocks of
  8 rows (the rows give mu_j, then eps_j, then are reused for fb += a eps_j W_j while still in L1; one
  load of phi(x) and one load/store of fb serve 8 rows). Batch > 8: BLAS (`np.dot` on contiguous views;
  OpenBLAS uses both cores below 256 items, one per block from 256).
- Probe records: the kernel writes x, eps and mu of the probed item straight into the Simulator's record
  store (chunks recycled once `max_records` is reached), so recording costs the kernel's own writes and
  no copy.
- Predictions of populations whose inputs are all clamped are computed once per batch; feedback is
  computed only into populations that move; phi(x) only for populations that project.
- Elementwise work is fused (errors + energy in one pass; the Euler update, phi and phi' in one pass)
  and vectorised: tanh and the logistic are written branch-free (Cody-Waite exp + Cephes rational tanh,
  at most 3 ulp from NumPy's), `error_model="numpy"` removes Python's zero-division checks, and loops
  index views from 0 (numba's negative-index wrap-around on `x[o + j]` turns loads into gathers).
- BLAS threads: on a quiet machine two threads are faster for large batches; when other processes keep
  the cores busy, a two-thread GEMM waits for its descheduled half and the batch can become an order of
  magnitude slower. So by default (`backend_options={"blas_threads": "auto"}`) every call above batch 8
  picks its threads from the runnable processes at that instant (`/proc/loadavg` minus this process's own
  running threads: one thread on 2 cores when anything else runs) and from its thread's CPU share in the
  previous call (OpenBLAS `openblas_set_num_threads_local`, restored after the call); `{"blas_threads": 1}`
  fixes one thread (the "1 BLAS thread" rows), `"blas"` BLAS's own setting.
- fast-math without `nnan`/`ninf` (divergence is detected with finiteness checks); the conformance suite
  checks numba against the reference backend to 1e-10 in float64.
"""


def load_section(rows):
    """The busy-machine table of ``system.load``: quiet and loaded median (min) per setting and batch."""
    keys = [k[len("quiet "):-len(" median_ms")] for k in rows[0] if k.startswith("quiet ") and k.endswith(" median_ms")]
    lines = ["## A busy machine: two CPU-bound processes beside a training batch (float64, T = 20)\n",
             "Median (min) ms per batch, every setting round-robin; *quiet*: without the two processes the benchmark "
             "starts (other users' load is whatever it was, see the load average).\n",
             "| batch | phase | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for x in rows:
        for ph in ("quiet", "loaded"):
            lines.append(f"| {x['batch']} | {ph} | " + " | ".join(
                f"{x[f'{ph} {k} median_ms']:.2f} ({x[f'{ph} {k} min_ms']:.2f})" for k in keys) + " |")
        lines.append(f"| {x['batch']} | loaded / quiet | " + " | ".join(f"**{x[f'{k} loaded/quiet']:.2f}x**"
                                                                        for k in keys) + " |")
    return "\n".join(lines) + "\n"


def write_readme(r, path: Path):
    path.write_text(markdown(r))
