"""The wrk load generator: its Lua script (POST bodies in turn, count non-2xx), one run, and the
summary parsed from the script's BENCH_JSON line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bench.serving.plan import Plan
from bench.serving.servers import ServerError

WRK = Path("/usr/bin/wrk")

WRK_SCRIPT = r"""
-- POST JSON bodies read from a file (one document a line), in turn; counts non-2xx answers.
local requests = {}
local position = 0
local threads = {}
non2xx = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local headers = {["Content-Type"] = "application/json"}
  for line in io.lines(args[1]) do
    if #line > 0 then
      table.insert(requests, wrk.format("POST", nil, headers, line))
    end
  end
end

function request()
  position = position % #requests + 1
  return requests[position]
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, _)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non2xx")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "timeout": %d, "non2xx": %d, "p50_us": %.1f, "p99_us": %.1f, ' ..
    '"max_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, bad,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def write_script(folder: Path) -> Path:
    """The Lua script, as `post.lua` in the folder."""
    lua = folder / "post.lua"
    lua.write_text(WRK_SCRIPT)
    return lua


def run_wrk(url: str, bodies: Path, connections: int, seconds: int, plan: Plan, lua: Path) -> dict:
    threads = min(plan.wrk_threads, connections)
    argv = [str(WRK), f"-t{threads}", f"-c{connections}", f"-d{seconds}s"]
    argv += [f"--timeout={plan.wrk_timeout}s", "-s", str(lua), url, "--", str(bodies)]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in completed.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if completed.returncode != 0 or line is None:
        raise ServerError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    return summarize_wrk(raw)


def summarize_wrk(raw: dict) -> dict:
    socket_errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    seconds = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "rps": raw["requests"] / seconds if seconds else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "non2xx": raw["non2xx"],
        "socket_errors": socket_errors,
        "errors": raw["non2xx"] + socket_errors,
    }


def describe(result: dict) -> str:
    return (
        f"{result['rps']:9.1f} req/s  p50 {result['p50_ms']:7.2f} ms  "
        f"p99 {result['p99_ms']:7.2f} ms  errors {result['errors']}"
    )


def wrk_version() -> str:
    completed = subprocess.run([str(WRK), "-v"], capture_output=True, text=True)
    first = (completed.stdout or completed.stderr or "wrk ?").splitlines()[0]
    return first.split(" Copyright")[0]
