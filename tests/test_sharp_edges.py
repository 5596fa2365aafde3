"""Issue #19's sharp edges, one test each: every one of them failed before the fix."""

import re
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cityops.cli import app
from cityops.demo.view import short_id
from cityops.paths import REPO_ROOT
from cloud.api.settings import ApiOptions
from provisioning.cli import DEFAULT_API

runner = CliRunner()


@pytest.mark.parametrize("verb", ["verify", "revoke"])
def test_provision_with_a_bad_device_id_explains_instead_of_a_traceback(verb: str) -> None:
    # Port 9 (discard) on loopback: the id must be refused before any network call.
    args = ["provision", verb, "Cam 01", "--api", "http://127.0.0.1:9", "--api-key", "cok_x"]
    if verb == "revoke":
        args.append("--skip-balena")
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "invalid device id 'Cam 01'" in result.output
    assert "Traceback" not in result.output
    assert "TopicError" not in result.output


def test_provision_api_default_is_where_the_api_listens() -> None:
    assert DEFAULT_API.endswith(f":{ApiOptions().port}")


def test_provisioning_docs_show_real_key_prefix() -> None:
    text = (REPO_ROOT / "docs" / "provisioning.md").read_text(encoding="utf-8")
    assert "cityops_…" not in text
    assert "CITYOPS_API_KEY=cok_" in text


def test_keys_create_makes_the_sqlite_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no var/ here: the documented default URL is relative
    monkeypatch.delenv("CITYOPS_CLOUD_DATABASE_URL", raising=False)
    result = runner.invoke(
        app, ["cloud", "keys", "create", "--name", "ana", "--role", "technician"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("cok_")
    assert (tmp_path / "var" / "cityops.sqlite").is_file()


def test_keys_create_names_an_unusable_database(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cfg = tmp_path / "cloud.yaml"
    cfg.write_text(f"database_url: sqlite:///{blocker}/sub/cityops.sqlite\n")
    result = runner.invoke(
        app, ["cloud", "keys", "create", "--name", "a", "--role", "admin", "--config", str(cfg)]
    )
    assert result.exit_code == 2
    assert "cannot open the state database" in result.output
    assert "Traceback" not in result.output


def test_keys_create_role_is_a_choice_list() -> None:
    result = runner.invoke(app, ["cloud", "keys", "create", "--help"], env={"COLUMNS": "200"})
    flat = re.sub(r"[\s│]+", "", result.output)
    assert "viewer|operator|supervisor|technician|admin|integration" in flat
    bad = runner.invoke(app, ["cloud", "keys", "create", "--name", "a", "--role", "boss"])
    assert bad.exit_code == 2
    assert "boss" in bad.output


def test_cityops_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert re.fullmatch(r"cityops \S+\n", result.output)


def test_replay_prints_patterns_literally(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text("device_id: Cam 01\ncameras: [{id: c, source: x.mp4}]\n")
    result = runner.invoke(app, ["edge", "replay", "x.mp4", "--config", str(cfg), "-q"])
    assert result.exit_code == 2
    assert "{0,62}$'" in result.output  # Rich markup would have eaten the [a-z0-9] class
    assert "[a-z0-9]" in result.output


def test_demo_incident_ids_differ_within_a_minute() -> None:
    # UUIDv7: 48 bits of milliseconds first, so ids of one minute share their first 8 chars.
    ms = 1_767_000_000_000
    a = uuid.UUID(int=(ms << 80) | (0x7 << 76) | (2 << 62) | 1)
    b = uuid.UUID(int=(ms << 80) | (0x7 << 76) | (2 << 62) | 2)
    assert str(a)[:8] == str(b)[:8]
    assert short_id(str(a)) != short_id(str(b))
    assert short_id(str(a)).lstrip("…") in str(a)
