"""The publisher's timing and per-tick logic under MockClock (no NATS: the runtime
is not connected, so sealed envelopes stay in its buffer)."""

from __future__ import annotations

import json
from typing import Any

import trio
import trio.testing

from notip import envelope
from notip.simulator.gateway import GatewayDeps, GatewayRuntime
from notip.simulator.v1 import simulator_pb2 as pb

from .conftest import add_sensor, make_record


class Ticks:
    """Reading events from the hub, with the (mock) time they were seen."""

    def __init__(self) -> None:
        self.readings: list[tuple[float, pb.ReadingEvent]] = []
        self.drops: list[pb.DropEvent] = []

    async def collect(self, recv: trio.MemoryReceiveChannel[pb.GatewayEvent]) -> None:
        async for ev in recv:
            if ev.HasField("reading"):
                self.readings.append((trio.current_time(), ev.reading))
            elif ev.HasField("drop"):
                self.drops.append(ev.drop)

    def times(self, sensor_id: str | None = None) -> list[float]:
        return [
            round(t, 6) for t, r in self.readings if sensor_id is None or r.sensor_id == sensor_id
        ]


async def start(nursery: trio.Nursery, runtime: GatewayRuntime, deps: GatewayDeps) -> Ticks:
    ticks = Ticks()
    nursery.start_soon(ticks.collect, deps.hub.subscribe(runtime.id))
    nursery.start_soon(runtime.publisher)
    return ticks


async def test_ticks_every_send_frequency(
    deps: GatewayDeps, autojump_clock: trio.testing.MockClock
) -> None:
    rec = make_record(freq_ms=1000)
    s = add_sensor(rec)
    runtime = GatewayRuntime(rec, deps)
    async with trio.open_nursery() as n:
        t0 = trio.current_time()
        ticks = await start(n, runtime, deps)
        await trio.sleep(10.5)
        n.cancel_scope.cancel()
    assert [round(t - t0, 3) for t in ticks.times(s.id)] == [float(i) for i in range(11)]
    # not connected: the sealed envelopes wait in the buffer
    assert len(runtime.buffer) == 11
    env = json.loads(runtime.buffer.peek_all()[0])
    plain = envelope.open_envelope(rec.aes_key, env)
    assert set(plain) == {"value", "unit"} and plain["unit"] == "°C" and 0 <= plain["value"] <= 10
    assert env["keyVersion"] == 1 and env["timestamp"].endswith("Z")


async def test_a_new_frequency_applies_at_once(
    deps: GatewayDeps, autojump_clock: trio.testing.MockClock
) -> None:
    rec = make_record(freq_ms=60_000)
    add_sensor(rec)
    runtime = GatewayRuntime(rec, deps)
    async with trio.open_nursery() as n:
        t0 = trio.current_time()
        ticks = await start(n, runtime, deps)
        await trio.sleep(1)
        rec.send_frequency_ms = 500
        rec.changed.fire()
        await trio.sleep(1.2)
        n.cancel_scope.cancel()
    # t=0, then (the 60 s wait interrupted) at once at t=1, then every 0.5 s
    assert [round(t - t0, 3) for t in ticks.times()] == [0.0, 1.0, 1.5, 2.0]


async def test_paused_is_silent_and_online_resumes(
    deps: GatewayDeps, autojump_clock: trio.testing.MockClock
) -> None:
    rec = make_record(freq_ms=1000)
    add_sensor(rec)
    runtime = GatewayRuntime(rec, deps)
    async with trio.open_nursery() as n:
        t0 = trio.current_time()
        ticks = await start(n, runtime, deps)
        await trio.sleep(0.5)
        rec.platform_status = "paused"
        await trio.sleep(3)
        rec.platform_status = "online"
        rec.changed.fire()
        await trio.sleep(1.6)
        n.cancel_scope.cancel()
    assert [round(t - t0, 3) for t in ticks.times()] == [0.0, 4.0, 5.0]


async def test_sensor_changes_take_effect_at_the_next_tick(
    deps: GatewayDeps, autojump_clock: trio.testing.MockClock
) -> None:
    rec = make_record(freq_ms=1000)
    a = add_sensor(rec)
    runtime = GatewayRuntime(rec, deps)
    async with trio.open_nursery() as n:
        t0 = trio.current_time()
        ticks = await start(n, runtime, deps)
        await trio.sleep(1.5)
        b = add_sensor(rec, "humidity", 20, 80)
        await trio.sleep(1)
        del rec.sensors[a.id]
        await trio.sleep(1)
        n.cancel_scope.cancel()
    assert [round(t - t0, 3) for t in ticks.times(a.id)] == [0.0, 1.0, 2.0]
    assert [round(t - t0, 3) for t in ticks.times(b.id)] == [2.0, 3.0]


async def test_outlier_replaces_exactly_the_next_reading(
    deps: GatewayDeps, autojump_clock: trio.testing.MockClock
) -> None:
    rec = make_record(freq_ms=1000)
    neg = add_sensor(rec, "temperature", -40, -10)
    runtime = GatewayRuntime(rec, deps)
    async with trio.open_nursery() as n:
        ticks = await start(n, runtime, deps)
        await trio.sleep(0.5)
        rec.pending_outliers[neg.id] = None  # "clearly outside the range"
        await trio.sleep(1)
        rec.pending_outliers[neg.id] = 123.0
        await trio.sleep(2)
        n.cancel_scope.cancel()
    values = [(r.value, r.outlier) for _, r in ticks.readings]
    assert values[1][1] and values[1][0] > -10 + 30  # beyond max by more than a range
    assert values[2] == (123.0, True)
    assert not values[0][1] and not values[3][1] and -40 <= values[3][0] <= -10


async def test_degradation_and_offline_drops_are_counted(
    deps: GatewayDeps, autojump_clock: trio.testing.MockClock
) -> None:
    rec = make_record(freq_ms=1000)
    add_sensor(rec)
    add_sensor(rec)
    runtime = GatewayRuntime(rec, deps)

    def sample(name: str, **labels: Any) -> float:
        return deps.metrics.registry.get_sample_value(name, {"gateway_id": rec.id, **labels}) or 0.0

    async with trio.open_nursery() as n:
        ticks = await start(n, runtime, deps)
        await trio.sleep(0.5)
        runtime.inject_degradation(2.0, 1.0)  # everything lost for 2 s: ticks at 1, 2
        await trio.sleep(2)
        assert sample("notip_sim_readings_dropped_total", reason="packet_loss") == 4
        assert len(runtime.buffer) == 2  # only the t=0 tick
        runtime.inject_disconnect(1.2, buffer_while_offline=False)  # t=2.5..3.7: tick 3 lost
        await trio.sleep(1.0)
        assert sample("notip_sim_readings_dropped_total", reason="offline") == 2
        assert len(runtime.buffer) == 2
        runtime.inject_disconnect(2.0, buffer_while_offline=True)  # t=3.5..5.5: ticks 4, 5 kept
        await trio.sleep(1.7)
        assert len(runtime.buffer) == 6
        assert sample("notip_sim_readings_dropped_total", reason="offline") == 2
        n.cancel_scope.cancel()
    assert {d.reason for d in ticks.drops} == {"packet_loss", "offline"}


async def test_full_buffer_drops_the_oldest_and_counts(
    deps: GatewayDeps, tmp_path: Any, autojump_clock: trio.testing.MockClock
) -> None:
    import dataclasses

    deps.settings = dataclasses.replace(deps.settings, gateway_buffer_size=3)
    rec = make_record(freq_ms=1000)
    add_sensor(rec)
    add_sensor(rec)
    runtime = GatewayRuntime(rec, deps)
    async with trio.open_nursery() as n:
        await start(n, runtime, deps)
        await trio.sleep(2.5)  # 3 ticks x 2 readings into a buffer of 3
        n.cancel_scope.cancel()
    assert len(runtime.buffer) == 3
    labels = {"gateway_id": rec.id}
    assert deps.metrics.registry.get_sample_value("notip_sim_buffer_dropped_total", labels) == 3
    assert deps.metrics.registry.get_sample_value("notip_sim_buffer_fill_level", labels) == 3
