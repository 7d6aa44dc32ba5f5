"""Closing a gateway's open connections through the system account
(docs/nats-auth.md#decommission-on-the-wire): CONNZ on every server finds them by user
name (`gw:{tenantId}:{gatewayId}`, the user JWT's `name`), then KICK on the server
that holds each one. A kicked nats-py client reconnects, and its new connection goes
through the callout again (and is refused once the gateway is decommissioned).

`$SYS.REQ.SERVER.PING.CONNZ` is answered once by every server of the cluster, and
nobody says how many there are: replies are gathered until none came for `quiet_s`.
The parsing is sans-io (unit-tested); the gathering is one asyncio coroutine that owns
its subscription, called through the bridge.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.aio.client import Client as NATS

from notip import bridge, contracts

log = logging.getLogger("notip.natsauth.kick")

#: How long to wait for the first server's CONNZ answer.
FIRST_REPLY_S = 2.0
#: Then how long without another answer before the gathering ends.
QUIET_S = 0.25
#: Connections per CONNZ page (the server's default limit).
PAGE = 1024
MAX_PAGES = 1000
KICK_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Connection:
    server_id: str
    cid: int
    user: str


@dataclass(frozen=True)
class ConnzPage:
    server_id: str
    total: int
    offset: int
    connections: tuple[Connection, ...]

    @property
    def complete(self) -> bool:
        """This server has nothing beyond this page."""
        return self.offset + len(self.connections) >= self.total


def connz_request(*, user: str | None, offset: int = 0, limit: int = PAGE) -> bytes:
    """CONNZ options: open connections with their authorized user, one user's or all."""
    options: dict[str, Any] = {"auth": True, "offset": offset, "limit": limit}
    if user is not None:
        options["user"] = user
    return json.dumps(options).encode()


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_connz(data: bytes) -> ConnzPage | None:
    """One server's CONNZ answer (`{"server": {"id"}, "data": {"total", "offset",
    "connections": [{"cid", "authorized_user"}]}}`); None for an error or nonsense."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict) or obj.get("error") is not None:
        return None
    server, body = obj.get("server"), obj.get("data")
    if not isinstance(server, dict) or not isinstance(body, dict):
        return None
    server_id = server.get("id")
    if not isinstance(server_id, str) or not server_id:
        return None
    conns: list[Connection] = []
    for item in body.get("connections") or []:
        if not isinstance(item, dict):
            continue
        cid, user = _int(item.get("cid")), item.get("authorized_user")
        if cid is not None and isinstance(user, str):
            conns.append(Connection(server_id, cid, user))
    total = _int(body.get("total"))
    offset = _int(body.get("offset")) or 0
    return ConnzPage(
        server_id, len(conns) + offset if total is None else total, offset, tuple(conns)
    )


def kick_request(cid: int) -> bytes:
    return json.dumps({"cid": cid}).encode()


def kick_succeeded(data: bytes) -> bool:
    """A KICK answer without an error (an already closed connection answers 404)."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(obj, dict) and obj.get("error") is None


# -- adapters (asyncio side, one coroutine each) -------------------------------------------


async def _gather(
    nc: NATS, subject: str, payload: bytes, first_s: float, quiet_s: float
) -> list[bytes]:
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    try:
        await nc.publish(subject, payload, reply=inbox)
        replies: list[bytes] = []
        wait = first_s
        while True:
            try:
                msg = await sub.next_msg(timeout=wait)
            except TimeoutError:  # nats.errors.TimeoutError is one too
                return replies
            replies.append(bytes(msg.data))
            wait = quiet_s
    finally:
        await sub.unsubscribe()


async def connections(
    nc: NATS,
    *,
    user: str | None = None,
    first_s: float = FIRST_REPLY_S,
    quiet_s: float = QUIET_S,
    page: int = PAGE,
) -> list[Connection]:
    """Every open connection of `user` (None: of every user) on every server."""
    found: list[Connection] = []
    for n in range(MAX_PAGES):
        payload = connz_request(user=user, offset=n * page, limit=page)
        replies = await bridge.call(_gather, nc, contracts.SYS_CONNZ_ALL, payload, first_s, quiet_s)
        pages = [p for p in map(parse_connz, replies) if p is not None]
        for p in pages:
            found.extend(p.connections)
        if all(p.complete for p in pages):
            break
    return found


async def kick(nc: NATS, conn: Connection, timeout: float = KICK_TIMEOUT_S) -> bool:
    """Close one connection; False when the server refused or did not answer."""
    try:
        msg = await bridge.call(
            nc.request, contracts.sys_kick(conn.server_id), kick_request(conn.cid), timeout=timeout
        )
    except (nats.errors.Error, TimeoutError) as exc:
        log.warning("kick not confirmed: %s", exc, extra={"cid": conn.cid, "user": conn.user})
        return False
    return kick_succeeded(bytes(msg.data))
