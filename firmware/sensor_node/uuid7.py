"""UUIDv7 (RFC 9562) as in ``shared.ids.new_id``, rewritten for MicroPython (no ``uuid`` module).

A 12-bit counter in ``rand_a`` keeps ids from one node monotonic within a millisecond.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from firmware.sensor_node.hal import Random

_MS_MASK = (1 << 48) - 1
_SEQ_MAX = 0xFFF
_SEQ_SEED_MASK = 0x3FF
_RAND_B_BITS = 62
_HEX = "0123456789abcdef"


def format_uuid(value: int) -> str:
    digits = [_HEX[(value >> shift) & 0xF] for shift in range(124, -4, -4)]
    text = "".join(digits)
    return text[0:8] + "-" + text[8:12] + "-" + text[12:16] + "-" + text[16:20] + "-" + text[20:32]


def uuid7_from_parts(ms: int, seq: int, rand_b: int) -> str:
    value = (ms & _MS_MASK) << 80 | 0x7 << 76 | (seq & _SEQ_MAX) << 64 | 0b10 << 62
    value |= rand_b & ((1 << _RAND_B_BITS) - 1)
    return format_uuid(value)


def uuid7_ms(text: str) -> int:
    return int(text.replace("-", "")[:12], 16)


class Uuid7Generator:
    """Monotonic UUIDv7s; ``last_ms``/``seq`` can be saved across deep sleep (``state``)."""

    def __init__(self, rng: "Random", last_ms: int = 0, seq: int = 0) -> None:
        self.rng = rng
        self.last_ms = last_ms
        self.seq = seq

    def new(self, now_ms: int) -> str:
        ms = int(now_ms)
        if ms <= self.last_ms:
            ms = self.last_ms
            self.seq += 1
            if self.seq > _SEQ_MAX:
                ms += 1
                self.seq = 0
        else:
            self.seq = self.rng.getrandbits(10) & _SEQ_SEED_MASK
        self.last_ms = ms
        rand_b = (self.rng.getrandbits(30) << 32) | self.rng.getrandbits(32)
        return uuid7_from_parts(ms, self.seq, rand_b)
