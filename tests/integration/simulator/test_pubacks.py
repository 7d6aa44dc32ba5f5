"""Telemetry confirmations against the real nats-server (notip/simulator/telemetry.py,
notip/jetstream/acks.py): an envelope counts as published only when JetStream stored
it; a refused one (error PubAck, 503 no responders) is counted as a publish error,
kept in the gateway's buffer and published again later, never counted as confirmed;
in a normal run the confirmed count equals the messages the stream holds.

Each test routes its gateways' telemetry to subjects of its own (the daemon's
`GatewayDeps.telemetry_subject`) so that stream counts are exact."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import Any

from nats.js import api

from notip import bridge
from notip.simulator.settings import Settings
from tests.platform_fixtures import MgmtHandle
from tests.waiting import eventually

from .conftest import SimHandle, running_simulator

ENVELOPE_MIN_BYTES = 200  # a sealed envelope is ~300 B


def own_subjects(sim: SimHandle) -> tuple[str, Callable[[str, str], str]]:
    prefix = f"simtest{uuid.uuid4().hex[:10]}"
    subject = lambda tenant, gateway: f"{prefix}.{tenant}.{gateway}"  # noqa: E731
    sim.sim.registry.deps.telemetry_subject = subject
    return prefix, subject


def kept_envelopes(sim: SimHandle, gateway_id: str) -> int:
    """A gateway's envelopes not confirmed and not dropped: in its buffer, or out
    again and waiting for their PubAcks (the buffer gauge alone reads 0 then). A
    refusal just answered is back in the buffer at the flusher's next wake, hence
    `eventually` around it."""
    runtime = sim.sim.registry.runtime(gateway_id)
    assert runtime is not None
    return len(runtime.buffer) + sim.sim.telemetry.ledger.in_flight(runtime)


async def stream_msgs(nc: Any, name: str) -> int:
    info = await bridge.call(nc.jetstream().stream_info, name)
    return int(info.state.messages)


async def test_confirmed_count_equals_the_messages_the_stream_stored(
    sim_settings: Settings, mgmt: MgmtHandle, nc: Any
) -> None:
    # A long PubAck deadline: nothing expires on a loaded machine, so no envelope is
    # both stored and published again (which would make the stream hold more).
    async with running_simulator(answers_only(sim_settings), mgmt) as sim:
        prefix, _ = own_subjects(sim)
        name = f"T{uuid.uuid4().hex[:10]}"
        await bridge.call(nc.jetstream().add_stream, name=name, subjects=[f"{prefix}.>"])
        try:
            gateways = []
            for _ in range(3):
                gw, _seeded = await sim.create(send_frequency_ms=50)
                await sim.add_sensor(gw["id"])
                await sim.add_sensor(gw["id"], "humidity", 0, 100)
                gateways.append(gw["id"])

            def confirmed() -> float:
                return sum(
                    sim.sample("notip_sim_envelopes_published_total", gateway_id=g)
                    for g in gateways
                )

            await eventually(lambda: confirmed() >= 60, timeout=30)
            for g in gateways:
                assert (await sim.http.post(f"/sim/gateways/{g}/stop")).status_code == 204
            # Stopped: each gateway waited for its PubAcks in flight and counted them.
            stored = await stream_msgs(nc, name)
            assert confirmed() == stored
            for g in gateways:
                assert sim.sample("notip_sim_publish_errors_total", gateway_id=g) == 0
            assert sim.sim.telemetry.ledger.unknown == 0
        finally:
            await bridge.call(nc.jetstream().delete_stream, name)


def answers_only(settings: Settings) -> Settings:
    """No PubAck deadline within the test: a failure seen is the server's answer."""
    return dataclasses.replace(settings, publish_timeout_s=60.0)


async def test_a_refused_envelope_is_requeued_and_published_once_the_stream_takes_it(
    sim_settings: Settings, mgmt: MgmtHandle, nc: Any
) -> None:
    async with running_simulator(answers_only(sim_settings), mgmt) as sim:
        await refused_then_taken(sim, nc)


async def refused_then_taken(sim: SimHandle, nc: Any) -> None:
    prefix, _ = own_subjects(sim)
    name = f"T{uuid.uuid4().hex[:10]}"
    js = nc.jetstream()
    # Too small for any envelope: every publish gets an error PubAck.
    await bridge.call(
        js.add_stream, name=name, subjects=[f"{prefix}.>"], max_msg_size=ENVELOPE_MIN_BYTES
    )
    try:
        gw, _seeded = await sim.create(send_frequency_ms=100)
        await sim.add_sensor(gw["id"])
        labels = {"gateway_id": gw["id"]}
        await eventually(lambda: sim.sample("notip_sim_publish_errors_total", **labels) >= 5)
        assert sim.sample("notip_sim_envelopes_published_total", **labels) == 0
        assert await stream_msgs(nc, name) == 0
        # Nothing was dropped: the refused envelopes wait in the buffer (or are out
        # again, in flight).
        kept = await eventually(lambda: kept_envelopes(sim, gw["id"]))
        assert sim.sample("notip_sim_buffer_dropped_total", **labels) == 0

        # The stream takes them now: the kept envelopes go out with later ticks.
        await bridge.call(
            js.update_stream,
            api.StreamConfig(name=name, subjects=[f"{prefix}.>"], max_msg_size=-1),
        )
        await eventually(
            lambda: sim.sample("notip_sim_envelopes_published_total", **labels) >= kept + 3
        )
        assert (await sim.http.post(f"/sim/gateways/{gw['id']}/stop")).status_code == 204
        published = sim.sample("notip_sim_envelopes_published_total", **labels)
        assert published == await stream_msgs(nc, name)
    finally:
        await bridge.call(js.delete_stream, name)


async def test_a_publish_no_stream_captures_is_a_publish_error_never_confirmed(
    sim_settings: Settings, mgmt: MgmtHandle
) -> None:
    async with running_simulator(answers_only(sim_settings), mgmt) as sim:
        await no_stream(sim)


async def no_stream(sim: SimHandle) -> None:
    own_subjects(sim)  # and no stream for them: the server answers 503 no responders
    gw, _seeded = await sim.create(send_frequency_ms=100)
    await sim.add_sensor(gw["id"])
    labels = {"gateway_id": gw["id"]}
    await eventually(lambda: sim.sample("notip_sim_publish_errors_total", **labels) >= 5)
    assert sim.sample("notip_sim_envelopes_published_total", **labels) == 0
    await eventually(lambda: kept_envelopes(sim, gw["id"]) >= 1)
    assert sim.sample("notip_sim_buffer_dropped_total", **labels) == 0
    runtime = sim.sim.registry.runtime(gw["id"])
    assert runtime is not None and runtime.connected  # the connection stays up
