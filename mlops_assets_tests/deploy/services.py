"""Real services for the production-profile tests: PostgreSQL, MLflow, Dagster, Prometheus.

Each runs as its own process group in a temp folder and is killed with its children at the end."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from mlops_assets_tests.live_server import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "mlopspg"  # initdb and postgres refuse to run as root
S3_DATA_PATH = "s3://lake/data/"  # a DuckLake data path in the bucket of the `s3_lake` fixture
VENV_BIN = Path(sys.executable).parent


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def start_service(
    name: str, command: list[str], env: dict[str, str], workdir: Path, ready: Callable[[], bool],
    timeout: float = 120,
) -> Service:  # fmt: skip
    """Start `command` in its own process group; wait until `ready()` or fail with its log."""
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    service = Service(name, process, log)
    deadline = time.monotonic() + timeout
    while not _safe(ready):
        if process.poll() is not None or time.monotonic() > deadline:
            service.stop()
            raise RuntimeError(f"{name} did not start:\n{service.log_tail()}")
        time.sleep(0.5)
    return service


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except (httpx.HTTPError, OSError):
        return False


def http_ok(url: str) -> Callable[[], bool]:
    return lambda: httpx.get(url, timeout=5).status_code == 200


def base_env() -> dict[str, str]:
    """The test's environment without anything that would point a service at the embedded
    default (data dir, tracking store, extra specs, source overrides)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLOPS_", "DAGSTER_", "MLFLOW_"))
    }
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


# ---------------------------------------------------------------- PostgreSQL


@dataclass
class Postgres:
    port: int
    data: Path
    user: str = "postgres"
    host: str = "127.0.0.1"

    def restart(self) -> None:
        """Stop the server (closing every client connection) and start it again."""
        subprocess.run(
            [*_as_postgres_user(), str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast",
             "-l", str(self.data.parent / "postgres.log"), "-w", "restart"],
            check=True, capture_output=True,
        )  # fmt: skip

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{database}"

    def connect(self, database: str):
        import psycopg2

        return psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname=database)

    def create_database(self, name: str) -> None:
        """With `createdb`, as docs/deploy.md tells a user to."""
        command = [str(PG_BIN / "createdb"), "-h", self.host, "-p", str(self.port), "-U", self.user]
        subprocess.run([*command, name], check=True, capture_output=True)


def _as_postgres_user() -> list[str]:
    """The command prefix that runs PostgreSQL's binaries as an unprivileged user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", PG_USER], check=True)
    return ["runuser", "-u", PG_USER, "--"]


def start_postgres() -> tuple[Postgres, Callable[[], None]]:
    """A throwaway PostgreSQL 15 cluster on a free loopback port; returns it and its stopper."""
    if not (PG_BIN / "initdb").is_file():
        raise FileNotFoundError(f"{PG_BIN}/initdb is absent (apt-get install postgresql-15)")
    # not under pytest's basetemp: its parents are private to root, the server user cannot enter
    root = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
    root.chmod(0o755)
    prefix = _as_postgres_user()
    if prefix:
        shutil.chown(root, PG_USER)
    data, port = root / "data", free_port()
    subprocess.run(
        [*prefix, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
         "--no-sync", "-E", "UTF8"],
        check=True, capture_output=True,
    )  # fmt: skip
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*prefix, str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options,
         "-l", str(root / "postgres.log"), "-w", "start"],
        check=True, capture_output=True,
    )  # fmt: skip

    def stop() -> None:
        subprocess.run(
            [*prefix, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False, capture_output=True,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)

    return Postgres(port, data), stop


# ---------------------------------------------------------------- MLflow


def start_mlflow_server(backend_uri: str, workdir: Path) -> tuple[str, Service]:
    """`mlflow server` on PostgreSQL, serving artifacts itself (clients upload over HTTP)."""
    port = free_port()
    command = [
        str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--backend-store-uri", backend_uri,
        "--serve-artifacts", "--artifacts-destination", str(workdir / "mlartifacts"),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    return url, start_service("mlflow", command, base_env(), workdir, http_ok(f"{url}/health"))


# ---------------------------------------------------------------- Dagster

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy"


@dataclass
class DagsterDeployment:
    home: Path
    env: dict[str, str]
    webserver_port: int
    services: list[Service]

    @property
    def graphql_url(self) -> str:
        return f"http://127.0.0.1:{self.webserver_port}/graphql"

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()


def dagster_env(home: Path, postgres: Postgres, database: str, code_port: int) -> dict[str, str]:
    env = base_env()
    env.update(
        DAGSTER_HOME=str(home),
        DAGSTER_PG_HOST=postgres.host,
        DAGSTER_PG_PORT=str(postgres.port),
        DAGSTER_PG_USER=postgres.user,
        DAGSTER_PG_PASSWORD="",
        DAGSTER_PG_DB=database,
        MLOPS_CODE_SERVER_HOST="127.0.0.1",
        MLOPS_CODE_SERVER_PORT=str(code_port),
    )
    return env


def start_dagster(home: Path, env: dict[str, str], cwd: Path | None = None) -> DagsterDeployment:
    """deploy/dagster.yaml and deploy/workspace.yaml as they are, with the code location on its
    own gRPC server, the daemon and the webserver: the compose services minus the containers.
    Each is started in `cwd` (default `home`), where it also writes its log."""
    home.mkdir(parents=True, exist_ok=True)
    cwd = cwd or home
    shutil.copy(DEPLOY_DIR / "dagster.yaml", home / "dagster.yaml")
    workspace = DEPLOY_DIR / "workspace.yaml"
    code_port, web_port = int(env["MLOPS_CODE_SERVER_PORT"]), free_port()
    dagster = str(VENV_BIN / "dagster")
    services: list[Service] = []
    try:
        services.append(start_service(
            "code-server",
            [dagster, "code-server", "start", "-h", "127.0.0.1", "-p", str(code_port),
             "-m", "mlops_assets.definitions"],
            env, cwd, _grpc_healthy(code_port),
        ))  # fmt: skip
        services.append(start_service(
            "dagster-daemon", [str(VENV_BIN / "dagster-daemon"), "run", "-w", str(workspace)],
            env, cwd, lambda: True,
        ))  # fmt: skip
        services.append(start_service(
            "dagster-webserver",
            [str(VENV_BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port),
             "-w", str(workspace)],
            env, cwd, http_ok(f"http://127.0.0.1:{web_port}/server_info"),
        ))  # fmt: skip
    except BaseException:
        for service in reversed(services):
            service.stop()
        raise
    return DagsterDeployment(home, env, web_port, services)


def _grpc_healthy(port: int) -> Callable[[], bool]:
    command = [str(VENV_BIN / "dagster"), "api", "grpc-health-check", "-p", str(port)]
    return lambda: subprocess.run(command, capture_output=True, timeout=30).returncode == 0


# ---------------------------------------------------------------- Celery (scale-out profile)


def start_redis(workdir: Path) -> tuple[str, Service]:
    """Redis from Debian's package on a free loopback port, nothing persisted: the broker."""
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip
    log = workdir / "redis.log"
    service = start_service(
        "redis", command, base_env(), workdir, lambda: "Ready to accept" in log.read_text()
    )
    return f"redis://127.0.0.1:{port}/0", service


def start_celery_worker(name: str, env: dict[str, str], workdir: Path, config: Path) -> Service:
    """`dagster-celery worker start` with `config` (deploy/celery-worker.yaml or a variant),
    taking one step at a time."""
    command = [str(VENV_BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
               "-y", str(config), "-n", name, "--", "--concurrency=1"]  # fmt: skip
    log = workdir / f"{name}.log"
    return start_service(
        name, command, env, workdir, lambda: " ready." in log.read_text(errors="replace"), 180
    )


# ---------------------------------------------------------------- Prometheus

PROMETHEUS_BIN = shutil.which("prometheus") or "/usr/bin/prometheus"


def start_prometheus(
    targets: list[str], workdir: Path, rule_files: list[Path] = (), scrape_interval: str = "1s"
) -> tuple[str, Service]:
    """A real Prometheus on a free loopback port scraping `targets` (host:port, path /metrics)."""
    import yaml

    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {"job_name": "prediction-server", "static_configs": [{"targets": list(targets)}]}
        ],
    }
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    command = [
        PROMETHEUS_BIN, f"--config.file={config_path}", f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    return url, start_service("prometheus", command, base_env(), workdir, http_ok(f"{url}/-/ready"))


# ---------------------------------------------------------------- prediction server

MLFLOW_ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


def models_url(tracking_url: str) -> str:
    """MLOPS_MODELS_URL for bundles kept by a tracking server (as deploy/compose.yaml sets it)."""
    return f"{tracking_url}{MLFLOW_ARTIFACTS}/models"


def start_prediction_server(
    name: str, models: str, logs_dir: Path, workdir: Path
) -> tuple[str, Service]:
    """`mlops-serve` on a free loopback port, following the champion at `models` and
    writing its logs under `logs_dir`; its data dir (the bundle cache) is its own."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = base_env()
    env.update(
        MLOPS_MODELS_URL=models, MLOPS_DATA_DIR=str(workdir / "data"),
        MLOPS_LOGS_DIR=str(logs_dir), MLOPS_RELOAD_INTERVAL="0.5",
    )  # fmt: skip
    command = [str(VENV_BIN / "mlops-serve"), "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    return url, start_service(name, command, env, workdir, http_ok(f"{url}/health"))
