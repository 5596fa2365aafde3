"""InfluxDB specifics on a real influxd: Basic auth, retention policy, outage errors, escaping."""

import json
from collections.abc import Callable, Iterator
from datetime import timedelta, timezone
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from cloud.services.influxd import InfluxConfig, Influxd
from cloud.settings import InfluxSettings
from cloud.store.base import EventQuery, StoreRejectedError, StoreUnavailableError
from cloud.store.influx import WRITE_CHUNK, InfluxEventStore
from cloud.store.line_protocol import event_line, string_field, tag, telemetry_line
from shared.events import Event
from tests.cloud.store.factories import make_event, make_telemetry
from tests.conftest import need


@pytest.fixture
def secured_influxd(tmp_path: Path) -> Iterator[Influxd]:
    need(Path("/usr/bin/influxd").exists(), "influxd")
    server = Influxd(InfluxConfig(workdir=tmp_path / "influxd", auth_enabled=True))
    server.start()
    # With auth on, influxd accepts exactly one unauthenticated statement: the first admin.
    server.query("CREATE USER admin WITH PASSWORD 'adm-pw' WITH ALL PRIVILEGES")
    yield server
    server.stop()


async def test_basic_auth_and_retention_policy(secured_influxd: Influxd) -> None:
    settings = InfluxSettings(
        url=secured_influxd.url,
        database="city",
        username="admin",
        password=SecretStr("adm-pw"),
        retention_policy="short",
        retention_duration="2d",
    )
    store = InfluxEventStore(settings)
    await store.setup()
    await store.setup()  # idempotent: the policy exists now and is altered, not re-created
    event = make_event()
    await store.write_events([event])
    assert (await store.query_events(EventQuery())).items == [event]
    await store.close()

    async with httpx.AsyncClient(auth=("admin", "adm-pw")) as http:
        resp = await http.get(
            f"{secured_influxd.url}/query", params={"q": 'SHOW RETENTION POLICIES ON "city"'}
        )
    rows = resp.json()["results"][0]["series"][0]["values"]
    assert next(r[:2] for r in rows if r[0] == "short") == ["short", "48h0m0s"]

    wrong = InfluxEventStore(settings.model_copy(update={"password": SecretStr("nope")}))
    with pytest.raises(StoreUnavailableError, match="401"):
        await wrong.write_events([make_event()])
    await wrong.close()


async def test_a_stopped_server_is_unavailable_not_an_error(
    influx_factory: Callable[[], Influxd],
) -> None:
    server = influx_factory()
    store = InfluxEventStore(InfluxSettings(url=server.url, database="city", timeout_s=2))
    await store.setup()
    server.stop()
    with pytest.raises(StoreUnavailableError, match="unreachable"):
        await store.write_events([make_event()])
    with pytest.raises(StoreUnavailableError):
        await store.query_events(EventQuery())
    await store.close()


def test_token_auth_sends_the_token_header() -> None:
    store = InfluxEventStore(InfluxSettings(token=SecretStr("t0ken")))
    assert store._client.headers["Authorization"] == "Token t0ken"


def test_line_protocol_escaping() -> None:
    assert tag("a b,c=d") == r"a\ b\,c\=d"
    assert string_field('say "hi" \\o/') == r'"say \"hi\" \\o/"'
    line = event_line(make_event(summary='quote " and \\ and, comma=equals'))
    measurement_tags, fields, ts = _split(line)
    assert measurement_tags.startswith("events,device=dev-a,camera=cam-1,")
    assert fields.startswith('id="')
    assert ts.isdigit()
    nan = telemetry_line(make_telemetry(readings={"noise_dba": float("nan"), "ok": 1.5}))
    assert "r_noise_dba" not in nan
    assert "r_ok=1.5" in nan


def _split(line: str) -> tuple[str, str, str]:
    """Split a line at its two unescaped, unquoted spaces."""
    parts: list[str] = []
    current = ""
    quoted = escaped = False
    for ch in line:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            current += ch
            escaped = True
        elif ch == '"':
            current += ch
            quoted = not quoted
        elif ch == " " and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    assert len(parts) == 3, parts
    return parts[0], parts[1], parts[2]


async def test_a_batch_of_several_write_chunks_is_stored_whole(
    influxd: Influxd, influx_db: str
) -> None:
    store = InfluxEventStore(InfluxSettings(url=influxd.url, database=influx_db))
    events = [make_event(f"dev-{i % 4}") for i in range(2 * WRITE_CHUNK + 500)]
    await store.write_events(events)
    data = influxd.query('SELECT count("id") FROM "events"', db=influx_db)
    assert data["results"][0]["series"][0]["values"][0][1] == len(events)  # type: ignore[index]
    await store.close()


async def test_a_refused_chunk_refuses_the_write(influxd: Influxd, influx_db: str) -> None:
    # A string "objects" field makes InfluxDB refuse every later integer "objects" (type conflict).
    async with httpx.AsyncClient() as http:
        resp = await http.post(
            f"{influxd.url}/write", params={"db": influx_db}, content='events,device=x objects="s"'
        )
        assert resp.status_code == 204
    store = InfluxEventStore(InfluxSettings(url=influxd.url, database=influx_db))
    with pytest.raises(StoreRejectedError, match="conflict"):
        await store.write_events([make_event() for _ in range(WRITE_CHUNK + 10)])
    await store.close()


async def test_source_json_kept_as_the_body_reads_back_equal(
    influxd: Influxd, influx_db: str
) -> None:
    """Whatever the form of the source JSON, the event read back is the validated one.

    Offsets, escapes and key order are kept as sent; pretty-printed JSON is serialised again.
    """
    store = InfluxEventStore(InfluxSettings(url=influxd.url, database=influx_db))
    plain = make_event("dev-a", summary='say "hi" \\ ünï 🚗', attributes={"k": 'q"\\'})
    data = json.loads(plain.model_dump_json(exclude_none=True))
    data["observed_at"] = plain.observed_at.astimezone(timezone(timedelta(hours=2))).isoformat()
    compact = json.dumps(dict(reversed(list(data.items()))), ensure_ascii=True).encode()
    other = make_event("dev-c", summary="pretty")
    pretty = other.model_dump_json(indent=2).encode()  # newlines: serialised again instead
    snap = make_event("dev-b", snapshot=True)
    sources = [compact, pretty, snap.model_dump_json().encode()]
    events = [Event.model_validate_json(s) for s in sources]
    await store.write_events_with_sources(events, sources)
    for event in events:
        assert await store.get_event(event.id) == event
    page = await store.query_events(EventQuery())
    assert sorted(e.id for e in page.items) == sorted(e.id for e in events)
    query = f"SELECT body FROM events WHERE id = '{plain.id}'"  # noqa: S608 - a test's own id
    body = influxd.query(query, db=influx_db)
    stored = body["results"][0]["series"][0]["values"][0][1]  # type: ignore[index]
    assert stored == compact.decode()  # kept as it came, not serialised again
    await store.close()
