"""The ``neurosim`` command line.

    neurosim list
    neurosim run NAME [--backend numba|reference] [--out DIR] [--seed N] [--set key=value ...]
    neurosim show NAME
    neurosim sweep NAME --grid key=v1,v2,... [--grid ...] [--set key=value ...] [--scheduler ADDRESS]
                   [--out DIR] [--workers N]

Exit codes: 0 success, 1 the run failed (the message says why), 2 bad arguments.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser():
    p = argparse.ArgumentParser(prog="neurosim", description="Predictive-coding circuits in continuous time.")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("list", help="list ready-made experiments with one-line descriptions")
    show = sub.add_parser("show", help="show an experiment's description and parameters")
    show.add_argument("name")
    r = sub.add_parser("run", help="run an experiment; writes metrics.json, config.json and PNG figures",
                       description="Run an experiment. Parameters (see `neurosim show NAME`) are set with "
                                   "--set key=value; lists as --set hidden=[256,128] or hidden=256,128.")
    r.add_argument("name", help="experiment name (see `neurosim list`)")
    r.add_argument("--backend", choices=["numba", "reference", "brian2"],
                   help="simulation backend (default: numba; brian2 needs the [brian2] extra)")
    r.add_argument("--out", type=Path, help="output directory (default: results/NAME)")
    r.add_argument("--seed", type=int, help="random seed")
    r.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a parameter (repeatable)")
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    r.add_argument("--quiet", "-q", action="store_true", help="print only the output directory")
    w = sub.add_parser("sweep", help="run an experiment over a grid of parameters in parallel on Dask (resumable)",
                       description="Run an experiment on every point of a parameter grid, in parallel on Dask: "
                                   "a local cluster by default, an existing one with --scheduler. Each finished "
                                   "point is written to disk at once; re-running skips finished points. Writes "
                                   "results.csv, results.json and plots (metric vs each swept key, Pareto front "
                                   "of metric vs energy).")
    w.add_argument("name", help="experiment name (see `neurosim list`)")
    w.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="values of one parameter (repeatable; the sweep is their Cartesian product)")
    w.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="fixed override for every point (repeatable)")
    w.add_argument("--scheduler", metavar="ADDRESS", help="address of a running Dask scheduler "
                                                          "(default: start a local cluster)")
    w.add_argument("--workers", type=int, help="worker processes of the local cluster (default: min(2, cores))")
    w.add_argument("--out", type=Path, help="output directory (default: results/sweeps/NAME)")
    w.add_argument("--metric", help="metric of the plots (default: test_accuracy when the experiment reports it)")
    w.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    w.add_argument("--quiet", "-q", action="store_true", help="print only the output directory")
    return p


def _sweep(module, args) -> int:
    from .experiment import ConfigError, parse_value
    from .sweep import parse_grid, run_sweep
    if not args.grid:
        return _fail("sweep needs at least one --grid KEY=V1,V2,...", 2)
    if args.workers is not None and args.workers < 1:
        return _fail(f"--workers must be >= 1, got {args.workers}", 2)
    fixed = {}
    for item in args.sets:
        if "=" not in item:
            return _fail(f"--set expects KEY=VALUE, got {item!r}", 2)
        key, raw = item.split("=", 1)
        fixed[key.strip()] = parse_value(raw)
    out = args.out or Path("results") / "sweeps" / module.NAME
    try:
        grid = parse_grid(args.grid, module.DEFAULTS)
        res = run_sweep(module.NAME, grid, out, fixed=fixed, scheduler=args.scheduler, workers=args.workers,
                        progress=not args.no_progress, metric=args.metric)
    except ConfigError as e:
        return _fail(str(e), 2)
    except KeyboardInterrupt:
        return _fail("interrupted (finished points are kept; run the same command to resume)", 130)
    except Exception as e:  # cluster or I/O failure: one line, non-zero exit
        return _fail(f"{type(e).__name__}: {e}".splitlines()[0], 1)
    if args.quiet:
        print(out)
    else:
        print(f"{module.NAME} sweep: {len(res.rows)} finished points in {out}/ ({len(res.computed)} computed now, "
              f"{len(res.skipped)} already finished, {len(res.failed)} failed)")
        for name in ["results.csv", "results.json", *res.figures]:
            print(f"  {name}")
    if res.failed:
        first = next(iter(res.failed.items()))
        return _fail(f"{len(res.failed)} point(s) failed, e.g. {first[0]}: {first[1]} (see error.json in the point "
                     "directories; re-run to retry them)", 1)
    return 0


def _version():
    from . import __version__
    return f"neurosim {__version__}"


def _fail(msg: str, code: int) -> int:
    print(f"neurosim: error: {msg}", file=sys.stderr)
    return code


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    import circuits
    from .experiment import ConfigError, parse_value, run_experiment

    if args.command == "list":
        rows = circuits.list_experiments()
        width = max(len(n) for n, _ in rows)
        for name, desc in rows:
            print(f"{name:<{width}}  {desc}")
        return 0
    try:
        module = circuits.get(args.name)
    except KeyError as e:
        return _fail(str(e.args[0]), 2)
    if args.command == "sweep":
        return _sweep(module, args)
    if args.command == "show":
        print(f"{module.NAME}: {module.DESCRIPTION}\n")
        print((module.__doc__ or "").strip() + "\n")
        print("parameters (defaults):")
        for k, v in module.DEFAULTS.items():
            print(f"  {k} = {v!r}")
        return 0
    overrides = {}
    for item in args.sets:
        if "=" not in item:
            return _fail(f"--set expects KEY=VALUE, got {item!r}", 2)
        key, raw = item.split("=", 1)
        overrides[key.strip()] = parse_value(raw)
    if args.backend:
        overrides["backend"] = args.backend
    if args.seed is not None:
        overrides["seed"] = args.seed
    out = args.out or Path("results") / module.NAME
    try:
        metrics = run_experiment(module, overrides, out=out, progress=not args.no_progress)
    except ConfigError as e:
        return _fail(str(e), 2)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as e:  # a failed run: one line, non-zero exit
        return _fail(f"{type(e).__name__}: {e}", 1)
    if args.quiet:
        print(out)
        return 0
    print(f"{module.NAME}: results in {out}/")
    for k, v in metrics.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            print(f"  {k:<28} {v:.6g}" if isinstance(v, float) else f"  {k:<28} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
