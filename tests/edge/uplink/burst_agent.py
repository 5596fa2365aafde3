"""A real agent process for the crash test: ``edge.agent.Agent`` (outbox + uplink) fed a burst.

Run as ``python -m tests.edge.uplink.burst_agent SETTINGS.json LEDGER DEVICE COUNT``. Every event
id is appended to LEDGER only after ``emit`` returned, i.e. once the outbox has it on disk.
"""

import logging
import signal
import sys
import threading
from datetime import timedelta
from pathlib import Path
from types import FrameType

from edge.agent import Agent
from edge.sink import EventSink
from edge.uplink.settings import UplinkSettings
from shared.clock import utcnow
from shared.events import Event, EventKind
from shared.ids import new_id


class Burst:
    def __init__(self, device_id: str, count: int, ledger: Path) -> None:
        self.device_id = device_id
        self.count = count
        self.ledger = ledger

    def run(self, sink: EventSink, stop: threading.Event) -> None:
        with self.ledger.open("a", encoding="utf-8") as fh:
            for _ in range(self.count):
                if stop.is_set():
                    return
                now = utcnow() - timedelta(seconds=1)
                event = Event(
                    id=new_id(),
                    device_id=self.device_id,
                    kind=EventKind.LINE_CROSSING,
                    started_at=now,
                    observed_at=now,
                )
                sink.emit(event)
                fh.write(event.id + "\n")
                fh.flush()
        stop.wait()  # keep the link up (draining) until told to stop


def main() -> int:
    settings_file, ledger, device_id, count = sys.argv[1:5]
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    settings = UplinkSettings.model_validate_json(Path(settings_file).read_text())
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    agent = Agent(device_id, settings, Burst(device_id, int(count), Path(ledger)))
    result = agent.run(stop)
    return 0 if result.outbox_depth == 0 else 3


if __name__ == "__main__":
    sys.exit(main())
