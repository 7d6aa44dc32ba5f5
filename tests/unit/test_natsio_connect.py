"""natsio.connect counts an attempt only once the server confirmed it.

nats-py 2.16 sends CONNECT + PING and accepts any first answer. A nats-server waiting
on a slow auth callout sends its own first PING (about 2 s in) before the PONG, and
`nats.connect` then returns without error while the client is still CONNECTING; the
server closes it at its auth timeout. A scripted server on loopback plays that
exchange (the real one needs the auth service to be slow): first attempt PING, second
attempt PONG."""

from __future__ import annotations

import json
import logging
import ssl
from functools import partial

import pytest
import trio

from notip import natsio
from tests.waiting import eventually

INFO = {
    "server_id": "SCRIPTED",
    "server_name": "scripted",
    "version": "2.15.1",
    "proto": 1,
    "max_payload": 1048576,
    "headers": True,
}


class ScriptedServer:
    """Answers the n-th client's CONNECT + PING with `answers[n]` (then sends `then`),
    and PONGs its later PINGs until it goes away."""

    def __init__(self, answers: list[bytes], then: bytes = b"") -> None:
        self.answers = answers
        self.then = then
        self.attempts = 0
        self.connects: list[dict[str, object]] = []

    async def handle(self, stream: trio.SocketStream) -> None:
        n = self.attempts
        self.attempts += 1
        await stream.send_all(b"INFO " + json.dumps(INFO).encode() + b"\r\n")
        buf = b""
        answered = False
        async for chunk in stream:
            buf += chunk
            while b"\r\n" in buf:
                line, buf = buf.split(b"\r\n", 1)
                if line.startswith(b"CONNECT "):
                    self.connects.append(json.loads(line[len(b"CONNECT ") :]))
                elif line == b"PING" and answered:
                    await stream.send_all(b"PONG\r\n")
                elif line == b"PING":
                    await stream.send_all(self.answers[n] + self.then)
                    answered = True


async def test_a_connection_the_server_never_confirmed_is_retried(aio_loop: None) -> None:
    server = ScriptedServer([b"PING\r\n", b"PONG\r\n"])
    errors: list[BaseException] = []
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        with trio.fail_after(10):
            nc = await natsio.connect(
                f"nats://127.0.0.1:{port}",
                ssl.create_default_context(),  # unused: the scripted INFO asks for no TLS
                name="probe",
                events=natsio.ConnectionEvents(on_error=errors.append),
                inbox_prefix="_INBOX.probe",
            )
        try:
            assert nc.is_connected
            assert server.attempts == 2
            assert len(errors) == 1 and isinstance(errors[0], natsio.NotConfirmed)
            assert nc.new_inbox().startswith("_INBOX.probe.")
        finally:
            await natsio.drain(nc)
        nursery.cancel_scope.cancel()


async def test_a_failed_first_attempt_is_retried_on_a_fresh_client_by_our_backoff(
    aio_loop: None, caplog: pytest.LogCaptureFixture
) -> None:
    """nats-py would retry a failed first attempt itself, forever and silently, on the
    same client; `connect` takes the retry over (a fresh client, its backoff, a
    warning), so a gateway can never stay stuck in that loop unseen."""
    server = ScriptedServer([b"", b"PONG\r\n"])  # the first attempt is never answered
    errors: list[BaseException] = []
    with caplog.at_level(logging.WARNING, logger="notip.nats"):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1")
            )
            port = listeners[0].socket.getsockname()[1]
            with trio.fail_after(30):
                nc = await natsio.connect(
                    f"nats://127.0.0.1:{port}",
                    ssl.create_default_context(),
                    name="probe",
                    events=natsio.ConnectionEvents(on_error=errors.append),
                    connect_timeout=1,
                )
            try:
                assert nc.is_connected
                assert server.attempts == 2
            finally:
                await natsio.drain(nc)
            nursery.cancel_scope.cancel()
    assert len(errors) == 1 and isinstance(errors[0], TimeoutError)
    failed = [r for r in caplog.records if r.getMessage().startswith("nats connect failed")]
    assert len(failed) == 1


async def test_a_single_attempt_the_server_never_confirmed_fails(aio_loop: None) -> None:
    server = ScriptedServer([b"PING\r\n"])
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        with trio.fail_after(10), pytest.raises(natsio.NotConfirmed):
            await natsio.connect_once(
                f"nats://127.0.0.1:{port}", ssl.create_default_context(), name="probe"
            )
        nursery.cancel_scope.cancel()


async def test_permission_violations_warn_once_per_connection(
    aio_loop: None, caplog: pytest.LogCaptureFixture
) -> None:
    """The server refuses a publish with -ERR and keeps the connection: each one
    reaches the caller (`on_error`), only the first is a warning."""
    refusal = b"-ERR 'Permissions Violation for Publish to \"x.y\"'\r\n"
    server = ScriptedServer([b"PONG\r\n"], then=refusal * 3)
    errors: list[BaseException] = []
    with caplog.at_level(logging.DEBUG, logger="notip.nats"):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1")
            )
            port = listeners[0].socket.getsockname()[1]
            with trio.fail_after(10):
                nc = await natsio.connect(
                    f"nats://127.0.0.1:{port}",
                    ssl.create_default_context(),
                    name="probe",
                    events=natsio.ConnectionEvents(on_error=errors.append),
                )
            try:
                await eventually(lambda: len(errors) == 3)
                assert nc.is_connected
            finally:
                await natsio.drain(nc)
            nursery.cancel_scope.cancel()
    assert all(natsio.is_permission_violation(e) for e in errors)
    assert str(errors[0]) == 'nats: permissions violation for publish to "x.y"'
    levels = [
        r.levelno
        for r in caplog.records
        if r.name == "notip.nats" and "permissions violation" in r.getMessage()
    ]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG]
