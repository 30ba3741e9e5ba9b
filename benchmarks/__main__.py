"""python -m benchmarks [--quick] [--only SUITE ...] [--no-peers] [--repeats N] [--out PATH] [--no-readme]

Suites: workloads (numba vs reference vs roofline, float64 and float32), peers (pcx, ngc-learn),
scaling (width, depth, T, batch), memory, probes, startup, coldstart (a fresh install's first calls; --against
COMMIT times another commit in the same run), threads, load, events (event-driven wall time against events,
before/after against a git revision), sparse (100,000 units with sparse projections: clock-driven and
event-driven time against synapses x steps / events x fan-out, memory).  Prints a table per suite and
writes all figures and the machine description to ``benchmarks/results/latest.json`` (and a copy
named after the date), then regenerates ``benchmarks/README.md`` from them.
"""
import argparse
import datetime
import json
import shutil
import sys
import time
from pathlib import Path

from neurosim.io import write_json_atomic

from . import core, events, peers, report, scaling, sparse, system, workloads

SUITES = ["workloads", "peers", "scaling", "memory", "probes", "startup", "coldstart", "threads", "load",
          "events", "sparse"]
HERE = Path(__file__).parent


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description="neurosim performance measurements: numba "
                                "vs the NumPy reference, the measured roofline and pcx / ngc-learn (see benchmarks/README.md)")
    p.add_argument("--only", nargs="+", choices=SUITES, help="run only these suites")
    p.add_argument("--quick", action="store_true", help="fewer repeats and sweep points (a few minutes)")
    p.add_argument("--no-peers", action="store_true", help="skip pcx and ngc-learn")
    p.add_argument("--peers-python", default=peers.DEFAULT_PYTHON, help="python of the peers environment")
    p.add_argument("--peers-float32", action="store_true", help="also time the peers in float32")
    p.add_argument("--peers-threads", choices=["default", "one", "both"], default="default",
                   help="peers suite: every implementation with its default threading, on one thread, or both")
    p.add_argument("--peers-libs", nargs="+", choices=list(peers.PEERS), default=list(peers.PEERS),
                   help="peers suite: which peer libraries to run (the NumPy loop always runs)")
    p.add_argument("--repeats", type=int, help="repeats per timing (default 7, quick 3)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    p.add_argument("--no-readme", action="store_true", help="do not regenerate benchmarks/README.md")
    p.add_argument("--into-latest", action="store_true",
                   help="with --only: put these suites' results into results/latest.json in place of its earlier "
                        "ones (the other suites are kept, the README says which suites were measured when) and "
                        "regenerate benchmarks/README.md")
    p.add_argument("--against", metavar="COMMIT", help="coldstart: also time this git commit's tree, interleaved")
    p.add_argument("--pip", action="store_true",
                   help="coldstart: also time a new user's whole path once: a fresh venv, pip install -e (pip's build "
                        "environment compiles the kernels), the first learn and neurosim run digits (needs the "
                        "package registry or pip's cache)")
    p.add_argument("--wait-quiet", type=float, metavar="MINUTES", default=0,
                   help="first wait up to MINUTES for the 1-minute load average to drop below --quiet-load")
    p.add_argument("--quiet-load", type=float, default=0.5, help="load average counted as quiet (default 0.5)")
    p.add_argument("--events-baseline", default="main", metavar="REF",
                   help="events suite: also time the neurosim of this git revision ('none': only the current tree)")
    a = p.parse_args(argv)
    if a.into_latest and not a.only:
        p.error("--into-latest needs --only (a whole run writes latest.json itself)")
    suites = a.only or [s for s in SUITES if not (s == "peers" and a.no_peers)]
    repeats = a.repeats or (3 if a.quick else 7)

    def log(msg):
        print(msg, flush=True)

    if a.wait_quiet > 0:
        t_end = time.time() + 60 * a.wait_quiet
        while (core.loadavg() or (0,))[0] >= a.quiet_load and time.time() < t_end:
            log(f"waiting for a quiet machine: load average {core.loadavg()[0]:.2f}")
            time.sleep(20)
    t_start = time.perf_counter()
    res = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": core.machine(),
           "command": " ".join(["python -m benchmarks"] + (argv if argv is not None else sys.argv[1:])),
           "suites": suites}
    log(f"neurosim benchmarks on {res['machine'].get('cpu')} ({res['machine']['cpu_count']} cores), "
        f"load average {res['machine'].get('loadavg_start')}")
    if "workloads" in suites:
        log("workloads: numba vs reference vs roofline")
        res["workloads"] = workloads.run(repeats=repeats, log=log)
    if "peers" in suites:
        log("peers: pcx and ngc-learn (each checked against neurosim's energy and weight update first)")
        dtypes = ("float64", "float32") if a.peers_float32 else ("float64",)
        for one in {"default": [False], "one": [True], "both": [False, True]}[a.peers_threads]:
            key = "peers_one_thread" if one else "peers"
            res[key] = peers.run(workloads.WORKLOADS, python=a.peers_python, repeats=max(3, repeats - 2),
                                 dtypes=dtypes, log=log, one_thread=one, peers=tuple(a.peers_libs))
    if "scaling" in suites:
        log("scaling (numba, float64)")
        res["scaling"] = scaling.run(repeats=3 if a.quick else max(5, repeats - 2), quick=a.quick, log=log)
    if "memory" in suites:
        log("memory: peak RSS of fresh processes")
        res["memory"] = system.memory(log=log)
    if "probes" in suites:
        log("probes recording every step")
        res["probes"] = system.probes(repeats=2 * repeats + 1, log=log)
    if "startup" in suites:
        log("start-up")
        res["startup"] = system.startup(repeats=2 if a.quick else 3, log=log)
    if "coldstart" in suites:
        log("cold start: fresh processes on fresh copies of the tree, after the install's compile and with an empty "
            "numba cache" + (f", against {a.against}" if a.against else ""))
        res["coldstart"] = system.coldstart(against=a.against, repeats=1 if a.quick else 2, log=log, pip=a.pip)
    if "threads" in suites:
        log("numba threads")
        res["threads"] = system.threads(log=log)
    if "load" in suites:
        log("a busy machine: two CPU-bound processes beside one training batch")
        res["load"] = system.load(n=15 if a.quick else 31, log=log)
    if "events" in suites:
        log("event-driven relaxation: wall time against events (hw-event-driven workload)")
        res["events"] = events.run(repeats=7 if a.quick else 15, rounds=2 if a.quick else 3,
                                   baseline=None if a.events_baseline == "none" else a.events_baseline, log=log)
    if "sparse" in suites:
        log("sparse projections: 100,000 value units, FixedFanIn (numba, clock- and event-driven)")
        res["sparse"] = sparse.run(repeats=3 if a.quick else 5, quick=a.quick, log=log)
    res["loadavg_end"] = core.loadavg()
    res["total_s"] = time.perf_counter() - t_start
    if a.into_latest:
        latest = HERE / "results" / "latest.json"
        base = json.loads(latest.read_text())
        upd = base.setdefault("updated", {})
        # every result of this run (a suite may write under another key: peers on one thread, "peers_one_thread")
        for key in [k for k in res if k not in ("date", "machine", "command", "suites", "loadavg_end", "total_s")]:
            base[key] = res[key]
            upd[key] = {"date": res["date"], "command": res["command"],
                        "loadavg_start": res["machine"].get("loadavg_start")}
        write_json_atomic(a.out, res)
        write_json_atomic(latest, base)
        log(f"wrote {a.out}; {', '.join(k for k in upd if upd[k]['date'] == res['date'])} put into {latest}")
        if not a.no_readme:
            report.write_readme(base, HERE / "README.md")
            log(f"wrote {HERE / 'README.md'}")
        print()
        print(report.checklist(base))
        return 0
    write_json_atomic(a.out, res)
    stamped = a.out.parent / f"{res['date'][:10]}.json"
    if a.out.name == "latest.json":
        shutil.copyfile(a.out, stamped)
    log(f"wrote {a.out}" + (f" and {stamped}" if a.out.name == "latest.json" else ""))
    if not a.no_readme and a.out.name == "latest.json":
        report.write_readme(res, HERE / "README.md")
        log(f"wrote {HERE / 'README.md'}")
    print()
    print(report.checklist(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
