"""API keys: shown once, stored hashed, revocable; roles and departments validated."""

from pathlib import Path

import pytest
from sqlalchemy import select

from cloud.db.ops import ApiKey
from cloud.ops.keys import authenticate, create_api_key, list_api_keys, revoke_api_key
from cloud.ops.roles import Permission, Role
from tests.cloud.ops.builders import ops_database


def test_key_round_trip_and_revoke(tmp_path: Path) -> None:
    sessions = ops_database(tmp_path / "ops.sqlite")
    with sessions() as session:
        key = create_api_key(
            session, name="police desk", role="operator", departments=["traffic-enforcement"]
        )
        stored = session.scalars(select(ApiKey)).one()
        assert key.split("_", 2)[2] not in stored.secret_hash
        principal = authenticate(session, key)
        assert principal is not None
        assert principal.role is Role.OPERATOR
        assert principal.sees("traffic-enforcement")
        assert not principal.sees("civil-protection")
        assert principal.can(Permission.INCIDENTS_WRITE)
        assert not principal.can(Permission.DEVICES_WRITE)
        assert authenticate(session, key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        assert authenticate(session, "Bearer nonsense") is None
        assert [k.name for k in list_api_keys(session)] == ["police desk"]
        assert revoke_api_key(session, stored.id)
        assert authenticate(session, key) is None
        assert not revoke_api_key(session, stored.id)


@pytest.mark.parametrize(
    ("role", "departments", "field"),
    [
        ("boss", ["*"], "role"),
        ("viewer", [], "departments"),
        ("viewer", ["Bad Dept"], "departments"),
    ],
)
def test_bad_key_requests_name_the_field(
    tmp_path: Path, role: str, departments: list[str], field: str
) -> None:
    sessions = ops_database(tmp_path / "ops.sqlite")
    with sessions() as session, pytest.raises(ValueError, match=f"^{field}:"):
        create_api_key(session, name="x", role=role, departments=departments)
