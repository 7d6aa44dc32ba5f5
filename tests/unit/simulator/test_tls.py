"""The TLS read-buffer guard (tls.py) when the private attributes it needs are missing;
the working path is checked on a real connection in
tests/integration/simulator/test_telemetry.py."""

from __future__ import annotations

import logging

import pytest

from notip import guards
from notip.simulator import tls

LABELS = {"guard": guards.ASYNCIO_TLS_READ_BUFFER}


class NoTransport:
    """Stands in for a nats-py client whose internals moved."""


def missing_count() -> float:
    value = guards.REGISTRY.get_sample_value("notip_library_guard_missing_total", LABELS)
    assert value is not None
    return value


def test_missing_attributes_change_nothing_warn_once_and_count(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(guards, "_warned", set())
    nc: object = NoTransport()
    before = missing_count()
    with caplog.at_level(logging.WARNING, logger="notip.guards"):
        assert tls.shrink_read_buffer(nc, 16 * 1024) is False  # type: ignore[arg-type]
        assert tls.shrink_read_buffer(nc, 16 * 1024) is False  # type: ignore[arg-type]
    assert tls.read_buffer_size(nc) is None  # type: ignore[arg-type]
    assert missing_count() - before == 2
    warnings = [r for r in caplog.records if guards.ASYNCIO_TLS_READ_BUFFER in r.getMessage()]
    assert len(warnings) == 1
