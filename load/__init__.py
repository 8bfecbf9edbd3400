"""Benchmark scripts (``load/benchmarks/``): each prints its figures against a baseline it starts itself."""
