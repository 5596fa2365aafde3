"""Every `--type` a technician can give registers as a device type the balena release supports."""

from typing import get_args

import yaml

from cityops.paths import REPO_ROOT
from provisioning.agent_config import BALENA_DEVICE_TYPE, DeviceType


def test_every_cli_type_maps_to_a_type_the_release_supports() -> None:
    release = yaml.safe_load((REPO_ROOT / "firmware" / "balena.yml").read_text())
    supported = set(release["data"]["supportedDeviceTypes"])
    assert set(get_args(DeviceType)) == set(BALENA_DEVICE_TYPE)
    assert set(BALENA_DEVICE_TYPE.values()) <= supported
