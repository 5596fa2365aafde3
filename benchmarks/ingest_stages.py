"""Per-event CPU cost of the ingest stages after the MQTT client, without broker or network.

The same payloads as ``benchmarks/ingest.py`` (one event per message: camera, zone, location,
one detected object, model info, summary) go through the ingestor's own steps, in order:
``Received`` -> ``Validator.check`` -> ``Batch.add`` -> ``event_line`` -> ``lines`` -> gzip ->
``IngestState.known_ids`` -> ``IngestState.commit`` (a fresh SQLite state file). Each stage is
timed over the whole batch, the best of ``--rounds``; reported in microseconds per event, and
as a ratio to ``json.loads`` of the same payloads measured in the same run (a yardstick that
moves with the machine, so runs on different machines can be compared).

``--gc`` picks the collector: ``default`` (CPython's thresholds), ``off`` (disabled, the floor)
or ``tuned`` (``cloud.ingest.gc_tuning.tune_for_batches``); ``--gen0 N`` overrides the
generation-0 threshold of ``tuned``. ``--profile`` prints the top of a cProfile of validation.

    .venv/bin/python benchmarks/ingest_stages.py [--events 5000] [--rounds 5] [--gc default]
"""

import argparse
import cProfile
import gc
import gzip
import io
import json
import pstats
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingest import make_event  # the event shape of benchmarks/ingest.py (run from this folder)

from cloud.db.base import make_engine
from cloud.db.tables import create_all
from cloud.ingest import gc_tuning
from cloud.ingest.batch import Accepted, Batch, Received
from cloud.ingest.state import IngestState
from cloud.ingest.validate import Validator
from cloud.settings import IngestSettings
from cloud.store.line_protocol import event_line, lines
from shared.clock import utcnow
from shared.codec import encode
from shared.events import Event
from shared.topics import Channel, topic

DEVICES = 20


def best_of(rounds: int, n: int, setup: Callable[[], Any], run: Callable[[Any], Any]) -> float:
    """Microseconds per item of the fastest of *rounds* runs of ``run(setup())``."""
    best = float("inf")
    for _ in range(rounds):
        arg = setup()
        start = time.perf_counter()
        run(arg)
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def configure_gc(mode: str, gen0: int | None) -> dict[str, Any]:
    if mode == "off":
        gc.disable()
    elif mode == "tuned":
        gc_tuning.tune_for_batches()
        if gen0 is not None:
            _, gen1, gen2 = gc.get_threshold()
            gc.set_threshold(gen0, gen1, gen2)
    return {"mode": mode, "enabled": gc.isenabled(), "threshold": list(gc.get_threshold())}


def run(events: int, rounds: int, workdir: Path) -> dict[str, float]:
    payloads = [encode(make_event(f"dev-{i % DEVICES}", i)) for i in range(events)]
    topics = [topic(f"dev-{i % DEVICES}", Channel.EVENT) for i in range(events)]
    validator = Validator(IngestSettings())

    def received() -> list[Received]:
        now = utcnow()
        return [
            Received(topic=t, payload=p, qos=1, mid=i, generation=1, received_at=now)
            for i, (t, p) in enumerate(zip(topics, payloads, strict=True))
        ]

    items = [validator.check(r) for r in received()]
    accepted = [it for it in items if isinstance(it, Accepted)]
    if len(accepted) != events:
        raise SystemExit(f"only {len(accepted)} of {events} benchmark events were accepted")
    batch = Batch()
    for it in accepted:
        batch.add(it, "event")
    stored = list(batch.events.values())
    rows = [event_line(e) for e in stored]
    body = lines(rows)
    ids = [e.id for e in stored]
    devices = list(batch.devices.values())
    counter = iter(range(1_000_000))

    def fresh_state() -> IngestState:
        engine = make_engine(f"sqlite:///{workdir / f'state-{next(counter)}.sqlite'}")
        create_all(engine)
        return IngestState(engine)

    def new_batch() -> Batch:
        return Batch()

    def add_all(b: Batch) -> None:
        for it in accepted:
            b.add(it, "event")

    def commit(state: IngestState) -> None:
        state.commit(ids, [], devices)

    def none() -> None:
        return None

    n = events
    result = {
        "json_loads": best_of(rounds, n, none, lambda _: [json.loads(p) for p in payloads]),
        "received": best_of(rounds, n, none, lambda _: received()),
        "validate": best_of(rounds, n, received, lambda rs: [validator.check(r) for r in rs]),
        "validate_json": best_of(
            rounds, n, none, lambda _: [Event.model_validate_json(p) for p in payloads]
        ),
        "batch_add": best_of(rounds, n, new_batch, add_all),
        "event_line": best_of(rounds, n, none, lambda _: [event_line(e) for e in stored]),
        "lines": best_of(rounds, n, none, lambda _: lines(rows)),
        "gzip": best_of(rounds, n, none, lambda _: gzip.compress(body, compresslevel=1)),
        "known_ids": best_of(rounds, n, fresh_state, lambda s: s.known_ids(ids)),
        "commit": best_of(rounds, n, fresh_state, commit),
    }
    result["ingest_path"] = sum(
        result[k]
        for k in ("validate", "batch_add", "event_line", "lines", "gzip", "known_ids", "commit")
    )
    return result


def profile_validation(events: int) -> str:
    validator = Validator(IngestSettings())
    now = utcnow()
    msgs = [
        Received(
            topic=topic(f"dev-{i % DEVICES}", Channel.EVENT),
            payload=encode(make_event(f"dev-{i % DEVICES}", i)),
            qos=1,
            mid=i,
            generation=1,
            received_at=now,
        )
        for i in range(events)
    ]
    profiler = cProfile.Profile()
    profiler.enable()
    for m in msgs:
        validator.check(m)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=5000, help="events per batch")
    parser.add_argument("--rounds", type=int, default=5, help="runs per stage; the best counts")
    parser.add_argument("--gc", choices=["default", "off", "tuned"], default="default")
    parser.add_argument("--gen0", type=int, default=None, help="gen-0 threshold for --gc tuned")
    parser.add_argument("--profile", action="store_true", help="print a profile of validation")
    args = parser.parse_args()
    gc_info = configure_gc(args.gc, args.gen0)
    with tempfile.TemporaryDirectory(prefix="cityops-stages-") as tmp:
        stages = run(args.events, args.rounds, Path(tmp))
    baseline = stages["json_loads"]
    report = {
        "events": args.events,
        "rounds": args.rounds,
        "gc": gc_info,
        "us_per_event": {k: round(v, 2) for k, v in stages.items()},
        "ratio_to_json_loads": {k: round(v / baseline, 2) for k, v in stages.items()},
        "ingest_path_events_per_s": round(1e6 / stages["ingest_path"]),
    }
    print(json.dumps(report, indent=2))
    if args.profile:
        print(profile_validation(args.events))


if __name__ == "__main__":
    main()
