"""The one way every long-running `notip` command runs: signals in, exit codes out.

`run_daemon(name, prepare)` is what `notip consumer`, `simulator`, `mgmt`,
`provisioning`, `dev` and `tail` call. `prepare()` reads the configuration and returns
the async main; the runner then

1. catches SIGTERM and SIGINT from the first instruction on (a signal that lands while
   the configuration is still being read stops the command before it starts);
2. opens the trio-asyncio loop (`bridge.loop`) and runs main inside a cancel scope;
3. turns the first SIGTERM or SIGINT into a cancellation of that scope: the service
   shuts down the way it does on any cancellation (bounded, shielded clean-up);
4. forces the exit on a second signal during that shutdown;
5. maps the outcome to the exit code.

| exit | when |
|---|---|
| 0 | main returned, or a SIGTERM/SIGINT stopped it gracefully |
| 1 | main crashed: one structured log line (`"command crashed"`) with the error |
| 2 | configuration error: one message on stderr naming every bad setting |
| 128 + signal | a second signal forced the exit during shutdown (143 SIGTERM, 130 SIGINT) |

Errors arrive from Trio as exception groups (the loop, nurseries); the runner looks
at the leaves, so a `KeyboardInterrupt` or a configuration error nested in a group is
classified like a bare one.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import trio

from notip import bridge
from notip.config import ConfigError

log = logging.getLogger("notip.runner")

EXIT_OK = 0
EXIT_CRASH = 1
EXIT_CONFIG = 2
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

Main = Callable[[], Awaitable[object]]


@dataclass
class _Outcome:
    signals: list[int] = field(default_factory=list)


def leaves(exc: BaseException) -> Iterator[BaseException]:
    """The non-group exceptions inside `exc` (itself when it is not a group)."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc


def exit_code(
    exc: BaseException | None,
    *,
    signalled: bool,
    config_errors: tuple[type[BaseException], ...] = (ConfigError,),
) -> int:
    """The exit code of a run that ended with `exc` (None: returned normally)."""
    if exc is None:
        return EXIT_OK
    found = list(leaves(exc))
    if any(isinstance(e, config_errors) for e in found):
        return EXIT_CONFIG
    if all(isinstance(e, (KeyboardInterrupt, trio.Cancelled)) for e in found):
        return EXIT_OK if signalled or isinstance(found[0], KeyboardInterrupt) else EXIT_CRASH
    return EXIT_CRASH


def _describe(exc: BaseException) -> str:
    return "; ".join(
        f"{type(e).__name__}: {e}"
        for e in leaves(exc)
        if not isinstance(e, (trio.Cancelled, KeyboardInterrupt))
    )


async def _supervise(main: Main, outcome: _Outcome, name: str) -> None:
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        service = trio.CancelScope()
        if outcome.signals:  # arrived while the configuration was being read
            service.cancel()

        async def watch() -> None:
            async for signum in signals:
                outcome.signals.append(signum)
                sig = signal.Signals(signum).name
                if len(outcome.signals) == 1:
                    log.info("signal received; stopping", extra={"signal": sig, "command": name})
                    service.cancel()
                else:
                    log.warning(
                        "second signal during shutdown; exiting now",
                        extra={"signal": sig, "command": name},
                    )
                    logging.shutdown()
                    os._exit(128 + signum)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            try:
                with service:
                    async with bridge.loop():
                        await main()
            finally:
                nursery.cancel_scope.cancel()


def run_daemon(
    name: str,
    prepare: Callable[[], Main],
    *,
    config_errors: tuple[type[BaseException], ...] = (ConfigError,),
) -> int:
    """Run `notip NAME` to completion and return its exit code (see the module doc)."""
    outcome = _Outcome()

    def early(signum: int, frame: FrameType | None) -> None:
        outcome.signals.append(signum)

    previous: dict[int, Any] = {s: signal.signal(s, early) for s in STOP_SIGNALS}
    try:
        try:
            main = prepare()
        except config_errors as exc:
            print(f"notip {name}: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        if outcome.signals:
            return EXIT_OK
        try:
            trio.run(_supervise, main, outcome, name)
        except BaseException as exc:  # classified by exit_code, never re-raised
            code = exit_code(exc, signalled=bool(outcome.signals), config_errors=config_errors)
            if code == EXIT_CONFIG:
                first = next(e for e in leaves(exc) if isinstance(e, config_errors))
                print(f"notip {name}: {first}", file=sys.stderr)
            elif code == EXIT_CRASH:
                log.error(
                    "command crashed",
                    extra={"command": name, "error": _describe(exc)},
                    exc_info=exc,
                )
            return code
        return EXIT_OK
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
