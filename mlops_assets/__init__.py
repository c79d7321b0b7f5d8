"""The pipeline.

Local-first, as Dagster's telemetry is off in dagster.yaml: importing the package turns MLflow's
usage telemetry off (unless the environment says otherwise) in every process that loads it,
`mlops`, `dg`, `dagster dev` and the runs. No usage data sent, and no telemetry threads for each
process to fetch a config for and join at exit.
"""

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
