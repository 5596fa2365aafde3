"""Child processes of the demo, always stopped in reverse order; pids recorded for checks."""

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: IO[bytes]


class Supervisor:
    """Starts named children with their output in ``<workdir>/logs/<name>.log``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.children: list[Child] = []
        self.pid_file = workdir / "pids.json"

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        child = Child(name, proc, log)
        self.children.append(child)
        self._record()
        return child

    def adopt_pid(self, name: str, pid: int) -> None:
        """Record a pid started elsewhere (the broker) so the leftover check sees it."""
        data = self._read()
        data[name] = pid
        self.pid_file.write_text(json.dumps(data))

    def _read(self) -> dict[str, int]:
        if self.pid_file.exists():
            loaded: dict[str, int] = json.loads(self.pid_file.read_text())
            return loaded
        return {}

    def _record(self) -> None:
        data = self._read()
        data.update({c.name: c.proc.pid for c in self.children})
        self.pid_file.write_text(json.dumps(data))

    def alive(self, name: str) -> bool:
        return any(c.name == name and c.proc.poll() is None for c in self.children)

    def stop(self, name: str, timeout: float = 10.0) -> None:
        for child in self.children:
            if child.name == name:
                _stop(child, timeout)

    def stop_all(self, timeout: float = 10.0) -> None:
        for child in reversed(self.children):
            _stop(child, timeout)

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _stop(child: Child, timeout: float) -> None:
    proc = child.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if not child.log.closed:
        child.log.close()


def leftover_pids(pid_file: Path) -> list[int]:
    """Pids recorded by a demo run that are still alive (should be none after it ends)."""
    if not pid_file.exists():
        return []
    alive = []
    for pid in json.loads(pid_file.read_text()).values():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass
        # A zombie is not a leftover worth reporting if its parent reaps it; check state.
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().split(") ", 1)[-1].startswith("Z"):
            continue
        alive.append(int(pid))
    return alive
