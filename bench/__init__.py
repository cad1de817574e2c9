"""Benchmarks, outside the package: run from the repository root, e.g. `python -m bench.exports` (`make bench`)."""
