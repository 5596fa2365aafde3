"""Noise level in dB(A) from I2S microphone samples (e.g. INMP441), pure Python.

The IEC 61672 A-weighting curve is built from its analog poles (20.6, 107.7, 737.9 and 12194 Hz)
as six first-order sections mapped with the bilinear transform, normalised to 0 dB at 1 kHz.
Above about a quarter of the sample rate the digital curve departs from the analog one.
"""

import math

POLE_HZ = (20.598997, 20.598997, 107.65265, 737.86223, 12194.217, 12194.217)
HIGH_PASS_SECTIONS = 4
"""The first four poles pair with the four zeros at 0 Hz; the last two are low-pass."""
REFERENCE_HZ = 1000.0
INMP441_DBFS_AT_94_DB = -26.0
"""Datasheet sensitivity: a 94 dB SPL tone reads -26 dBFS."""
MIN_RMS = 1e-12


class Section:
    """``y[n] = b0 x[n] + b1 x[n-1] - a1 y[n-1]``."""

    def __init__(self, b0: float, b1: float, a1: float) -> None:
        self.b0 = b0
        self.b1 = b1
        self.a1 = a1

    def gain(self, w: float) -> float:
        c = math.cos(w)
        num = self.b0 * self.b0 + self.b1 * self.b1 + 2 * self.b0 * self.b1 * c
        den = 1 + self.a1 * self.a1 + 2 * self.a1 * c
        return math.sqrt(num / den)


def a_weighting(sample_rate: int) -> "list[Section]":
    k = 2.0 * sample_rate
    sections = []
    for i, pole_hz in enumerate(POLE_HZ):
        p = 2 * math.pi * pole_hz
        if i < HIGH_PASS_SECTIONS:  # s / (s + p)
            sections.append(Section(k / (k + p), -k / (k + p), (p - k) / (k + p)))
        else:  # p / (s + p)
            sections.append(Section(p / (k + p), p / (k + p), (p - k) / (k + p)))
    w = 2 * math.pi * REFERENCE_HZ / sample_rate
    norm = 1.0
    for section in sections:
        norm *= section.gain(w)
    first = sections[0]
    sections[0] = Section(first.b0 / norm, first.b1 / norm, first.a1)
    return sections


def weighted_rms(samples: "list[float]", sections: "list[Section]") -> float:
    """RMS of *samples* (full scale = 1.0) after the filter sections."""
    signal = samples
    for s in sections:
        out = []
        x_prev = 0.0
        y_prev = 0.0
        for x in signal:
            y = s.b0 * x + s.b1 * x_prev - s.a1 * y_prev
            out.append(y)
            x_prev = x
            y_prev = y
        signal = out
    settle = len(signal) // 10  # skip the filters' start-up transient
    tail = signal[settle:]
    return math.sqrt(sum(y * y for y in tail) / max(len(tail), 1))


def dba(
    samples: "list[float]", sample_rate: int, sensitivity_dbfs: float = INMP441_DBFS_AT_94_DB
) -> float:
    """Sound level in dB(A) SPL of *samples* normalised to full scale 1.0."""
    rms = weighted_rms(samples, a_weighting(sample_rate))
    # A full-scale sine has RMS 1/sqrt(2); dBFS is relative to it.
    dbfs = 20 * math.log10(max(rms * math.sqrt(2), MIN_RMS))
    return dbfs + 94.0 - sensitivity_dbfs


def unpack_i2s_32(buf: bytes) -> "list[float]":
    """INMP441 frames: signed 32-bit little-endian words holding 24-bit samples (left-justified)."""
    out = []
    for i in range(0, len(buf) - 3, 4):
        word = buf[i] | buf[i + 1] << 8 | buf[i + 2] << 16 | buf[i + 3] << 24
        if word & 0x80000000:
            word -= 1 << 32
        out.append(word / 2147483648.0)
    return out
