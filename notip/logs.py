"""Structured JSON logs on stderr, one object per line."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from typing import Any, TextIO

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(
            {
                key: value
                for key, value in record.__dict__.items()
                if key not in _STANDARD and not key.startswith("_")
            }
        )
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class _JsonStderrHandler(logging.StreamHandler[TextIO]):
    """The handler `setup` installs: its type says that setup already ran."""


def setup(level: str | None = None) -> None:
    """Configure the root logger once per process (`LOG_LEVEL`, default info)."""
    root = logging.getLogger()
    if any(isinstance(h, _JsonStderrHandler) for h in root.handlers):
        return
    handler = _JsonStderrHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel((level or os.environ.get("LOG_LEVEL", "info")).upper())
    # Per-request access lines from hypercorn are noise at info level.
    logging.getLogger("hypercorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
