"""Benchmark scripts: each prints its figures, measured against a baseline run in the same script."""
