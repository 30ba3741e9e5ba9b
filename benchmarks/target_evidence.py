"""Count the constants of the built-in hardware targets by evidence level (energies and latencies; resources
and the feedback mode separately).  ``python benchmarks/target_evidence.py [commit]`` counts the target files of
a git commit instead of the working tree (for before/after comparisons); no simulation runs."""
from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIR = "neurosim/hardware/targets"


def files(commit=None):
    if commit is None:
        return {p.name: p.read_text() for p in sorted((ROOT / DIR).glob("*.json"))}
    names = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", f"{commit}:{DIR}"], check=True,
                           capture_output=True, text=True).stdout.split()
    return {n: subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{DIR}/{n}"], check=True,
                              capture_output=True, text=True).stdout for n in names if n.endswith(".json")}


def count(text):
    d = json.loads(text)
    ops = collections.Counter(e["evidence"] for sec in ("energy_pJ", "latency_s") for e in d[sec].values())
    res = collections.Counter(e["evidence"] for e in d.get("resources", {}).values())
    if "feedback" in d:
        res[d["feedback"]["evidence"]] += 1
    return ops, res


if __name__ == "__main__":
    commit = sys.argv[1] if len(sys.argv) > 1 else None
    tot_o, tot_r = collections.Counter(), collections.Counter()
    for name, text in files(commit).items():
        o, r = count(text)
        tot_o += o
        tot_r += r
        print(f"{name:18s} per-operation {dict(sorted(o.items()))}  resources {dict(sorted(r.items()))}")
    print(f"{'total':18s} per-operation {dict(sorted(tot_o.items()))} ({sum(tot_o.values())})  "
          f"resources {dict(sorted(tot_r.items()))} ({sum(tot_r.values())})")
