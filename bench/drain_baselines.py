"""The two reference consumers of the backlog-drain benchmark, each run as its own
process (`python -m bench.drain_baselines --variant limit|naive ...`):

- limit: the least a JetStream → PostgreSQL consumer can do on this runtime (Trio +
  trio-asyncio): a continuous-credit batch pull on nats-py's core API, one unnest
  INSERT per batch with the columns sent as comma-joined text (`string_to_array` in
  PostgreSQL: the cheapest encoding for Python, see docs/design.md#measurements-behind-the-design),
  acks as plain publishes. No validation, liveness or metrics.
- naive: what a straightforward Trio implementation gets: nats-py `fetch()`, one
  unnest INSERT per batch, then `await msg.ack()` per message through the bridge.

Both are deliberately written here, apart from the daemon, so that the comparison
measures the daemon against an independent floor and ceiling.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import asyncpg
import trio
from nats.js import api

from notip import bridge, contracts, natsio
from notip.jetstream import pull

DDL = """
CREATE TABLE IF NOT EXISTS telemetry (
    time timestamptz NOT NULL, tenant_id text NOT NULL, gateway_id text NOT NULL,
    sensor_id text NOT NULL, sensor_type text NOT NULL, encrypted_data text NOT NULL,
    iv text NOT NULL, auth_tag text NOT NULL, key_version integer NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS telemetry_dedupe ON telemetry (tenant_id, gateway_id, time, iv);
"""

INSERT = """
INSERT INTO telemetry (time, tenant_id, gateway_id, sensor_id, sensor_type,
                       encrypted_data, iv, auth_tag, key_version)
SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::text[], $7::text[], $8::text[], $9::int[])
ON CONFLICT DO NOTHING
"""


# The limit's INSERT: nine comma-joined text parameters split by PostgreSQL (none of
# the fields of a well-formed envelope contains a comma; the limit does not check).
INSERT_TEXT = """
INSERT INTO telemetry (time, tenant_id, gateway_id, sensor_id, sensor_type,
                       encrypted_data, iv, auth_tag, key_version)
SELECT * FROM unnest(string_to_array($1, ',')::timestamptz[], string_to_array($2, ','),
                     string_to_array($3, ','), string_to_array($4, ','),
                     string_to_array($5, ','), string_to_array($6, ','),
                     string_to_array($7, ','), string_to_array($8, ','),
                     string_to_array($9, ',')::int[])
ON CONFLICT DO NOTHING
"""


def text_columns(payloads: list[tuple[str, bytes]]) -> list[str]:
    """The nine columns of INSERT_TEXT; timestamps stay text (PostgreSQL parses them)."""
    cols: list[list[str]] = [[] for _ in range(9)]
    for subject, data in payloads:
        e = json.loads(data)
        cols[0].append(e["timestamp"])
        cols[1].append(subject.split(".", 3)[2])
        cols[2].append(e["gatewayId"])
        cols[3].append(e["sensorId"])
        cols[4].append(e["sensorType"])
        cols[5].append(e["encryptedData"])
        cols[6].append(e["iv"])
        cols[7].append(e["authTag"])
        cols[8].append(str(e["keyVersion"]))
    return [",".join(c) for c in cols]


def columns(payloads: list[tuple[str, bytes]]) -> list[list[Any]]:
    """The naive variant's columns, as asyncpg arrays."""
    import datetime as dt

    cols: list[list[Any]] = [[] for _ in range(9)]
    for subject, data in payloads:
        e = json.loads(data)
        cols[0].append(dt.datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")))
        cols[1].append(subject.split(".")[2])
        cols[2].append(e["gatewayId"])
        cols[3].append(e["sensorId"])
        cols[4].append(e["sensorType"])
        cols[5].append(e["encryptedData"])
        cols[6].append(e["iv"])
        cols[7].append(e["authTag"])
        cols[8].append(e["keyVersion"])
    return cols


async def add_durable(nc: natsio.NATS, durable: str) -> None:
    await bridge.call(
        nc.jetstream().add_consumer,
        contracts.TELEMETRY.name,
        api.ConsumerConfig(
            durable_name=durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL,
            filter_subject=contracts.TELEMETRY_ALL,
            ack_wait=60,
            max_ack_pending=20000,
        ),
    )


WRITERS = 2


async def run_limit(
    nc: natsio.NATS, pool: asyncpg.Pool, durable: str, expected: int, batch: int
) -> int:
    await add_durable(nc, durable)
    buffer: list[Any] = []
    wake = trio.Event()
    inbox = nc.new_inbox()

    async def on_msg(msg: Any) -> None:
        if msg.reply:  # status replies (408/404) carry no reply subject
            buffer.append(msg)
            if len(buffer) >= batch:
                wake.set()

    sub = await bridge.call(nc.subscribe, inbox, cb=on_msg, pending_msgs_limit=10 * batch)
    pull_subject = pull.next_subject(contracts.TELEMETRY.name, durable)

    async def ask(n: int) -> None:
        req = json.dumps({"batch": n, "expires": 5_000_000_000}).encode()
        await nc.publish(pull_subject, req, reply=inbox)

    async def write_and_ack(msgs: list[Any]) -> None:
        cols = text_columns([(m.subject, m.data) for m in msgs])
        async with pool.acquire() as conn:
            await conn.execute(INSERT_TEXT, *cols)
        for m in msgs:
            await nc.publish(m.reply, b"+ACK")

    done = 0
    outstanding = 0
    send, receive = trio.open_memory_channel[list[Any]](2)

    async def writer() -> None:
        nonlocal done
        async for take in receive:
            await bridge.call(write_and_ack, take)
            done += len(take)

    async with trio.open_nursery() as nursery:
        for _ in range(WRITERS):  # overlap decoding/encoding with the database round trip
            nursery.start_soon(writer)
        pulled = 0
        async with send:
            while pulled < expected:
                if outstanding <= batch:
                    # Keep about two batches of credit outstanding at all times.
                    await bridge.call(ask, 2 * batch - outstanding)
                    outstanding = 2 * batch
                if len(buffer) < batch:
                    wake = trio.Event()
                    with trio.move_on_after(0.02):
                        await wake.wait()
                take, buffer[:] = buffer[:batch], buffer[batch:]
                outstanding -= len(take)
                pulled += len(take)
                if take:
                    await send.send(take)
    await bridge.call(nc.flush)
    await bridge.shielded(sub.unsubscribe)
    return done


async def run_naive(
    nc: natsio.NATS, pool: asyncpg.Pool, durable: str, expected: int, batch: int
) -> int:
    await add_durable(nc, durable)
    js = nc.jetstream()
    sub = await bridge.call(
        js.pull_subscribe, contracts.TELEMETRY_ALL, durable=durable, stream=contracts.TELEMETRY.name
    )
    done = 0
    while done < expected:
        try:
            msgs = await bridge.call(sub.fetch, batch, timeout=1)
        except TimeoutError:  # nats-py raises its own subclass or a bare one
            continue
        cols = columns([(m.subject, m.data) for m in msgs])

        async def insert(cols: list[list[Any]] = cols) -> None:
            async with pool.acquire() as conn:
                await conn.execute(INSERT, *cols)

        await bridge.call(insert)
        for m in msgs:
            await bridge.call(m.ack)
        done += len(msgs)
    await bridge.call(nc.flush)
    return done


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tls = natsio.tls_context(natsio.TlsFiles(Path(args.ca), Path(args.cert), Path(args.key)))
    nc = await natsio.connect(args.nats_url, tls, name=f"bench-{args.variant}")
    pool = await bridge.call(asyncpg.create_pool, args.dsn, min_size=1, max_size=2, ssl=args.ssl)

    async def ddl() -> None:
        async with pool.acquire() as conn:
            await conn.execute(DDL)

    await bridge.call(ddl)
    run = run_limit if args.variant == "limit" else run_naive
    t0 = trio.current_time()
    n = await run(nc, pool, args.durable, args.expected, args.batch)
    elapsed = trio.current_time() - t0
    await bridge.shielded(pool.close)
    await natsio.drain(nc)
    return {"variant": args.variant, "messages": n, "seconds": elapsed}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--variant", choices=("limit", "naive"), required=True)
    for opt in ("nats-url", "ca", "cert", "key", "dsn", "durable"):
        p.add_argument(f"--{opt}", required=True)
    # PostgreSQL TLS: asyncpg's sslmode (the consumer's DB_SSL_MODE); NATS follows the
    # server: nats-py upgrades to TLS only when the server requires it.
    p.add_argument("--ssl", choices=("disable", "require"), default="require")
    p.add_argument("--expected", type=int, required=True)
    p.add_argument("--batch", type=int, default=1000)
    a = p.parse_args()
    print(json.dumps(bridge.run(lambda: main(a))), flush=True)
