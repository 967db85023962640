"""Westgard QC engine (pure, no database): rules, statistics, sigma, batch CLI.  See qc/README.md.

Entry points: :func:`qc.rules.evaluate_new_run` and :func:`qc.rules.evaluate_runs` (run by run, with details),
:func:`qc.vectorized.evaluate_frame` (numpy, batches), the click group :data:`qc.cli.qc`.
"""
