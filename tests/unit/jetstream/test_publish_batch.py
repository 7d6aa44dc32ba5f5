"""jetstream.publish.publish_batch on nats-py's real JetStreamContext over a fake connection.

The simulator's CPU depends on a tick's publishes not yielding to the event loop
between one another (then nats-py's flusher writes the whole tick with one send; a
yield per publish costs a socket write and several loop callbacks per envelope).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from nats.js import JetStreamContext
from nats.nuid import NUID

from notip.jetstream import publish


class FakeConnection:
    """What `publish_async` uses of a nats-py client; records, per publish, whether
    the event loop got to run since the batch's first publish."""

    def __init__(self, acks: bool) -> None:
        self._nuid = NUID()
        self.acks = acks
        self.js: JetStreamContext | None = None
        self.loop_ran: list[bool] = []
        self._marker: list[bool] = []

    async def publish(self, subject: str, payload: bytes, reply: str, headers: Any) -> None:
        if not self.loop_ran:
            asyncio.get_running_loop().call_soon(self._marker.append, True)
        self.loop_ran.append(bool(self._marker))
        if self.acks:
            assert self.js is not None
            token = reply.rsplit(".", 1)[-1]
            self.js._publish_async_futures[token].set_result("puback")


def make_js(acks: bool, max_pending: int) -> tuple[FakeConnection, JetStreamContext]:
    conn = FakeConnection(acks)
    js = JetStreamContext(conn, publish_async_max_pending=max_pending)  # type: ignore[arg-type]
    js._async_reply_prefix = bytearray(b"_INBOX.test.")
    conn.js = js
    return conn, js


def test_a_batch_publishes_without_yielding_between_envelopes() -> None:
    async def main() -> tuple[list[bool], list[bool]]:
        conn, js = make_js(acks=True, max_pending=100)
        results = await publish.publish_batch(
            js, "telemetry.data.t.g", [b"x"] * 5, 1.0, max_pending=100
        )
        return results, conn.loop_ran

    results, loop_ran = asyncio.run(main())
    assert results == [True] * 5
    assert loop_ran == [False] * 5  # all five queued before the loop (and flusher) ran


def test_a_full_pending_window_still_waits_at_most_the_deadline() -> None:
    async def main() -> list[bool]:
        _, js = make_js(acks=False, max_pending=2)  # no PubAck ever arrives
        return await publish.publish_batch(
            js, "telemetry.data.t.g", [b"x"] * 4, 0.05, max_pending=2
        )

    started = time.monotonic()
    results = asyncio.run(main())
    assert results == [False] * 4
    assert time.monotonic() - started < 2.0


def test_would_stall_counts_publishes_in_flight() -> None:
    async def main() -> list[bool]:
        _, js = make_js(acks=False, max_pending=2)  # no PubAck ever arrives
        seen = [publish.would_stall(js, 2)]
        for _ in range(2):
            await js.publish_async("telemetry.data.t.g", b"x")
            seen.append(publish.would_stall(js, 2))
        return seen

    assert asyncio.run(main()) == [False, False, True]
