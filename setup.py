"""neurosim's build hook (the project's metadata is in pyproject.toml).

``pip install`` (editable or not) compiles the numba kernels of the common runs into numba's on-disk cache as part
of ``build_py`` (:mod:`neurosim.precompile`: about 30-40 s on 2 cores), so that the first run of a fresh install
loads them instead of compiling them (about 10 s per kernel and dtype).  ``NEUROSIM_PRECOMPILE=0`` skips it (the
kernels then compile on first use).  A failure never fails the install: it is reported, and the kernels compile on
first use.  For a wheel the cache files are written next to the modules in the build directory and go into the
wheel (numba checks the modules' contents, not their times, so they stay valid once installed); for an editable
install they go where the runs will look (``__pycache__`` in the source tree, or ``NUMBA_CACHE_DIR`` if set).
The kernels are compiled with the build environment's numba (pip's isolated build environment gets the newest that
fits, as a fresh environment does); an environment that keeps another numba compiles them on first use instead --
``pip install --no-build-isolation`` or ``neurosim compile`` compiles them with its own (see neurosim/precompile.py).
"""
import os
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py as _build_py

HERE = Path(__file__).resolve().parent


class build_py(_build_py):
    def run(self):
        super().run()
        if os.environ.get("NEUROSIM_PRECOMPILE", "1") == "0" or os.environ.get("NEUROSIM_NUMBA_CACHE", "1") == "0":
            print("neurosim: not compiling the numba kernels at install (NEUROSIM_PRECOMPILE=0 or "
                  "NEUROSIM_NUMBA_CACHE=0): they compile on first use")
            return
        editable = bool(getattr(self, "editable_mode", False))
        root = HERE if editable else Path(self.build_lib).resolve()
        env = dict(os.environ)
        args = []
        if not editable:
            env.pop("NUMBA_CACHE_DIR", None)   # next to the modules in the build directory: they go into the wheel
            args = ["--wheel"]
            for p in list(root.rglob("*.nbi")) + list(root.rglob("*.nbc")) + list(root.rglob("_precompiled.json")):
                p.unlink()   # an earlier build's files (of other sources) must not go into this wheel
        env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        print(f"neurosim: compiling the numba kernels of the common runs into numba's cache ({root}); "
              "NEUROSIM_PRECOMPILE=0 skips this")
        try:
            r = subprocess.run([sys.executable, "-m", "neurosim.precompile", *args], cwd=str(root), env=env,
                               timeout=1800)
            if r.returncode != 0:
                print("neurosim: WARNING: some kernels were not compiled at install; they compile on first use")
        except Exception as e:   # never fail an install over a cache
            print(f"neurosim: WARNING: the kernels were not compiled at install ({e}); they compile on first use")


setup(cmdclass={"build_py": build_py})
