"""The same silence alerted by two liveness owners across a handover carries one
Nats-Msg-Id (docs/consumer.md#scale-out-and-ownership), on real NATS + PostgreSQL.

The former owner alerts from the JetStream stored time of the gateway's last message;
the new owner seeds from the database, whose row holds the envelope's own timestamp.
The alert record (`consumer_liveness_alerts`), written before the publish, is what the
new owner's seed takes instead, so both publishes carry the same id and the ALERTS
stream keeps one."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import trio
from nats.aio.msg import Msg

from notip import bridge, contracts, natsio
from notip.envelope import iso
from tests.waiting import eventually, stays_true

from .conftest import Collector, FakeMgmt, encode, envelope, metric, publish, query
from .conftest import start_consumer as start_in_process

OWNER = "notip_consumer_liveness_owner"


async def stored_alerts(nc: natsio.NATS, subject: str) -> int:
    """How many messages the ALERTS stream holds on `subject` (after deduplication)."""
    js = nc.jetstream()
    info: Any = await bridge.call(js.stream_info, contracts.ALERTS.name, subject)
    return int((info.state.subjects or {}).get(subject, 0))


def msg_id(msg: Msg) -> str:
    assert msg.headers is not None, "an alert without headers"
    return msg.headers["Nats-Msg-Id"]


async def test_a_silence_alerted_by_both_owners_of_a_handover_is_one_alert(
    nc: natsio.NATS, mgmt: FakeMgmt, make_env: Callable[..., dict[str, str]], pg_database: str
) -> None:
    """Owner A alerts a silent gateway and reports it offline, then stops; B, a
    standby with the same environment, takes the lease, seeds and alerts the same
    silence again (management still answers `online` to its check: A's `offline`
    never reached it, the window fencing leaves). Both alerts carry the same
    Nats-Msg-Id and `lastSeen`; the stream holds one; no `online` follows the
    `offline`."""
    tenant, gw = str(uuid.uuid4()), str(uuid.uuid4())
    subject = f"alert.gw_offline.{tenant}"
    # The gateway's timeout is 1 s; the seed's window stays the 60 s default, so the
    # silent gateway's row is still seeded after the handover.
    mgmt.configs = [{"tenant_id": tenant, "gateway_id": gw, "timeout_ms": 1000}]
    alerts = await Collector().start(nc, subject)
    env = make_env(LIVENESS_LEASE_TTL_MS="2000", HEARTBEAT_TICK_MS="100")

    async with trio.open_nursery() as nursery:
        a_scope = trio.CancelScope()
        a_started = trio.Event()
        a_box: list[Any] = []

        async def run_a() -> None:
            with a_scope:
                async with trio.open_nursery() as a_nursery:
                    a_box.append(await start_in_process(a_nursery, env))
                    a_started.set()
                    await trio.sleep_forever()

        nursery.start_soon(run_a)
        await a_started.wait()
        [a] = a_box
        assert metric(a, OWNER) == 1
        b = await start_in_process(nursery, env)
        assert metric(b, OWNER) == 0

        # The gateway's clock is 2 s behind: the row's time (its envelope timestamp)
        # and the stored time differ even at the milliseconds of the alert id.
        behind = iso(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2))
        await publish(
            nc, [(f"telemetry.data.{tenant}.{gw}", encode(envelope(gw, timestamp=behind)))]
        )
        await eventually(lambda: mgmt.statuses(gw) == ["online", "offline"], what="A's alert")
        assert len(alerts.msgs) == 1
        first_id = msg_id(alerts.msgs[0])
        recorded = await query(
            pg_database,
            "SELECT last_seen FROM consumer_liveness_alerts WHERE tenant_id = $1 AND gateway_id = $2",
            tenant,
            gw,
        )
        assert first_id == contracts.gw_offline_msg_id(tenant, gw, iso(recorded[0][0]))

        a_scope.cancel()  # A stops (and releases the lease); B takes over
        await eventually(lambda: metric(b, OWNER) == 1, what="B holding the lease")
        await eventually(lambda: len(alerts.msgs) == 2, what="B alerting the same silence")

        ids = [msg_id(m) for m in alerts.msgs]
        assert ids == [first_id, first_id]
        [body_a, body_b] = alerts.json()
        assert body_a["lastSeen"] == body_b["lastSeen"] != behind
        assert await stored_alerts(nc, subject) == 1

        # B reports the silence offline again, and then nothing: no third alert, no
        # `online` after the `offline` of this silence.
        expected = ["online", "offline", "offline"]
        await eventually(lambda: mgmt.statuses(gw) == expected, what="B's offline report")
        await stays_true(lambda: len(alerts.msgs) == 2 and mgmt.statuses(gw) == expected, for_s=1.5)
        assert await stored_alerts(nc, subject) == 1
        nursery.cancel_scope.cancel()
