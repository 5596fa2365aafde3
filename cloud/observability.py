"""What every CityOps metrics endpoint shares: the build info series."""

import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Literal

from prometheus_client import CollectorRegistry, Info

Component = Literal["api", "ingest"]


def cityops_version() -> str:
    try:
        return version("cityops")
    except PackageNotFoundError:  # a bare checkout without `pip install -e .`
        return "unknown"


def register_build_info(registry: CollectorRegistry, component: Component) -> None:
    """``cityops_build_info{component, version, python_version} 1`` on *registry*."""
    info = Info(
        "cityops_build", "Version of the CityOps process serving these metrics.", registry=registry
    )
    info.info(
        {
            "component": component,
            "version": cityops_version(),
            "python_version": platform.python_version(),
        }
    )
