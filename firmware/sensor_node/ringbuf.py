"""A ring buffer of messages in flash, for readings and events taken while the broker is away.

The storage is cut into fixed slots; record ``seq`` lives in slot ``seq % slots``, so the oldest
record is overwritten (and counted as dropped) when the ring is full. Each slot starts with a
header ``magic, state, channel, 0, seq:u32, length:u16, crc32:u32``; a record is consumed by
rewriting one byte (``state``), and a torn write fails its CRC and reads as empty. No index is
stored: ``open`` rebuilds the queue by scanning the headers, so a reboot loses nothing written.
"""

import struct

from firmware.sensor_node.crc import crc32

TYPE_CHECKING = False
if TYPE_CHECKING:
    from firmware.sensor_node.hal import Storage

MAGIC = 0xC7
LIVE = 0xA5
CONSUMED = 0x00
HEADER = ">BBBBIHI"
HEADER_SIZE = 16
DEFAULT_SLOT_SIZE = 512


class RecordTooLargeError(ValueError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__("payload: " + str(size) + " bytes exceeds the slot limit of " + str(limit))


class Record:
    def __init__(self, seq: int, channel: int, payload: bytes) -> None:
        self.seq = seq
        self.channel = channel
        self.payload = payload


class MemoryStorage:
    """RAM storage (tests, and a node without a flash partition)."""

    def __init__(self, size: int) -> None:
        self.data = bytearray(size)

    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self.data[offset : offset + length])

    def write(self, offset: int, data: bytes) -> None:
        self.data[offset : offset + len(data)] = data


class FileStorage:
    """A preallocated file (on the ESP32: LittleFS in flash, which wear-levels the blocks)."""

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self._size = size
        try:
            self.fh = open(path, "r+b")  # noqa: SIM115, PTH123 - kept open; MicroPython has no pathlib
        except OSError:
            self.fh = open(path, "w+b")  # noqa: SIM115, PTH123 - idem
        end = self.fh.seek(0, 2)
        if end < size:
            self.fh.write(bytes(size - end))
            self.fh.flush()

    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        self.fh.seek(offset)
        return bytes(self.fh.read(length))

    def write(self, offset: int, data: bytes) -> None:
        self.fh.seek(offset)
        self.fh.write(data)
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


class RingBuffer:
    def __init__(self, storage: "Storage", slot_size: int = DEFAULT_SLOT_SIZE) -> None:
        self.storage = storage
        self.slot_size = slot_size
        self.slots = storage.size() // slot_size
        if self.slots < 2:  # noqa: PLR2004 - a ring needs two slots
            raise ValueError("storage: room for fewer than two slots")
        self.dropped: dict[int, int] = {}
        """Messages lost per channel (overwritten when full, or unreadable)."""
        self.live: list[int] = []
        self.next_seq = 0
        self._scan()

    @property
    def max_payload(self) -> int:
        return self.slot_size - HEADER_SIZE

    def _header(self, slot: int) -> "tuple[int, int, int, int, int, int, int] | None":
        raw = self.storage.read(slot * self.slot_size, HEADER_SIZE)
        head = struct.unpack(HEADER, raw[: struct.calcsize(HEADER)])
        if head[0] != MAGIC or head[5] > self.max_payload:
            return None
        return head

    def _scan(self) -> None:
        live = []
        top = -1
        for slot in range(self.slots):
            head = self._header(slot)
            if head is None:
                continue
            _, state, _, _, seq, _, _ = head
            if seq % self.slots != slot:
                continue
            top = max(top, seq)
            if state == LIVE and self._read(slot, head) is not None:
                live.append(seq)
        live.sort()
        self.live = live
        self.next_seq = top + 1

    def _read(self, slot: int, head: "tuple[int, int, int, int, int, int, int]") -> "Record | None":
        _, _, channel, _, seq, length, crc = head
        payload = self.storage.read(slot * self.slot_size + HEADER_SIZE, length)
        if crc32(payload) != crc:
            return None
        return Record(seq, channel, payload)

    def __len__(self) -> int:
        return len(self.live)

    def push(self, channel: int, payload: bytes) -> int:
        """Store a message; returns its sequence number. Overwrites the oldest when full."""
        if len(payload) > self.max_payload:
            raise RecordTooLargeError(len(payload), self.max_payload)
        seq = self.next_seq
        slot = seq % self.slots
        if self.live and self.live[0] % self.slots == slot:
            self.live.pop(0)
            head = self._header(slot)
            self._count_drop(head[2] if head is not None else 0)
        header = struct.pack(HEADER, MAGIC, LIVE, channel, 0, seq, len(payload), crc32(payload))
        header += bytes(HEADER_SIZE - len(header))
        self.storage.write(slot * self.slot_size, header + payload)
        self.live.append(seq)
        self.next_seq = seq + 1
        return seq

    def peek(self) -> "Record | None":
        """The oldest unsent message, or None."""
        while self.live:
            slot = self.live[0] % self.slots
            head = self._header(slot)
            record = self._read(slot, head) if head is not None else None
            if record is not None and record.seq == self.live[0]:
                return record
            self.live.pop(0)  # unreadable (torn or corrupted): skip it
            self._count_drop(head[2] if head is not None else 0)
        return None

    def _count_drop(self, channel: int) -> None:
        self.dropped[channel] = self.dropped.get(channel, 0) + 1

    def pop(self, seq: int) -> None:
        """Mark message *seq* sent (after the broker acknowledged it)."""
        if not self.live or self.live[0] != seq:
            raise ValueError("seq: only the oldest message can be removed")
        self.storage.write((seq % self.slots) * self.slot_size + 1, bytes([CONSUMED]))
        self.live.pop(0)
