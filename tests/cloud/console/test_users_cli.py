"""``cityops cloud users``: create, list, disable, enable, set-password."""

from pathlib import Path

import yaml
from sqlalchemy import Engine
from typer.testing import CliRunner

from cityops.cli import app
from cloud.db.base import make_engine, make_sessionmaker
from cloud.db.tables import create_all
from cloud.ops.users import check_login


def test_users_commands(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite"
    config = tmp_path / "cloud.yaml"
    config.write_text(yaml.safe_dump({"database_url": f"sqlite:///{db}"}))
    runner = CliRunner()
    base = ["cloud", "users"]
    made = runner.invoke(
        app,
        [*base, "create", "ana", "--role", "operator", "-d", "civil-protection",
         "--name", "Ana Silva", "--password-stdin", "--config", str(config)],
        input="a long password\n",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "created ana (operator; civil-protection)" in made.output
    short = runner.invoke(
        app,
        [*base, "create", "rui", "--role", "operator", "--password-stdin", "-c", str(config)],
        input="short\n",
    )
    assert short.exit_code == 2
    assert "password: use at least 10 characters" in short.output
    prompted = runner.invoke(
        app,
        [*base, "create", "vera", "--role", "viewer", "-c", str(config)],
        input="vera's password\nvera's password\n",
    )
    assert prompted.exit_code == 0, prompted.output
    listing = runner.invoke(app, [*base, "list", "-c", str(config)])
    lines = listing.output.splitlines()
    assert lines[0].split()[:4] == ["ana", "operator", "civil-protection", "active"]
    assert "Ana Silva" in lines[0]
    assert "password" not in listing.output
    assert "$argon2" not in listing.output

    sessions = make_sessionmaker(create_all_engine(db))
    with sessions() as session:
        assert check_login(session, "ana", "a long password") is not None
    changed = runner.invoke(
        app, [*base, "set-password", "ana", "--password-stdin", "-c", str(config)],
        input="a new long password\n",
    )  # fmt: skip
    assert changed.exit_code == 0, changed.output
    too_short = runner.invoke(
        app, [*base, "set-password", "ana", "-c", str(config)], input="short\nshort\n"
    )
    assert too_short.exit_code == 2
    assert "password: use at least 10 characters" in too_short.output
    disabled = runner.invoke(app, [*base, "disable", "ana", "-c", str(config)])
    assert disabled.exit_code == 0
    with sessions() as session:
        assert check_login(session, "ana", "a new long password") is None
    assert "disabled" in runner.invoke(app, [*base, "list", "-c", str(config)]).output
    enabled = runner.invoke(app, [*base, "enable", "ana", "-c", str(config)])
    assert enabled.exit_code == 0
    with sessions() as session:
        assert check_login(session, "ana", "a new long password") is not None
    missing = runner.invoke(app, [*base, "disable", "nobody", "-c", str(config)])
    assert missing.exit_code == 2
    assert "no user 'nobody'" in missing.output


def create_all_engine(db: Path) -> Engine:
    engine = make_engine(f"sqlite:///{db}")
    create_all(engine)
    return engine
