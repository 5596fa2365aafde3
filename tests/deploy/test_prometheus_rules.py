"""Prometheus's own tools on what ships: config, rules, rule unit tests, metric names, runbooks."""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloud.services.prometheus import DEPLOY_DIR, derive_config, shorten_rules
from tests.conftest import need

RULES = sorted((DEPLOY_DIR / "rules").glob("*.yml"))
UNIT_TESTS = sorted((DEPLOY_DIR / "tests").glob("*.yml"))
DOCS = Path(__file__).resolve().parents[2] / "docs" / "observability.md"


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    need(shutil.which("promtool") is not None, "promtool (apt-get install prometheus)")
    return subprocess.run(
        ["promtool", *args],
        input=None if stdin is None else stdin.decode(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def alerts_in(path: Path) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_checks_the_config_and_rules() -> None:
    result = promtool("check", "config", str(DEPLOY_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    result = promtool("check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", *map(str, UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS)


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    fired: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    names = {a["alert"] for path in RULES for a in alerts_in(path)}
    assert len(names) >= 8
    assert names - fired == set(), "alerts without a promtool test that fires them"


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_every_alert_is_actionable_and_has_a_runbook_in_the_docs(path: Path) -> None:
    docs = DOCS.read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in docs.splitlines()
        if line.startswith("#")
    }
    for alert in alerts_in(path):
        name = alert["alert"]
        annotations = alert["annotations"]
        assert annotations["runbook_url"] == f"docs/observability.md#{name.lower()}", name
        assert name.lower() in anchors, f"{name}: no '### {name}' section in docs/observability.md"
        assert alert["labels"]["severity"] in {"warning", "critical"}, name
        assert "{{ $labels." in annotations["summary"] or "{{ $value" in annotations["summary"]
        assert len(annotations["description"]) > 80, name


def test_shortened_rules_keep_the_expressions_but_the_windows() -> None:
    doc = yaml.safe_load((DEPLOY_DIR / "rules" / "ingest.yml").read_text())
    short = shorten_rules(doc, 3, 10)
    lag = short["groups"][0]["rules"][0]
    assert lag["for"] == "3s"
    assert "[10s]" in lag["expr"]
    assert "[5m]" not in lag["expr"]
    original = doc["groups"][0]["rules"][0]["expr"]
    assert lag["expr"] == original.replace("[5m]", "[10s]")


def test_derived_config_refuses_a_job_without_a_target() -> None:
    base = yaml.safe_load((DEPLOY_DIR / "prometheus.yml").read_text())
    with pytest.raises(ValueError, match="cityops-ingest"):
        derive_config(base, {"cityops-api": ["127.0.0.1:1"]}, interval_s=1, rule_files=[])
    with pytest.raises(ValueError, match="nosuch"):
        derive_config(
            base,
            {"cityops-api": ["a:1"], "cityops-ingest": ["b:2"], "nosuch": ["c:3"]},
            interval_s=1,
            rule_files=[],
        )
