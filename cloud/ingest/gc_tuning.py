"""Cyclic garbage collector settings for an ingestor that validates and stores large batches.

A validated event is 14 GC-tracked objects (the five models, their ``__dict__`` and field
sets, lists, the ``Accepted``), all alive until its batch of 5,000 is stored. With
CPython's default generation-0 threshold of 700, the collector runs every ~50 events and, as
the survivors pile up, keeps re-scanning the whole batch in generations 1 and 2: the per-event
cost of validation about doubles (``benchmarks/ingest_stages.py --gc default`` against
``--gc off``). Nothing in those stages makes reference cycles that need
collecting quickly, so the collector can run much less often.
"""

import gc
from typing import Final

GEN0_THRESHOLD: Final = 50_000
"""Allocations (net of frees) of GC-tracked objects between generation-0 collections.

Measured with ``benchmarks/ingest_stages.py --gc tuned --gen0 N`` (batches of 5,000 events,
2-core machine), validation in us/event, whole ingest path in parentheses:

- GC off: 15.9 (31.0), the floor.
- default 700, no freeze: 33.1 (48.0); ``gc.freeze()`` alone: 30.4 (45.6).
- 10,000: 16.7 (31.9); 50,000: 17.1 (33.1); 100,000: 16.4 (31.8); 200,000: 15.7 (31.1).

From 10,000 up the cost is that of GC off within the run-to-run noise (about 1 us). 50,000
leaves room for what the benchmark does not allocate and the service does (MQTT client,
asyncio, the next batch validated while one is stored), while the young generation a collection
scans stays small (tens of thousands of objects, a few MB).
"""

_state = {"tuned": False}


def tune_for_batches() -> None:
    """Freeze the objects alive now and make generation-0 collections rare; idempotent.

    ``gc.freeze()`` moves everything allocated so far (modules, classes, compiled pydantic
    schemas, settings) into the permanent generation, which no collection scans again. Call it
    once, after start-up imports and before the first batch. The generation-0 threshold is only
    ever raised (a process that already set a higher one keeps it); the other two are kept.
    Only the first call acts: a second ``gc.freeze()`` would also freeze whatever the ingestor
    holds at that moment (a batch in flight) for the rest of the process.
    """
    if _state["tuned"]:
        return
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, GEN0_THRESHOLD), gen1, gen2)
    _state["tuned"] = True
