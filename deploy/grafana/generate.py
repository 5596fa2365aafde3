"""Generate the provisioned Grafana dashboards with grafana-foundation-sdk.

    python deploy/grafana/generate.py            # rewrite deploy/grafana/dashboards/*.json
    python deploy/grafana/generate.py --check    # exit 1 if the committed JSON is out of date

Never edit the JSON by hand: change this file and regenerate (a test compares the two).
The datasource uids are those of ``provisioning/datasources/cityops.yml``.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Self

from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    dashboard,
    geomap,
    prometheus,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import FrameGeometrySourceMode
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DataTransformerConfig,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="cityops-prometheus")
INFLUXDB = DataSourceRef(type_val="influxdb", uid="cityops-influxdb")
RATE = "$__rate_interval"
BLIND = 'state=~"offline|silent|camera_down"'


class InfluxQLQuery(cogvariants.Dataquery):
    """A raw InfluxQL target (the SDK has no InfluxDB query model; Grafana's JSON is this)."""

    def __init__(self, query: str, alias: str, ref_id: str, result_format: str) -> None:
        self.query = query
        self.alias = alias
        self.ref_id = ref_id
        self.result_format = result_format

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "datasource": INFLUXDB.to_json(),
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
            "alias": self.alias,
        }


class InfluxQL(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self, query: str, *, alias: str = "", result_format: str = "time_series") -> None:
        self._query = InfluxQLQuery(query, alias, "A", result_format)

    def ref_id(self, ref_id: str) -> Self:
        self._query.ref_id = ref_id
        return self

    def build(self) -> cogvariants.Dataquery:
        return self._query


def prom(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False) -> Any:
    query = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)
    query = query.datasource(PROMETHEUS)
    return query.instant().format(PromQueryFormat.TABLE) if instant else query.range()


def steps(*pairs: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=v, color=c) for v, c in pairs])
    )


def series(title: str, unit: str, *targets: Any, w: int = 12, h: int = 8) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).span(w).height(h)
    panel = panel.datasource(INFLUXDB if isinstance(targets[0], InfluxQL) else PROMETHEUS)
    for target in targets:
        panel = panel.with_target(target)
    return panel


# ----------------------------------------------------------------------------- city overview


def city_overview() -> dashboard.Dashboard:
    """What an operations-center supervisor looks at: the city's events, queues and devices."""
    return (
        dashboard.Dashboard("CityOps — city overview")
        .uid("cityops-city")
        .tags(["cityops"])
        .description("Events from InfluxDB, incidents and devices from Prometheus.")
        .refresh("30s")
        .time("now-24h", "now")
        .timezone("browser")
        .with_row(dashboard.Row("Events"))
        .with_panel(
            series(
                "Events by kind per hour (situations started)",
                "short",
                InfluxQL(
                    'SELECT count("id") FROM "events" WHERE "phase" = \'start\' AND '
                    '$timeFilter GROUP BY time(1h), "kind" fill(0)',
                    alias="$tag_kind",
                ),
                w=16,
            ).description("Each start event counts once; update/end of the same situation not.")
        )
        .with_panel(
            bargauge.Panel()
            .title("Events by kind in the range")
            .datasource(INFLUXDB)
            .with_target(
                InfluxQL(
                    'SELECT count("id") FROM "events" WHERE "phase" = \'start\' AND '
                    '$timeFilter GROUP BY "kind"',
                    alias="$tag_kind",
                )
            )
            .span(8)
            .height(8)
        )
        .with_row(dashboard.Row("Incidents"))
        .with_panel(
            bargauge.Panel()
            .title("Open incidents by department")
            .datasource(PROMETHEUS)
            .with_target(prom("sum by (department) (cityops_incidents_open)", "{{department}}"))
            .span(8)
            .height(8)
        )
        .with_panel(
            series(
                "Incidents opened per hour, by department",
                "short",
                prom(
                    "sum by (department) "
                    '(increase(cityops_incident_changes_total{type="created"}[1h]))',
                    "{{department}}",
                ),
                w=8,
            )
        )
        .with_panel(
            stat.Panel()
            .title("Open incidents past their SLA")
            .datasource(PROMETHEUS)
            .with_target(
                prom(
                    "sum by (department, sla) (cityops_incidents_sla_breached)",
                    "{{department}} ({{sla}})",
                )
            )
            .thresholds(steps((None, "green"), (1, "red")))
            .span(8)
            .height(8)
        )
        .with_panel(
            table.Panel()
            .title("Open incidents by department and severity; oldest open")
            .datasource(PROMETHEUS)
            .with_target(
                prom(
                    "sum by (department, severity) (cityops_incidents_open)",
                    "open",
                    "A",
                    instant=True,
                )
            )
            .with_target(
                prom(
                    "time() - min by (department, severity) "
                    "(cityops_incidents_oldest_open_timestamp_seconds)",
                    "oldest",
                    "B",
                    instant=True,
                )
            )
            .with_transformation(DataTransformerConfig(id_val="merge", options={}))
            .span(24)
            .height(8)
        )
        .with_row(dashboard.Row("Devices"))
        .with_panel(
            geomap.Panel()
            .title("Devices (green ok, red blind spot, grey never seen)")
            .datasource(PROMETHEUS)
            .with_target(
                prom(
                    "max by (device, site, lat, lon) (cityops_device_info * on (device, site) "
                    "group_left () cityops_device_blind_spot or on (device, site) "
                    "cityops_device_info * 2)",
                    "{{device}}",
                    instant=True,
                )
            )
            .with_transformation(
                DataTransformerConfig(
                    id_val="convertFieldType",
                    options={
                        "conversions": [
                            {"targetField": "lat", "destinationType": "number"},
                            {"targetField": "lon", "destinationType": "number"},
                        ]
                    },
                )
            )
            .view(geomap.MapViewConfig().id("fit"))  # zoom to the devices, wherever the city is
            .layers(
                [
                    common.MapLayerOptions()
                    .type("markers")
                    .name("devices")
                    .location(
                        common.FrameGeometrySource()
                        .mode(FrameGeometrySourceMode.COORDS)
                        .latitude("lat")
                        .longitude("lon")
                    )
                    .config({"style": {"color": {"field": "Value"}, "size": {"fixed": 7}}})
                ]
            )
            .thresholds(steps((None, "green"), (1, "red"), (2, "gray")))
            .span(12)
            .height(12)
        )
        .with_panel(
            bargauge.Panel()
            .title("Devices by state")
            .datasource(PROMETHEUS)
            .with_target(prom("sum by (state) (cityops_devices)", "{{state}}"))
            .span(6)
            .height(6)
        )
        .with_panel(
            bargauge.Panel()
            .title("Blind spots by site")
            .datasource(PROMETHEUS)
            .with_target(prom(f"sum by (site) (cityops_devices{{{BLIND}}}) > 0", "{{site}}"))
            .thresholds(steps((None, "green"), (1, "red")))
            .span(6)
            .height(6)
        )
        .with_panel(
            table.Panel()
            .title("Least recently heard devices")
            .datasource(PROMETHEUS)
            .with_target(
                prom(
                    "bottomk(15, cityops_device_last_seen_timestamp_seconds) * -1 + time()",
                    "{{device}}",
                    instant=True,
                )
            )
            .unit("s")
            .span(6)
            .height(6)
        )
        .with_panel(
            table.Panel()
            .title("Deepest device outboxes")
            .datasource(PROMETHEUS)
            .with_target(
                prom("topk(15, cityops_device_outbox_messages)", "{{device}}", instant=True)
            )
            .span(6)
            .height(6)
        )
        .with_panel(
            series(
                "Camera frame rate per device (telemetry)",
                "fps",
                InfluxQL(
                    'SELECT mean("fps") FROM "telemetry" WHERE $timeFilter '
                    'GROUP BY time($__interval), "device" fill(null)',
                    alias="$tag_device",
                ),
                w=12,
            )
        )
        .with_panel(
            series(
                "Outbox depth per device (telemetry)",
                "short",
                InfluxQL(
                    'SELECT max("outbox_depth") FROM "telemetry" WHERE $timeFilter '
                    'GROUP BY time($__interval), "device" fill(null)',
                    alias="$tag_device",
                ),
                w=12,
            )
        )
    )


# ---------------------------------------------------------------------------------- platform


def platform() -> dashboard.Dashboard:
    """What the operators of CityOps itself look at: ingest, the API, connectors, dispatch."""
    quantiles = [("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99")]
    return (
        dashboard.Dashboard("CityOps — platform")
        .uid("cityops-platform")
        .tags(["cityops"])
        .description("Ingest rate, lag and batches; API traffic and latency; connectors, dispatch.")
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .with_row(dashboard.Row("Ingest"))
        .with_panel(
            series(
                "Messages received and stored per second",
                "ops",
                prom(
                    f"sum by (channel) (rate(cityops_ingest_received_total[{RATE}]))",
                    "received {{channel}}",
                ),
                prom(
                    f"sum by (kind) (rate(cityops_ingest_stored_total[{RATE}]))",
                    "stored {{kind}}",
                    "B",
                ),
                prom(f"sum(rate(cityops_ingest_duplicates_total[{RATE}]))", "duplicates", "C"),
            )
        )
        .with_panel(
            series(
                "Ingest lag: observed on the device → stored",
                "s",
                *[
                    prom(
                        f"histogram_quantile({q}, sum by (le) "
                        f"(rate(cityops_ingest_event_lag_seconds_bucket[{RATE}])))",
                        name,
                        ref,
                    )
                    for (q, name), ref in zip(quantiles, "ABC", strict=True)
                ],
                prom("max(cityops_ingest_lag_seconds)", "newest event of the last batch", "D"),
            )
        )
        .with_panel(
            series(
                "Batches per second and batch duration (p99)",
                "short",
                prom(
                    f"sum(rate(cityops_ingest_batch_duration_seconds_count[{RATE}]))",
                    "batches/s",
                ),
                prom(
                    "histogram_quantile(0.99, sum by (le) "
                    f"(rate(cityops_ingest_batch_duration_seconds_bucket[{RATE}])))",
                    "p99 seconds",
                    "B",
                ),
                w=8,
            )
        )
        .with_panel(
            series(
                "Pending messages, store and database health",
                "short",
                prom("sum by (instance) (cityops_ingest_pending_messages)", "pending {{instance}}"),
                prom("min(cityops_ingest_store_up)", "store up", "B"),
                prom(
                    f"sum(rate(cityops_ingest_store_retries_total[{RATE}]))", "store retries/s", "C"
                ),
                prom(
                    f"sum(rate(cityops_ingest_database_retries_total[{RATE}]))",
                    "database retries/s",
                    "D",
                ),
                w=8,
            )
        )
        .with_panel(
            series(
                "Dead letters by reason",
                "short",
                prom(
                    f"sum by (reason) (increase(cityops_ingest_rejected_total[{RATE}]))",
                    "{{reason}}",
                ),
                prom("sum by (reason) (cityops_ingest_dead_letters) > 0", "kept: {{reason}}", "B"),
                w=8,
            )
        )
        .with_row(dashboard.Row("API"))
        .with_panel(
            series(
                "Requests per second by status",
                "reqps",
                prom(
                    f"sum by (status) (rate(cityops_api_requests_total[{RATE}]))",
                    "{{status}}",
                ),
                w=8,
            )
        )
        .with_panel(
            series(
                "Request latency",
                "s",
                *[
                    prom(
                        f"histogram_quantile({q}, sum by (le) "
                        f"(rate(cityops_api_request_duration_seconds_bucket[{RATE}])))",
                        name,
                        ref,
                    )
                    for (q, name), ref in zip(quantiles, "ABC", strict=True)
                ],
                w=8,
            )
        )
        .with_panel(
            series(
                "Slowest routes (p99)",
                "s",
                prom(
                    "topk(5, histogram_quantile(0.99, sum by (route, le) "
                    f"(rate(cityops_api_request_duration_seconds_bucket[{RATE}]))))",
                    "{{route}}",
                ),
                w=8,
            )
        )
        .with_panel(
            series(
                "Live stream: subscribers and messages per second",
                "short",
                prom("sum(cityops_live_subscribers)", "subscribers"),
                prom(f"sum(rate(cityops_live_messages_total[{RATE}]))", "messages/s", "B"),
                w=8,
            )
        )
        .with_panel(
            series(
                "Incident changes per second by type",
                "ops",
                prom(
                    f"sum by (type) (rate(cityops_incident_changes_total[{RATE}]))",
                    "{{type}}",
                ),
                w=8,
            )
        )
        .with_panel(
            series(
                "State database: up and scrape time",
                "s",
                prom("min(cityops_state_database_up)", "up"),
                prom("max(cityops_state_scrape_duration_seconds)", "scrape seconds", "B"),
                w=8,
            )
        )
        .with_row(dashboard.Row("Connectors, dispatch and processes"))
        .with_panel(
            table.Panel()
            .title("Connectors")
            .datasource(PROMETHEUS)
            .with_target(prom("cityops_connector_up", "up", "A", instant=True))
            .with_target(
                prom("cityops_connector_consecutive_errors", "errors in a row", "B", instant=True)
            )
            .with_target(
                prom(
                    "time() - cityops_connector_last_success_timestamp_seconds",
                    "since success",
                    "C",
                    instant=True,
                )
            )
            .with_transformation(DataTransformerConfig(id_val="merge", options={}))
            .mappings([ValueMap({"0": ValueMappingResult(text="failing", color="red")})])
            .span(12)
            .height(8)
        )
        .with_panel(
            table.Panel()
            .title("Processes: scrape targets and versions")
            .datasource(PROMETHEUS)
            .with_target(prom('up{job=~"cityops-.*"}', "up", "A", instant=True))
            .with_target(prom("cityops_build_info", "build", "B", instant=True))
            .with_transformation(DataTransformerConfig(id_val="merge", options={}))
            .span(12)
            .height(8)
        )
        .with_panel(
            # max: every API process reads the same outbox table, so each reports the same count
            series(
                "Dispatch: undelivered by route, and the oldest pending delivery's wait",
                "short",
                prom(
                    "max by (route, status) (cityops_dispatch_deliveries)",
                    "{{route}} {{status}}",
                ),
                prom(
                    "max by (route) (time() - cityops_dispatch_oldest_pending_timestamp_seconds)",
                    "{{route}}: oldest pending, seconds",
                    "B",
                ),
                w=24,
            )
        )
    )


DASHBOARDS = {"city-overview": city_overview, "platform": platform}


def render() -> dict[str, str]:
    """File name → JSON text of every dashboard (panel ids numbered in order, from 1)."""
    out = {}
    for name, build in DASHBOARDS.items():
        model = build().build()
        for number, panel in enumerate(model.panels or [], start=1):
            panel.id_val = number
        out[f"{name}.json"] = json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="Compare instead of writing.")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
            continue
        OUT.mkdir(exist_ok=True)
        path.write_text(text)
        sys.stdout.write(f"wrote {path}\n")
    if stale:
        sys.stderr.write(f"out of date: {', '.join(stale)}; run python {Path(__file__).name}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
