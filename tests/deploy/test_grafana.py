"""The Grafana dashboards: generated, provisioned, and querying what really exists.

Every PromQL target names metrics that the running API and ingestor expose and is accepted by
the real Prometheus; every InfluxQL target names a measurement, fields and tags of the real
InfluxDB schema after ingest stored events and telemetry, and returns data.
"""

import importlib.util
import json
import re
import time
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.db.base import make_engine
from cloud.db.ops import Incident
from cloud.dispatch.tables import DeliveryStatus
from cloud.services.prometheus import Prometheus
from shared.clock import utcnow
from shared.events import EventKind
from shared.telemetry import Telemetry
from shared.topics import Channel, topic
from tests.cloud.ingest.publisher import Publisher
from tests.cloud.ops.builders import delivery, event
from tests.conftest import ADMIN_USER
from tests.deploy.conftest import Stack

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
METRIC = re.compile(r"\b(cityops_[a-z0-9_]+|up)\b(?!\s*\()")


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def targets(kind: str) -> list[tuple[str, dict[str, Any]]]:
    """(dashboard/panel title, target) of every target of datasource type *kind*."""
    return [
        (f"{path.stem}/{panel['title']}", target)
        for path in DASHBOARDS
        for panel in json.loads(path.read_text())["panels"]
        for target in panel.get("targets", [])
        if target["datasource"]["type"] == kind
    ]


def test_committed_dashboards_are_what_the_generator_makes() -> None:
    rendered = generator().render()
    assert sorted(rendered) == [p.name for p in DASHBOARDS]
    for path in DASHBOARDS:
        assert path.read_text() == rendered[path.name], f"regenerate {path.name}"


def test_dashboards_use_the_provisioned_datasources() -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning/datasources/cityops.yml").read_text())
    uids = {d["uid"]: d for d in provisioned["datasources"]}
    assert uids["cityops-influxdb"]["jsonData"]["version"] == "InfluxQL"
    assert uids["cityops-prometheus"]["type"] == "prometheus"
    used = {(t["datasource"]["uid"], t["datasource"]["type"]) for kind in ("prometheus", "influxdb")
            for _, t in targets(kind)}  # fmt: skip
    assert used == {("cityops-prometheus", "prometheus"), ("cityops-influxdb", "influxdb")}
    for uid, kind in used:
        assert uids[uid]["type"] == kind
    text = (GRAFANA / "provisioning/datasources/cityops.yml").read_text()
    docs = (GRAFANA.parents[1] / "docs" / "observability.md").read_text()
    variables = set(re.findall(r"\$\{(\w+)\}", text))
    assert len(variables) == 5
    assert {v for v in variables if f"`{v}`" not in docs} == set(), "undocumented variables"
    scrape = yaml.safe_load((GRAFANA.parent / "prometheus" / "prometheus.yml").read_text())
    prom_ds = uids["cityops-prometheus"]["jsonData"]
    assert prom_ds["timeInterval"] == scrape["global"]["scrape_interval"]
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/cityops.yml").read_text())
    assert provider["providers"][0]["type"] == "file"
    titles = {json.loads(p.read_text())["uid"] for p in DASHBOARDS}
    assert titles == {"cityops-city", "cityops-platform"}


def _exposed(text: str) -> set[str]:
    """Metric and sample names in a Prometheus text exposition (HELP/TYPE lines included)."""
    names = set()
    for line in text.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def _feed(stack: Stack) -> None:
    """Events and telemetry of dev-c (unregistered), through the broker and the ingestor."""
    now = utcnow()
    events = [
        event(kind, device_id="dev-c", zone_id=f"z{i}", observed_at=now - timedelta(minutes=i))
        for i, kind in enumerate([EventKind.ILLEGAL_PARKING, EventKind.ABANDONED_OBJECT] * 3)
    ]
    telemetry = [
        Telemetry(device_id="dev-c", ts=now - timedelta(seconds=10 * i), fps=12.5, outbox_depth=i)
        for i in range(5)
    ]
    with Publisher(stack.broker.host, stack.broker.port, ADMIN_USER, "admin-pw") as pub:
        for e in events:
            pub.send(e, Channel.EVENT)
        for t in telemetry:
            pub.send(t, Channel.TELEMETRY)
        pub.raw(topic("dev-c", Channel.EVENT), b"not json")  # a dead letter
        pub.flush()
    # The separate ingestor opens the incidents itself (its incident step, before the ack).
    engine = make_engine(stack.state_url)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with Session(engine) as session:
                if session.scalar(select(func.count()).select_from(Incident)):
                    break
            time.sleep(0.2)
        else:
            raise TimeoutError("the ingestor opened no incident")
    finally:
        engine.dispose()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = stack.influx.query('SELECT count("id") FROM "events"', db=stack.database)
        series = got["results"][0].get("series")  # type: ignore[index]
        if series and series[0]["values"][0][1] >= len(events):
            return
        time.sleep(0.2)
    raise TimeoutError("events not in InfluxDB")


def _undelivered(stack: Stack) -> None:
    """A dead and a pending delivery, as a route no process of the stack knows leaves them."""
    engine = make_engine(stack.state_url)
    try:
        with Session(engine) as session:
            session.add_all(
                delivery("civil-protection-orders", status)
                for status in (DeliveryStatus.PENDING, DeliveryStatus.DEAD)
            )
            session.commit()
    finally:
        engine.dispose()


def _influx(stack: Stack, query: str) -> list[dict[str, Any]]:
    result: dict[str, Any] = stack.influx.query(query, db=stack.database)["results"][0]  # type: ignore[index]
    assert "error" not in result, f"{query}: {result}"
    series: list[dict[str, Any]] = result.get("series", [])
    return series


@pytest.mark.services
def test_every_dashboard_query_names_what_exists(
    stack: Stack,
    prometheus: Prometheus,
) -> None:
    _feed(stack)
    _undelivered(stack)
    # --- InfluxQL: measurement, fields and tags of the real schema; the query returns data
    influx = targets("influxdb")
    assert len(influx) >= 3
    measurements = {s[0] for row in _influx(stack, "SHOW MEASUREMENTS") for s in row["values"]}
    for where, target in influx:
        query = target["query"]
        (measurement,) = re.findall(r'FROM "(\w+)"', query)
        assert measurement in measurements, where
        fields = {
            v[0] for v in _influx(stack, f'SHOW FIELD KEYS FROM "{measurement}"')[0]["values"]
        }
        tags = {v[0] for v in _influx(stack, f'SHOW TAG KEYS FROM "{measurement}"')[0]["values"]}
        quoted = set(re.findall(r'"(\w+)"', query)) - {measurement}
        assert quoted <= fields | tags, f"{where}: {quoted - fields - tags} not in {measurement}"
        assert target["alias"] in {f"$tag_{t}" for t in tags}, where
        runnable = query.replace("$timeFilter", "time > now() - 1d").replace("$__interval", "1m")
        assert _influx(stack, runnable), f"{where}: no data for {runnable}"

    # --- PromQL: names exposed by the real processes; accepted and evaluated by Prometheus
    promql = targets("prometheus")
    assert len(promql) >= 25
    stored = 'sum(cityops_ingest_stored_total{kind="event"}) >= 6'
    deadline = time.monotonic() + 30
    while not prometheus.api("query", query=stored)["result"]:  # scraped after the feed
        assert time.monotonic() < deadline, "Prometheus never scraped the stored events"
        time.sleep(0.5)
    time.sleep(3)  # a few more scrapes, so rate() over the window has points
    exposed = _exposed(stack.api_metrics()) | _exposed(stack.ingest_metrics()) | {"up"}
    empty = []
    for where, target in promql:
        expr = target["expr"]
        names = set(METRIC.findall(expr))
        assert names, f"{where}: no metric in {expr}"
        assert names <= exposed, f"{where}: {names - exposed} not exposed"
        result = prometheus.api("query", query=expr.replace("$__rate_interval", "1m"))
        if not result["result"]:
            empty.append((where, names))
    # Empty only where the test stack has nothing to show: no connector is configured, and
    # incident changes are counted by the process that makes them (here: the test itself).
    print(f"{len(empty)} of {len(promql)} dashboard queries empty:", *(w for w, _ in empty))
    allowed = re.compile(r"cityops_connector_\w+|cityops_incident_changes_total")
    assert [(w, n) for w, n in empty if not all(allowed.fullmatch(m) for m in n)] == []


def test_metric_names_of_the_running_processes_pass_promtool(stack: Stack) -> None:
    import subprocess

    for text in (stack.api_metrics(), stack.ingest_metrics()):
        assert "cityops_build_info" in text
        result = subprocess.run(
            ["promtool", "check", "metrics"],
            input=text.encode(),
            capture_output=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_ingest_exposes_its_lag_after_events(stack: Stack) -> None:
    _feed(stack)
    text = httpx.get(f"{stack.ingest_url}/metrics", timeout=10).text
    (count,) = [
        float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("cityops_ingest_event_lag_seconds_count")
    ]
    assert count >= 6
