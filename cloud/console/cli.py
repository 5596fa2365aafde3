"""``cityops cloud users create|list|disable|enable|set-password``: the console's accounts."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cloud.api.cli import ConfigOption, _session

if TYPE_CHECKING:  # sqlalchemy stays out of `cityops` start-up
    from sqlalchemy.orm import Session

users_app = typer.Typer(
    help="People who sign in to the operator console (same roles and departments as API keys).\n\n"
    "Example: cityops cloud users create ana --role operator -d traffic-enforcement "
    "--config cloud.yaml  (asks for the password twice)",
    no_args_is_help=True,
)
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of standard input (for scripts); "
        "otherwise it is asked for, twice, without echo. Never on the command line.",
    ),
]


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


def _new_password(from_stdin: bool) -> str:
    """The first line of standard input, or asked twice without echo; checked before any work."""
    from cloud.ops.users import UserError, check_password

    value: str = (
        sys.stdin.readline().rstrip("\r\n")
        if from_stdin
        else typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    )
    try:
        return check_password(value)
    except UserError as exc:
        raise _fail(exc) from exc


@contextmanager
def _accounts(config: Path | None) -> Iterator["Session"]:
    """A session of the state database in which a ``UserError`` ends the command (exit 2)."""
    from cloud.ops.users import UserError

    with _session(config) as session:
        try:
            yield session
        except UserError as exc:
            raise _fail(exc) from exc


@users_app.command("create")
def create(  # noqa: PLR0917 - a Typer command: one parameter per option
    username: Annotated[str, typer.Argument(help="Sign-in name: a-z, 0-9, '.', '_', '-'.")],
    role: Annotated[
        str,
        typer.Option(
            "--role", help="viewer, operator, supervisor, technician, admin or integration."
        ),
    ],
    department: Annotated[
        list[str] | None,
        typer.Option("--department", "-d", help="Department they see (repeat); all if none."),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="Full name shown and audited.")] = "",
    password_stdin: PasswordStdin = False,
    config: ConfigOption = None,
) -> None:
    """Create a user with a password (stored as an argon2id hash)."""
    from cloud.ops.users import create_user

    password = _new_password(password_stdin)
    with _accounts(config) as session:
        user = create_user(
            session, username, password, role, department or ["*"], display_name=name
        )
    typer.echo(f"created {user.username} ({user.role}; {','.join(user.departments)})")


@users_app.command("list")
def list_(config: ConfigOption = None) -> None:
    """List users: role, departments, state, failed sign-ins, last sign-in (never passwords)."""
    from cloud.ops.users import list_users

    with _session(config) as session:
        users = list_users(session)
    for u in users:
        state = f"disabled {u.disabled_at:%Y-%m-%d}" if u.disabled_at else "active"
        last = f"{u.last_login_at:%Y-%m-%d %H:%M}" if u.last_login_at else "never"
        typer.echo(
            f"{u.username:<20} {u.role:<11} {','.join(u.departments):<30} {state:<20} "
            f"failed {u.failed_logins:<3} last sign-in {last}  {u.display_name}"
        )


@users_app.command("disable")
def disable(
    username: Annotated[str, typer.Argument(help="The user to lock out.")],
    config: ConfigOption = None,
) -> None:
    """Disable a user: sign-ins refused, open sessions ended at once."""
    from cloud.ops.users import disable_user

    with _accounts(config) as session:
        disable_user(session, username)
    typer.echo(f"disabled {username}")


@users_app.command("enable")
def enable(
    username: Annotated[str, typer.Argument(help="The user to let in again.")],
    config: ConfigOption = None,
) -> None:
    """Enable a disabled user again (and forget their failed sign-ins)."""
    from cloud.ops.users import enable_user

    with _accounts(config) as session:
        enable_user(session, username)
    typer.echo(f"enabled {username}")


@users_app.command("set-password")
def set_password(
    username: Annotated[str, typer.Argument(help="Whose password.")],
    password_stdin: PasswordStdin = False,
    config: ConfigOption = None,
) -> None:
    """Set a new password; the user's open sessions end."""
    from cloud.ops.users import set_password as store_password

    password = _new_password(password_stdin)
    with _accounts(config) as session:
        store_password(session, username, password)
    typer.echo(f"password of {username} changed; their sessions were ended")
