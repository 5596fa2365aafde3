"""Time-ordered identifiers (UUIDv7, RFC 9562) used for idempotency of events and commands."""

import os
import re
import threading
import time
import uuid
from typing import Final

UUID7_PATTERN: Final = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
_UUID7_RE = re.compile(UUID7_PATTERN)
_SEQ_MAX = 0xFFF
_lock = threading.Lock()
_last_ms = 0
_seq = 0


def new_id(at_ms: int | None = None) -> str:
    """Return a new UUIDv7 string; ids made by one process sort in creation order.

    Within one millisecond a 12-bit counter (rand_a) keeps ids monotonic, as RFC 9562 §6.2 allows.
    """
    global _last_ms, _seq  # noqa: PLW0603 - a process-wide monotonic counter is the point
    with _lock:
        ms = int(time.time() * 1000) if at_ms is None else at_ms
        if at_ms is None and ms <= _last_ms:
            ms = _last_ms
            _seq += 1
            if _seq > _SEQ_MAX:
                ms += 1
                _seq = 0
        else:
            _seq = int.from_bytes(os.urandom(2), "big") & 0x3FF
        if at_ms is None:
            _last_ms = ms
        seq = _seq
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | seq << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


def is_uuid7(value: str) -> bool:
    """A lower-case UUIDv7 string and nothing else (no trailing newline: ``fullmatch``)."""
    return _UUID7_RE.fullmatch(value) is not None


def uuid7_ms(value: str) -> int:
    """Milliseconds since the epoch encoded in a UUIDv7."""
    return uuid.UUID(value).int >> 80


def canonical_uuid7_ms(value: str) -> int:
    """``uuid7_ms`` of an id ``is_uuid7`` accepts, read from its first 12 hex digits.

    Several times cheaper than parsing a ``uuid.UUID``; only for ids validated as UUIDv7 (any
    other string gives a meaningless number or ``ValueError``).
    """
    return int(value[:8] + value[9:13], 16)
