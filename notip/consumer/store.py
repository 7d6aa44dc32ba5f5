"""PostgreSQL/TimescaleDB adapter (asyncpg behind `notip.bridge`).

Each operation is one asyncio coroutine that owns its connection (acquire → use →
release) and is called from Trio once per batch. Errors are sorted into two kinds:

- `DbUnavailable`: the database cannot be reached or cannot work right now
  (connection refused/lost, shutdown in progress, too many connections, timeouts,
  anything unexpected). Callers keep the data and retry with backoff.
- `RowsRejected`: the database refused the *data* (SQLSTATE classes 22 and 23, or
  asyncpg's client-side encoding errors). Callers isolate the offending row.
"""

from __future__ import annotations

import datetime as dt
import logging
import ssl
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg

from notip import bridge
from notip.backoff import Backoff, retry
from notip.consumer.ingest import Row
from notip.consumer.liveness import SeedRow
from notip.consumer.settings import Settings

log = logging.getLogger("notip.consumer.store")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK_ID = 0x6E6F746970  # "notip": one instance migrates at a time
CONNECT_TIMEOUT_S = 5.0
ACQUIRE_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 30.0

# One multi-row statement per batch. The columns travel as nine comma-joined text
# parameters split server-side, rather than as nine arrays: asyncpg's array encoder
# runs two `isinstance(x, collections.abc.*)` checks per text element (~6 µs per row
# in Python, measured: a third of the consumer's CPU at 16k msg/s), whereas
# `",".join` is C and `string_to_array` runs in PostgreSQL's own process. Safe
# because validation (ingest.py) admits no comma in any column: UUIDs, tenant tokens
# [A-Za-z0-9_-], the sensor-type enum, base64, comma-free RFC 3339 timestamps or
# `datetime.isoformat()`, integers.
INSERT_SQL = """
INSERT INTO telemetry
    (time, tenant_id, gateway_id, sensor_id, sensor_type, encrypted_data, iv, auth_tag, key_version)
SELECT * FROM unnest(
    string_to_array($1, ',')::timestamptz[],
    string_to_array($2, ','), string_to_array($3, ','), string_to_array($4, ','),
    string_to_array($5, ','), string_to_array($6, ','), string_to_array($7, ','),
    string_to_array($8, ','),
    string_to_array($9, ',')::integer[])
ON CONFLICT DO NOTHING
"""


def encode_columns(rows: Sequence[Row]) -> list[str]:
    cols = list(zip(*rows, strict=True))
    args = [",".join(c) for c in cols[:8]]
    args.append(",".join(map(str, cols[8])))
    return args


# The seed: the newest row per gateway within the window, with what an owner recorded
# before alerting it (liveness.seed_time chooses between them). Both row times come
# out of the same expression, so "no newer row" is an exact float comparison.
NEWEST_SQL = """
SELECT n.tenant_id, n.gateway_id, extract(epoch FROM n.newest)::float8,
       extract(epoch FROM a.last_seen)::float8, extract(epoch FROM a.newest_row_time)::float8
FROM (
    SELECT tenant_id, gateway_id, max(time) AS newest
    FROM telemetry
    WHERE time > now() - make_interval(secs => $1)
    GROUP BY tenant_id, gateway_id
) n
LEFT JOIN consumer_liveness_alerts a
    ON a.tenant_id = n.tenant_id AND a.gateway_id = n.gateway_id
"""

# Right before an alert is published (never on the ingest path). The newest row time
# is taken here, server-side, within the seed's window. A record never moves back to
# an older `last_seen` (a late former owner).
RECORD_ALERT_SQL = """
INSERT INTO consumer_liveness_alerts AS a (tenant_id, gateway_id, last_seen, newest_row_time)
SELECT $1::text, $2::text, $3::timestamptz, (
    SELECT max(time) FROM telemetry
    WHERE tenant_id = $1::text AND gateway_id = $2::text
      AND time > now() - make_interval(secs => $4::float8))
ON CONFLICT (tenant_id, gateway_id) DO UPDATE
SET last_seen = EXCLUDED.last_seen, newest_row_time = EXCLUDED.newest_row_time,
    recorded_at = now()
WHERE a.last_seen <= EXCLUDED.last_seen
"""

DECOMMISSION_SQL = """
INSERT INTO consumer_gateway_decommissions (tenant_id, gateway_id, decommissioned_at)
VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, gateway_id)
DO UPDATE SET decommissioned_at = GREATEST(
    consumer_gateway_decommissions.decommissioned_at, EXCLUDED.decommissioned_at)
"""

DECOMMISSIONS_SINCE_SQL = """
SELECT tenant_id, gateway_id, extract(epoch FROM decommissioned_at)::float8
FROM consumer_gateway_decommissions WHERE decommissioned_at > to_timestamp($1)
"""


class DbUnavailable(Exception):
    """Transient: keep the data, back off, retry."""


class RowsRejected(Exception):
    """The data was refused; retrying the same rows gives the same answer."""


def is_data_error(exc: BaseException) -> bool:
    if isinstance(
        exc, asyncpg.exceptions.DataError | asyncpg.exceptions.IntegrityConstraintViolationError
    ):
        return True
    state = getattr(exc, "sqlstate", None)
    return isinstance(state, str) and state[:2] in ("22", "23")


def ssl_context(settings: Settings) -> ssl.SSLContext | bool:
    """DB_SSL_MODE as libpq means it: `require` encrypts without verifying; `verify-ca`
    checks the chain against DB_SSL_ROOT_CERT; `verify-full` also the host name."""
    mode = settings.db_ssl_mode
    if mode == "disable":
        return False
    if mode == "require":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(settings.db_ssl_root_cert))
    ctx.check_hostname = mode == "verify-full"
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def migration_files() -> list[Path]:
    return sorted(MIGRATIONS_DIR.glob("*.sql"))


class Store:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.up = True

    # -- life cycle ------------------------------------------------------------------

    @classmethod
    async def open(cls, settings: Settings) -> Store:
        """One attempt: a pool, then the migrations. Raises DbUnavailable."""

        async def create() -> asyncpg.Pool:
            return await asyncpg.create_pool(
                host=settings.db_host,
                port=settings.db_port,
                user=settings.db_user,
                password=settings.db_password,
                database=settings.db_name,
                ssl=ssl_context(settings),
                min_size=settings.db_min_conns,
                max_size=settings.db_max_conns,
                timeout=CONNECT_TIMEOUT_S,
                command_timeout=COMMAND_TIMEOUT_S,
                server_settings={"application_name": "notip-consumer"},
            )

        try:
            pool = await bridge.call(create)
        except Exception as exc:
            raise DbUnavailable(f"{type(exc).__name__}: {exc}") from exc
        store = cls(pool)
        try:
            await store.migrate()
        except BaseException:
            await store.close()
            raise
        return store

    @classmethod
    async def open_retrying(cls, settings: Settings, *, on_failure: Any = None) -> Store:
        """Retry `open` with capped exponential backoff until it works (or the caller's
        scope is cancelled)."""

        def failed(exc: BaseException, delay: float) -> None:
            log.warning(
                "database not available (%s); retrying in %.1fs",
                exc,
                delay,
                extra={"db_host": settings.db_host, "db_name": settings.db_name},
            )
            if on_failure is not None:
                on_failure()

        return await retry(
            partial(cls.open, settings),
            backoff=Backoff(0.2, cap=5.0),
            retry_on=DbUnavailable,
            on_retry=failed,
        )

    async def close(self) -> None:
        await bridge.shielded(self.pool.close, timeout=5)
        # When close() timed out, do not hang: terminate (a no-op on a closed pool).
        self.pool.terminate()

    async def migrate(self) -> list[str]:
        files = migration_files()

        async def run() -> None:
            async with (
                self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn,
                conn.transaction(),
            ):
                await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_ID)
                for f in files:
                    await conn.execute(f.read_text(encoding="utf-8"))

        await self._call(run)
        log.info("migrations applied", extra={"migrations": [f.name for f in files]})
        return [f.name for f in files]

    # -- operations --------------------------------------------------------------------

    async def _call(self, fn: Any, *args: Any) -> Any:
        try:
            result = await bridge.call(fn, *args)
        except Exception as exc:
            if is_data_error(exc):
                self.up = True
                raise RowsRejected(f"{type(exc).__name__}: {exc}") from exc
            self.up = False
            raise DbUnavailable(f"{type(exc).__name__}: {exc}") from exc
        self.up = True
        return result

    async def write(self, rows: Sequence[Row]) -> int:
        """One multi-row INSERT … ON CONFLICT DO NOTHING; returns rows inserted (the
        rest were already there)."""
        if not rows:
            return 0
        cols = encode_columns(rows)
        pool = self.pool

        async def run() -> int:
            async with pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                status = await conn.execute(INSERT_SQL, *cols)
            return int(status.rsplit(" ", 1)[1])

        result: int = await self._call(run)
        return result

    async def probe(self) -> bool:
        async def run() -> None:
            async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                await conn.fetchval("SELECT 1", timeout=5)

        try:
            await self._call(run)
        except (DbUnavailable, RowsRejected):
            return False
        return True

    async def newest_per_gateway(self, window_s: float) -> list[SeedRow]:
        async def run() -> list[SeedRow]:
            async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                rows = await conn.fetch(NEWEST_SQL, float(window_s))
            return [(r[0], r[1], float(r[2]), r[3], r[4]) for r in rows]

        result: list[SeedRow] = await self._call(run)
        return result

    async def record_alert(
        self, tenant_id: str, gateway_id: str, last_seen: float, window_s: float
    ) -> None:
        """What a later owner's seed needs to derive the same alert id
        (docs/consumer.md#scale-out-and-ownership): `last_seen` rounded to the
        microsecond exactly as the alert's `lastSeen` is (`datetime.fromtimestamp`)."""
        when = dt.datetime.fromtimestamp(last_seen, dt.UTC)

        async def run() -> None:
            async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                await conn.execute(RECORD_ALERT_SQL, tenant_id, gateway_id, when, float(window_s))

        await self._call(run)

    async def record_decommission(self, tenant_id: str, gateway_id: str, at: float) -> None:
        when = dt.datetime.fromtimestamp(at, dt.UTC)

        async def run() -> None:
            async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                await conn.execute(DECOMMISSION_SQL, tenant_id, gateway_id, when)

        await self._call(run)

    async def decommissions_since(self, since: float) -> list[tuple[str, str, float]]:
        async def run() -> list[tuple[str, str, float]]:
            async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                rows = await conn.fetch(DECOMMISSIONS_SINCE_SQL, float(since))
            return [(r[0], r[1], float(r[2])) for r in rows]

        result: list[tuple[str, str, float]] = await self._call(run)
        return result
