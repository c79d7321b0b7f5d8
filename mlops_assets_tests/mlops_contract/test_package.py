"""The contract package is what both sides import, so it imports neither side."""

from __future__ import annotations

from pathlib import Path

from mlops_assets_tests.serving.test_standalone import _imports

CONTRACT_DIR = Path(__file__).resolve().parents[2] / "mlops_contract"
FORBIDDEN = ("mlops_assets", "serving", "dagster", "mlflow", "duckdb", "pandera", "litestar")


def test_the_contract_imports_neither_the_pipeline_nor_the_server():
    imported = {name for path in CONTRACT_DIR.rglob("*.py") for name in _imports(path)}
    assert imported, "no module read"
    offending = sorted(name for name in imported if name.split(".")[0] in FORBIDDEN)
    assert offending == []
