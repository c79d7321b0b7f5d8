"""Prometheus, Alertmanager and Grafana configuration of the production profile, checked by the
real tools where they are installed (.ci/run installs them) and structurally otherwise."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"


def run_tool(name: str, *args: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess:
    if shutil.which(name) is None:
        pytest.skip(f"{name} is not installed (apt-get install prometheus prometheus-alertmanager)")
    result = subprocess.run([name, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_prometheus_config_is_valid():
    run_tool("promtool", "check", "config", "prometheus.yml", cwd=PROMETHEUS)


def test_alert_rules_are_valid():
    run_tool("promtool", "check", "rules", "rules.yml", cwd=PROMETHEUS)


def test_every_alert_rule_passes_its_unit_tests():
    run_tool("promtool", "test", "rules", "rules_test.yml", cwd=PROMETHEUS)


def test_every_alert_rule_has_a_unit_test():
    rules = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((PROMETHEUS / "rules_test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    tested = {case["alertname"] for case in cases}
    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    assert alerts == tested == firing


def test_alertmanager_config_is_valid():
    run_tool("amtool", "check-config", "alertmanager/alertmanager.yml")


def test_alerts_are_grouped_by_model():
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    assert "model" in config["route"]["group_by"]


def dashboards() -> list[tuple[Path, dict]]:
    return [(path, json.loads(path.read_text())) for path in sorted(DASHBOARDS.glob("*.json"))]


def test_dashboards_are_complete_and_well_formed():
    assert dashboards(), f"no dashboard in {DASHBOARDS}"
    for path, dashboard in dashboards():
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in dashboard["panels"]:
            where = f"{path.name}: panel {panel.get('title')!r}"
            assert panel["datasource"]["uid"] == "prometheus", where
            assert set(panel["gridPos"]) >= {"x", "y", "w", "h"}, where
            assert panel["targets"], where
            for target in panel["targets"]:
                assert target["expr"].strip(), where


def test_dashboards_use_the_provisioned_data_source():
    datasources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    assert [source["uid"] for source in datasources] == ["prometheus"]


def test_dashboards_show_what_the_issue_asks_for():
    exprs = " ".join(
        target["expr"] for _, dashboard in dashboards() for panel in dashboard["panels"]
        for target in panel["targets"]
    )  # fmt: skip
    for metric in (
        "mlops_http_requests_total",  # traffic and errors
        "mlops_http_request_duration_seconds_bucket",  # latency percentiles
        "mlops_predictions_total",  # predictions by model and version
        "mlops_inference_batch_rows_bucket",
        "mlops_model_load_failures_total",
        "mlops_drift_p_value",  # drift per feature over time
        "mlops_drift_psi",
        "mlops_live_metric",  # live performance, realized and estimated (issue 20)
        "mlops_live_estimated_metric",
    ):
        assert metric in exprs, metric


def test_every_metric_queried_is_one_the_server_exports():
    """A typo in a metric name is a panel or an alert that silently never shows anything."""
    server_source = (DEPLOY.parent / "serving" / "metrics.py").read_text()
    exported = set(re.findall(r'"(mlops_[a-z_]+)"', server_source)) | {
        "mlops_drift_p_value",
        "mlops_drift_psi",
        "mlops_drift_feature_drifted",
        "mlops_dataset_drift",
        "mlops_drift_evaluated_timestamp_seconds",
        "mlops_champion_promoted_timestamp_seconds",
    }  # the drift and champion gauges the slim server adds (issue 11)
    suffixes = ("_total", "_bucket", "_sum", "_count")
    queried = re.findall(r"mlops_[a-z_]+", (PROMETHEUS / "rules.yml").read_text())
    queried += re.findall(r"mlops_[a-z_]+", " ".join(p.read_text() for p in DASHBOARDS.glob("*")))
    unknown = {
        name for name in queried
        if name not in exported and not any(
            name.endswith(suffix) and name.removesuffix(suffix) in exported for suffix in suffixes
        )
    }  # fmt: skip
    assert not unknown
