"""docs/design.md#the-trio-asyncio-bridge rule 2: cancelling a Trio scope in the middle of a database call leaves
the pool usable and `close()` returns."""

from __future__ import annotations

import asyncpg
import trio

from notip import bridge
from notip.localservers import PostgresServer


async def test_cancel_mid_query_leaves_pool_usable(
    aio_loop: None, postgres: PostgresServer
) -> None:
    pool = await bridge.call(
        asyncpg.create_pool, postgres.dsn, min_size=1, max_size=1, ssl="require"
    )
    started = trio.Event()

    async def slow_query() -> None:
        # One asyncio coroutine owns acquire → use → release.
        async with pool.acquire() as conn:
            await conn.execute("SELECT 1")
            trio_token.run_sync_soon(started.set)
            await conn.execute("SELECT pg_sleep(30)")

    trio_token = trio.lowlevel.current_trio_token()
    with trio.move_on_after(20) as outer:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(bridge.call, slow_query)
            await started.wait()
            nursery.cancel_scope.cancel()
    assert not outer.cancelled_caught, "the cancelled query did not return"

    # max_size=1: this only works if the cancelled call gave its connection back.
    async def probe() -> int:
        async with pool.acquire(timeout=5) as conn:
            return int(await conn.fetchval("SELECT 42"))

    with trio.fail_after(10):
        assert await bridge.call(probe) == 42
    assert await bridge.shielded(pool.close, timeout=10), "pool.close() hung"


async def test_shielded_cleanup_survives_outer_cancel(
    aio_loop: None, postgres: PostgresServer
) -> None:
    pool = await bridge.call(
        asyncpg.create_pool, postgres.dsn, min_size=1, max_size=1, ssl="require"
    )
    closed = False
    with trio.CancelScope() as scope:
        scope.cancel()
        # Already cancelled: an unshielded close would never run.
        closed = await bridge.shielded(pool.close, timeout=10)
    assert closed and pool._closed
