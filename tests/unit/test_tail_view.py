from __future__ import annotations

from notip.tail import Reading, TailView, line


def r(gw: str, sensor: str, value: float | None, error: str = "") -> Reading:
    return Reading("t", gw, sensor, "temperature", "2026-01-01T00:00:00.000Z", value, "°C", error)


def test_view_keeps_latest_per_sensor_and_counts() -> None:
    view = TailView()
    view.add(r("gw-aaaaaaaa", "s-1", 20.0))
    view.add(r("gw-aaaaaaaa", "s-1", 21.5))
    view.add(r("gw-bbbbbbbb", "s-2", None, "cannot decrypt"))
    text = view.render()
    assert "21.50" in text and "20.00" not in text
    assert "cannot decrypt" in text
    assert text.splitlines()[-1] == "3 readings, 2 sensors, 1 undecryptable"


def test_plain_line() -> None:
    assert line(r("g", "s", 1.5)).endswith("temperature  1.5 °C")
