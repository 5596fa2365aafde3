"""``cityops cloud connectors``: the shipped example configs check, list and map records."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cloud.connectors
from cityops.cli import app
from cloud.connectors.signing import verify
from shared.events import Event, EventKind, Severity

EXAMPLES = Path(cloud.connectors.__file__).parent / "examples"
SOURCES = str(EXAMPLES / "sources.yaml")
DISPATCH = str(EXAMPLES / "dispatch.yaml")
SECRETS = (
    "CITIZEN_APP_SECRET",
    "NOISE_NET_TOKEN",
    "METRO_ORION_TOKEN",
    "POLICE_WEBHOOK_SECRET",
    "SMTP_PASSWORD",
    "DISPATCH_MQTT_PASSWORD",
)
runner = CliRunner()


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRETS:
        monkeypatch.setenv(name, f"{name.lower()}-value")


def test_check_example_configs(secrets: None) -> None:
    result = runner.invoke(
        app, ["cloud", "connectors", "check", "--sources", SOURCES, "--dispatch", DISPATCH]
    )
    assert result.exit_code == 0, result.output
    assert "ok: 6 sources, 3 dispatch routes" in result.output


def test_check_names_missing_secret(secrets: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CITIZEN_APP_SECRET")
    result = runner.invoke(app, ["cloud", "connectors", "check", "--sources", SOURCES])
    assert result.exit_code == 1
    assert "CITIZEN_APP_SECRET is not set" in result.output


def test_check_names_bad_field(tmp_path: Path) -> None:
    bad = tmp_path / "sources.yaml"
    bad.write_text(
        "sources:\n  - id: x\n    type: rest_poll\n    url: ftp://nope\n    mapping: {time: t}\n"
    )
    result = runner.invoke(app, ["cloud", "connectors", "check", "--sources", str(bad)])
    assert result.exit_code == 1
    assert "sources.0.rest_poll.url" in result.output


def test_list_example_sources() -> None:
    result = runner.invoke(app, ["cloud", "connectors", "list", "--sources", SOURCES])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 6
    assert lines[0].split() == ["citizen-app", "webhook", "ext-citizen-app", "event"]
    assert lines[4].split()[-1] == "telemetry"


def test_map_dry_run(tmp_path: Path) -> None:
    opened = (datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0)
    record = {
        "ticket": "NMR-88",
        "opened_at": opened.isoformat(),
        "category": "abandoned",
        "priority": "P1",
        "geo": {"lat": 38.72, "lon": -9.15},
        "street_code": "AV-LIB",
        "text": "suitcase left at the metro exit",
    }
    path = tmp_path / "record.json"
    path.write_text(json.dumps([record, {"ticket": "NMR-89"}]))
    result = runner.invoke(
        app,
        ["cloud", "connectors", "map", "--sources", SOURCES, "--source", "citizen-app", str(path)],
    )
    assert result.exit_code == 1  # the second record has no time
    assert "record 1: time: no value at 'opened_at'" in result.stderr
    event = Event.model_validate_json(result.stdout)
    assert event.kind is EventKind.ABANDONED_OBJECT
    assert event.severity is Severity.HIGH
    assert event.observed_at == opened
    assert event.zone_id == "AV-LIB"


def test_sign_prints_verifiable_headers(tmp_path: Path, secrets: None) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b'{"tickets": []}')
    result = runner.invoke(
        app, ["cloud", "connectors", "sign", "--secret-env", "CITIZEN_APP_SECRET", str(body)]
    )
    assert result.exit_code == 0, result.output
    headers = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    verify(
        b"citizen_app_secret-value",
        body.read_bytes(),
        signature=headers["X-CityOps-Signature"],
        timestamp=headers["X-CityOps-Timestamp"],
        window_s=60,
        now=float(headers["X-CityOps-Timestamp"]),
    )
