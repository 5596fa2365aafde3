"""Roles, permissions and the authenticated principal with its department scope."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    TECHNICIAN = "technician"
    ADMIN = "admin"
    INTEGRATION = "integration"


class Permission(StrEnum):
    DEVICES_READ = "devices:read"
    DEVICES_WRITE = "devices:write"
    """Register, credential, revoke and delete devices."""
    DEVICES_CONFIG = "devices:config"
    """Edit zones/rule limits and send commands."""
    EVENTS_READ = "events:read"
    INCIDENTS_READ = "incidents:read"
    INCIDENTS_WRITE = "incidents:write"
    """Acknowledge, dispatch, resolve, notes, assignee, checklist."""
    AUDIT_READ = "audit:read"
    DEAD_LETTERS_READ = "dead_letters:read"
    LIVE = "live"
    INTEGRATION = "integration"
    """Machine-to-machine routes of connectors and dispatch."""


_READ: Final = frozenset(
    {Permission.DEVICES_READ, Permission.EVENTS_READ, Permission.INCIDENTS_READ, Permission.LIVE}
)
ROLE_PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    Role.VIEWER: _READ,
    Role.OPERATOR: _READ | {Permission.INCIDENTS_WRITE, Permission.DEVICES_CONFIG},
    Role.SUPERVISOR: _READ
    | {Permission.INCIDENTS_WRITE, Permission.DEVICES_CONFIG, Permission.AUDIT_READ},
    Role.TECHNICIAN: frozenset(
        {
            Permission.DEVICES_READ,
            Permission.DEVICES_WRITE,
            Permission.DEVICES_CONFIG,
            Permission.EVENTS_READ,
            Permission.DEAD_LETTERS_READ,
        }
    ),
    Role.ADMIN: frozenset(Permission),
    Role.INTEGRATION: frozenset(
        {
            Permission.DEVICES_READ,
            Permission.EVENTS_READ,
            Permission.INCIDENTS_READ,
            Permission.INTEGRATION,
        }
    ),
}

ALL_DEPARTMENTS: Final = "*"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an API key's name, role and the departments it may see."""

    key_id: str
    name: str
    role: Role
    departments: frozenset[str]
    expires_at: datetime | None = None
    """When the credential stops working (None: until revoked)."""

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    @property
    def all_departments(self) -> bool:
        return self.role is Role.ADMIN or ALL_DEPARTMENTS in self.departments

    @property
    def department_scope(self) -> frozenset[str] | None:
        """The departments a listing for this principal is limited to (None: every one)."""
        return None if self.all_departments else self.departments

    def sees(self, department: str | None) -> bool:
        """Whether this principal may see things of *department* (None: shared by everyone)."""
        return department is None or self.all_departments or department in self.departments


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change, for the audit trail: a principal or the system, and from where."""

    name: str
    role: str
    source: str = ""
    user_agent: str = ""

    @classmethod
    def of(cls, principal: Principal, source: str = "", user_agent: str = "") -> "Actor":
        return cls(
            name=f"{principal.name} ({principal.key_id})",
            role=principal.role.value,
            source=source,
            user_agent=user_agent[:256],
        )


SYSTEM_INGEST: Final = Actor(name="system", role="system", source="ingest")
SYSTEM_SLA: Final = Actor(name="system", role="system", source="sla")
