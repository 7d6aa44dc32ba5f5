"""Benchmark 2: consumer latency under live load.

A separate process publishes at a steady rate while `notip consumer` runs. Latency is
commit time − envelope timestamp, per row: PostgreSQL runs with
`track_commit_timestamp=on`, so `pg_xact_commit_timestamp(xmin)` is each row's commit
time; the publisher stamps each envelope right before publishing it (the JetStream
stored timestamp follows within the publish round trip). Consumer lag (pending
messages) is sampled every 0.5 s; "no growth" compares the last third of the run
with the first.
"""

from __future__ import annotations

import sys
import uuid

import nats.errors
import trio

from bench.consumer_drain import consumer_env
from bench.harness import Child, Figure, Stack, median, percentile, read_json_line
from notip import bridge, contracts, natsio


async def one_run(stack: Stack, nc: natsio.NATS, rate: int, seconds: float) -> dict[str, float]:
    db = f"bench_latency_{uuid.uuid4().hex[:8]}"
    stack.pg._psql(f'CREATE DATABASE "{db}"')  # noqa: SLF001
    durable = f"bench-latency-{uuid.uuid4().hex[:8]}"
    js = nc.jetstream()
    env = consumer_env(stack, db, durable)
    tls = stack.tls("simulator")
    lag: list[tuple[float, int]] = []
    async with Child([sys.executable, "-m", "notip", "consumer"], env):
        # Wait until the consumer has bound its durable before load starts.
        with trio.fail_after(60):
            while True:
                try:
                    await bridge.call(js.consumer_info, contracts.TELEMETRY.name, durable)
                    break
                except nats.errors.Error:  # not found (yet), or a timeout
                    await trio.sleep(0.1)
        # A brand-new durable may first drain what earlier runs left in the stream.
        with trio.fail_after(300):
            while (
                await bridge.call(js.consumer_info, contracts.TELEMETRY.name, durable)
            ).num_pending:
                await trio.sleep(0.1)
        since = stack.pg._psql("SELECT now()", database=db)  # noqa: SLF001
        argv = [
            sys.executable,
            "-m",
            "bench.publisher",
            "--nats-url",
            stack.nats.url,
            "--ca",
            str(tls.ca),
            "--cert",
            str(tls.cert),
            "--key",
            str(tls.key),
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
        ]
        async with Child(argv, stdout=True) as pub, trio.open_nursery() as nursery:
            t0 = trio.current_time()

            async def sample_lag() -> None:
                while True:
                    info = await bridge.call(js.consumer_info, contracts.TELEMETRY.name, durable)
                    lag.append(
                        (
                            trio.current_time() - t0,
                            (info.num_pending or 0) + (info.num_ack_pending or 0),
                        )
                    )
                    await trio.sleep(0.5)

            nursery.start_soon(sample_lag)
            # Sampling runs until the publisher has printed its result.
            result = await read_json_line(pub)
            nursery.cancel_scope.cancel()
        sent = result["sent"]
        achieved_rate = result["rate"]
        assert isinstance(sent, int), result
        assert isinstance(achieved_rate, int | float), result
        with trio.fail_after(120):
            while True:
                info = await bridge.call(js.consumer_info, contracts.TELEMETRY.name, durable)
                if not info.num_pending and not info.num_ack_pending:
                    break
                await trio.sleep(0.1)
    rows = stack.pg._psql(  # noqa: SLF001
        "SELECT string_agg(round(extract(epoch FROM pg_xact_commit_timestamp(xmin) - time) * 1000, 2)::text, ',') "
        f"FROM telemetry WHERE time >= '{since}'",
        database=db,
    )
    latencies = [float(x) for x in rows.split(",") if x]
    stack.pg._psql(f'DROP DATABASE "{db}" WITH (FORCE)')  # noqa: SLF001
    await bridge.call(js.delete_consumer, contracts.TELEMETRY.name, durable)
    third = max(1, len(lag) // 3)
    return {
        "sent": sent,
        "rows": len(latencies),
        "rate": float(achieved_rate),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": max(latencies, default=float("nan")),
        "lag_first": median([float(n) for _, n in lag[:third]]),
        "lag_last": median([float(n) for _, n in lag[-third:]]),
    }


async def run(stack: Stack, rate: int, seconds: float, runs: int) -> list[Figure]:
    tls = natsio.tls_context(stack.tls("management-api"))
    nc = await natsio.connect(stack.nats.url, tls, name="bench-latency")
    try:
        await natsio.init_streams(nc)
        results = []
        for i in range(runs):
            r = await one_run(stack, nc, rate, seconds)
            print(
                f"  latency run {i + 1}: {r['rate']:,.0f} msg/s published, p50 {r['p50']:.1f} ms, "
                f"p99 {r['p99']:.1f} ms, max {r['max']:.1f} ms, lag {r['lag_first']:.0f} → {r['lag_last']:.0f}",
                flush=True,
            )
            if r["rows"] != r["sent"]:
                raise RuntimeError(f"latency run: {r['rows']} rows for {r['sent']} published")
            results.append(r)
    finally:
        await natsio.drain(nc)
    p99 = median([r["p99"] for r in results])
    growth = median([r["lag_last"] - r["lag_first"] for r in results])
    return [
        Figure(
            "latency",
            "published rate",
            median([r["rate"] for r in results]),
            "msg/s",
            f">= {rate * 0.98:,.0f}",
            median([r["rate"] for r in results]) >= rate * 0.98,
        ),
        Figure("latency", "publish → commit p50", median([r["p50"] for r in results]), "ms"),
        Figure(
            "latency",
            "publish → commit p99",
            p99,
            "ms",
            "< 250",
            p99 < 250,
            [r["p99"] for r in results],
        ),
        Figure("latency", "publish → commit max", median([r["max"] for r in results]), "ms"),
        Figure(
            "latency",
            "lag growth (last − first third)",
            growth,
            "msgs",
            "no growth (< 1 s of load)",
            growth < rate,
        ),
    ]
