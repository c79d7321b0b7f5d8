"""Serving benchmark: our server side by side with a typical FastAPI peer, `mlflow models serve`
and a no-model Litestar ceiling, all serving the same abalone champion, loaded with wrk.

    uv run python -m bench.serving          # full run; rewrites docs/benchmarks.md "## Serving"
    uv run python -m bench.serving --smoke  # CI: 8 connections, 2 s, 1 round, abalone only

Everything runs on loopback inside a temporary folder (its own data dir, MLflow store and Dagster
instance); every process started here is stopped here. See bench/README.md.

Modules, in the order a run uses them:

- `plan`: what is measured (connections, duration, rounds, datasets);
- `workspace`: the temporary folder, its environment, the abalone source and the champion build;
- `bodies`: the request bodies wrk posts and the records the identical-prediction check scores;
- `subjects`: the servers compared (ours, FastAPI peer, mlflow serve, ceiling) and their routes;
- `servers`: server processes: start, ready check, cold start, stop;
- `wrk`: the wrk load generator: its Lua script, one run, its parsed summary;
- `predictions`: identical predictions across subjects;
- `rounds`: the rounds of measurement over all subjects;
- `summary`: medians over rounds, ratios and the targets;
- `markdown`: the tables printed and the docs/benchmarks.md section;
- `cli`: the command line (`python -m bench.serving`) and the results file.
"""
