"""python -m benchmarks [--T 100] [--repeats 7] [--out benchmarks/results/latest.json]"""
import argparse
import json
from pathlib import Path

from neurosim.io import write_json_atomic

from . import core

p = argparse.ArgumentParser(prog="python -m benchmarks", description="neurosim performance measurements")
p.add_argument("--T", type=int, default=100, help="inference steps per batch")
p.add_argument("--repeats", type=int, default=7)
p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "latest.json")
a = p.parse_args()
res = core.run(T=a.T, repeats=a.repeats, dtype=a.dtype)
print(core.table(res))
print(f"first numba call (compile or cache load): {res['first_call_s (compile or cache load)']:.2f} s")
write_json_atomic(a.out, res)
print(f"wrote {a.out}")
