"""Routing rules: the first matching rule by kind, place and time window wins."""

from datetime import UTC, datetime, time
from pathlib import Path

import pytest
from pydantic import ValidationError

from cloud.ops.rules import DeviceFacts, Router, RoutingConfig, TimeWindow
from cloud.store.base import BBox
from shared.events import EventKind, Severity
from tests.cloud.ops.builders import event


@pytest.mark.parametrize(
    ("kind", "department"),
    [
        (EventKind.ILLEGAL_PARKING, "traffic-enforcement"),
        (EventKind.ABANDONED_OBJECT, "civil-protection"),
        (EventKind.CROWDING, "public-space"),
        (EventKind.SENSOR_THRESHOLD, "environment"),
        (EventKind.LINE_CROSSING, None),
    ],
)
def test_default_rules_route_each_kind_to_its_department(
    kind: EventKind, department: str | None
) -> None:
    route = Router(RoutingConfig.default()).route(event(kind), DeviceFacts())
    assert (route.rule.department if route else None) == department


def test_rule_severity_overrides_the_event_severity() -> None:
    route = Router(RoutingConfig.default()).route(
        event(EventKind.ABANDONED_OBJECT, severity=Severity.LOW), DeviceFacts()
    )
    assert route is not None
    assert route.severity is Severity.HIGH


def _config(**rule: object) -> RoutingConfig:
    base: dict[str, object] = {
        "name": "r",
        "kinds": ["illegal_parking"],
        "department": "traffic-enforcement",
    }
    return RoutingConfig.model_validate(
        {
            "timezone": "Europe/Lisbon",
            "rules": [base | rule, base | {"name": "fallback", "department": "other"}],
        }
    )


@pytest.mark.parametrize(
    ("rule", "facts", "expected"),
    [
        ({"zones": ["platform-1"]}, DeviceFacts(), "r"),
        ({"zones": ["bay-9"]}, DeviceFacts(), "fallback"),
        ({"sites": ["Baixa"]}, DeviceFacts(site="Baixa"), "r"),
        ({"sites": ["Baixa"]}, DeviceFacts(site="Belém"), "fallback"),
        ({"devices": ["dev-a"]}, DeviceFacts(), "r"),
        (
            {"area": BBox(min_lat=38, min_lon=-10, max_lat=39, max_lon=-9).model_dump()},
            DeviceFacts(),
            "r",
        ),
        (
            {"area": BBox(min_lat=40, min_lon=-10, max_lat=41, max_lon=-9).model_dump()},
            DeviceFacts(),
            "fallback",
        ),
        ({"min_severity": "high"}, DeviceFacts(), "fallback"),
    ],
)
def test_rule_place_filters(rule: dict[str, object], facts: DeviceFacts, expected: str) -> None:
    route = Router(_config(**rule)).route(event(EventKind.ILLEGAL_PARKING), facts)
    assert route is not None
    assert route.rule.name == expected


def test_rule_time_window_uses_local_time() -> None:
    # 08:30 UTC in winter is 08:30 in Lisbon: inside 07:00-10:00 on a Wednesday.
    config = _config(hours=[{"start": "07:00", "end": "10:00", "days": [2]}])
    inside = event(EventKind.ILLEGAL_PARKING, observed_at=datetime(2025, 11, 19, 8, 30, tzinfo=UTC))
    outside = event(
        EventKind.ILLEGAL_PARKING, observed_at=datetime(2025, 11, 19, 11, 30, tzinfo=UTC)
    )
    router = Router(config)
    assert router.route(inside, DeviceFacts()).rule.name == "r"  # type: ignore[union-attr]
    assert router.route(outside, DeviceFacts()).rule.name == "fallback"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("at", "inside"),
    [
        (datetime(2025, 11, 17, 23, 0), True),  # Monday 23:00
        (datetime(2025, 11, 18, 5, 0), True),  # Tuesday 05:00, window began Monday
        (datetime(2025, 11, 18, 7, 0), False),
        (datetime(2025, 11, 18, 23, 0), False),  # Tuesday is not a start day
    ],
)
def test_time_window_past_midnight(at: datetime, inside: bool) -> None:
    window = TimeWindow(start=time(22), end=time(6), days=[0])
    assert window.contains(at) is inside


def test_rules_name_the_unknown_department(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "departments: [{id: police}]\nrules: [{name: r, kinds: [crowding], department: fire}]\n"
    )
    with pytest.raises(ValidationError, match=r"rules\.0\.department"):
        RoutingConfig.from_yaml(path)
