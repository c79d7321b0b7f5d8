"""Where things live, read from the environment only (`mlops` does not read `.env`; see README).

| variable              | default                                   |
|-----------------------|-------------------------------------------|
| MLOPS_DATA_DIR        | `data`                                    |
| MLOPS_DATASETS_DIR    | unset (only the defs folder's data sets)  |
| MLOPS_SOURCE_<NAME>   | unset (the spec's own source)             |
| MLOPS_MODELS_URL      | unset (bundles only in `<data>/models`)   |
| MLOPS_LOGS_DIR        | `MLOPS_DATA_DIR` (the servers' logs)      |
| MLOPS_PAUSED_DATASETS | unset (sensors and schedules act on all)  |
| MLOPS_LAKE_CATALOG    | unset (warehouse: `<data>/warehouse.duckdb`) |
| MLOPS_LAKE_DATA_PATH  | unset; with the catalog: the lake's folder or `s3://` URL |
| MLFLOW_TRACKING_URI   | `sqlite:///<MLOPS_DATA_DIR>/mlflow.db`    |
| DAGSTER_HOME          | `<repo>/.dagster_home`                    |

A DuckLake warehouse: MLOPS_LAKE_CATALOG names its catalog database (`postgres:dbname=lake
host=db user=mlops`) and MLOPS_LAKE_DATA_PATH the shared folder (or `s3://` object store) of its
data files and landed source files.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
# the built-in data sets' components (defs.yaml and spec file), one folder each
BUILTIN_DATASETS_DIR = PACKAGE_DIR / "defs" / "datasets"
MLFLOW_EXPERIMENT = "mlops_assets"


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a `sqlite:///...` tracking URI, else None."""
    parsed = urlparse(tracking_uri)
    return Path(parsed.path) if parsed.scheme == "sqlite" else None


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    datasets_dir: Path | None
    tracking_uri: str
    # where champion bundles and drift.json are also published for replicas on other machines
    models_url: str | None = None
    # data sets no sensor or schedule acts on (comma-separated names); their jobs stay runnable
    paused_datasets: frozenset[str] = frozenset()
    # the warehouse as a DuckLake (catalog database, data path) instead of the DuckDB file
    lake_catalog: str | None = None
    lake_data_path: str | None = None
    # the folder the prediction servers write their logs to, shared with them (default data_dir)
    logs_dir: Path | None = None

    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def sources_dir(self) -> Path:
        return self.data_dir / "sources"

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def predictions_dir(self) -> Path:
        return (self.logs_dir or self.data_dir) / "predictions"

    @property
    def feedback_dir(self) -> Path:
        """Labels the prediction server received (serving.feedback)."""
        return (self.logs_dir or self.data_dir) / "feedback"

    @property
    def labels_dir(self) -> Path:
        """Files of delayed labels users drop in `labels/<ds>/`."""
        return self.data_dir / "labels"

    @property
    def score_dir(self) -> Path:
        return self.data_dir / "score"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "mlartifacts"

    @property
    def search_storage(self) -> Path:
        """The Optuna studies' SQLite file, beside MLflow's SQLite store (or in the data dir when
        MLflow tracks to a server)."""
        tracking_db = sqlite_path(self.tracking_uri)
        return (tracking_db.parent if tracking_db else self.data_dir) / "optuna.db"


def load_settings() -> Settings:
    data_dir = Path(os.environ.get("MLOPS_DATA_DIR") or "data").expanduser().resolve()
    datasets_dir = os.environ.get("MLOPS_DATASETS_DIR")
    logs_dir = os.environ.get("MLOPS_LOGS_DIR")
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{data_dir / 'mlflow.db'}"
    return Settings(
        data_dir=data_dir,
        datasets_dir=Path(datasets_dir).expanduser().resolve() if datasets_dir else None,
        tracking_uri=tracking_uri,
        models_url=os.environ.get("MLOPS_MODELS_URL") or None,
        paused_datasets=paused_datasets(os.environ.get("MLOPS_PAUSED_DATASETS", "")),
        **lake_settings(),
        logs_dir=Path(logs_dir).expanduser().resolve() if logs_dir else None,
    )


def lake_settings() -> dict[str, str]:
    """MLOPS_LAKE_CATALOG and MLOPS_LAKE_DATA_PATH, both or neither."""
    catalog = os.environ.get("MLOPS_LAKE_CATALOG") or None
    data_path = os.environ.get("MLOPS_LAKE_DATA_PATH") or None
    if bool(catalog) != bool(data_path):
        raise ValueError("set MLOPS_LAKE_CATALOG and MLOPS_LAKE_DATA_PATH together (a DuckLake "
                         "needs its catalog database and the place its data files go)")  # fmt: skip
    return {"lake_catalog": catalog, "lake_data_path": data_path} if catalog else {}


def builtin_spec_path(dataset: str) -> Path:
    return BUILTIN_DATASETS_DIR / dataset / f"{dataset}.yaml"


def paused_datasets(value: str) -> frozenset[str]:
    """`MLOPS_PAUSED_DATASETS`: names separated by commas (spaces around them ignored)."""
    return frozenset(name.strip() for name in value.split(",") if name.strip())


def source_override_var(dataset: str) -> str:
    return "MLOPS_SOURCE_" + re.sub(r"[^0-9A-Za-z]", "_", dataset).upper()


def source_override(dataset: str) -> str | None:
    return os.environ.get(source_override_var(dataset)) or None


def ensure_dagster_home(project_dir: Path | None = None) -> Path:
    """DAGSTER_HOME, defaulting to `./.dagster_home` with the project's dagster.yaml linked in.

    Dagster reads its instance config only from `$DAGSTER_HOME/dagster.yaml`; the link keeps the
    committed file the one in force, and the folder keeps runs across restarts.
    """
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    project_dir = (project_dir or Path.cwd()).resolve()
    home = project_dir / ".dagster_home"
    home.mkdir(exist_ok=True)
    config, link = project_dir / "dagster.yaml", home / "dagster.yaml"
    if config.is_file() and not link.exists():
        link.symlink_to(os.path.relpath(config, home))
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def instance_config_warnings(home: Path) -> list[str]:
    """What `$DAGSTER_HOME/dagster.yaml` lacks of the project's instance settings: without the
    `duckdb` pool, steps of two runs write the warehouse at once (the champion decision is
    serialized by its own lock regardless); without `telemetry: enabled: false` Dagster reports
    usage."""
    import yaml

    path = home / "dagster.yaml"
    fix = f"link or merge the project's dagster.yaml into {path}"
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return [f"{path} is missing: no `duckdb` pool and Dagster telemetry on; {fix}"]
    except (OSError, yaml.YAMLError) as exc:
        return [f"{path} is unreadable ({exc}); {fix}"]
    found = []
    pools = (config.get("concurrency") or {}).get("pools") or {}
    if pools.get("default_limit") is None:
        found.append(f"{path} sets no concurrency pool limit (`duckdb` pool unbounded); {fix}")
    if (config.get("telemetry") or {}).get("enabled") is not False:
        found.append(f"{path} leaves Dagster telemetry on; {fix}")
    return found


def stores_on_postgres(home: Path) -> bool:
    """Whether the instance at `home` keeps runs and events in PostgreSQL (`storage: postgres`,
    or a custom storage class of dagster-postgres's or ours, as deploy/dagster.yaml names)."""
    import yaml

    try:
        config = yaml.safe_load((home / "dagster.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False
    storage = config.get("storage") or {}
    custom = storage.get("custom") or {}
    return "postgres" in storage or "Postgres" in str(custom.get("class", ""))


def production_instance_problem(cwd: Path | None = None) -> str | None:
    """Why this process, started for the production profile (`DAGSTER_PG_HOST` exported), is not
    on its PostgreSQL instance, or None. Dagster's CLIs load a `.env` of the working directory
    over the exported variables, so the demo's (`DAGSTER_HOME=.dagster_home`) would otherwise
    put a production process on the demo's SQLite instance without a word."""
    if not os.environ.get("DAGSTER_PG_HOST"):
        return None
    home = os.environ.get("DAGSTER_HOME")
    if home and stores_on_postgres(Path(home)):
        return None
    dotenv = (cwd or Path.cwd()) / ".env"
    cause = (
        f"; {dotenv} sets DAGSTER_HOME and Dagster's CLI lets it override the exported one: "
        "start the production processes from another folder or remove that line"
        if dotenv.is_file() and "DAGSTER_HOME=" in dotenv.read_text()
        else ""
    )
    return (
        f"DAGSTER_PG_HOST is set (the production profile) but the Dagster instance in "
        f"DAGSTER_HOME={home} does not store runs in PostgreSQL: copy deploy/dagster.yaml "
        f"there{cause}. Refusing to run on another instance (docs/deploy.md)."
    )


def write_dotenv(project_dir: Path) -> None:
    """Record DAGSTER_HOME in `.env`, so the plain `dagster` CLI uses the same instance."""
    dotenv = project_dir / ".env"
    lines = dotenv.read_text().splitlines() if dotenv.is_file() else []
    if not any(line.startswith("DAGSTER_HOME=") for line in lines):
        lines.append(f"DAGSTER_HOME={ensure_dagster_home(project_dir)}")
        dotenv.write_text("\n".join(lines) + "\n")
