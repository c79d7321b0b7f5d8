"""The server stands alone: it imports nothing of the pipeline, so a slim install can serve."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from mlops_assets_tests.serving.conftest import IRIS_RECORD, publish

SERVING_DIR = Path(__file__).resolve().parents[2] / "serving"
PIPELINE_PACKAGES = ("mlops_assets", "dagster", "mlflow", "duckdb", "pandera")


def _is_pipeline(module: str) -> bool:
    top = module.split(".")[0]
    return top in PIPELINE_PACKAGES or top.startswith("dagster_")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_serving_module_imports_the_pipeline():
    offending = {
        f"{path.relative_to(SERVING_DIR.parent)}: {name}"
        for path in SERVING_DIR.rglob("*.py")
        for name in _imports(path)
        if _is_pipeline(name)
    }
    assert not offending, offending


ANSWER_ONE_PREDICTION = """
import json, sys, threading, time, urllib.request
import uvicorn
from serving.app import create_app

app = create_app(sys.argv[1], reload_interval=0.1)
server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
thread = threading.Thread(target=server.run, daemon=True)
thread.start()
while not server.started:
    time.sleep(0.02)
port = server.servers[0].sockets[0].getsockname()[1]
request = urllib.request.Request(
    f"http://127.0.0.1:{port}/models/iris/predict", data=sys.argv[2].encode(),
    headers={"Content-Type": "application/json"},
)
answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
server.should_exit = True
thread.join(timeout=30)
print(json.dumps({"answer": answer, "modules": sorted(sys.modules)}))
"""


def test_a_prediction_loads_nothing_of_the_pipeline(tmp_path, iris_model):
    publish(tmp_path / "models", "iris", iris_model, "1")
    result = subprocess.run(
        [sys.executable, "-c", ANSWER_ONE_PREDICTION, str(tmp_path / "models"),
         json.dumps(IRIS_RECORD)],
        capture_output=True, text=True, timeout=120, cwd=SERVING_DIR.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["answer"]["prediction"] == "setosa"
    assert [name for name in report["modules"] if _is_pipeline(name)] == []
