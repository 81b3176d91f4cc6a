"""Checks of the monitoring kit: deploy/prometheus/restop-alerts.yaml with promtool (syntax
and unit tests), the shape of every alert and its tests, deploy/grafana/restop-dashboard.json,
and every restop_* name in both against deploy/metrics.txt."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from runner import Check

ROOT = Path(__file__).resolve().parents[2]
METRICS = ROOT / "deploy" / "metrics.txt"
RULES = ROOT / "deploy" / "prometheus" / "restop-alerts.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "restop-alerts.test.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "restop-dashboard.json"

SEVERITIES = {"critical", "warning", "info"}
METRIC_TYPES = {"counter", "gauge", "histogram"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
NAME = re.compile(r"\brestop_[a-z0-9_]+\b")
# Grafana's variables, replaced by values PromQL accepts before promtool parses the queries.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$instance": ".*", "$account": ".*", "$region": ".*"}


def metric_families() -> dict[str, str]:
    families = {}
    for line in METRICS.read_text().splitlines():
        name, kind = line.split()
        families[name] = kind
    return families


def metrics_file_format() -> list[str]:
    problems = []
    seen = set()
    for lineno, line in enumerate(METRICS.read_text().splitlines(), 1):
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"restop_[a-z0-9_]+", parts[0]) or parts[1] not in METRIC_TYPES:
            problems.append(f"metrics.txt:{lineno}: expected 'restop_name counter|gauge|histogram', got {line!r}")
            continue
        name, kind = parts
        if name in seen:
            problems.append(f"metrics.txt:{lineno}: {name} twice")
        seen.add(name)
        if (kind == "counter") != name.endswith("_total"):
            problems.append(f"metrics.txt:{lineno}: counters, and only counters, end in _total: {line!r}")
    return problems


def family_of(name: str, families: dict[str, str]) -> str | None:
    if name in families:
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if name.endswith(suffix) and families.get(base) == "histogram":
            return base
    return None


def unknown_names(exprs: list[str], where: str) -> list[str]:
    families = metric_families()
    problems = []
    for expr in exprs:
        for name in sorted(set(NAME.findall(expr))):
            if family_of(name, families) is None:
                problems.append(f"{where}: {name} is not in deploy/metrics.txt (in {expr.strip()[:80]!r})")
            elif name in families and families[name] == "histogram":
                problems.append(f"{where}: the histogram {name} is used without _bucket/_sum/_count")
    return problems


def alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def promtool(*args: str) -> list[str]:
    exe = shutil.which("promtool")
    if not exe:
        return ["promtool not found (Debian package prometheus; scripts/deploy-checks installs it)"]
    proc = subprocess.run([exe, *args], capture_output=True, text=True, cwd=RULES.parent)
    if proc.returncode != 0:
        return (proc.stdout + proc.stderr).strip().splitlines()
    return []


def rules_shape() -> list[str]:
    problems = []
    names = set()
    for rule in alerts():
        name = rule.get("alert")
        if not name:
            problems.append(f"a rule without alert name: {rule}")
            continue
        if name in names:
            problems.append(f"{name}: two rules of that name")
        names.add(name)
        if rule.get("labels", {}).get("severity") not in SEVERITIES:
            problems.append(f"{name}: severity label must be one of {sorted(SEVERITIES)}")
        for key in ("summary", "description"):
            if not rule.get("annotations", {}).get(key, "").strip():
                problems.append(f"{name}: no {key} annotation")
    return problems


def every_alert_fires_and_stays_quiet_in_tests() -> list[str]:
    firing: set[str] = set()
    quiet: set[str] = set()
    tests = yaml.safe_load(RULE_TESTS.read_text())
    for test in tests["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    problems = []
    for rule in alerts():
        if rule["alert"] not in firing:
            problems.append(f"{rule['alert']}: no test in which it fires")
        if rule["alert"] not in quiet:
            problems.append(f"{rule['alert']}: no test in which it does not fire")
    known = {r["alert"] for r in alerts()}
    problems += [f"tests name an unknown alert {n}" for n in sorted((firing | quiet) - known)]
    return problems


def rule_metric_names() -> list[str]:
    return unknown_names([r["expr"] for r in alerts()], "restop-alerts.yaml")


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels(d: dict) -> list[dict]:
    out = []
    for panel in d["panels"]:
        out.append(panel)
        out += panel.get("panels", [])
    return out


def dashboard_shape() -> list[str]:
    d = dashboard()
    problems = []
    if not 36 <= d.get("schemaVersion", 0) <= 41:
        problems.append(f"schemaVersion {d.get('schemaVersion')}")
    if not d.get("uid") or not d.get("title"):
        problems.append("uid and title are needed for provisioning")
    variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
    ds = variables.get("DS_PROMETHEUS")
    if not ds or ds["type"] != "datasource" or ds["query"] != "prometheus":
        problems.append("no datasource variable DS_PROMETHEUS of type prometheus")
    ids = [p["id"] for p in dashboard_panels(d)]
    if len(ids) != len(set(ids)):
        problems.append("panel ids are not unique")
    for panel in dashboard_panels(d):
        if panel["type"] == "row":
            continue
        where = f"panel {panel['id']} {panel.get('title')!r}"
        if panel.get("datasource") != {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}:
            problems.append(f"{where}: datasource {panel.get('datasource')}")
        if not panel.get("targets"):
            problems.append(f"{where}: no query")
        for target in panel.get("targets", []):
            if not target.get("expr") or not target.get("refId"):
                problems.append(f"{where}: a target without expr or refId")
            if target.get("datasource", panel.get("datasource")) != panel.get("datasource"):
                problems.append(f"{where}: a target with another datasource")
        pos = panel.get("gridPos", {})
        if not (pos.get("w", 0) > 0 and pos.get("h", 0) > 0 and pos.get("x", -1) >= 0 and pos.get("x", 0) + pos.get("w", 0) <= 24):
            problems.append(f"{where}: gridPos {pos}")
    for name, var in variables.items():
        if var["type"] == "query":
            problems += unknown_names([var["definition"]], f"variable {name}")
    return problems


def dashboard_exprs() -> list[tuple[str, str]]:
    return [
        (f"panel {p['id']} {p.get('title')!r}", t["expr"])
        for p in dashboard_panels(dashboard())
        for t in p.get("targets", [])
    ]


def dashboard_metric_names() -> list[str]:
    problems = []
    for where, expr in dashboard_exprs():
        problems += unknown_names([expr], f"dashboard {where}")
    used = {family_of(n, metric_families()) for _, e in dashboard_exprs() for n in NAME.findall(e)}
    problems += [f"dashboard shows nothing of {name}" for name in sorted(set(metric_families()) - used)]
    return problems


def dashboard_queries_parse() -> list[str]:
    """promtool parses every dashboard query, written as a recording rule."""
    rules = []
    for i, (where, expr) in enumerate(dashboard_exprs()):
        for var, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(var, value)
        if "$" in expr:
            return [f"{where}: unknown Grafana variable in {expr!r}"]
        rules.append({"record": f"dashboard:query:{i}", "expr": expr})
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
        f.flush()
        return promtool("check", "rules", f.name)


def checks() -> list[Check]:
    return [
        Check("monitoring", "deploy/metrics.txt: one 'name type' per line", metrics_file_format),
        Check("monitoring", "promtool check rules restop-alerts.yaml", lambda: promtool("check", "rules", RULES.name)),
        Check("monitoring", "promtool test rules restop-alerts.test.yaml", lambda: promtool("test", "rules", RULE_TESTS.name)),
        Check("monitoring", "every alert has a severity, a summary and a description", rules_shape),
        Check("monitoring", "every alert has a test where it fires and one where it does not", every_alert_fires_and_stays_quiet_in_tests),
        Check("monitoring", "alert rules use only metrics of deploy/metrics.txt", rule_metric_names),
        Check("monitoring", "dashboard: JSON, schema version, DS_PROMETHEUS variable, panels", dashboard_shape),
        Check("monitoring", "dashboard uses only, and shows every, metric of deploy/metrics.txt", dashboard_metric_names),
        Check("monitoring", "dashboard queries parse (promtool)", dashboard_queries_parse),
    ]
