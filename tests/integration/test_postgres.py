from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from notip import bridge
from notip.localservers import PostgresServer


@pytest.fixture
async def pool(aio_loop: None, postgres: PostgresServer) -> AsyncIterator[asyncpg.Pool]:
    p = await bridge.call(asyncpg.create_pool, postgres.dsn, min_size=1, max_size=2, ssl="require")
    yield p
    assert await bridge.shielded(p.close, timeout=10)


async def test_migration_runs(pool: asyncpg.Pool) -> None:
    async def migrate_and_read() -> list[asyncpg.Record]:
        async with pool.acquire() as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS harness_probe (id int PRIMARY KEY, note text NOT NULL)"
            )
            await conn.execute("INSERT INTO harness_probe VALUES (1, 'ok') ON CONFLICT DO NOTHING")
            return await conn.fetch("SELECT id, note FROM harness_probe")

    rows = await bridge.call(migrate_and_read)
    assert [tuple(r) for r in rows] == [(1, "ok")]


async def test_connection_is_tls(pool: asyncpg.Pool) -> None:
    async def ssl_in_use() -> bool:
        async with pool.acquire() as conn:
            return bool(
                await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            )

    assert await bridge.call(ssl_in_use)


async def test_hypertable_when_timescaledb(pool: asyncpg.Pool, postgres: PostgresServer) -> None:
    if not postgres.timescaledb:
        pytest.skip(
            "the timescaledb extension is not installed for this PostgreSQL "
            f"({postgres.bindir}); plain tables are used instead"
        )

    async def make() -> str:
        async with pool.acquire() as conn:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS ht_probe (time timestamptz NOT NULL, v int)"
            )
            await conn.execute(
                "SELECT create_hypertable('ht_probe', 'time', if_not_exists => TRUE)"
            )
            return str(
                await conn.fetchval(
                    "SELECT hypertable_name FROM timescaledb_information.hypertables WHERE hypertable_name = 'ht_probe'"
                )
            )

    assert await bridge.call(make) == "ht_probe"
