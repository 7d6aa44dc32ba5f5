"""Benchmark 3: consumer scale-out — two `notip consumer` processes on ONE durable.

TELEMETRY is pre-filled with N envelopes (as in benchmark 1). Each run drains that
backlog twice, interleaved, each time into a fresh database through a fresh durable:
once with one instance, once with two instances sharing the durable
(`NATS_CONSUMER_DURABLE_NAME`) and the database. Throughput is measured from outside
on the JetStream consumer exactly as in benchmark 1 (first ack → nothing pending or
un-acked); the two-instance figure is total throughput, and "2 / 1" is the ratio of
the two drains of the same run.

Liveness ownership (docs/consumer.md#scale-out-and-ownership): a pull consumer is a work
queue, so both instances ingest; liveness has exactly one owner at a time. Both
instances run with the same environment (`LIVENESS_ENABLED=true`, the default): the one
holding the liveness lease runs ticks, alerts, the status dispatcher, alert-config
refresh and the decommission listener; the other publishes a digest of what it
committed on `LIVENESS_FEED_SUBJECT`, which the holder feeds into its tracker.

Checked after every drain: `count(*) == N` and `count(DISTINCT (gateway_id, iv)) ==
N` (no duplicate and no missing row). From the instances' /metrics, read before they
stop: the share instance 2 wrote (both really worked) and the duplicates the
idempotent insert skipped (messages delivered to both, e.g. after an ack wait).
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass

import httpx
import trio

from bench.consumer_drain import DrainResult, consumer_env, measure, prefill
from bench.harness import Figure, Stack, median, sample_sum, scrape
from notip import bridge, contracts, natsio
from notip.localservers import free_port

CONSUMER = [sys.executable, "-m", "notip", "consumer"]


@dataclass
class ScaleRun:
    drain: DrainResult
    written: list[float]  # messages_written_total per instance
    duplicates: float  # duplicates_skipped_total, all instances
    redelivered: float


async def drain_with(
    stack: Stack, nc: natsio.NATS, n: int, first_seq: int, instances: int, tag: str
) -> ScaleRun:
    db = f"bench_scale{instances}_{tag}_{uuid.uuid4().hex[:6]}"
    stack.pg._psql(f'CREATE DATABASE "{db}"')  # noqa: SLF001
    durable = f"bench-scale-{uuid.uuid4().hex[:8]}"
    ports = [free_port() for _ in range(instances)]
    procs = []
    for port in ports:
        env = consumer_env(stack, db, durable)
        env["METRICS_ADDR"] = f"127.0.0.1:{port}"
        procs.append((CONSUMER, env))
    written: list[float] = []
    dup = [0.0, 0.0]

    async def read_metrics() -> None:
        for port in ports:
            # A small backlog can be drained before the second instance is even up.
            with trio.fail_after(60):
                while True:
                    try:
                        samples = await scrape(f"http://127.0.0.1:{port}/metrics")
                        break
                    except httpx.TransportError:
                        await trio.sleep(0.1)
            written.append(sample_sum(samples, "notip_consumer_messages_written_total"))
            dup[0] += sample_sum(samples, "notip_consumer_duplicates_skipped_total")
            dup[1] += sample_sum(samples, "notip_consumer_redelivered_messages_total")

    try:
        r = await measure(stack, nc, procs, durable, n, first_seq, before_stop=read_metrics)
        rows, distinct = stack.pg._psql(  # noqa: SLF001
            "SELECT count(*) || ',' || count(DISTINCT (gateway_id, iv)) FROM telemetry",
            database=db,
        ).split(",")
        if int(rows) != n or int(distinct) != n:
            raise RuntimeError(
                f"scale-out ({instances} instance(s)): {rows} rows, {distinct} distinct "
                f"(gateway_id, iv) for {n} messages"
            )
    finally:
        stack.pg._psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')  # noqa: SLF001
        await bridge.call(nc.jetstream().delete_consumer, contracts.TELEMETRY.name, durable)
    return ScaleRun(r, written, dup[0], dup[1])


async def run(stack: Stack, n: int, runs: int) -> list[Figure]:
    tls = natsio.tls_context(stack.tls("management-api"))
    nc = await natsio.connect(stack.nats.url, tls, name="bench-scaleout")
    one: list[ScaleRun] = []
    two: list[ScaleRun] = []
    try:
        await natsio.init_streams(nc)
        info = await bridge.call(nc.jetstream().stream_info, contracts.TELEMETRY.name)
        first_seq = info.state.last_seq + 1
        await prefill(nc, n)
        for i in range(runs):
            for instances, out in ((1, one), (2, two)):  # interleaved: drift hits both
                r = await drain_with(stack, nc, n, first_seq, instances, str(i))
                out.append(r)
                share = ", ".join(f"{w / n:.0%}" for w in r.written)
                print(
                    f"  scale-out run {i + 1}, {instances} instance(s): {r.drain.rate:,.0f} msg/s "
                    f"(written per instance {share}; duplicates skipped {r.duplicates:.0f}, "
                    f"redelivered {r.redelivered:.0f}; cpu pg {r.drain.cpu['postgres']:.0%} "
                    f"py {r.drain.cpu['python']:.0%})",
                    flush=True,
                )
    finally:
        await natsio.drain(nc)

    ratios = [b.drain.rate / a.drain.rate for a, b in zip(one, two, strict=True)]
    shares = [100 * r.written[1] / n for r in two]
    return [
        Figure(
            "scaleout",
            f"1 instance msg/s (N={n:,})",
            median([r.drain.rate for r in one]),
            "msg/s",
            runs=[r.drain.rate for r in one],
        ),
        Figure(
            "scaleout",
            "2 instances, 1 durable, total msg/s (liveness owner: instance 1)",
            median([r.drain.rate for r in two]),
            "msg/s",
            runs=[r.drain.rate for r in two],
        ),
        Figure("scaleout", "2 / 1 instances", median(ratios), "ratio", runs=ratios),
        Figure(
            "scaleout",
            "instance 2 share of messages",
            median(shares),
            "%",
            runs=shares,
        ),
        Figure(
            "scaleout",
            "duplicate rows (2 instances)",
            0.0,  # every drain above was checked: count(*) == distinct == N, else it raised
            "rows",
            "0",
            True,
        ),
        Figure(
            "scaleout",
            "duplicates skipped by the insert (2 instances)",
            median([r.duplicates for r in two]),
            "msgs",
            runs=[r.duplicates for r in two],
        ),
        Figure(
            "scaleout",
            "2 instances CPU python (both)",
            100 * median([r.drain.cpu["python"] for r in two]),
            "% of a core",
        ),
        Figure(
            "scaleout",
            "2 instances CPU postgres",
            100 * median([r.drain.cpu["postgres"] for r in two]),
            "% of a core",
        ),
    ]
