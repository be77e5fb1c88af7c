"""The Prometheus alert rules (deploy/prometheus) and the Grafana dashboard (deploy/grafana),
checked structurally: the rule-file format, every metric and label they read is one okrsnap
exports, the queries are well formed, each alert's text names only labels its query keeps, and
the alerts issue 14 asks for exist. With promtool installed, `promtool check rules` runs too."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
SCRAPE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "okrsnap.json"

# okrsnap's metrics and their labels (docs/scaling.md, "Metrics"); every series also has
# `service` and `process`, and the scrape configuration adds `component` and `pod`.
COMMON = {"service", "process", "job", "instance", "component", "pod"}
METRICS = {
    "okrsnap_http_requests_total": {"route", "method", "status"},
    "okrsnap_http_request_duration_seconds": {"route", "method"},
    "okrsnap_events_published_total": set(),
    "okrsnap_events_applied_total": set(),
    "okrsnap_events_duplicate_total": set(),
    "okrsnap_events_parked_total": set(),
    "okrsnap_events_dead_lettered_total": {"reason"},
    "okrsnap_outbox_backlog": set(),
    "okrsnap_outbox_oldest_age_seconds": set(),
    "okrsnap_consumer_lag_seconds": set(),
    "okrsnap_weeks_waiting_to_seal": set(),
    "okrsnap_week_waiting_to_seal_oldest_seconds": set(),
    "okrsnap_export_jobs": {"state"},
    "okrsnap_export_build_seconds": {"format"},
    "okrsnap_rate_limit_refusals_total": {"limit"},
    "up": set(),  # Prometheus's own, per target
}
HISTOGRAMS = {"okrsnap_http_request_duration_seconds", "okrsnap_export_build_seconds"}
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
SELECTOR = re.compile(r"\b([a-z_][a-z0-9_]*)\s*(\{[^}]*\})?\s*(\[[^\]]*\])?")
FUNCTIONS = {"sum", "max", "min", "avg", "count", "rate", "increase", "deriv", "irate", "histogram_quantile",
             "absent", "by", "without", "on", "ignoring", "and", "or", "unless", "le", "label_values", "topk"}


def _series(expr: str) -> list[tuple[str, set[str], str | None]]:
    """(metric, label names matched, range) for every selector in a PromQL expression."""
    found = []
    stripped = re.sub(r'"[^"]*"', '""', expr)
    stripped = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", stripped)  # grouping labels
    for name, matchers, window in SELECTOR.findall(stripped):
        if name in FUNCTIONS or name.startswith("__"):
            continue
        labels = set(re.findall(r"([a-z_][a-z0-9_]*)\s*[=!]~?", matchers))
        found.append((name, labels, window.strip("[]") or None))
    return found


def _check_query(expr: str, where: str) -> None:
    assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}") \
        and expr.count("[") == expr.count("]"), f"{where}: unbalanced brackets in {expr!r}"
    series = _series(expr)
    assert series, f"{where}: no metric in {expr!r}"
    for name, labels, window in series:
        base = re.sub(r"_(bucket|sum|count)$", "", name) if name.endswith(("_bucket", "_sum", "_count")) else name
        assert base in METRICS, f"{where}: unknown metric {name}"
        assert name == base or base in HISTOGRAMS, f"{where}: {base} is not a histogram"
        known = METRICS[base] | COMMON | ({"le"} if name.endswith("_bucket") else set())
        assert labels <= known, f"{where}: {name} has no label {labels - known}"
        if window is not None:
            assert DURATION.match(window) or window == "$__rate_interval", f"{where}: bad range [{window}]"
    for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        for label in filter(None, (g.strip() for g in grouping.split(","))):
            assert any(label in METRICS[re.sub(r"_(bucket|sum|count)$", "", n)] | COMMON | {"le"}
                       for n, _, _ in series), f"{where}: grouping by {label}, which no metric has"


def _rules() -> list[dict]:
    document = yaml.safe_load(RULES.read_text())
    assert set(document) == {"groups"}
    rules = []
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["name"] and group["rules"]
        rules.extend(group["rules"])
    return rules


def test_rule_file_has_the_prometheus_shape_and_valid_queries():
    names = set()
    for rule in _rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
        assert re.match(r"^[A-Z][A-Za-z0-9]+$", rule["alert"]) and rule["alert"] not in names, rule["alert"]
        names.add(rule["alert"])
        assert "for" not in rule or DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        _check_query(rule["expr"], rule["alert"])


def test_alert_texts_name_only_labels_their_query_keeps():
    for rule in _rules():
        expr = rule["expr"]
        kept = {label.strip() for group in re.findall(r"\bby\s*\(([^)]*)\)", expr) for label in group.split(",")}
        # absent() keeps the labels its selector matches for equality
        kept |= {m for inner in re.findall(r"absent\(\w+\{([^}]*)\}\)", expr) for m in re.findall(r"(\w+)=\"", inner)}
        for text in rule["annotations"].values():
            for label in re.findall(r"\$labels\.(\w+)", text):
                assert label in kept, f"{rule['alert']}: {{{{ $labels.{label} }}}} is not kept by its query"


def test_the_alerts_issue_14_asks_for_exist():
    by_metric: dict[str, list[str]] = {}
    for rule in _rules():
        for name, _, _ in _series(rule["expr"]):
            by_metric.setdefault(name, []).append(rule["alert"])
    for metric in ("okrsnap_outbox_oldest_age_seconds", "okrsnap_consumer_lag_seconds",
                   "okrsnap_events_dead_lettered_total", "okrsnap_week_waiting_to_seal_oldest_seconds",
                   "okrsnap_http_requests_total"):
        assert by_metric.get(metric), f"no alert reads {metric}"
    five_xx = [r for r in _rules() if 'status=~"5.."' in r["expr"]]
    assert five_xx and five_xx[0]["labels"]["severity"] == "critical"


def test_scrape_configuration_loads_the_rules_and_keeps_the_metrics_port():
    config = yaml.safe_load(SCRAPE.read_text())
    assert config["rule_files"] == [RULES.name]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "okrsnap"  # the alert rules select up{job="okrsnap"}
    relabels = {tuple(r["source_labels"]): r for r in job["relabel_configs"]}
    assert relabels[("__meta_kubernetes_pod_container_port_name",)]["regex"] == "metrics"
    assert relabels[("__meta_kubernetes_pod_label_app_kubernetes_io_component",)]["target_label"] == "component"


def test_dashboard_panels_read_known_metrics_and_fit_the_grid():
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    ids, cells = set(), set()
    queries = 0
    for panel in dashboard["panels"]:
        assert panel["id"] not in ids, panel["title"]
        ids.add(panel["id"])
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            _check_query(target["expr"], panel["title"])
            for variable in re.findall(r"\$(\w+)", target["expr"]):
                assert variable in variables or variable.startswith("__"), f"{panel['title']}: no variable ${variable}"
            queries += 1
    read = {name for p in dashboard["panels"] for t in p.get("targets", []) for name, _, _ in _series(t["expr"])}
    unread = {m for m in METRICS if m != "up"} - {re.sub(r"_bucket$", "", n) for n in read}
    assert not unread, f"metrics no panel shows: {unread}"
    assert queries >= 10


def test_the_query_checker_refuses_what_it_should():
    """The checks above would pass on anything if the checker accepted everything."""
    for bad in ("sum(rate(okrsnap_http_requests_total[5m])",  # unbalanced
                "rate(okrsnap_http_requests_totl[5m])",  # unknown metric
                'sum(okrsnap_outbox_backlog{reason="x"})',  # label the metric lacks
                "rate(okrsnap_consumer_lag_seconds_bucket[5m])",  # not a histogram
                "rate(okrsnap_events_applied_total[5 minutes])",  # bad range
                "sum by (format) (okrsnap_outbox_backlog)"):  # grouping by a label nothing has
        with pytest.raises(AssertionError):
            _check_query(bad, "test")
    _check_query('sum by (service, le) (rate(okrsnap_http_request_duration_seconds_bucket{route="/x"}[5m]))', "ok")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (the checks above still run)")
def test_promtool_accepts_the_rules():
    done = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
