"""Live gateway events for `WatchGateway`: a fan-out that never slows a gateway down.

Each watcher gets a bounded memory channel; an event that does not fit is dropped for
that watcher (counted in `dropped`). Gateways call `emit` only when `watched(id)` is
true for readings, so an unwatched simulation builds no event objects on its hot path.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import trio
from google.protobuf.timestamp_pb2 import Timestamp

from notip.simulator.v1 import simulator_pb2 as pb

WATCHER_CAPACITY = 1024


class EventHub:
    def __init__(self, capacity: int = WATCHER_CAPACITY) -> None:
        self.capacity = capacity
        self._watchers: dict[str, set[trio.MemorySendChannel[pb.GatewayEvent]]] = defaultdict(set)
        self.dropped = 0

    def watched(self, gateway_id: str) -> bool:
        return bool(self._watchers.get(gateway_id))

    def subscribe(self, gateway_id: str) -> trio.MemoryReceiveChannel[pb.GatewayEvent]:
        send, recv = trio.open_memory_channel[pb.GatewayEvent](self.capacity)
        self._watchers[gateway_id].add(send)
        return recv

    def close_gateway(self, gateway_id: str) -> None:
        """End every watch of a gateway (it was deleted)."""
        for send in self._watchers.pop(gateway_id, set()):
            send.close()

    def emit(self, gateway_id: str, **kind: Any) -> None:
        """`emit(id, reading=pb.ReadingEvent(...))` (exactly one oneof member)."""
        watchers = self._watchers.get(gateway_id)
        if not watchers:
            return
        ts = Timestamp()
        ts.FromDatetime(dt.datetime.now(dt.UTC))
        event = pb.GatewayEvent(gateway_id=gateway_id, time=ts, **kind)
        for send in list(watchers):
            try:
                send.send_nowait(event)
            except trio.WouldBlock:
                self.dropped += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                watchers.discard(send)
        if not watchers:
            self._watchers.pop(gateway_id, None)

    # -- convenience builders ---------------------------------------------------------

    def connection(self, gateway_id: str, state: str, detail: str = "") -> None:
        self.emit(gateway_id, connection=pb.ConnectionEvent(state=state, detail=detail))

    def anomaly(self, gateway_id: str, type_: str, phase: str, detail: str = "") -> None:
        self.emit(gateway_id, anomaly=pb.AnomalyEvent(type=type_, phase=phase, detail=detail))

    def drop(self, gateway_id: str, reason: str, count: int) -> None:
        if count:
            self.emit(gateway_id, drop=pb.DropEvent(reason=reason, count=count))

    def command(
        self,
        gateway_id: str,
        command_id: str,
        type_: str,
        outcome: str,
        ack_status: str = "",
        message: str = "",
    ) -> None:
        self.emit(
            gateway_id,
            command=pb.CommandEvent(
                command_id=command_id,
                type=type_ if isinstance(type_, str) else "",
                outcome=outcome,
                ack_status=ack_status,
                message=message or "",
            ),
        )
