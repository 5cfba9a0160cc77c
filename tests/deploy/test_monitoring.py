"""deploy/components/monitoring: the PodMonitor finds the four services' metrics ports, the
alerts pass `promtool test rules` (each one firing in one case and quiet in another), and the
dashboard's queries are valid PromQL on certlc's metrics. That the services really export those
metrics is checked against running services in tests/e2e/test_pipeline.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from libs.runtime import metrics as declared
from tests.deploy import monitoring
from tests.deploy.manifests import DEPLOY, NAMESPACE, OVERLAYS, SERVICES, kubectl, of_kind

# What the alerts must cover, one alert (at least) each.
WANTED = {
    "a certificate past its renewal time and not renewed": "CertlcCertificateRenewalOverdue",
    "a CA with less than a year left": "CertlcCAExpiresWithinAYear",
    "failed rotations": "CertlcRotationsFailing",
    "a tripped loop guard": "CertlcLoopGuardTripped",
    "consumer lag growing": "CertlcConsumerLagGrowing",
    "a service down": "CertlcServiceDown",
    "a service without any pod": "CertlcServiceAbsent",
    "a service not ready": "CertlcServiceNotReady",
    "a rollout that timed out": "CertlcRolloutTimedOut",
    "a rollout still running past its timeout": "CertlcRolloutOverdue",
}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not on PATH (Debian package prometheus; scripts/bootstrap.sh installs it)",
            pytrace=False,
        )
    return path


def with_component(tmp_path: Path, overlay: str) -> list[dict[str, Any]]:
    """`kubectl kustomize` of an overlay plus the monitoring component."""
    here = tmp_path / f"with-monitoring-{overlay}"
    here.mkdir()
    relative = os.path.relpath(DEPLOY, here)
    (here / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [f"{relative}/overlays/{overlay}"],
                "components": [f"{relative}/components/monitoring"],
            }
        )
    )
    done = subprocess.run(
        [kubectl(), "kustomize", str(here)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        operator, key = expression["operator"], expression["key"]
        values = expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
    return True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_monitor_scrapes_the_four_services_and_nothing_else(
    tmp_path: Path, overlay: str
) -> None:
    objects = with_component(tmp_path, overlay)
    (monitor,) = of_kind(tuple(objects), "PodMonitor")
    assert monitor["metadata"]["namespace"] == NAMESPACE
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["honorLabels"] is True  # the TCP's `namespace` label stays as certlc set it
    scraped = []
    for workload in of_kind(tuple(objects), "Deployment") + of_kind(tuple(objects), "StatefulSet"):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        if _matches(monitor["spec"]["selector"], labels):
            ports = {
                p.get("name")
                for c in workload["spec"]["template"]["spec"]["containers"]
                for p in c.get("ports", [])
            }
            assert endpoint["port"] in ports, workload["metadata"]["name"]
            scraped.append(workload["metadata"]["name"])
    assert sorted(scraped) == sorted(f"certlc-{s}" for s in SERVICES)
    # `job` is the Deployment's name, which the alerts name.
    (job,) = [r for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
    assert job["sourceLabels"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_name"]
    (rule,) = of_kind(tuple(objects), "PrometheusRule")
    assert rule["metadata"]["namespace"] == NAMESPACE
    dashboards = [
        c
        for c in of_kind(tuple(objects), "ConfigMap")
        if (c["metadata"].get("labels") or {}).get("grafana_dashboard") == "1"
    ]
    assert [list(c["data"]) for c in dashboards] == [["certlc-dashboard.json"]]


def test_the_overlays_do_not_need_the_prometheus_operator() -> None:
    """The component is optional: no overlay includes it (its kinds need the operator's CRDs)."""
    for overlay in OVERLAYS:
        text = (DEPLOY / "overlays" / overlay / "kustomization.yaml").read_text()
        assert "components/monitoring" not in text


def test_every_wanted_alert_exists_with_a_severity_and_a_summary() -> None:
    found = monitoring.alerts()
    assert set(WANTED.values()) <= set(found), set(WANTED.values()) - set(found)
    for name, rule in found.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"], name


def _write_rules(tmp_path: Path, groups: list[dict[str, Any]]) -> Path:
    shutil.copy(monitoring.ALERT_TESTS, tmp_path / "alerts_test.yaml")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    return tmp_path / "alerts_test.yaml"


def test_the_alerts_pass_promtool(tmp_path: Path) -> None:
    tests = _write_rules(tmp_path, monitoring.rule_groups())
    checked = subprocess.run(
        [promtool(), "check", "rules", str(tmp_path / "rules.yaml")],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    done = subprocess.run(
        [promtool(), "test", "rules", str(tests)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_each_alert_has_a_case_where_it_fires_and_one_where_it_does_not() -> None:
    cases = yaml.safe_load(monitoring.ALERT_TESTS.read_text())["tests"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    names = set(monitoring.alerts())
    assert names - fires == set(), "alerts never shown to fire"
    assert names - quiet == set(), "alerts never shown to stay quiet"


def test_promtool_catches_a_broken_rule(tmp_path: Path) -> None:
    """The unit tests can fail: with the renewal threshold moved out of reach they do."""
    groups = monitoring.rule_groups()
    for group in groups:
        for rule in group["rules"]:
            if rule.get("alert") == "CertlcCertificateRenewalOverdue":
                assert "> 3600" in rule["expr"]
                rule["expr"] = rule["expr"].replace("> 3600", "> 360000")
    tests = _write_rules(tmp_path, groups)
    done = subprocess.run(
        [promtool(), "test", "rules", str(tests)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "CertlcCertificateRenewalOverdue" in done.stdout + done.stderr


def test_the_dashboard_loads_and_its_queries_are_valid_promql(tmp_path: Path) -> None:
    board = monitoring.dashboard()
    assert board["title"] == "certlc"
    assert board["uid"]
    (variable,) = board["templating"]["list"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    titles = " | ".join(p["title"] for p in board["panels"])
    for wanted in ("expiry", "Rotations by reason and result", "Rollout duration", "lag", "Loop"):
        assert wanted in titles, wanted
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
    # Soonest first: the expiry table sorts ascending.
    (expiry,) = [p for p in board["panels"] if p["title"] == "Fleet expiry, soonest first"]
    assert expiry["targets"][0]["expr"].startswith("sort(")
    # promtool parses every query, as recording rules.
    queries = monitoring.dashboard_queries()
    rules = [{"record": f"dashboard:query_{n}", "expr": e} for n, e in enumerate(queries)]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [promtool(), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_metric_the_alerts_and_the_dashboard_use_is_declared() -> None:
    """Names declared in libs/runtime/metrics.py; tests/e2e checks that the services serve them."""
    used = monitoring.metrics_in(
        monitoring.dashboard_queries() + [r["expr"] for r in monitoring.alerts().values()]
    )
    registry = CollectorRegistry()
    for value in vars(declared).values():
        if isinstance(value, MetricWrapperBase):
            registry.register(value)
    names = monitoring.exported_names(generate_latest(registry).decode())
    assert used, "no certlc metric found in the queries"
    assert used <= names, used - names
