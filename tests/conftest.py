"""Shared test configuration: makes the hand-written oracle (``pc_oracle.py``) importable from every test
directory (``tests/`` and ``tests/conformance/``)."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
