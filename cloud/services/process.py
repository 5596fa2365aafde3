"""A child service process that is always stopped: terminate, wait, then kill."""

import pwd
import shutil
import signal
import subprocess
from pathlib import Path
from types import TracebackType
from typing import IO, Self, TypedDict


class ServiceNotInstalledError(RuntimeError):
    def __init__(self, binary: str, package: str) -> None:
        super().__init__(
            f"{binary!r} is not installed: run `make test` (or `apt-get install {package}`) first"
        )
        self.binary = binary


def require_binary(binary: str, package: str) -> str:
    path = shutil.which(binary) or (
        f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None
    )
    if path is None:
        raise ServiceNotInstalledError(binary, package)
    return path


class AsUser(TypedDict, total=False):
    user: str
    group: int
    extra_groups: list[int]


def as_user(user: str | None) -> AsUser:
    """``subprocess`` keyword arguments that run a child as *user* (nothing for ``None``)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": user, "group": entry.pw_gid, "extra_groups": []}


class ServiceProcess:
    """Owns one Popen handle; never kills by name.

    *user*: run as this system user (its own group, no supplementary groups); needs root.
    *stop_signal*: what ``stop()`` sends first (SIGKILL follows after the timeout).
    """

    def __init__(
        self,
        argv: list[str],
        log_path: Path,
        *,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.argv = argv
        self.log_path = log_path
        self.user = user
        self.stop_signal = stop_signal
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        if self.running:
            return
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **as_user(self.user),
        )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def signal(self, signum: int) -> None:
        if self._proc is not None and self.running:
            self._proc.send_signal(signum)

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL, for crash tests."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
