"""deploy/ validates statically (no Docker engine, no booted systemd here).

The compose file against the compose specification's JSON Schema (shipped by check-jsonschema,
as tests/firmware does), its mounts and every CityOps command parsed by the real CLI; the
Dockerfile's COPY sources; the example cloud.yaml as settings; the systemd units with
``systemd-analyze verify``.
"""

import json
import re
import shlex
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
import yaml

from cityops.cli import app as cityops_app
from cloud.api.settings import ApiSettings
from cloud.dispatch.config import load_dispatch
from cloud.settings import CloudSettings, mqtt_client_id
from shared.limits import MAX_PACKET_BYTES
from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CONFIG_IN_IMAGE = "/etc/cityops/cloud.yaml"
CITYOPS_SERVICES = ("migrate", "broker-auth", "api", "ingest-0", "ingest-1")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(
        (files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text()
    )
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _interpolated(value: str) -> str:
    """Compose's ``${VAR:-default}`` with the defaults (as `docker compose config` would)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_compose_file_matches_the_compose_specification(
    compose: dict[str, Any], compose_validator: jsonschema.protocols.Validator
) -> None:
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in compose_validator.iter_errors(compose)
    ]
    assert errors == []
    broken = json.loads(json.dumps(compose))
    broken["services"]["api"]["depends_on"] = {"migrate": {"condition": "when-it-feels-like-it"}}
    assert not compose_validator.is_valid(broken)


def test_compose_runs_every_part_of_the_deployment(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"mosquitto", "influxdb", "postgres", "prometheus", *CITYOPS_SERVICES} <= set(services)
    prometheus = services["prometheus"]["volumes"]
    assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus
    assert "./prometheus/rules:/etc/prometheus/rules:ro" in prometheus
    for name in CITYOPS_SERVICES:
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["api"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )


def test_grafana_and_prometheus_fit_the_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    grafana = services["grafana"]
    mounts = {_interpolated(v).split(":")[1] for v in grafana["volumes"]}
    assert {
        "/etc/grafana/provisioning/datasources",
        "/etc/grafana/provisioning/dashboards",
        "/var/lib/grafana/dashboards/cityops",  # the provider's path (provisioning/dashboards)
    } <= mounts
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/cityops.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/cityops"
    datasources = (DEPLOY / "grafana/provisioning/datasources/cityops.yml").read_text()
    for variable in set(re.findall(r"\$\{(CITYOPS_[A-Z_]+)\}", datasources)):
        assert variable in grafana["environment"], f"grafana: {variable} is not set"
    scrape = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())["scrape_configs"]
    for job in scrape:
        for target in (t for c in job["static_configs"] for t in c["targets"]):
            host = target.split(":")[0]
            assert host in services, f"prometheus job {job['job_name']}: no service {host!r}"


def test_compose_broker_binds_device_client_ids_and_limits_size() -> None:
    conf = (DEPLOY / "mosquitto/mosquitto.conf").read_text()
    listeners = re.split(r"^listener ", conf, flags=re.MULTILINE)
    assert f"max_packet_size {MAX_PACKET_BYTES}" in listeners[0]
    device = next(block for block in listeners[1:] if block.startswith("1883"))
    assert "use_username_as_clientid true" in device
    example = CloudSettings.from_yaml(DEPLOY / "cloud.example.yaml")
    assert example.mqtt.port != 1883, "services belong on the services listener"


def _volume_path(service: dict[str, Any], path: str) -> tuple[str, str]:
    """(named volume, path inside it) of *path* as *service*'s container sees it."""
    for volume in service.get("volumes", []):
        source, target = _interpolated(volume).split(":")[:2]
        if not source.startswith(".") and path.startswith(target.rstrip("/") + "/"):
            return source, path.removeprefix(target.rstrip("/") + "/")
    raise AssertionError(f"{path} is on no named volume of {service}")


def _conf_setting(name: str) -> str:
    conf = (DEPLOY / "mosquitto/mosquitto.conf").read_text()
    values = re.findall(rf"^{name} (\S+)$", conf, flags=re.MULTILINE)
    assert len(values) == 1, f"mosquitto.conf: {name} {values}"
    return str(values[0])


def test_broker_accounts_are_written_before_mosquitto_starts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    auth = services["broker-auth"]
    assert auth["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert auth["restart"] == "no"  # a one-shot: restarted, it would loop
    assert auth["healthcheck"] == {"disable": True}  # the image's check is the API's /healthz
    mosquitto = services["mosquitto"]
    condition = mosquitto["depends_on"]["broker-auth"]["condition"]
    assert condition == "service_completed_successfully"
    # Where `cloud broker sync` and the API write (cloud.example.yaml) is where Mosquitto reads.
    files = ApiSettings.from_yaml(DEPLOY / "cloud.example.yaml").api.broker_files
    assert files is not None
    for writer in ("broker-auth", "api"):
        assert _volume_path(services[writer], str(files.passwd)) == _volume_path(
            mosquitto, _conf_setting("password_file")
        )
        assert _volume_path(services[writer], str(files.acl)) == _volume_path(
            mosquitto, _conf_setting("acl_file")
        )
    assert files.pid_file is None  # another container's pid: the watcher reloads instead


def test_broker_files_are_written_by_the_uid_mosquitto_reads_them_as(
    compose: dict[str, Any],
) -> None:
    """Mosquitto reads its 0600 files after dropping root to uid 1883 (eclipse-mosquitto)."""
    services = compose["services"]
    files = ApiSettings.from_yaml(DEPLOY / "cloud.example.yaml").api.broker_files
    assert files is not None
    writers = {services[name]["user"] for name in ("broker-auth", "api")}
    assert writers == {"1883:1883"}
    # A new named volume takes the owner of its mount point in the image.
    mount_point = str(files.passwd.parent)
    made = re.findall(
        r"install -d -o (\d+) -g (\d+) -m 0?7[0-7]0 (\S+)", (DEPLOY / "Dockerfile").read_text()
    )
    assert (*writers.pop().split(":"), mount_point) in made


def test_mosquitto_runs_under_the_reload_watcher(compose: dict[str, Any]) -> None:
    mosquitto = compose["services"]["mosquitto"]
    shell, script = mosquitto["command"]
    assert shell == "sh"
    mounts = dict(_interpolated(v).split(":")[1::-1] for v in mosquitto["volumes"])
    assert mounts[script] == "./mosquitto/reload-on-change.sh"
    assert mosquitto["init"] is True  # docker stop's SIGTERM reaches the script's trap
    subprocess.run(["sh", "-n", str(DEPLOY / "mosquitto/reload-on-change.sh")], check=True)
    # It watches the files the config names; its default config is the one mounted.
    text = (DEPLOY / "mosquitto/reload-on-change.sh").read_text()
    assert "${MOSQUITTO_CONF:-/mosquitto/config/mosquitto.conf}" in text
    assert mounts["/mosquitto/config/mosquitto.conf"] == "./mosquitto/mosquitto.conf"


def test_the_example_service_accounts_are_the_cloud_logins() -> None:
    settings = ApiSettings.from_yaml(DEPLOY / "cloud.example.yaml")
    files = settings.api.broker_files
    assert files is not None
    assert settings.api.mqtt is not None
    for login in (settings.cloud.mqtt, settings.api.mqtt):
        assert login.username in files.services
        assert login.password is not None
        secret = files.services[login.username].get_secret_value()
        assert login.password.get_secret_value() == secret


def test_bind_mounts_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = _interpolated(volume).split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"


def _parse(args: list[str]) -> Any:
    """Parse a ``cityops ...`` command line with the real CLI, without running it."""
    command = typer.main.get_command(cityops_app)
    ctx = command.make_context("cityops", list(args), resilient_parsing=False)
    while hasattr(ctx.command, "resolve_command"):
        rest = [*ctx._protected_args, *ctx.args]
        name, sub, rest = ctx.command.resolve_command(ctx, rest)
        assert sub is not None, name
        ctx = sub.make_context(name or "", rest, parent=ctx)
    return ctx


def _in_repo(args: list[str]) -> list[str]:
    return [
        str(DEPLOY / "cloud.example.yaml") if a == CONFIG_IN_IMAGE else _interpolated(a)
        for a in args
    ]


def test_every_cityops_service_command_is_accepted_by_the_cli(compose: dict[str, Any]) -> None:
    instances = []
    for name in CITYOPS_SERVICES:
        ctx = _parse(_in_repo([str(a) for a in compose["services"][name]["command"]]))
        assert ctx.params["config"] == DEPLOY / "cloud.example.yaml"
        if name.startswith("ingest"):
            instances.append(ctx.params["instance"])
        if name == "api":
            assert ctx.params["no_ingest"]
            assert ctx.params["workers"] == 2
        if name == "broker-auth":
            assert ctx.command_path == "cityops cloud broker sync"
    # Each ingest process has its own instance, hence its own MQTT client id.
    settings = CloudSettings.from_yaml(DEPLOY / "cloud.example.yaml")
    ids = {mqtt_client_id(settings, "ingest", instance=i) for i in instances}
    assert len(ids) == len(instances) == 2


def test_the_example_cloud_yaml_is_valid_for_every_command() -> None:
    cloud = CloudSettings.from_yaml(DEPLOY / "cloud.example.yaml")
    api = ApiSettings.from_yaml(DEPLOY / "cloud.example.yaml")
    assert cloud.database_url.startswith("postgresql+psycopg://")
    assert cloud.store.kind == "influx"
    assert api.api.mqtt is not None
    assert api.api.mqtt.username != cloud.mqtt.username


def test_dockerfile_copies_only_what_exists() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+(?: AS (\S+))?$", text, flags=re.MULTILINE)
    assert stages[0] == "build"
    copies = re.findall(r"^COPY (.+)$", text, flags=re.MULTILINE)
    assert copies
    for line in copies:
        parts = line.split()
        from_stage = next((p.split("=")[1] for p in parts if p.startswith("--from=")), None)
        sources = [p for p in parts if not p.startswith("--")][:-1]
        if from_stage is not None:
            assert from_stage in stages
            continue
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the build context"
    assert 'pip install ".[cloud]"' in text
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r"^cloud = \[", pyproject, flags=re.MULTILINE)
    assert 'ENTRYPOINT ["cityops"]' in text


def _unit_commands(unit: Path) -> list[list[str]]:
    """ExecStart/ExecStartPre command lines of instance 1 with CITYOPS_API_WORKERS=2."""
    commands = []
    for line in unit.read_text().splitlines():
        key, _, value = line.partition("=")
        value = (
            value.replace("$((9108 + %i))", "9109")
            .replace("%i", "1")
            .replace("${CITYOPS_API_WORKERS}", "2")
        )
        if key in {"ExecStart", "ExecStartPre"}:
            args = shlex.split(value)
            if args[0] == "/bin/sh":
                args = shlex.split(args[2].removeprefix("exec "))
            commands.append(args)
    return commands


def test_systemd_units_run_commands_the_cli_accepts() -> None:
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        for args in _unit_commands(unit):
            assert args[0] == "/opt/cityops/bin/cityops"
            ctx = _parse(_in_repo(args[1:]))
            assert ctx.params["config"] == DEPLOY / "cloud.example.yaml", unit.name


def test_systemd_units_verify(tmp_path: Path) -> None:
    need(shutil.which("systemd-analyze") is not None, "systemd-analyze (package systemd)")
    beside = Path(sys.executable).parent / "cityops"  # the venv's entry point
    cityops = str(beside) if beside.exists() else shutil.which("cityops")
    need(cityops is not None, "the cityops entry point (pip install -e .)")
    for unit in (DEPLOY / "systemd").glob("*.service"):
        text = unit.read_text().replace("/opt/cityops/bin/cityops", str(cityops))
        (tmp_path / unit.name).write_text(text)
    (tmp_path / "cityops-ingest@1.service").write_text(
        (tmp_path / "cityops-ingest@.service").read_text()
    )
    for unit in (DEPLOY / "systemd").glob("*.path"):
        (tmp_path / unit.name).write_text(unit.read_text())
    result = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            "--man=no",
            str(tmp_path / "cityops-api.service"),
            str(tmp_path / "cityops-ingest@1.service"),
            str(tmp_path / "cityops-broker-sync.service"),
            str(tmp_path / "cityops-broker-sync.path"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # unknown keys are only warnings: none allowed


def test_systemd_broker_sync_applies_what_the_path_unit_watches() -> None:
    """The path unit re-runs the sync on the API's writes; the sync installs those files."""
    service = (DEPLOY / "systemd/cityops-broker-sync.service").read_text()
    path = (DEPLOY / "systemd/cityops-broker-sync.path").read_text()
    watched = set(re.findall(r"^PathChanged=(\S+)$", path, flags=re.MULTILINE))
    assert re.search(r"^Unit=cityops-broker-sync.service$", path, flags=re.MULTILINE)
    install = next(
        shlex.split(line.partition("=")[2].removeprefix("+"))
        for line in service.splitlines()
        if line.startswith("ExecStartPost=+/usr/bin/install")
    )
    target = install.index("-t")
    assert install[install.index("-o") + 1] == "mosquitto"  # the user Mosquitto reads as
    assert install[install.index("-m") + 1] == "0600"
    assert set(install[target + 2 :]) == watched
    assert {Path(p).parent for p in watched} == {Path("/var/lib/cityops/broker")}
    assert "ReadWritePaths=/var/lib/cityops" in service
    assert re.search(r"^Before=.*\bmosquitto\.service\b", service, flags=re.MULTILINE)


def test_every_cloud_process_reads_the_same_dispatch_routes(compose: dict[str, Any]) -> None:
    """The ingest processes dispatch too: each CityOps container mounts the dispatch file."""
    dispatch = CloudSettings.from_yaml(DEPLOY / "cloud.example.yaml").integrations.dispatch
    assert dispatch is not None
    cityops = [
        n for n, s in compose["services"].items() if s.get("image") == "cityops-cloud:latest"
    ]
    assert {"api", "ingest-0", "ingest-1"} <= set(cityops)
    for name in cityops:
        volumes = compose["services"][name].get("volumes", [])
        mounts = dict(_interpolated(v).split(":")[1::-1] for v in volumes)
        assert mounts.get(str(dispatch)) == "./dispatch.example.yaml", name
    assert load_dispatch(DEPLOY / "dispatch.example.yaml").routes == []
