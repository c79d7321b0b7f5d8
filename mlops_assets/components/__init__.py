"""Dagster components of the project (registered for `dg list components` in pyproject.toml)."""

from mlops_assets.components.dataset import DatasetComponent

__all__ = ["DatasetComponent"]
