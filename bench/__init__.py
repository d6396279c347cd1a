"""Benchmarks of account_lifecycle against baselines measured in the same run; see README.md."""
