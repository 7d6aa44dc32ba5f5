"""The one module that touches trio-asyncio (DESIGN §4).

Rules it encodes:

1. `run(main)` opens the trio-asyncio loop first; every nursery lives inside it.
2. An adapter operation is *one* asyncio coroutine that owns its resources
   (acquire → use → release; fetch → ack) and is called from Trio with `aio(...)`.
3. asyncio clean-up (`close()`, `drain()`, `__aexit__`) runs through `shielded(...)`:
   inside a shielded, time-limited Trio scope, so a cancelled caller cannot leak a
   pooled connection or leave `pool.close()` hanging.
4. nats-py over TLS makes asyncio log "returning true from eof_received() has no
   effect when using ssl" on every disconnect; `quiet_asyncio_noise()` filters it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, ParamSpec, TypeVar

import trio
import trio_asyncio

T = TypeVar("T")
P = ParamSpec("P")

open_loop = trio_asyncio.open_loop

CLEANUP_TIMEOUT_S = 10.0


def aio(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Wrap an asyncio coroutine function so that Trio can await it."""
    return trio_asyncio.aio_as_trio(fn)  # type: ignore[no-any-return]


async def call(fn: Callable[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run one asyncio coroutine function from Trio."""
    return await trio_asyncio.aio_as_trio(fn)(*args, **kwargs)  # type: ignore[no-any-return]


async def shielded(
    fn: Callable[..., Awaitable[Any]], *args: Any, timeout: float = CLEANUP_TIMEOUT_S
) -> bool:
    """Run asyncio clean-up shielded from the caller's cancellation but bounded in
    time. Returns False when it did not finish within `timeout` (or raised), so that
    shutdown never hangs on a dead peer."""
    with trio.CancelScope(shield=True), trio.move_on_after(timeout) as scope:
        try:
            await trio_asyncio.aio_as_trio(fn)(*args)
        except (Exception, asyncio.CancelledError):
            # asyncio.CancelledError is a BaseException: an asyncio library that
            # cancels its own inner task during clean-up (nats-py's drain does) must
            # not turn into a crash of the daemon.
            logging.getLogger("notip.bridge").warning("asyncio clean-up failed", exc_info=True)
            return False
    return not scope.cancelled_caught


class _EofNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received" not in record.getMessage()


_noise_filter = _EofNoise()


def quiet_asyncio_noise() -> None:
    logging.getLogger("asyncio").addFilter(_noise_filter)


@asynccontextmanager
async def loop():  # type: ignore[no-untyped-def]
    """`async with bridge.loop():` — the asyncio loop every daemon runs inside."""
    quiet_asyncio_noise()
    async with trio_asyncio.open_loop() as lp:
        yield lp


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Entry point of every daemon: Trio, with the asyncio loop opened first."""

    async def _main() -> T:
        async with loop():
            return await main()

    return trio.run(_main)
