"""deploy/components/monitoring read for the tests: the alert rules, the dashboard, and the
metric names their queries use."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.manifests import DEPLOY

COMPONENT = DEPLOY / "components" / "monitoring"
RULES = COMPONENT / "prometheusrule.yaml"
DASHBOARD = COMPONENT / "certlc-dashboard.json"
ALERT_TESTS = Path(__file__).parent / "alerts_test.yaml"
_METRIC = re.compile(r"\b(certlc_[a-z0-9_]+)\b")
# Grafana's variables in queries, replaced by values Prometheus accepts.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m"}


def rule_groups() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    groups: list[dict[str, Any]] = doc["spec"]["groups"]
    return groups


def alerts() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in rule_groups() for r in g["rules"] if "alert" in r}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_queries() -> list[str]:
    exprs = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = str(target["expr"])
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            exprs.append(expr)
    return exprs


def metrics_in(exprs: list[str]) -> set[str]:
    return {m for expr in exprs for m in _METRIC.findall(expr)}


def exported_names(exposition: str) -> set[str]:
    """Sample names a /metrics page can carry, from its `# TYPE` lines."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("_count", "_sum", "_created", ""),
    }
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            base = name.removesuffix("_total") if kind == "counter" else name
            names.update(base + s for s in suffixes.get(kind, ("",)))
    return names
