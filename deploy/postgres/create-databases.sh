#!/bin/sh
# Run once by the postgres image on an empty volume: POSTGRES_DB is Dagster's database; MLflow's
# tracking store and the DuckLake catalog of the scale-out profile get their own.
set -eu
for db in "$MLFLOW_PG_DB" "$LAKE_PG_DB"; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -c "CREATE DATABASE \"$db\""
done
