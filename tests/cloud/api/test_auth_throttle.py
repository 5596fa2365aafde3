"""Repeated failed authentication from one address is slowed and counted, never a lock-out."""

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cloud.api.throttle import AuthThrottle
from tests.cloud.api.conftest import Api


def test_throttle_delays_only_past_the_free_failures_and_doubles_up_to_a_cap() -> None:
    throttle = AuthThrottle(free=3, first_delay_s=0.25, max_delay_s=1.0)
    delays = [throttle.failed("10.0.0.9") for _ in range(7)]
    assert delays == [0.0, 0.0, 0.0, 0.25, 0.5, 1.0, 1.0]
    assert throttle.failed("10.0.0.10") == 0.0  # another address starts afresh
    assert throttle.throttled() == 1


def _failures(text: str) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "cityops_api_auth_failures":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    found[sample.labels["reason"], sample.labels["delayed"]] = sample.value
    return found


@pytest.mark.parametrize("route", ["/api/v1/me", "/api/v1/incidents"])
async def test_guessing_keys_is_slowed_and_counted_but_a_valid_key_still_gets_in(
    api: Api, route: str
) -> None:
    guess = {"Authorization": "Bearer cok_0badc0ffee_guess"}
    for _ in range(5):  # the free failures
        assert (await api.client.get(route, headers=guess)).status_code == 401
    started = time.monotonic()
    for _ in range(2):
        assert (await api.client.get(route, headers=guess)).status_code == 401
    assert time.monotonic() - started >= 0.25 + 0.5  # the 6th and 7th waited
    # Same address, valid key: answered (the department is not locked out).
    assert (await api.client.get(route, headers=api.auth("viewer"))).status_code == 200
    # Another address is not slowed by this one's failures.
    other = httpx.ASGITransport(app=api.app, client=("10.9.9.9", 4444))
    async with httpx.AsyncClient(transport=other, base_url="http://api") as client:
        assert (await client.get(route, headers=guess)).status_code == 401
        metrics = (await client.get("/metrics")).text
    counted = _failures(metrics)
    assert counted["invalid", "yes"] == 2
    assert counted["invalid", "no"] == 6
    assert "cityops_api_auth_throttled_addresses 1.0" in metrics
