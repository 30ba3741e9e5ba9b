"""Performance measurements for neurosim (run ``python -m benchmarks``); never timed in tests."""
