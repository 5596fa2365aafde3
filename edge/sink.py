"""Where the pipeline hands its events: the uplink in production, a JSON-lines file in replay."""

from pathlib import Path
from types import TracebackType
from typing import IO, Protocol, Self

from shared.codec import encode
from shared.events import Event


class EventSink(Protocol):
    def emit(self, event: Event) -> None:
        """Take ownership of *event*; must not block the frame loop for long."""


class JsonlSink:
    """Appends one ``Event`` JSON per line (``cityops edge replay --events-out``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[bytes] = path.open("ab")
        self.count = 0

    def emit(self, event: Event) -> None:
        self._fh.write(encode(event) + b"\n")
        self._fh.flush()
        self.count += 1

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ListSink:
    """Keeps events in memory (tests, benchmarks)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)
