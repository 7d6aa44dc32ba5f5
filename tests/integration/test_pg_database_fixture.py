from __future__ import annotations

import asyncpg

from notip import bridge


async def test_each_test_gets_an_empty_database(aio_loop: None, pg_database: str) -> None:
    async def tables() -> int:
        conn = await asyncpg.connect(pg_database, ssl="require")
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
                )
            )
        finally:
            await conn.close()

    assert await bridge.call(tables) == 0
