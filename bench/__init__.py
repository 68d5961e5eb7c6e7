"""Benchmarks: `make bench` runs `python -m bench`, which prints figures and ratios."""
