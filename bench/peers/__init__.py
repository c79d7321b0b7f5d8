"""Servers the serving benchmark compares ours with; started by `bench.serving` as subprocesses."""
