"""Logging of ``cityops cloud serve``: one format, and no secret in any line.

Access logs carry the request line; a query value that may hold a secret (``token=``,
``ticket=``, ``key=``, ``password=``, ...) and anything shaped like an API key or ticket is
replaced by ``***`` before a handler writes it.
"""

import logging
import re
from typing import Any, Final

REDACTED: Final = "***"
_SECRET_WORDS: Final = "token|ticket|key|secret|pass|pwd|auth|sig|session|credential|code"  # noqa: S105 - names, not a secret
_SECRET_NAMES: Final = rf"[A-Za-z0-9_.-]*(?:{_SECRET_WORDS})[A-Za-z0-9_.-]*"
_QUERY_VALUE: Final = re.compile(rf"(?i)([?&;]{_SECRET_NAMES}=)[^&;\s\"']*")
_SHAPED: Final = re.compile(r"\b(cok_[A-Za-z0-9]+_|cot_)[A-Za-z0-9_-]+")
_BEARER: Final = re.compile(r"(?i)(bearer[ .])[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    """*text* with secret-looking query values, API keys, tickets and bearer values masked."""
    text = _QUERY_VALUE.sub(rf"\g<1>{REDACTED}", text)
    text = _SHAPED.sub(rf"\g<1>{REDACTED}", text)
    return _BEARER.sub(rf"\g<1>{REDACTED}", text)


class RedactSecrets(logging.Filter):
    """A handler filter: rewrites the record's message (and traceback) with ``redact``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def log_config(level: str) -> dict[str, Any]:
    """``logging.config.dictConfig`` settings for the API and uvicorn (access log included)."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": f"{__name__}.RedactSecrets"}},
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "filters": ["redact"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "propagate": True},
            "uvicorn.access": {"level": level, "handlers": [], "propagate": True},
        },
    }
