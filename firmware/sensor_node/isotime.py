"""UTC timestamps as RFC 3339 text from Unix milliseconds, without ``time.gmtime``.

MicroPython's ``gmtime`` counts from 2000 on some ports; this civil-from-days arithmetic
(Howard Hinnant's algorithm) gives the same text everywhere.
"""

_MS_PER_DAY = 86_400_000
_DAYS_PER_ERA = 146_097
_EPOCH_SHIFT = 719_468
_MARCH_BASED_DECEMBER = 9


def civil_from_days(days: int) -> "tuple[int, int, int]":
    """(year, month, day) of *days* since 1970-01-01."""
    z = days + _EPOCH_SHIFT
    era = z // _DAYS_PER_ERA
    doe = z - era * _DAYS_PER_ERA
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    year = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - _MARCH_BASED_DECEMBER  # noqa: PLR2004 - March-based month
    if month <= 2:  # noqa: PLR2004 - January and February belong to the next year
        year += 1
    return year, month, day


def _two(n: int) -> str:
    return ("0" + str(n)) if n < 10 else str(n)  # noqa: PLR2004 - zero padding


def iso_from_ms(epoch_ms: int) -> str:
    """``2026-11-25T18:20:00.123Z`` for *epoch_ms* (milliseconds since 1970, UTC)."""
    days, rest = divmod(int(epoch_ms), _MS_PER_DAY)
    year, month, day = civil_from_days(days)
    secs, ms = divmod(rest, 1000)
    hours, secs = divmod(secs, 3600)
    minutes, secs = divmod(secs, 60)
    millis = str(ms)
    millis = "0" * (3 - len(millis)) + millis
    return (
        str(year)
        + "-"
        + _two(month)
        + "-"
        + _two(day)
        + "T"
        + _two(hours)
        + ":"
        + _two(minutes)
        + ":"
        + _two(secs)
        + "."
        + millis
        + "Z"
    )
