"""A deterministic JSON writer: the same bytes on CPython, MicroPython and a 32-bit-float ESP32.

Keys are sorted: MicroPython dicts do not keep insertion order, so sorting is the only order both
interpreters agree on. Floats are written as fixed-point decimals (``Fixed``) because MicroPython's
float ``repr`` and float parsing differ between ports (single precision on the ESP32).
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeAlias

    JsonValue: TypeAlias = (
        bool | int | str | "Fixed" | list["JsonValue"] | dict[str, "JsonValue"] | None
    )

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CONTROL_LIMIT = 0x20


class Fixed:
    """A decimal number written with ``places`` digits after the point (trailing zeros trimmed)."""

    def __init__(self, value: float, places: int = 2) -> None:
        if value != value or value in (float("inf"), float("-inf")):  # noqa: PLR0124 - NaN check without math.isnan
            raise ValueError("number: NaN and infinity are not valid JSON")
        self.places = places
        self.scale = int(10**places)
        self.scaled = round(value * self.scale)

    def text(self) -> str:
        sign = "-" if self.scaled < 0 else ""
        whole, frac = divmod(abs(self.scaled), self.scale)
        if self.places == 0:
            return sign + str(whole)
        digits = str(frac)
        digits = "0" * (self.places - len(digits)) + digits
        digits = digits.rstrip("0")
        if not digits:
            return sign + str(whole) + ".0"
        return sign + str(whole) + "." + digits

    def value(self) -> float:
        return self.scaled / self.scale


def quote(text: str) -> str:
    parts = ['"']
    for ch in text:
        esc = _ESCAPES.get(ch)
        if esc is not None:
            parts.append(esc)
        elif ord(ch) < _CONTROL_LIMIT:
            code = hex(ord(ch))[2:]  # noqa: FURB116 - MicroPython f-strings lack format specs
            parts.append("\\u" + "0" * (4 - len(code)) + code)
        else:
            parts.append(ch)
    parts.append('"')
    return "".join(parts)


def dumps(value: "JsonValue") -> str:  # noqa: PLR0911 - one return per JSON type
    """Compact JSON of *value*, keys sorted."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Fixed):
        return value.text()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list):
        return "[" + ",".join(dumps(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(quote(k) + ":" + dumps(value[k]) for k in sorted(value)) + "}"
    raise TypeError("cannot write " + str(type(value)) + " as JSON")


def dumpb(value: "JsonValue") -> bytes:
    return dumps(value).encode()
