"""Failed authentication per client address: counted, and answered ever more slowly.

Only failures are slowed: a valid key from the same address (a department behind one NAT, a
proxy) is answered at once, so guessing from an address cannot lock a department out.
"""

import time
from collections import OrderedDict
from dataclasses import dataclass, field

FREE_FAILURES = 5
"""Failures an address may make in ``WINDOW_S`` before its failures are delayed."""
WINDOW_S = 300.0
FIRST_DELAY_S = 0.25
MAX_DELAY_S = 5.0


@dataclass
class _Record:
    failures: int = 0
    since: float = 0.0


@dataclass
class AuthThrottle:
    """Failures per address within a window; the delay doubles past ``free`` failures."""

    free: int = FREE_FAILURES
    window_s: float = WINDOW_S
    first_delay_s: float = FIRST_DELAY_S
    max_delay_s: float = MAX_DELAY_S
    size: int = 10_000
    _by_address: OrderedDict[str, _Record] = field(default_factory=OrderedDict)

    def failed(self, address: str) -> float:
        """Count a failure from *address*; the seconds to wait before answering it."""
        now = time.monotonic()
        record = self._by_address.pop(address, None)
        if record is None or now - record.since > self.window_s:
            record = _Record(since=now)
        record.failures += 1
        self._by_address[address] = record  # most recent last; the oldest goes first
        while len(self._by_address) > self.size:
            self._by_address.popitem(last=False)
        over = record.failures - self.free
        if over <= 0:
            return 0.0
        return float(min(self.max_delay_s, self.first_delay_s * 2 ** (over - 1)))

    def throttled(self) -> int:
        """Addresses whose failures are being delayed now."""
        now = time.monotonic()
        return sum(
            1
            for r in self._by_address.values()
            if r.failures > self.free and now - r.since <= self.window_s
        )
