"""Ready-made circuits and experiments, built on neurosim's public API; installed as ``neurosim.circuits``.

This folder stays at the top level of the repository; the package is ``neurosim.circuits`` (the symlink
``neurosim/circuits`` points here, and wheels copy it there), so nothing is installed under the top-level
name ``circuits``.  Import its modules as ``from neurosim.circuits import digits``.

Every module here that defines ``NAME``, ``DESCRIPTION``, ``DEFAULTS``, ``PARAMS`` and
``run(config, out, progress)`` is an experiment; a module may instead (or also) define ``EXPERIMENTS``, a
list of :class:`neurosim.experiment.Experiment` objects.  Modules whose name starts with ``_`` are helpers.
:mod:`neurosim.registry` finds them (``neurosim list``, ``neurosim run NAME``); names use hyphens.
"""
