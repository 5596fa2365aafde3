"""Plantower PMS5003 particulate sensor over UART (9600 8N1): 32-byte frames, checksum checked.

Frame: ``42 4D``, length (28), 13 big-endian words, a 16-bit sum of all preceding bytes. Words
3-5 are the atmospheric PM1.0, PM2.5 and PM10 in ug/m3.
"""

import struct

START = b"BM"
FRAME_SIZE = 32
DATA_LENGTH = 28
_WORDS = ">HH13HH"


class FrameError(ValueError):
    pass


class PmReading:
    def __init__(self, pm1: int, pm25: int, pm10: int) -> None:
        self.pm1 = pm1
        self.pm25 = pm25
        self.pm10 = pm10


def checksum(data: bytes) -> int:
    return sum(data) & 0xFFFF


def encode_frame(pm1: int, pm25: int, pm10: int) -> bytes:
    """A frame as the sensor sends it (the host port's simulated sensor uses this)."""
    words = [pm1, pm25, pm10, pm1, pm25, pm10, 0, 0, 0, 0, 0, 0, 0]
    body = START + struct.pack(">H13H", DATA_LENGTH, *words)
    return body + struct.pack(">H", checksum(body))


def parse_frame(frame: bytes) -> PmReading:
    if len(frame) != FRAME_SIZE or frame[:2] != START:
        raise FrameError("frame: does not start with 42 4D or is not 32 bytes")
    fields = struct.unpack(_WORDS, frame)
    if fields[1] != DATA_LENGTH:
        raise FrameError("frame: length field is " + str(fields[1]) + ", expected 28")
    if fields[-1] != checksum(frame[:-2]):
        raise FrameError("frame: checksum mismatch")
    return PmReading(fields[5], fields[6], fields[7])


def find_frame(buffer: bytes) -> "PmReading | None":
    """The newest valid frame in *buffer* (what a UART read returned), or None."""
    best = None
    start = buffer.find(START)
    while 0 <= start <= len(buffer) - FRAME_SIZE:
        try:
            best = parse_frame(buffer[start : start + FRAME_SIZE])
        except FrameError:
            start = buffer.find(START, start + 1)
            continue
        start = buffer.find(START, start + FRAME_SIZE)
    return best
