"""deploy/compose.yaml checked as far as a machine without a Docker engine allows: everything it
builds, runs, mounts or interpolates exists in the repository or in deploy/.env.example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
REPO = DEPLOY.parent
EXPECTED_SERVICES = {
    "postgres", "mlflow", "code-location", "dagster-webserver", "dagster-daemon",
    "prediction-a", "prediction-b", "prometheus", "alertmanager", "grafana",
}  # fmt: skip


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def scaleout() -> dict:
    return yaml.safe_load((DEPLOY / "compose.scaleout.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def env_example() -> dict[str, str]:
    lines = (DEPLOY / ".env.example").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {key.strip(): value for key, value in pairs}


def dockerfile_stages(path: Path) -> set[str]:
    return set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", path.read_text(), re.I | re.M))


def test_the_profile_has_every_service_with_a_healthcheck(services):
    assert set(services) == EXPECTED_SERVICES
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_every_build_context_dockerfile_and_target_exists(services):
    built = {name: service["build"] for name, service in services.items() if "build" in service}
    assert built, "no service is built from this repository"
    for name, build in built.items():
        context = (DEPLOY / build["context"]).resolve()
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
        target = build.get("target")
        stages = dockerfile_stages(dockerfile)
        assert target in stages, f"{name}: no stage {target!r} in {dockerfile} ({stages})"


def module_exists(module: str) -> bool:
    base = REPO.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def test_every_python_module_a_command_runs_exists(services):
    modules = []
    for service in services.values():
        command = service.get("command") or []
        if isinstance(command, list):
            modules += [command[i + 1] for i, arg in enumerate(command) if arg == "-m"]
            modules += [arg.split(":")[0] for arg in command if re.fullmatch(r"[\w.]+:\w+", arg)]
    assert "mlops_assets.definitions" in modules and "serving.app" in modules
    for module in modules:
        assert module_exists(module), module


def test_every_bind_mount_exists_in_the_repository(services, scaleout):
    for name, service in [*services.items(), *scaleout["services"].items()]:
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"


@pytest.mark.parametrize("name", ["compose.yaml", "compose.scaleout.yaml"])
def test_every_variable_compose_interpolates_is_in_the_env_example(name):
    text = (DEPLOY / name).read_text()
    used = set(re.findall(r"(?<!\$)\$\{(\w+)", text))  # $${X} is the container shell's
    assert used and used <= set(env_example()), used - set(env_example())


def instance_env_vars() -> set[str]:
    names = set()
    for name in ("dagster.yaml", "workspace.yaml"):
        names |= set(re.findall(r"^\s*env:\s*(\w+)", (DEPLOY / name).read_text(), re.M))
    return names


def test_dagster_services_get_every_variable_their_instance_config_reads(services):
    needed = instance_env_vars()
    assert {"DAGSTER_PG_HOST", "DAGSTER_PG_PASSWORD", "MLOPS_CODE_SERVER_HOST"} <= needed
    for name in ("code-location", "dagster-webserver", "dagster-daemon"):
        assert needed <= set(services[name]["environment"]), name


def test_prometheus_scrapes_both_prediction_replicas_on_their_port(services):
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "prediction-server")
    targets = {t for static in job["static_configs"] for t in static["targets"]}
    assert targets == {"prediction-a:8000", "prediction-b:8000"}
    for target in targets:
        command = services[target.split(":")[0]]["command"]
        assert command[command.index("--port") + 1] == "8000"
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
    ]


def test_replicas_read_models_from_the_tracking_servers_artifacts(services):
    for name in ("prediction-a", "prediction-b"):
        url = services[name]["environment"]["MLOPS_MODELS_URL"]
        assert url == "http://mlflow:5000/api/2.0/mlflow-artifacts/artifacts/models"
    assert "--serve-artifacts" in services["mlflow"]["command"][-1]


PIPELINE = ("code-location", "dagster-webserver", "dagster-daemon")
REPLICAS = ("prediction-a", "prediction-b")


def test_the_pipeline_publishes_bundles_where_the_replicas_read_them(services):
    urls = {services[name]["environment"]["MLOPS_MODELS_URL"] for name in PIPELINE + REPLICAS}
    assert urls == {"http://mlflow:5000/api/2.0/mlflow-artifacts/artifacts/models"}


def mounted_at(service: dict, path: str) -> str | None:
    """The volume `service` mounts at `path`, or None."""
    sources = [v.split(":")[0] for v in service.get("volumes", []) if v.split(":")[1] == path]
    return sources[0] if sources else None


def test_replica_logs_reach_the_runs_through_one_shared_volume(compose, services):
    # runs are subprocesses of the code location (default launcher): it reads what replicas log
    for name in ("code-location", *REPLICAS):
        logs_dir = services[name]["environment"]["MLOPS_LOGS_DIR"]
        assert mounted_at(services[name], logs_dir) == "mlops-logs", name
    assert "mlops-logs" in compose["volumes"]


def bare_process_block() -> str:
    """The shell block of docs/deploy.md that starts the profile without Docker."""
    text = (REPO / "docs" / "deploy.md").read_text()
    after = text[text.index("Without Docker") :]
    return after[after.index("```bash") : after.index("```\n", after.index("```bash") + 7)]


def test_bare_process_steps_name_every_setting():
    """What the slow tests give the services (services.py, conftest.py), a user must be told."""
    from mlops_assets_tests.deploy import services as harness

    postgres = harness.Postgres(port=5432, data=Path("unused"))
    harness_env = harness.dagster_env(Path("home"), postgres, "dagster", 4000)
    names = set(harness_env) - set(harness.base_env())
    names |= {"MLOPS_DATA_DIR", "MLFLOW_TRACKING_URI", "MLOPS_MODELS_URL", "MLOPS_LOGS_DIR"}
    block = bare_process_block()
    missing = {name for name in names if f"{name}=" not in block}
    assert not missing
    for step in (
        "createdb dagster", "createdb mlflow", "mlflow server", "--serve-artifacts",
        "deploy/dagster.yaml", "dagster code-server start", "dagster-daemon run",
        "dagster-webserver", "deploy/workspace.yaml", "mlops-serve",
    ):  # fmt: skip
        assert step in block, step


STEP_RUNNERS = ("code-location", "dagster-webserver", "dagster-daemon", "celery-worker")
SCALEOUT_SWITCHES = ("MLOPS_CELERY_BROKER", "MLOPS_LAKE_CATALOG", "MLOPS_LAKE_DATA_PATH")


def test_the_scaleout_file_adds_a_broker_and_workers_and_changes_only_existing_services(
    services, scaleout
):
    added = set(scaleout["services"]) - set(services)
    assert added == {"redis", "celery-worker"}
    for name in added:
        assert scaleout["services"][name]["healthcheck"]["test"], name
    worker = scaleout["services"]["celery-worker"]
    assert worker["extends"] == {"file": "compose.yaml", "service": "code-location"}
    assert worker["deploy"]["replicas"] >= 2
    config = worker["command"][worker["command"].index("-y") + 1]
    assert mounted_at(worker, config) == "./celery-worker.yaml"


def test_every_service_that_runs_steps_gets_the_same_broker_and_lake(services, scaleout):
    envs = [scaleout["services"][name]["environment"] for name in STEP_RUNNERS]
    for switch in SCALEOUT_SWITCHES:
        assert len({env[switch] for env in envs}) == 1, switch
    env = envs[0]
    assert env["MLOPS_CELERY_BROKER"].startswith("redis://redis:")
    catalog = dict(part.split("=", 1) for part in env["MLOPS_LAKE_CATALOG"][9:].split())
    assert catalog["host"] == "postgres"
    # the catalog's database is created with the others on an empty PostgreSQL volume
    assert services["postgres"]["environment"]["LAKE_PG_DB"] == catalog["dbname"]
    assert '"$LAKE_PG_DB"' in (DEPLOY / "postgres" / "create-databases.sh").read_text()
    for name in ("code-location", "celery-worker"):
        mounted = mounted_at(scaleout["services"][name], env["MLOPS_LAKE_DATA_PATH"].rstrip("/"))
        assert mounted == "mlops-lake", name
