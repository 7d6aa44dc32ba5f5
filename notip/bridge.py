"""The one module that touches trio-asyncio (docs/design.md#the-trio-asyncio-bridge).

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
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, ParamSpec, TypeVar

import sniffio
import trio
import trio_asyncio

from notip import guards

try:  # private: see _install_asyncgen_fix
    from trio_asyncio._base import AsyncGeneratorDispatcher
except ImportError:  # pragma: no cover - only with another trio-asyncio
    AsyncGeneratorDispatcher = None

T = TypeVar("T")
P = ParamSpec("P")

open_loop = trio_asyncio.open_loop

CLEANUP_TIMEOUT_S = 10.0


def aio(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Wrap an asyncio coroutine function so that Trio can await it."""
    wrapped: Callable[P, Awaitable[T]] = trio_asyncio.aio_as_trio(fn)
    return wrapped


async def call(fn: Callable[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run one asyncio coroutine function from Trio."""
    result: T = await trio_asyncio.aio_as_trio(fn)(*args, **kwargs)
    return result


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


# grpc.aio's request streams (reflection is a bidirectional stream) are Cython async
# generators without `ag_frame`; trio-asyncio's async-generator hook hands them to
# Trio's, which reads `agen.ag_frame` and crashes. Frame-less generators first
# iterated on the asyncio side go straight to the asyncio loop's hooks instead. The
# hooks are bound when the loop opens, so this runs before `open_loop`.
# trio-asyncio and asyncio have no public way to do it: this patches the private
# `trio_asyncio._base.AsyncGeneratorDispatcher.firstiter/finalizer` and calls the
# loop's private `_asyncgen_firstiter_hook/_asyncgen_finalizer_hook`; verified with
# trio-asyncio 0.16.0, trio 0.35.0 and CPython 3.11.7. If any is missing the fix is
# skipped (grpc reflection may then crash the loop), visibly: guards.missing.
_frameless_agens: dict[int, asyncio.AbstractEventLoop] = {}


def _install_asyncgen_fix() -> None:
    if AsyncGeneratorDispatcher is None or not all(
        hasattr(AsyncGeneratorDispatcher, name) for name in ("firstiter", "finalizer")
    ):
        guards.missing(
            guards.TRIO_ASYNCIO_ASYNCGEN_HOOKS, "trio_asyncio._base.AsyncGeneratorDispatcher"
        )
        return
    if not all(
        hasattr(asyncio.BaseEventLoop, name)
        for name in ("_asyncgen_firstiter_hook", "_asyncgen_finalizer_hook")
    ):
        guards.missing(guards.TRIO_ASYNCIO_ASYNCGEN_HOOKS, "asyncio loop _asyncgen_*_hook methods")
        return
    if getattr(AsyncGeneratorDispatcher, "_notip_frameless_fix", False):
        return
    original_firstiter = AsyncGeneratorDispatcher.firstiter
    original_finalizer = AsyncGeneratorDispatcher.finalizer

    def firstiter(self: AsyncGeneratorDispatcher, agen: Any) -> Any:
        if not hasattr(agen, "ag_frame"):
            try:
                library = sniffio.current_async_library()
            except sniffio.AsyncLibraryNotFoundError:
                library = None
            if library == "asyncio":
                loop = asyncio.get_running_loop()
                _frameless_agens[id(agen)] = loop
                # Private asyncio hooks, checked above (guards.TRIO_ASYNCIO_ASYNCGEN_HOOKS);
                # typeshed does not declare them.
                return loop._asyncgen_firstiter_hook(agen)  # type: ignore[attr-defined]  # noqa: SLF001
        return original_firstiter(self, agen)

    def finalizer(self: AsyncGeneratorDispatcher, agen: Any) -> Any:
        loop = _frameless_agens.pop(id(agen), None)
        if loop is not None:
            if loop.is_closed():
                return None
            return loop._asyncgen_finalizer_hook(agen)  # type: ignore[attr-defined]  # noqa: SLF001
        return original_finalizer(self, agen)

    AsyncGeneratorDispatcher.firstiter = firstiter
    AsyncGeneratorDispatcher.finalizer = finalizer
    AsyncGeneratorDispatcher._notip_frameless_fix = True  # noqa: SLF001  # our own marker: patch once


class _EofNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received" not in record.getMessage()


_noise_filter = _EofNoise()


def quiet_asyncio_noise() -> None:
    logging.getLogger("asyncio").addFilter(_noise_filter)


@asynccontextmanager
async def loop() -> AsyncIterator[asyncio.AbstractEventLoop]:
    """`async with bridge.loop():` — the asyncio loop every daemon runs inside."""
    quiet_asyncio_noise()
    _install_asyncgen_fix()
    async with trio_asyncio.open_loop() as lp:
        lp.set_exception_handler(_report_orphaned_error)
        yield lp


def _report_orphaned_error(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's report of an error nobody awaited (e.g. "exception was never
    retrieved" from a task an asyncio library orphaned, such as nats-py's drain
    gathering its subscriptions after a timeout). trio-asyncio's default handler raises
    it into the loop's nursery, which would crash the whole daemon over a library's
    bookkeeping: log it (asyncio's own format, on the `asyncio` logger) instead. Our
    own asyncio work never goes unawaited: every adapter call is awaited by `call`."""
    # trio-asyncio's loop is a BaseEventLoop (whose handler it overrides to raise);
    # asyncio types a handler's loop as AbstractEventLoop.
    asyncio.BaseEventLoop.default_exception_handler(lp, context)  # type: ignore[arg-type]


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Entry point of every daemon: Trio, with the asyncio loop opened first."""

    async def _main() -> T:
        async with loop():
            return await main()

    return trio.run(_main)
