"""Benchmarks of this project; each module is runnable with `python -m bench.<name>`."""
