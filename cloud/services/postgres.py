"""Run Debian's PostgreSQL server in a cluster of our own (test harness, demos, small sites).

``initdb`` into a fresh data directory with trust authentication for local and loopback
connections, then ``postgres`` on a loopback port with its Unix socket inside the work directory.
PostgreSQL refuses to run as root: as root, both run as the ``postgres`` system user that the
Debian package creates, and the work directory is handed to it.
"""

import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from cloud.services.ports import free_port
from cloud.services.process import ServiceNotInstalledError, ServiceProcess, as_user

DEBIAN_ROOT = Path("/usr/lib/postgresql")
"""Debian installs each major version's server binaries in ``<root>/<major>/bin``."""


def find_bindir(root: Path = DEBIAN_ROOT) -> Path:
    """The directory holding ``initdb`` and ``postgres``: Debian's newest major, else ``PATH``."""
    majors = sorted(
        (p for p in root.glob("*/bin") if p.parent.name.isdigit() and (p / "initdb").exists()),
        key=lambda p: int(p.parent.name),
    )
    if majors:
        return majors[-1]
    initdb = shutil.which("initdb")
    if initdb is not None and (Path(initdb).parent / "postgres").exists():
        return Path(initdb).parent
    raise ServiceNotInstalledError("initdb", "postgresql")


def server_version(bindir: Path) -> str:
    """``postgres --version`` without the program name, e.g. ``15.18 (Debian 15.18-0+deb12u1)``."""
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    return out.strip().removeprefix("postgres (PostgreSQL) ")


def _default_run_as() -> str | None:
    return "postgres" if os.geteuid() == 0 else None


@dataclass(frozen=True, slots=True)
class PostgresConfig:
    workdir: Path
    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free port."""
    superuser: str = "postgres"
    """Name of the cluster's superuser role (trust auth: no password)."""
    run_as: str | None = field(default_factory=_default_run_as)
    """System user that owns the cluster and runs the server; ``None``: the current user."""
    fsync: bool = True
    """``False`` for tests only: no fsync, asynchronous commits, no full-page writes. Faster, but a
    killed server loses its last commits and a machine crash can corrupt the cluster."""
    settings: dict[str, str] = field(default_factory=dict)
    """Extra server settings (``-c name=value``)."""


_DB_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class Postgres:
    """A PostgreSQL cluster and its server; ``start()`` returns once it accepts connections."""

    def __init__(self, cfg: PostgresConfig) -> None:
        self.cfg = cfg
        self.host = cfg.host
        self.port = cfg.port or free_port(cfg.host)
        self.bindir = find_bindir()
        self.data_dir = cfg.workdir / "data"
        self.socket_dir = cfg.workdir / "socket"
        cfg.workdir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if cfg.run_as is not None:
            _hand_over(cfg.workdir, cfg.run_as)
        argv = [
            str(self.bindir / "postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            cfg.host,
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),
            "-c",
            "logging_collector=off",
            "-c",
            "log_min_messages=warning",
            "-c",
            "log_checkpoints=off",
        ]
        settings = dict(cfg.settings)
        if not cfg.fsync:
            settings = {
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
                **settings,
            }
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM ("smart") waits for every client.
        self._proc = ServiceProcess(
            argv, cfg.workdir / "postgres.log", user=cfg.run_as, stop_signal=signal.SIGINT
        )

    @property
    def version(self) -> str:
        return server_version(self.bindir)

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL of *database* on this server (psycopg 3 driver, TCP, no password)."""
        return f"postgresql+psycopg://{self.cfg.superuser}@{self.host}:{self.port}/{database}"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` maintenance database."""
        return self.url_for("postgres")

    def initdb(self) -> None:
        """Create the cluster unless the data directory already holds one."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        argv = [
            str(self.bindir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            self.cfg.superuser,
            "--auth-local=trust",
            "--auth-host=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-instructions",
        ]
        if not self.cfg.fsync:
            argv.append("--no-sync")
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            cwd=self.cfg.workdir,
            **as_user(self.cfg.run_as),
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def start(self, timeout: float = 30.0) -> None:
        self.initdb()
        self._proc.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self._conninfo("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                pass
            if not self._proc.running:
                raise RuntimeError(f"postgres exited at start-up:\n{self._proc.log_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"postgres did not accept connections within {timeout:.0f} s")
            time.sleep(0.03)

    def stop(self) -> None:
        self._proc.stop(timeout=10.0)

    def kill(self) -> None:
        """SIGKILL the server, for crash tests (the next ``start()`` recovers the cluster)."""
        self._proc.kill()

    @property
    def running(self) -> bool:
        return self._proc.running

    @property
    def pid(self) -> int | None:
        """Process id of the postmaster while running."""
        return self._proc.pid

    def log_text(self) -> str:
        return self._proc.log_text()

    def create_database(self, name: str) -> str:
        """(Re)create an empty database *name* and return its SQLAlchemy URL."""
        self.drop_database(name)
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(_db_name(name))))
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop *name* if it exists, disconnecting whoever is still connected to it."""
        self._admin(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(_db_name(name))
            )
        )

    def _admin(self, statement: sql.Composed) -> None:
        with psycopg.connect(self._conninfo("postgres"), autocommit=True) as conn:
            conn.execute(statement)

    def _conninfo(self, database: str) -> str:
        return psycopg.conninfo.make_conninfo(
            host=self.host, port=self.port, user=self.cfg.superuser, dbname=database
        )


def _db_name(name: str) -> str:
    if not _DB_NAME.fullmatch(name):
        raise ValueError(f"database name {name!r}: letters, digits and _, at most 63")
    return name


def _hand_over(workdir: Path, user: str) -> None:
    """Give *workdir* to *user* and check that *user* can reach it through its parents."""
    entry = pwd.getpwnam(user)
    os.chown(workdir, entry.pw_uid, entry.pw_gid)
    workdir.chmod(0o700)
    for sub in workdir.iterdir():
        if not sub.is_symlink():
            os.chown(sub, entry.pw_uid, entry.pw_gid)
    for parent in workdir.resolve().parents:
        st = parent.stat()
        if st.st_uid == entry.pw_uid or st.st_mode & stat.S_IXOTH:
            continue
        if st.st_gid == entry.pw_gid and st.st_mode & stat.S_IXGRP:
            continue
        raise PermissionError(
            f"{user!r} cannot reach {workdir}: {parent} is closed to it (pick a workdir under /tmp)"
        )
