"""Checksums for the drivers and the flash ring buffer (``binascii.crc32`` is optional on ports)."""

_CRC8_POLY = 0x31
_CRC32_POLY = 0xEDB88320
_BYTE = 0xFF
_WORD = 0xFFFFFFFF


def crc8_sensirion(data: bytes, init: int = _BYTE) -> int:
    """CRC-8 of Sensirion sensors (SHT3x): polynomial 0x31, init 0xFF, no reflection."""
    crc = init
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ _CRC8_POLY) & _BYTE if crc & 0x80 else (crc << 1) & _BYTE
    return crc


def _crc32_table() -> "list[int]":
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _CRC32_POLY if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32_table()


def crc32(data: bytes, crc: int = 0) -> int:
    """IEEE CRC-32, equal to ``zlib.crc32``."""
    crc ^= _WORD
    for byte in data:
        crc = _TABLE[(crc ^ byte) & _BYTE] ^ (crc >> 8)
    return crc ^ _WORD
