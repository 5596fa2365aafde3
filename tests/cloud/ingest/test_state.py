"""``IngestState``: the seen ids written by the Core executemany are the ones the ORM wrote."""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from cloud.db.base import make_engine
from cloud.db.devices import Device
from cloud.db.ingest import DeadLetter, RejectReason, SeenEvent
from cloud.db.tables import create_all
from cloud.ingest.batch import DeviceUpdate, Received, Rejection
from cloud.ingest.state import IngestState
from shared.clock import utcnow
from shared.ids import canonical_uuid7_ms, is_uuid7, new_id, uuid7_ms


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    else:  # a fresh database on the harness's PostgreSQL server
        url = request.getfixturevalue("postgres_db")
    eng = make_engine(url)
    create_all(eng)
    yield eng
    eng.dispose()


def _seen(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {row.id: row.id_ms for row in conn.execute(select(SeenEvent.id, SeenEvent.id_ms))}


def test_commit_stores_ids_with_their_milliseconds_once(engine: Engine) -> None:
    state = IngestState(engine)
    now_ms = int(utcnow().timestamp() * 1000)
    ids = [new_id(at_ms=now_ms - i * 1000) for i in range(50)] + [new_id() for _ in range(50)]
    state.commit(ids[:60] + ids[:5], [], [])  # repeats inside one batch too
    state.commit(ids[40:], [], [])  # 20 of these are stored already: skipped, no error
    seen = _seen(engine)
    assert seen == {i: uuid7_ms(i) for i in ids}
    assert state.known_ids([*ids, new_id()]) == set(ids)


def test_forget_before_uses_the_stored_milliseconds(engine: Engine) -> None:
    state = IngestState(engine)
    now = utcnow()
    old = new_id(at_ms=int((now - timedelta(hours=3)).timestamp() * 1000))
    recent = new_id()
    state.commit([old, recent], [], [])
    assert state.forget_before(now - timedelta(hours=1)) == 1
    assert set(_seen(engine)) == {recent}


def test_commit_still_writes_dead_letters_and_devices(engine: Engine) -> None:
    state = IngestState(engine)
    now = utcnow()
    msg = Received("cityops/v1/dev-a/event", b"{}", qos=1, mid=1, generation=1, received_at=now)
    rejection = Rejection(msg, RejectReason.SCHEMA, "id", "bad id", "dev-a")
    state.commit([new_id()], [rejection], [DeviceUpdate(device_id="dev-a", last_seen=now)])
    with engine.connect() as conn:
        assert conn.execute(select(DeadLetter.field)).scalars().all() == ["id"]
        assert conn.execute(select(Device.id)).scalars().all() == ["dev-a"]


def test_canonical_uuid7_ms_is_uuid7_ms_for_contract_ids() -> None:
    for ms in (0, 1, 1_700_000_000_000, 2**48 - 1):
        value = new_id(at_ms=ms)
        assert is_uuid7(value)
        assert canonical_uuid7_ms(value) == uuid7_ms(value) == ms
