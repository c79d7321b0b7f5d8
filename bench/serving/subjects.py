"""The subjects compared: ours, the FastAPI peer, `mlflow models serve` and the no-model ceiling,
each as the servers it starts and the route each scenario posts to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.serving.plan import Plan
from bench.serving.workspace import VENV_BIN


@dataclass(frozen=True)
class ServerSpec:
    name: str
    argv: tuple[str, ...]  # "{port}" is replaced by the port
    ready_path: str
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Route:
    server: str
    path: str
    bodies: str


@dataclass(frozen=True)
class Subject:
    key: str
    title: str
    servers: tuple[ServerSpec, ...]
    routes: dict[str, Route]
    note: str = ""

    @property
    def cold_server(self) -> ServerSpec:
        return self.servers[0]


def peer_server(name: str, app: str, env: tuple[tuple[str, str], ...] = ()) -> ServerSpec:
    """One of bench/peers/ under uvicorn, one worker, no access log; ready at /health."""
    python = str(VENV_BIN / "python")
    base = (python, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "{port}")
    argv = (*base, "--workers", "1", "--log-level", "warning", "--no-access-log")
    return ServerSpec(name, argv, "/health", env)


def mlflow_server(dataset: str) -> ServerSpec:
    argv = (
        str(VENV_BIN / "mlflow"),
        "models",
        "serve",
        "-m",
        f"models:/{dataset}@champion",
        "--env-manager",
        "local",
        "--no-conda",
        "-w",
        "1",
        "-p",
        "{port}",
    )
    return ServerSpec(f"mlflow-{dataset}", argv, "/ping")


def scenario_routes(
    plan: Plan, single: Route, iris: Route, batch: Route | None = None
) -> dict[str, Route]:
    """Routes by scenario: single, list (when the subject takes lists), iris (when planned)."""
    routes = {"single": single}
    if batch is not None:
        routes["list"] = batch
    if "iris" in plan.datasets:
        routes["iris"] = iris
    return routes


def make_subjects(plan: Plan, peer_models: Path) -> list[Subject]:
    iris = "iris" in plan.datasets
    model_dir = (("MODEL_DIR", str(peer_models)),)
    ours = Subject(
        "ours",
        "ours (mlops serve)",
        (ServerSpec("ours", (str(VENV_BIN / "mlops"), "serve", "--port", "{port}"), "/ready"),),
        scenario_routes(
            plan,
            single=Route("ours", "/models/abalone/predict", "records"),
            batch=Route("ours", "/models/abalone/predict", "records_list"),
            iris=Route("ours", "/models/iris/predict", "iris"),
        ),
    )
    fastapi_peer = Subject(
        "fastapi",
        "FastAPI peer",
        (peer_server("fastapi", "bench.peers.fastapi_server:app", model_dir),),
        scenario_routes(
            plan,
            single=Route("fastapi", "/predict", "records"),
            iris=Route("fastapi", "/iris/predict", "iris"),
        ),
        note="one record per request only, like the typical project: no list point",
    )
    mlflow = Subject(
        "mlflow",
        "mlflow models serve",
        (mlflow_server("abalone"), *((mlflow_server("iris"),) if iris else ())),
        scenario_routes(
            plan,
            single=Route("mlflow-abalone", "/invocations", "mlflow_records"),
            batch=Route("mlflow-abalone", "/invocations", "mlflow_list"),
            iris=Route("mlflow-iris", "/invocations", "mlflow_iris"),
        ),
    )
    ceiling = Subject(
        "ceiling",
        "ceiling (Litestar, no model)",
        (peer_server("ceiling", "bench.peers.ceiling_server:app"),),
        scenario_routes(
            plan,
            single=Route("ceiling", "/predict", "records"),
            iris=Route("ceiling", "/predict", "iris"),
        ),
    )
    return [ours, fastapi_peer, mlflow, ceiling]
