"""Benchmarks of rbee against baselines measured in the same run; see `make bench`."""
