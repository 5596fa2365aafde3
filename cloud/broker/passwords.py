"""Mosquitto 2.x password-file hashes (``$7$``, PBKDF2-HMAC-SHA512) without mosquitto_passwd."""

import base64
import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Final

ITERATIONS: Final = 101
"""mosquitto_passwd's default; the broker reads the count from each line."""
SALT_BYTES: Final = 12


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        _, kind, iterations, salt_b64, digest_b64 = encoded.split("$")
    except ValueError:
        return False
    if kind != "7":
        return False
    try:  # a damaged line (a hand edit) is a mismatch, not an error
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(digest, expected)


def new_password() -> str:
    """A random 32-character URL-safe password for a device or service account."""
    return secrets.token_urlsafe(24)


def password_file(entries: dict[str, str]) -> str:
    """Render ``user:hash`` lines; *entries* maps username to an already hashed password."""
    for user in entries:
        if ":" in user or "\n" in user:
            raise ValueError(f"username {user!r} cannot contain ':' or a newline")
    return "".join(f"{user}:{hashed}\n" for user, hashed in sorted(entries.items()))


def read_password_file(path: Path) -> dict[str, str]:
    """``user -> hash`` of an existing password file; ``{}`` when there is none yet."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    entries = {}
    for line in text.splitlines():
        user, sep, hashed = line.partition(":")
        if sep and user and not line.startswith("#"):
            entries[user] = hashed
    return entries
