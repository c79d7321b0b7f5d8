#!/bin/sh
# Run once by the postgres image on an empty volume: POSTGRES_DB is Dagster's database; MLflow's
# tracking store gets its own.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "CREATE DATABASE \"$MLFLOW_PG_DB\""
