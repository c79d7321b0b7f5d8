"""The production instance's PostgreSQL storage: dagster-postgres's own, with pooled connections
checked before use.

In the webserver dagster-postgres keeps one connection per storage open (`optimize_for_webserver`)
without a liveness check, and dagster.yaml cannot turn one on. After PostgreSQL restarts, the
next request on that dead connection fails ("server closed the connection unexpectedly") and a
run submitted then can be left NOT_STARTED. SQLAlchemy's documented remedy is a ping on checkout
(what `pool_pre_ping` does); this class installs it in every process that loads the instance.
deploy/dagster.yaml names it in place of `storage: postgres:`, with the same settings.
"""

from __future__ import annotations

import contextlib
from typing import Any

from dagster_postgres import DagsterPostgresStorage
from sqlalchemy import event, exc
from sqlalchemy.pool import Pool

FRESH = "mlops_fresh"  # set on a just-opened connection: nothing to check yet


class PostgresStorage(DagsterPostgresStorage):
    """`storage:` config as for dagster-postgres (`postgres_db:` or `postgres_url:`)."""

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> DagsterPostgresStorage:
        check_connections_before_use()
        return super().from_config_value(inst_data, config_value)


def check_connections_before_use() -> None:
    if not event.contains(Pool, "checkout", ping):
        event.listen(Pool, "connect", mark_fresh)
        event.listen(Pool, "checkout", ping)


def mark_fresh(dbapi_connection: Any, record: Any) -> None:
    record.info[FRESH] = True


def ping(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Raising DisconnectionError makes the pool discard the connection and open a new one."""
    if record.info.pop(FRESH, False):
        return
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SELECT 1")
    except Exception as error:  # the driver's own error for a dead connection
        raise exc.DisconnectionError(f"pooled connection is dead: {error}") from error
    finally:
        with contextlib.suppress(Exception):  # closing a dead connection's cursor may fail too
            cursor.close()
