"""Performance measurements for neurosim (``python -m benchmarks``); never timed in tests.

Suites: :mod:`benchmarks.workloads` (numba vs the NumPy reference and the measured roofline),
:mod:`benchmarks.peers` (pcx, ngc-learn), :mod:`benchmarks.scaling`, :mod:`benchmarks.system`
(memory, probes, start-up, threads); :mod:`benchmarks.report` renders ``benchmarks/README.md``.
"""
