"""The ``neurosim`` command line.

    neurosim list
    neurosim run NAME [--backend numba|reference] [--out DIR] [--seed N] [--set key=value ...] [--scheduler ADDRESS]
    neurosim show NAME
    neurosim compile [--group core|graph] [--jobs N]
    neurosim sweep NAME --grid key=v1,v2,... [--grid ...] [--set key=value ...] [--scheduler ADDRESS]
                   [--out DIR] [--workers N]

Exit codes: 0 success, 1 the run failed (the message says why), 2 bad arguments.
"""
from __future__ import annotations

import argparse
import os
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
    r.add_argument("--scheduler", metavar="ADDRESS",
                   help="for experiments that run on Dask (hw-design-space): address of a running Dask scheduler "
                        "(default: start a local cluster); the same as --set scheduler=ADDRESS")
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    r.add_argument("--quiet", "-q", action="store_true", help="print only the output directory")
    c = sub.add_parser("compile", help="compile the common numba kernels into numba's cache (pip install does this)",
                       description="Compile the numba kernels of the common runs (the layered circuits' batch "
                                   "kernel, float64 and float32; the fpa/ipc graph kernels) into numba's on-disk "
                                   "cache, so that the first run loads them instead of compiling (about 10 s per "
                                   "kernel and dtype). pip install does this unless NEUROSIM_PRECOMPILE=0; run it "
                                   "after setting NUMBA_CACHE_DIR or where the install could not write its package "
                                   "directory. Exit status 1 if a group failed (its kernels compile on first use).")
    from .precompile import GROUPS
    c.add_argument("--group", choices=sorted(GROUPS), action="append",
                   help="compile only this group (repeatable; default: both)")
    c.add_argument("--jobs", type=int, default=2, help="groups compiled at once, one process each (default 2)")
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


def _set_value(module, key, raw):
    """The value of ``--set key=raw``: the text itself for a parameter declared as a string (so that
    ``hardware=weights:Quantize(6, bound=2.0)`` keeps its commas), else :func:`parse_value`."""
    from .experiment import params_of, parse_param_value
    return parse_param_value(raw, (params_of(module) or {}).get(key))


def _set_values(module, items):
    """The ``--set KEY=VALUE`` items as ``({key: value}, None)`` (see :func:`_set_value`), or ``(None, message)``
    for the first malformed item."""
    out = {}
    for item in items:
        if "=" not in item:
            return None, f"--set expects KEY=VALUE, got {item!r}"
        key, raw = item.split("=", 1)
        out[key.strip()] = _set_value(module, key.strip(), raw)
    return out, None


def _sweep(module, args) -> int:
    from .experiment import ConfigError, params_of
    from .sweep import parse_grid, run_sweep
    if not args.grid:
        return _fail("sweep needs at least one --grid KEY=V1,V2,...", 2)
    if args.workers is not None and args.workers < 1:
        return _fail(f"--workers must be >= 1, got {args.workers}", 2)
    fixed, bad = _set_values(module, args.sets)
    if bad:
        return _fail(bad, 2)
    out = args.out or Path("results") / "sweeps" / module.NAME
    bad = _out_problem(out)
    if bad:
        return _fail(bad, 2)
    try:
        grid = parse_grid(args.grid, module.DEFAULTS, params_of(module))
        res = run_sweep(module.NAME, grid, out, fixed=fixed, scheduler=args.scheduler, workers=args.workers,
                        progress=not (args.no_progress or args.quiet), metric=args.metric)
    except ConfigError as e:
        return _fail(str(e), 2)
    except KeyboardInterrupt:
        return _fail("interrupted (finished points are kept, and results.csv lists them; run the same command "
                     "to resume)", 130)
    except Exception as e:  # cluster or I/O failure: one line, non-zero exit
        return _fail(f"{type(e).__name__}: {e}".splitlines()[0], 1)
    if args.quiet:
        print(out)
    else:
        print(f"{module.NAME} sweep: {len(res.rows)} finished point{'' if len(res.rows) == 1 else 's'} in {out}/ ({len(res.computed)} computed now, "
              f"{len(res.skipped)} already finished, {len(res.failed)} failed)")
        for name in ["results.csv", "results.json", *res.figures]:
            print(f"  {name}")
        if res.rows and not res.figures:
            print("  (no plots: " + ("only one point finished" if len(res.rows) < 2 else
                                     "they need a numeric --grid key with at least 2 values besides seed") + ")")
    if res.failed:
        first = next(iter(res.failed.items()))
        return _fail(f"{len(res.failed)} point(s) failed, e.g. {first[0]}: {first[1]} (see error.json in the point "
                     "directories; re-run to retry them)", 1)
    return 0


class _sigterm_as_exception:
    """While active, SIGTERM (``timeout``, SLURM, ``docker stop``) raises :class:`neurosim.experiment.Terminated`
    (a ``KeyboardInterrupt``) in the main thread, so that a terminated run writes its partial results like
    Ctrl-C; the previous handler is restored on exit.  Outside the main thread it does nothing."""

    def __enter__(self):
        import signal
        import threading
        self.old = None
        if threading.current_thread() is threading.main_thread():
            from .experiment import Terminated

            def handler(signum, frame):
                raise Terminated(signum)
            self.old = signal.signal(signal.SIGTERM, handler)
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            import signal
            signal.signal(signal.SIGTERM, self.old)
        return False


def _out_problem(out: Path):
    """None when ``out`` is (or could be made) a writable directory, else a one-line message naming --out.
    A missing directory is created to find out and removed again (the run creates it after checking its
    parameters, so a run refused for a bad parameter leaves nothing behind)."""
    import os
    if out.exists() and not out.is_dir():
        return f"--out {out}: exists and is not a directory; give a directory (it is created if missing)"
    missing = [d for d in (out, *out.parents) if not d.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"--out {out}: cannot create the directory ({e.strerror or type(e).__name__}); give a writable directory"
    writable = os.access(out, os.W_OK | os.X_OK)
    for d in missing:  # deepest first
        try:
            d.rmdir()
        except OSError:
            break
    if not writable:
        return f"--out {out}: the directory is not writable; give a writable directory"
    return None


def _version():
    from . import __version__
    return f"neurosim {__version__}"


def _fail(msg: str, code: int) -> int:
    print(f"neurosim: error: {msg}", file=sys.stderr)
    return code


def main(argv=None) -> int:
    """The ``neurosim`` command; returns the exit status (0 ok, 1 failed run, 2 bad arguments, 130 interrupted,
    143 terminated by SIGTERM (metrics.json then says "interrupted", with the partial results),
    141 when the reader of the output went away, as in ``neurosim show digits | head``)."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # stop quietly, as Unix tools do; stdout goes to /dev/null so that Python's exit flush does not fail again
        import os
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def _main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "compile":
        from . import precompile
        return precompile.main((sum((["--group", g] for g in args.group or []), [])) + ["--jobs", str(args.jobs)])
    from . import registry
    from .experiment import ConfigError, run_experiment

    if args.command == "list":
        rows = registry.list_experiments()
        width = max(len(n) for n, _ in rows)
        for name, desc in rows:
            print(f"{name:<{width}}  {desc}")
        return 0
    try:
        module = registry.get(args.name)
    except KeyError as e:
        return _fail(str(e.args[0]), 2)
    if args.command == "sweep":
        return _sweep(module, args)
    if args.command == "show":
        from .experiment import describe_params
        print(f"{module.NAME}: {module.DESCRIPTION}\n")
        print((module.__doc__ or "").strip() + "\n")
        rows = [(f"{k} = {_json(v)}", valid) for k, v, valid in describe_params(module)]
        width = min(max(len(kv) for kv, _ in rows), 40)
        print("parameters (name = default, then the valid values; set with --set KEY=VALUE):")
        for kv, valid in rows:
            print(f"  {kv:<{width}}  {valid}")
        return 0
    overrides, bad = _set_values(module, args.sets)
    if bad:
        return _fail(bad, 2)
    if args.scheduler is not None and "scheduler" not in module.DEFAULTS:
        return _fail(f"--scheduler: {module.NAME} does not run on Dask; to run it over a grid on a cluster use "
                     f"`neurosim sweep {module.NAME} --grid KEY=V1,V2 --scheduler {args.scheduler}`", 2)
    for key, flag in (("backend", args.backend), ("seed", args.seed), ("scheduler", args.scheduler)):
        if flag is None or flag == "":
            continue
        if key in overrides and overrides[key] != flag:
            return _fail(f"--{key} {flag} and --set {key}={overrides[key]} disagree; give one of them", 2)
        overrides[key] = flag
    out = args.out or Path("results") / module.NAME
    bad = _out_problem(out)
    if bad:
        return _fail(bad, 2)
    from .config import _NOTICE
    env_notice = os.environ.get("NEUROSIM_COMPILE_NOTICE")   # restored after the run (main() may run in-process)
    if args.quiet:
        _NOTICE["given"] = True      # --quiet: no compile notice from the kernels either (neurosim.config)
        os.environ["NEUROSIM_COMPILE_NOTICE"] = "0"   # ... nor from worker processes started by this run
    elif overrides.get("backend", "numba") == "numba":
        from .config import kernels_cached
        if kernels_cached() is False:
            from .precompile import mismatch
            why = mismatch()
            print("neurosim: the numba kernels are not compiled yet: a run that uses them compiles them first (about "
                  "10 s per kernel on 2 cores; cached on disk for later runs; "
                  + (f"the kernels compiled ahead (at install) do not serve this run: {why}; `neurosim compile`, "
                     "with the same environment, compiles the common ones for it)" if why else
                     "`neurosim compile` compiles the common ones ahead)"), file=sys.stderr, flush=True)
            _NOTICE["given"] = True  # said once: the kernels' own one-time notice (neurosim.config) stays quiet
            os.environ["NEUROSIM_COMPILE_NOTICE"] = "0"   # in this process and in workers it starts (Dask)
    from .experiment import Terminated
    try:
        with _sigterm_as_exception():
            # --quiet prints only the output directory: no progress lines either
            metrics = run_experiment(module, overrides, out=out, progress=not (args.no_progress or args.quiet))
    except ConfigError as e:
        return _fail(str(e), 2)
    except KeyboardInterrupt as e:  # Ctrl-C (exit 130 = 128 + SIGINT) or SIGTERM (exit 143 = 128 + SIGTERM)
        where = f" (what was computed so far is in {out / 'metrics.json'})" if (out / "metrics.json").exists() else ""
        if isinstance(e, Terminated):
            return _fail(f"{e}{where}", 128 + e.signum)
        return _fail("interrupted" + where, 130)
    except Exception as e:  # a failed run: one line, non-zero exit
        first = f"{type(e).__name__}: {e}".splitlines()[0]
        where = f" (error and partial results in {out / 'metrics.json'})" if (out / "metrics.json").exists() else ""
        return _fail(first + where, 1)
    finally:
        if env_notice is None:
            os.environ.pop("NEUROSIM_COMPILE_NOTICE", None)
        else:
            os.environ["NEUROSIM_COMPILE_NOTICE"] = env_notice
    if args.quiet:
        print(out)
        return 0
    print(f"{module.NAME}: results in {out}/ ({metrics['wall_time_s']:.1f} s)")
    for line in summary_lines(metrics):
        print(line)
    return 0


# ------------------------------------------------------------------------------------------ printing results
def _json(v) -> str:
    import json
    return json.dumps(v) if isinstance(v, (list, dict, bool)) or v is None else str(v)


def _num(v) -> str:
    """A number for a person: 4 significant digits, ints as they are."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _short(v, n: int = 4) -> str:
    if isinstance(v, list):
        if len(v) > n:
            return "[" + ", ".join(_short(x) for x in v[:2]) + f", ..., {_short(v[-1])}] ({len(v)} values)"
        return "[" + ", ".join(_short(x) for x in v) + "]"
    return _num(v)


def _checks(metrics, prefix=""):
    """Every ``checks`` list (dicts with ``claim`` and ``held``) in the metrics, with where it was found."""
    found = []
    if isinstance(metrics, dict):
        for k, v in metrics.items():
            if k == "checks" and isinstance(v, list) and all(isinstance(c, dict) and "claim" in c and "held" in c
                                                             for c in v):
                found += [(prefix, c) for c in v]
            elif isinstance(v, dict):
                found += _checks(v, f"{prefix}{k}." if prefix else f"{k}.")
    return found


#: at most this many metric lines are printed (the rest is in metrics.json)
MAX_LINES = 40
#: numeric lists up to this length are printed inline
MAX_INLINE = 4
#: a dict with more scalar entries than this is a table (e.g. a fit error per configuration): not printed
MAX_TABLE = 12


def summary_lines(metrics: dict, max_lines: int = MAX_LINES) -> list:
    """What ``neurosim run`` prints: the headline metrics with dotted names (``pc.min_correct_output``),
    short lists inline, long lists and big tables left to metrics.json, then the claim / held table of the
    experiment's ``checks``."""
    def walk(d, prefix, out, skipped):
        for k, v in d.items():
            if not prefix and k in ("status", "experiment", "environment", "figures", "report", "checks",
                                    "wall_time_s"):
                continue
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                scalars = [x for x in v.values() if not isinstance(x, (dict, list))]
                if len(scalars) > MAX_TABLE and len(scalars) == len(v):
                    skipped.append(key)
                    continue
                walk(v, key + ".", out, skipped)
            elif isinstance(v, list):
                if k == "checks":
                    continue
                if len(v) <= MAX_INLINE and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
                    out.append((key, _short(v)))
                else:
                    skipped.append(key)
            elif v is None:
                out.append((key, "null (not set, or not finite)"))
            else:
                out.append((key, _num(v)))

    rows, skipped = [], []
    walk(metrics, "", rows, skipped)
    lines = []
    if rows:
        width = min(max(len(k) for k, _ in rows), 48)
        shown = rows if len(rows) <= max_lines + 5 else rows[:max_lines]
        lines += [f"  {k:<{width}}  {v}" for k, v in shown]
        if len(rows) > len(shown):
            lines.append(f"  ... {len(rows) - len(shown)} more numbers in metrics.json")
    if skipped:
        lines.append(f"  ({len(skipped)} longer lists and tables in metrics.json: {', '.join(skipped[:4])}"
                     + (", ..." if len(skipped) > 4 else "") + ")")
    checks = _checks(metrics)
    if checks:
        held = sum(bool(c["held"]) for _, c in checks)
        lines.append(f"checks: {held} of {len(checks)} held")
        lines.append("  held  claim (measured)")
        for where, c in checks:
            values = ", ".join(f"{k}={_short(v)}" for k, v in (c.get("values") or {}).items())
            label = f"[{where.rstrip('.').replace('experiments.', '')}] " if where else ""
            lines.append(f"  {'yes' if c['held'] else 'NO ':<4}  {label}{c['claim']}" + (f"  ({values})" if values
                                                                                          else ""))
    return lines


if __name__ == "__main__":
    sys.exit(main())
