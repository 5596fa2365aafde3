"""HMAC-SHA256 request signatures, shared by inbound webhooks and outbound dispatch.

The signed text is ``<unix timestamp>.<raw body>``; the header carries ``sha256=<hex digest>``.
Binding the timestamp stops an old request from being replayed with a fresh timestamp.
"""

import hashlib
import hmac
import time

SCHEME = "sha256="


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return SCHEME + digest


def signature_headers(
    secret: bytes,
    body: bytes,
    *,
    signature_header: str = "X-CityOps-Signature",
    timestamp_header: str = "X-CityOps-Timestamp",
    now: float | None = None,
) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    return {timestamp_header: timestamp, signature_header: sign(secret, timestamp, body)}


class SignatureError(ValueError):
    """Why a request was refused; ``field`` is the header at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def verify(
    secret: bytes,
    body: bytes,
    *,
    signature: str | None,
    timestamp: str | None,
    window_s: float,
    now: float,
    signature_header: str = "X-CityOps-Signature",
    timestamp_header: str = "X-CityOps-Timestamp",
) -> None:
    """Raise ``SignatureError`` unless *signature* is valid and *timestamp* is within the window."""
    if not timestamp:
        raise SignatureError(timestamp_header, "missing")
    if not signature:
        raise SignatureError(signature_header, "missing")
    try:
        sent = float(timestamp)
    except ValueError as exc:
        raise SignatureError(timestamp_header, "not a unix timestamp") from exc
    if abs(now - sent) > window_s:
        raise SignatureError(timestamp_header, f"outside the {window_s:.0f} s replay window")
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(expected, signature.strip()):
        raise SignatureError(signature_header, "signature does not match the body")
