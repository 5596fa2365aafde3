"""`cityops --help` and every subcommand's help work and teach with an example."""

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from cityops.cli import app

runner = CliRunner()


@pytest.mark.parametrize("args", [[], ["edge"], ["cloud"], ["provision"], ["schema"], ["demo"]])
def test_help(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


@pytest.mark.parametrize("group", ["edge", "cloud", "provision", "schema"])
def test_group_help_has_an_example(group: str) -> None:
    result = runner.invoke(app, [group, "--help"])
    assert "Example" in result.output or "example" in result.output


def test_schema_export_writes_valid_json_schemas(tmp_path: Path) -> None:
    result = runner.invoke(app, ["schema", "export", str(tmp_path)])
    assert result.exit_code == 0, result.output
    files = sorted(tmp_path.glob("*.schema.json"))
    assert {f.name for f in files} >= {
        "event.schema.json",
        "telemetry.schema.json",
        "device-config.schema.json",
    }
    for path in files:
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
    event_schema = json.loads((tmp_path / "event.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(event_schema)
    assert not validator.is_valid({"id": "x"})
