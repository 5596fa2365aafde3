"""Run Debian's Prometheus on the project's own config and rules, with short intervals (tests).

The config and the rules are derived from ``deploy/prometheus/`` rather than written anew, so
what runs is what ships: only targets, intervals, ``for:`` durations and range windows change.
"""

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from cloud.services.ports import free_port
from cloud.services.process import ServiceProcess, require_binary

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
_RANGE = re.compile(r"\[\d+[smhdw]\]")


def shorten_rules(doc: dict[str, Any], for_s: float, range_s: float) -> dict[str, Any]:
    """The same rule groups with every ``for:`` set to *for_s* and every ``[5m]`` to *range_s*."""
    out: dict[str, Any] = {"groups": []}
    for group in doc["groups"]:
        rules = []
        for rule in group["rules"]:
            copy = dict(rule)
            copy["expr"] = _RANGE.sub(f"[{range_s:g}s]", str(rule["expr"]))
            if "for" in rule:
                copy["for"] = f"{for_s:g}s"
            rules.append(copy)
        out["groups"].append({**group, "rules": rules})
    return out


def derive_config(
    base: dict[str, Any],
    targets: dict[str, list[str]],
    *,
    interval_s: float,
    rule_files: list[str],
) -> dict[str, Any]:
    """*base* (``prometheus.yml``) with the jobs' targets replaced, short intervals, no alerting.

    A job of *base* missing from *targets* is an error: the test must scrape what ships.
    """
    jobs = []
    for job in base["scrape_configs"]:
        name = job["job_name"]
        if name not in targets:
            raise ValueError(f"prometheus.yml: no test target for job {name!r}")
        jobs.append(
            {
                **job,
                "scrape_interval": f"{interval_s:g}s",
                "scrape_timeout": f"{interval_s:g}s",
                "static_configs": [{"targets": targets[name]}],
            }
        )
    unknown = set(targets) - {j["job_name"] for j in jobs}
    if unknown:
        raise ValueError(f"prometheus.yml has no job {sorted(unknown)}")
    interval = f"{interval_s:g}s"
    return {
        "global": {
            **base.get("global", {}),
            "scrape_interval": interval,
            "evaluation_interval": interval,
        },
        "rule_files": rule_files,
        "scrape_configs": jobs,
    }


@dataclass(frozen=True, slots=True)
class PrometheusConfig:
    workdir: Path
    config: dict[str, Any]
    """The prometheus.yml document to run."""
    rules: dict[str, dict[str, Any]]
    """Rule files by file name, written beside the config."""
    host: str = "127.0.0.1"
    port: int = 0


class Prometheus:
    """A prometheus process; ``start()`` returns once ``/-/ready`` answers 200."""

    def __init__(self, cfg: PrometheusConfig) -> None:
        self.cfg = cfg
        self.host = cfg.host
        self.port = cfg.port or free_port(cfg.host)
        cfg.workdir.mkdir(parents=True, exist_ok=True)
        for name, doc in cfg.rules.items():
            (cfg.workdir / name).write_text(yaml.safe_dump(doc, sort_keys=False))
        self.conf_path = cfg.workdir / "prometheus.yml"
        self.conf_path.write_text(yaml.safe_dump(cfg.config, sort_keys=False))
        binary = require_binary("prometheus", "prometheus")
        self._proc = ServiceProcess(
            [
                binary,
                f"--config.file={self.conf_path}",
                f"--storage.tsdb.path={cfg.workdir / 'data'}",
                f"--web.listen-address={self.host}:{self.port}",
                "--log.level=warn",
            ],
            cfg.workdir / "prometheus.log",
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self._proc.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=0.5).status_code == 200:  # noqa: PLR2004
                    return
            except httpx.HTTPError:
                pass
            if not self._proc.running:
                raise RuntimeError(f"prometheus exited:\n{self._proc.log_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"prometheus was not ready within {timeout:.0f} s")
            time.sleep(0.1)

    def stop(self) -> None:
        self._proc.stop()

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>`` and its ``data``; raises unless the answer is a success."""
        resp = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        resp.raise_for_status()
        body = resp.json()
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus /api/v1/{path}: {body}")
        return body["data"]

    def log(self) -> str:
        return self._proc.log_text()
