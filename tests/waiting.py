"""How tests wait: for a condition, with a deadline — never for a fixed time.

- `eventually(check)` polls until `check()` (sync or async) returns something truthy
  and returns it; past the deadline it fails naming what it awaited and the last value
  it saw.
- `stays_true(check, for_s=...)` is the one bounded wait a test may do: proving that
  something does *not* happen (silence) has no event to wait for, so it takes the
  whole window. The name tells the reader that the wait is the point.

Deadlines are Trio cancel scopes, so they follow Trio's clock (MockClock included).
"""

from __future__ import annotations

import ast
import inspect
import linecache
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

import trio

T = TypeVar("T")

#: Default deadline of `eventually`, in seconds: generous, it only bounds a failure.
TIMEOUT_S = 20.0
#: Default polling period, in seconds.
EVERY_S = 0.05


class NotMet(AssertionError, trio.TooSlowError):
    """A condition not met by its deadline. An AssertionError, so that pytest reports
    it as a failed check; also a trio.TooSlowError, for callers that turn a timeout
    into a message of their own."""


_NOTHING: Any = object()


@overload
async def eventually(
    check: Callable[[], Awaitable[T]],
    *,
    timeout: float = ...,
    every: float = ...,
    what: str | None = ...,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T],
    *,
    timeout: float = ...,
    every: float = ...,
    what: str | None = ...,
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    *,
    timeout: float = TIMEOUT_S,
    every: float = EVERY_S,
    what: str | None = None,
) -> Any:
    """Call `check()` every `every` s until it returns something truthy; return that.

    `check` may be a plain function or return an awaitable (an async function, a
    lambda calling one). A falsy value means "not yet"; an exception from the check,
    an AssertionError included, fails at once (a check may assert that the process it
    waits on is still alive). After `timeout` s raise NotMet naming `what` (by default
    the check's source) and the last value seen."""
    last = _NOTHING
    with trio.move_on_after(timeout):
        while True:
            last = await _call(check)
            if last:
                return last
            await trio.sleep(every)
    seen = "none (the check never returned)" if last is _NOTHING else _show(last)
    raise NotMet(
        f"timed out after {timeout:g} s waiting for {what or describe(check)}; last value: {seen}"
    )


async def stays_true(
    check: Callable[[], Any],
    *,
    for_s: float,
    every: float = EVERY_S,
    what: str | None = None,
) -> None:
    """Assert that `check()` holds throughout the next `for_s` seconds: checked every
    `every` s and once more at the end; fails at the first falsy value.

    This wait is bounded and deliberate: it proves silence (something that must NOT
    happen within a window), which no event can signal."""
    start = trio.current_time()
    with trio.move_on_after(for_s):
        while True:
            await _expect_true(check, what, start)
            await trio.sleep(every)
    await _expect_true(check, what, start)


async def _expect_true(check: Callable[[], Any], what: str | None, start: float) -> None:
    value = await _call(check)
    if not value:
        elapsed = trio.current_time() - start
        raise AssertionError(
            f"{what or describe(check)} stopped holding after {elapsed:.2f} s; value: {_show(value)}"
        )


async def _call(check: Callable[[], Any]) -> Any:
    result = check()
    if inspect.isawaitable(result):
        result = await result
    return result


def _show(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def describe(check: Callable[[], Any]) -> str:
    """What a check awaits, for a failure message: a lambda's own source text
    (`len(cap) >= 2`), else the function's name (`drained()`)."""
    name = getattr(check, "__name__", None)
    code = getattr(check, "__code__", None)
    if name is None:
        return repr(check)
    if name != "<lambda>" or code is None:
        return f"{name}()"
    try:
        return _lambda_source(code) or name
    except (OSError, SyntaxError, ValueError):  # no source file, or not parseable
        return f"{name} at {code.co_filename}:{code.co_firstlineno}"


def _lambda_source(code: Any) -> str | None:
    source = "".join(linecache.getlines(code.co_filename))
    if not source:
        return None
    lambdas = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Lambda) and node.lineno == code.co_firstlineno
    ]
    # Several on one line: the lambda's first real instruction (one with a non-empty
    # column span) lies inside its own body.
    spans = ((ln, c, ec) for ln, _, c, ec in code.co_positions() if c is not None and ec)
    line, col, _ = next((s for s in spans if s[2] > s[1]), (None, 0, 0))
    for node in lambdas:
        body = node.body
        start = (body.lineno, body.col_offset)
        end = (body.end_lineno or body.lineno, body.end_col_offset or 0)
        if len(lambdas) == 1 or (line is not None and start <= (line, col) <= end):
            return ast.get_source_segment(source, body)
    return None
