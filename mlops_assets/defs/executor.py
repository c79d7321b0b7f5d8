"""Where a run's steps execute: in the run's own processes (Dagster's default), or, with
`MLOPS_CELERY_BROKER` set, on Celery workers that may sit on other machines (dagster-celery).

One variable is the switch, read when the code location loads, and the same Redis serves as
broker and result backend. Workers start with `deploy/celery-worker.yaml` (the same settings)
and need what every step needs: the project installed, the Dagster instance on PostgreSQL, and
a warehouse they all reach (the DuckLake, see docs/deploy.md).
"""

from __future__ import annotations

import os

import dagster as dg
from dagster_celery import celery_executor

BROKER_VAR = "MLOPS_CELERY_BROKER"


def executor_from_environment() -> dg.ExecutorDefinition | None:
    """The Celery executor when the broker is set, else None (Dagster's default executor)."""
    if not os.environ.get(BROKER_VAR):
        return None
    broker = {"env": BROKER_VAR}  # resolved where the run starts, not baked in at load
    return celery_executor.configured({"broker": broker, "backend": broker})


@dg.definitions
def executor() -> dg.Definitions:
    return dg.Definitions(executor=executor_from_environment())
