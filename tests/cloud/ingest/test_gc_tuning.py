"""``cloud.ingest.gc_tuning``: what it changes, only once, and that it leaves the GC enabled."""

import gc
from collections.abc import Iterator

import pytest

from cloud.ingest import gc_tuning


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """Put the collector back as it was (thresholds, frozen objects, the module's flag)."""
    threshold = gc.get_threshold()
    enabled = gc.isenabled()
    tuned = gc_tuning._state["tuned"]
    gc_tuning._state["tuned"] = False
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
        if enabled:
            gc.enable()
        gc_tuning._state["tuned"] = tuned


@pytest.mark.usefixtures("restored_gc")
def test_raises_generation_0_threshold_and_freezes() -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    gc_tuning.tune_for_batches()
    assert gc.get_threshold() == (gc_tuning.GEN0_THRESHOLD, 10, 10)
    assert gc.get_freeze_count() > 0
    assert gc.isenabled()


@pytest.mark.usefixtures("restored_gc")
def test_is_idempotent() -> None:
    gc.unfreeze()
    gc_tuning.tune_for_batches()
    frozen = gc.get_freeze_count()
    threshold = gc.get_threshold()
    alive = [[i] for i in range(1000)]  # tracked objects made after the first call
    gc_tuning.tune_for_batches()
    assert gc.get_freeze_count() == frozen  # the second call froze nothing more
    assert gc.get_threshold() == threshold
    assert len(alive) == 1000


@pytest.mark.usefixtures("restored_gc")
def test_never_lowers_a_higher_threshold() -> None:
    gc.set_threshold(gc_tuning.GEN0_THRESHOLD * 4, 10, 10)
    gc_tuning.tune_for_batches()
    assert gc.get_threshold() == (gc_tuning.GEN0_THRESHOLD * 4, 10, 10)
