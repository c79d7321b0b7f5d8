"""Serving benchmark (`python -m bench.serving`): see bench/serving/__main__.py."""
