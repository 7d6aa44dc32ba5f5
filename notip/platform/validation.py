"""Field checks shared by the stand-ins (admin HTTP surface, seed loader, responders,
onboarding requests). Each raises `BadInput` with a message that names the field."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from urllib.parse import urlsplit

from notip.envelope import parse_iso

MAX_INT32 = 2**31 - 1
MAX_TEXT = 256


class BadInput(ValueError):
    """Malformed input; the message says which field and why."""


def is_uuid(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def uuid_field(value: object, name: str) -> str:
    """A UUID string (any version, canonical 8-4-4-4-12 form), returned lowercase."""
    if not is_uuid(value):
        raise BadInput(f"{name} must be a UUID string")
    assert isinstance(value, str)
    return value.lower()


def text_field(value: object, name: str, *, max_len: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"{name} must be a non-empty string")
    if len(value) > max_len:
        raise BadInput(f"{name} must be at most {max_len} characters")
    if any(ord(c) < 0x20 for c in value):
        raise BadInput(f"{name} must not contain control characters")
    return value


def positive_int(value: object, name: str, *, maximum: int = MAX_INT32) -> int:
    # bool is an int in Python; true/false are not numbers here.
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{name} must be an integer")
    if value <= 0:
        raise BadInput(f"{name} must be > 0")
    if value > maximum:
        raise BadInput(f"{name} must be <= {maximum}")
    return value


def http_url(value: object, name: str) -> str:
    text = text_field(value, name, max_len=2048)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadInput(f"{name} must be an http(s) URL")
    return text


def timestamp_field(value: object, name: str) -> dt.datetime:
    if not isinstance(value, str):
        raise BadInput(f"{name} must be an ISO 8601 timestamp string")
    try:
        return parse_iso(value)
    except ValueError:
        raise BadInput(f"{name} must be an ISO 8601 timestamp with a time zone") from None


def only_fields(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadInput(f"unknown field(s): {', '.join(unknown)}")
