"""Users, sessions and the severity-ordered queue on the harness's real PostgreSQL."""

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from cloud.db.base import make_engine
from cloud.db.tables import create_all
from cloud.ops.rules import Router, RoutingConfig
from cloud.ops.service import IncidentFilter, OpsService
from cloud.ops.sessions import SessionLimits, open_session, resolve_session
from cloud.ops.users import check_login, create_user, disable_user
from shared.events import EventKind, Severity
from tests.cloud.ops.builders import event

pytestmark = pytest.mark.services


@pytest.fixture
def engine(postgres_db: str) -> Iterator[Engine]:
    eng = make_engine(postgres_db)
    create_all(eng)
    yield eng
    eng.dispose()


def test_accounts_sessions_and_queue_on_postgres(engine: Engine) -> None:
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions() as session:
        create_user(session, "ana", "a long password", "operator", ["civil-protection"])
        principal = check_login(session, "ana", "a long password")
        assert principal is not None
        opened = open_session(session, principal, "ana", SessionLimits())
        assert resolve_session(session, opened.token, SessionLimits()) is not None
        disable_user(session, "ana")
        assert resolve_session(session, opened.token, SessionLimits()) is None

    ops = OpsService(sessions, Router(RoutingConfig.default()))
    ops.apply_events(
        [event(EventKind.ABANDONED_OBJECT, track_id=i, severity=Severity.LOW) for i in range(3)]
        + [event(EventKind.CROWDING, track_id=9, severity=Severity.CRITICAL)]
    )
    first = ops.list_incidents(IncidentFilter(by_severity=True, limit=2))
    rest = ops.list_incidents(IncidentFilter(by_severity=True, limit=2, cursor=first.next_cursor))
    civil = ops.list_incidents(IncidentFilter(by_severity=True), frozenset({"civil-protection"}))
    ordered = [i.severity for i in first.items + rest.items]
    assert ordered[0] is Severity.CRITICAL  # crowding: the most urgent first
    assert len({i.id for i in first.items + rest.items}) == 4
    assert rest.next_cursor is None
    assert [i.id for i in civil.items] == sorted((i.id for i in civil.items), reverse=True)
    assert {i.department for i in civil.items} == {"civil-protection"}
