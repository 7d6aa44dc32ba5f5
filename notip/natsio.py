"""NATS adapter shared by every daemon: mTLS connections, the stream bootstrap of
docs/contracts.md#streams, and request-reply with the callers' retry policy (docs/contracts.md#request-reply-policy).

Connections are nats-py objects living on the trio-asyncio loop; everything here is
called from Trio. The rest of the adapter layer, one home each: JetStream publishes,
durable consumers and pulls in `notip.jetstream`, the asyncio→Trio hand-off in
`notip.handoff`, retry delays in `notip.backoff`; subjects and the stream table come
from `notip.contracts`.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
import trio
from nats.aio.client import Client
from nats.js import api

from notip import bridge, contracts, guards
from notip.backoff import Backoff, retry

#: The connection type every caller annotates with (`natsio.NATS`): an assignment,
#: not an import alias, so that it is exported under mypy's strict no-implicit-reexport.
NATS = Client

log = logging.getLogger("notip.nats")

# -- TLS ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path | None = None
    key: Path | None = None


def tls_context(files: TlsFiles) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(files.ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if files.cert is not None and files.key is not None:
        ctx.load_cert_chain(str(files.cert), str(files.key))
    return ctx


# -- connections ----------------------------------------------------------------------


@dataclass
class ConnectionEvents:
    """Hooks a daemon plugs its metrics into; called on the asyncio side, so they
    must be plain and quick (counter increments)."""

    on_disconnect: Callable[[], None] = lambda: None
    on_reconnect: Callable[[], None] = lambda: None
    on_error: Callable[[BaseException], None] = lambda exc: None


RECONNECT_WAIT_S = 2.0
CONNECT_BACKOFF_S = 0.2
CONNECT_BACKOFF_CAP_S = 10.0


class NotConfirmed(ConnectionError):
    """`nats.connect` returned without raising, but the server never confirmed the
    connection. nats-py 2.16 sends CONNECT + PING and accepts any first answer: when
    the server's own first PING (about 2 s in) comes before its PONG, as when an auth
    callout decides slowly, `connect` returns with the client still CONNECTING, and the
    server closes it at its auth timeout. A ConnectionError, so that it is retried like
    any failed attempt."""


_CONNECT_ERRORS = (OSError, ssl.SSLError, nats.errors.Error, TimeoutError)

#: How nats-py words a refused publish or subscription (it lower-cases the server's
#: `-ERR 'Permissions Violation for …'` and hands it to the error callback).
PERMISSIONS_VIOLATION = "permissions violation"


def is_permission_violation(exc: BaseException) -> bool:
    """The server refused one publish or subscription of a connection it keeps open."""
    return isinstance(exc, nats.errors.Error) and PERMISSIONS_VIOLATION in str(exc).lower()


def servers(url: str) -> list[str]:
    """nats-py's server list from a NATS_URL: one URL or a cluster's nodes,
    comma-separated (parsed by `notip.config.parse_nats_urls`, the one parse). nats-py
    tries them in random order and, reconnecting, moves on to the next node."""
    from notip.config import parse_nats_urls  # config imports this module

    return parse_nats_urls(url)


def _confirmed(nc: NATS) -> None:
    if not nc.is_connected:
        raise NotConfirmed("the server did not confirm the connection (no PONG to CONNECT)")


async def connect(
    url: str,
    tls: ssl.SSLContext,
    *,
    name: str,
    events: ConnectionEvents | None = None,
    connect_timeout: float = 10.0,
    reconnect_wait: float = RECONNECT_WAIT_S,
    pending_size: int | None = None,
    inbox_prefix: str | None = None,
    nkeys_seed: Path | None = None,
) -> NATS:
    """Connect with mTLS and reconnect forever once connected. The first connection is
    retried here, from Trio, with capped exponential backoff until the caller's
    cancel scope gives up; an attempt counts only once the server confirmed it
    (`NotConfirmed`). `inbox_prefix` replaces `_INBOX` for every reply subject of the
    connection (requests, JetStream PubAcks, pull replies): a client whose
    permissions only let it subscribe under its own prefix needs it. `nkeys_seed` (a
    seed file) authenticates as that nkey user rather than by the certificate (the
    NATS auth service's system-account user)."""
    ev = events or ConnectionEvents()
    label = {"connection": name}

    current: list[NATS] = []
    # While the first connection is being made, nats-py would retry a failed attempt
    # itself, forever (max_reconnect_attempts=-1), on the same client and without
    # telling us: under load some gateways never came out of that loop. So an error
    # during the first attempt is raised out of `nc.connect` (nats-py awaits the
    # error callback inside its except blocks), and `retry` below makes a fresh client
    # with its own backoff; once connected, reconnects are nats-py's again.
    first_attempt = [True]
    # A refused publish repeats at the publisher's pace while the connection stays
    # up: one warning per connection, the rest at debug (callers count them all
    # through `on_error`).
    permission_warned = False

    async def disconnected() -> None:
        if current and (current[0].is_draining or current[0].is_closed):
            return  # our own shutdown, not an outage
        log.warning("nats disconnected", extra=label)
        ev.on_disconnect()

    async def reconnected() -> None:
        log.info("nats reconnected", extra=label)
        ev.on_reconnect()

    async def error(exc: Exception) -> None:
        nonlocal permission_warned
        if first_attempt[0] and not (current and current[0].is_connected):
            if isinstance(exc, _CONNECT_ERRORS):
                raise exc
            raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc
        if is_permission_violation(exc):
            if permission_warned:
                log.debug("nats permissions violation: %s", exc, extra=label)
            else:
                permission_warned = True
                log.warning(
                    "nats permissions violation: %s (further ones on this connection are "
                    "logged at debug level)",
                    exc,
                    extra=label,
                )
        else:
            log.warning("nats error: %s", exc, extra=label)
        ev.on_error(exc)

    async def closed() -> None:
        log.info("nats connection closed", extra=label)

    options: dict[str, Any] = {
        "servers": servers(url),
        "tls": tls,
        "name": name,
        "connect_timeout": max(1, int(connect_timeout)),
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": reconnect_wait,
        "disconnected_cb": disconnected,
        "reconnected_cb": reconnected,
        "error_cb": error,
        "closed_cb": closed,
    }
    if pending_size is not None:
        options["pending_size"] = pending_size
    if inbox_prefix is not None:
        options["inbox_prefix"] = inbox_prefix
    if nkeys_seed is not None:
        options["nkeys_seed"] = str(nkeys_seed)

    # Bounds one attempt even if no stage of it fails on its own (each of nats-py's
    # stages — TCP, TLS, INFO/CONNECT/PONG — is bounded by connect_timeout).
    attempt_s = 3 * options["connect_timeout"] + 1.0

    async def attempt() -> NATS:
        nc = NATS()
        current[:] = [nc]
        first_attempt[0] = True
        try:
            with trio.fail_after(attempt_s):
                await bridge.call(nc.connect, **options)
            _confirmed(nc)
        except trio.TooSlowError:
            first_attempt[0] = False  # an error while closing is only logged
            await bridge.shielded(nc.close, timeout=2)
            raise TimeoutError(f"no connection within {attempt_s:g}s") from None
        except _CONNECT_ERRORS:
            first_attempt[0] = False
            await bridge.shielded(nc.close, timeout=2)
            raise
        finally:
            first_attempt[0] = False
        log.info("nats connected", extra=label)
        return nc

    def failed(exc: BaseException, delay: float) -> None:
        log.warning("nats connect failed (%s); retrying in %.1fs", exc, delay, extra=label)
        ev.on_error(exc)

    return await retry(
        attempt,
        backoff=Backoff(CONNECT_BACKOFF_S, CONNECT_BACKOFF_CAP_S),
        retry_on=_CONNECT_ERRORS,
        on_retry=failed,
    )


async def connect_once(url: str, tls: ssl.SSLContext, *, name: str, timeout: float = 5) -> NATS:
    """A single connection attempt, no reconnects: for checks and tests."""
    nc = NATS()

    async def quiet(exc: Exception) -> None:
        log.debug("nats error: %s", exc)

    await bridge.call(
        nc.connect,
        error_cb=quiet,
        servers=servers(url),
        tls=tls,
        name=name,
        connect_timeout=max(1, int(timeout)),
        allow_reconnect=False,
        max_reconnect_attempts=0,
    )
    try:
        _confirmed(nc)
    except NotConfirmed:
        await bridge.shielded(nc.close, timeout=2)
        raise
    return nc


async def _drain(nc: NATS) -> None:
    # nats-py's fetch() takes messages off a pull subscription's queue without
    # task_done(), so drain() would wait forever on that queue's join(). What such a
    # subscription still holds is unclaimed pull results (un-acked messages are
    # redelivered): unsubscribe it first. notip's own pulls (notip.jetstream.pull) do
    # not use fetch(); this keeps drain() safe for any other pull subscription (tests,
    # benchmarks). nats-py has no public view of a subscription's queue: private
    # attributes, verified with nats-py 2.16.0 on CPython 3.11.7 (Client._subs,
    # Subscription._pending_queue and _cb, asyncio.Queue._unfinished_tasks). A missing one
    # skips this step, visibly (guards.missing).
    subs = getattr(nc, "_subs", None)
    if not isinstance(subs, dict):
        guards.missing(guards.NATS_SUBSCRIPTION_QUEUE, "nats Client._subs not found")
        subs = {}
    for sub in list(subs.values()):
        queue = getattr(sub, "_pending_queue", None)
        unfinished = getattr(queue, "_unfinished_tasks", None)
        if queue is None or unfinished is None:
            guards.missing(
                guards.NATS_SUBSCRIPTION_QUEUE, "Subscription._pending_queue._unfinished_tasks"
            )
            continue
        # Without a callback nobody works the queue during drain: a pull result that
        # arrived after fetch() gave up (a late 408, a message) stays there, and
        # join() would wait the whole drain timeout for it.
        no_worker = getattr(sub, "_cb", True) is None
        if unfinished > queue.qsize() or (unfinished and no_worker):
            await sub.unsubscribe()
    await nc.drain()


async def drain(nc: NATS, timeout: float = 10.0) -> None:
    """Flush subscriptions and pending publishes, then close; never hangs shutdown."""
    if nc.is_closed:
        return
    if not nc.is_connected or not await bridge.shielded(_drain, nc, timeout=timeout):
        await bridge.shielded(nc.close, timeout=2)


@asynccontextmanager
async def open_connection(
    url: str, tls: ssl.SSLContext, *, name: str, **kwargs: Any
) -> AsyncIterator[NATS]:
    nc = await connect(url, tls, name=name, **kwargs)
    try:
        yield nc
    finally:
        await drain(nc)


# -- streams (docs/contracts.md#streams) ---------------------------------------------------------


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    max_age_s: float  # 0 = unlimited
    #: Copies kept by a cluster (docs/operations.md#nats-cluster): 1 on a single
    #: server, 3 on a three-node cluster (`notip nats init-streams --replicas`).
    replicas: int = 1

    def config(self) -> api.StreamConfig:
        # The dedupe window may not exceed max_age; 2 min is the server's default.
        window = 120.0 if self.max_age_s == 0 else min(120.0, self.max_age_s)
        return api.StreamConfig(
            name=self.name,
            subjects=list(self.subjects),
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            num_replicas=self.replicas,
            discard=api.DiscardPolicy.OLD,
            max_age=self.max_age_s,
            duplicate_window=window,
        )


#: The platform's streams: names, subjects and ages from the contract's table.
STREAMS: tuple[StreamSpec, ...] = tuple(
    StreamSpec(s.name, s.subjects, s.max_age_s) for s in contracts.STREAMS
)


def _differs(have: api.StreamConfig, want: api.StreamConfig) -> bool:
    return (
        sorted(have.subjects or []) != sorted(want.subjects or [])
        or have.retention != want.retention
        or have.storage != want.storage
        or (have.num_replicas or 1) != want.num_replicas
        or have.discard != want.discard
        or abs((have.max_age or 0) - (want.max_age or 0)) > 1e-3
        or abs((have.duplicate_window or 0) - (want.duplicate_window or 0)) > 1e-3
    )


def with_replicas(replicas: int, streams: Sequence[StreamSpec] = STREAMS) -> list[StreamSpec]:
    if replicas < 1:
        raise ValueError("replicas must be >= 1")
    return [replace(spec, replicas=replicas) for spec in streams]


async def init_streams(
    nc: NATS, streams: Sequence[StreamSpec] = STREAMS, *, replicas: int | None = None
) -> dict[str, str]:
    """Create or update the platform's streams; a second run changes nothing.
    `replicas` overrides every spec's (the stream update moves a stream from R1 to R3
    and back; nats-server copies the data). Returns {stream: "created" | "updated" |
    "unchanged"}."""
    if replicas is not None:
        streams = with_replicas(replicas, streams)

    async def run() -> dict[str, str]:
        js = nc.jetstream()
        result: dict[str, str] = {}
        for spec in streams:
            want = spec.config()
            try:
                info = await js.stream_info(spec.name)
            except nats.js.errors.NotFoundError:
                await js.add_stream(want)
                result[spec.name] = "created"
                continue
            if _differs(info.config, want):
                await js.update_stream(want)
                result[spec.name] = "updated"
            else:
                result[spec.name] = "unchanged"
        return result

    return await bridge.call(run)


async def bootstrap_streams(
    url: str,
    files: TlsFiles,
    *,
    name: str = "notip-init-streams",
    timeout: float = 60.0,
    replicas: int = 1,
) -> dict[str, str]:
    """Connect (waiting up to `timeout` for the server), create or update the streams
    with `replicas` copies each, disconnect: what `notip nats init-streams`, `notip
    dev` and the tests run."""
    with trio.fail_after(timeout):
        nc = await connect(url, tls_context(files), name=name)
    try:
        return await init_streams(nc, replicas=replicas)
    finally:
        await drain(nc)


async def stream_leader(nc: NATS, stream: str) -> str | None:
    """The server name of the node that leads `stream` ($JS.API.STREAM.INFO →
    cluster.leader); None on a single server or while the stream has no leader."""
    info = await bridge.call(nc.jetstream().stream_info, stream)
    return info.cluster.leader if info.cluster is not None else None


# -- request-reply (caller policy: docs/contracts.md#request-reply-policy) ---------------------------------------

REQUEST_TIMEOUT_S = 5.0
REQUEST_BACKOFF_S: tuple[float, ...] = (1.0, 2.0, 4.0)


class RequestFailed(Exception):
    """Every attempt of a request timed out or found no responders."""


_TRANSPORT_ERRORS = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
)


async def request(
    nc: NATS,
    subject: str,
    payload: bytes,
    *,
    timeout: float = REQUEST_TIMEOUT_S,
    backoff: Sequence[float] = REQUEST_BACKOFF_S,
) -> bytes:
    """Request-reply retried only on transport failures (timeout, no responders, the
    connection closed or reconnecting), sleeping `backoff[i]` after failure i."""

    async def attempt() -> bytes:
        msg = await bridge.call(nc.request, subject, payload, timeout=timeout)
        return bytes(msg.data)

    try:
        return await retry(attempt, backoff=backoff, retry_on=_TRANSPORT_ERRORS)
    except _TRANSPORT_ERRORS as exc:
        raise RequestFailed(
            f"{subject}: {type(exc).__name__} after {len(backoff) + 1} attempts"
        ) from exc
