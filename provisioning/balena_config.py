"""``balena.cfg``: how the balena SDK is pointed at balenaCloud, openBalena or a local stand-in.

The Python SDK has no env var for the API URL; it reads ``<data dir>/balena.cfg``, and silently
rewrites the file with balenaCloud defaults when any key is missing. So we always write every key,
and check ``api_endpoint`` after constructing the SDK.
"""

import configparser
from pathlib import Path

BALENA_CLOUD = "https://api.balena-cloud.com/"


def api_endpoint_for_host(balena_host: str) -> str:
    """What the SDK derives from ``balena_host`` (openBalena serves ``https://api.<domain>/``)."""
    return f"https://api.{balena_host}/"


def write_balena_cfg(
    data_dir: Path, *, api_endpoint: str = BALENA_CLOUD, balena_host: str = "balena-cloud.com"
) -> Path:
    """Write ``balena.cfg`` with all the keys the SDK requires; return its path."""
    endpoint = api_endpoint if api_endpoint.endswith("/") else api_endpoint + "/"
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    cfg = configparser.ConfigParser()
    cfg["Settings"] = {
        "balena_host": balena_host,
        "api_version": "v7",
        "device_actions_endpoint_version": "v1",
        "image_cache_time": str(7 * 24 * 3600 * 1000),
        "token_refresh_interval": str(3600 * 1000),
        "timeout": str(30 * 1000),
        "request_limit_interval": "60",
        "retry_rate_limited_request": "false",
        "builder_url": f"https://builder.{balena_host}/",
        "api_endpoint": endpoint,
        "pine_endpoint": f"{endpoint}v7/",
        "data_directory": str(data_dir),
        "cache_directory": str(data_dir / "cache"),
    }
    path = data_dir / "balena.cfg"
    with path.open("w") as handle:
        cfg.write(handle)
    return path


def read_api_endpoint(data_dir: Path) -> str | None:
    cfg = configparser.ConfigParser()
    cfg.read(data_dir / "balena.cfg")
    return cfg.get("Settings", "api_endpoint", fallback=None)
