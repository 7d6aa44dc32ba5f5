"""Benchmark 1: consumer ingest throughput while draining a backlog.

TELEMETRY is pre-filled with N realistic envelopes (many tenants and gateways, real
AES-GCM blobs). Then, for each variant, a fresh durable and a fresh database drain
it; each variant runs in its own process. Throughput is measured from outside, the
same way for every variant, on the JetStream consumer: from the first ack until
nothing is pending or un-acked (acks follow commits, so every row is committed).
"""

from __future__ import annotations

import json
import os
import random
import sys
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import nats.js.errors
import trio

from bench.harness import Child, Figure, Stack, median, peak_rss_mb, tree_cpu_seconds
from notip import bridge, contracts, envelope, natsio

POLL_S = 0.02


async def prefill(
    nc: natsio.NATS, n: int, *, tenants: int = 20, gateways: int = 500, seed: int = 7
) -> None:
    """Publish n envelopes (core publishes captured by the stream), then wait until
    the stream holds them."""
    rng = random.Random(seed)
    gws = [
        (f"tenant-{t:02d}", str(uuid.UUID(int=rng.getrandbits(128), version=4)), os.urandom(32))
        for t in range(tenants)
        for _ in range(gateways // tenants)
    ]
    sensors = {
        gw: [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(5)]
        for _, gw, _ in gws
    }
    js = nc.jetstream()
    before = (await bridge.call(js.stream_info, contracts.TELEMETRY.name)).state.messages
    chunk = 5000
    sent = 0
    while sent < n:
        msgs = []
        for i in range(min(chunk, n - sent)):
            tenant, gw, key = gws[(sent + i) % len(gws)]
            kind = envelope.SENSOR_TYPES[(sent + i) % 5]
            env = envelope.seal(
                key,
                gateway_id=gw,
                sensor_id=sensors[gw][(sent + i) % 5],
                sensor_type=kind,
                value=round(rng.uniform(0, 100), 2),
            )
            msgs.append((contracts.telemetry_subject(tenant, gw), env.encode()))

        async def publish(msgs: list[tuple[str, bytes]] = msgs) -> None:
            for subject, data in msgs:
                await nc.publish(subject, data)
            await nc.flush(timeout=30)

        await bridge.call(publish)
        sent += len(msgs)
    with trio.fail_after(120):
        while (
            await bridge.call(js.stream_info, contracts.TELEMETRY.name)
        ).state.messages < before + n:
            await trio.sleep(0.1)


@dataclass
class DrainResult:
    rate: float
    seconds: float
    cpu: dict[str, float]
    peak_rss_mb: float


async def _consumer_state(nc: natsio.NATS, durable: str) -> tuple[int, int, int] | None:
    try:
        info = await bridge.call(nc.jetstream().consumer_info, contracts.TELEMETRY.name, durable)
    except nats.js.errors.NotFoundError:
        return None
    acked = info.ack_floor.stream_seq if info.ack_floor else 0
    return acked, info.num_pending or 0, info.num_ack_pending or 0


async def measure(
    stack: Stack,
    nc: natsio.NATS,
    procs: list[tuple[list[str], dict[str, str]]],
    durable: str,
    n: int,
    first_seq: int,
    before_stop: Callable[[], Awaitable[None]] | None = None,
) -> DrainResult:
    """Run the drainer process(es) and time them from the outside. `before_stop`
    runs once the drain is complete, while the processes still run (e.g. to read
    their metrics)."""
    assert stack.nats.proc is not None and stack.pg.proc is not None, "stack not started"
    nats_pid = stack.nats.proc.pid
    pg_pid = stack.pg.proc.pid
    async with AsyncExitStack() as stack_cm:
        children = [await stack_cm.enter_async_context(Child(argv, env)) for argv, env in procs]
        py0 = 0.0
        t0 = acked0 = None
        cpu0: dict[str, float] = {}
        rss = 0.0
        with trio.fail_after(max(120, n / 2000)):
            while True:
                state = await _consumer_state(nc, durable)
                now = trio.current_time()
                rss = max(rss, *(peak_rss_mb(c.pid) for c in children))
                if state is not None:
                    acked, pending, ack_pending = state
                    if t0 is None and acked >= first_seq:
                        t0, acked0 = now, acked - first_seq + 1
                        py0 = sum(tree_cpu_seconds(c.pid) for c in children)
                        cpu0 = {
                            "nats": tree_cpu_seconds(nats_pid),
                            "postgres": tree_cpu_seconds(pg_pid),
                        }
                    if (
                        t0 is not None
                        and pending == 0
                        and ack_pending == 0
                        and acked >= first_seq + n - 1
                    ):
                        break
                for c in children:
                    if c.returncode is not None:
                        raise RuntimeError(f"{procs[0][0][:4]} exited with {c.returncode}")
                await trio.sleep(POLL_S)
        # The loop only ends (without a Cancelled) once t0 was set.
        assert t0 is not None and acked0 is not None
        elapsed = max(trio.current_time() - t0, 1e-6)
        cpu = {
            "nats": (tree_cpu_seconds(nats_pid) - cpu0["nats"]) / elapsed,
            "postgres": (tree_cpu_seconds(pg_pid) - cpu0["postgres"]) / elapsed,
            "python": (sum(tree_cpu_seconds(c.pid) for c in children) - py0) / elapsed,
        }
        if before_stop is not None:
            await before_stop()
        return DrainResult((n - acked0) / elapsed, elapsed, cpu, rss)


def consumer_env(stack: Stack, database: str, durable: str) -> dict[str, str]:
    tls = stack.tls("data-consumer")
    return {
        "NATS_URL": stack.nats.url,
        "NATS_TLS_CA": str(tls.ca),
        "NATS_TLS_CERT": str(tls.cert),
        "NATS_TLS_KEY": str(tls.key),
        "DB_HOST": "127.0.0.1",
        "DB_PORT": str(stack.pg.port),
        "DB_NAME": database,
        "DB_USER": stack.pg.user,
        "DB_PASSWORD_FILE": str(stack.password_file()),
        "DB_SSL_MODE": "require",
        "NATS_CONSUMER_DURABLE_NAME": durable,
        "METRICS_ADDR": "127.0.0.1:0",
        "LOG_LEVEL": "warning",
    }


async def run(stack: Stack, n: int, runs: int, variants: tuple[str, ...]) -> list[Figure]:
    tls = natsio.tls_context(stack.tls("management-api"))
    nc = await natsio.connect(stack.nats.url, tls, name="bench-drain")
    try:
        await natsio.init_streams(nc)
        info = await bridge.call(nc.jetstream().stream_info, contracts.TELEMETRY.name)
        first_seq = info.state.last_seq + 1
        await prefill(nc, n)
        results: dict[str, list[DrainResult]] = {v: [] for v in variants}
        for i in range(runs):
            for variant in variants:  # interleaved, so drift hits every variant alike
                db = f"bench_{variant}_{i}_{uuid.uuid4().hex[:6]}"
                stack.pg._psql(f'CREATE DATABASE "{db}"')  # noqa: SLF001
                durable = f"bench-{variant}-{uuid.uuid4().hex[:8]}"
                env = consumer_env(stack, db, durable)
                if variant == "ours":
                    argv = [sys.executable, "-m", "notip", "consumer"]
                else:
                    tls_files = stack.tls("data-consumer")
                    argv = [
                        sys.executable,
                        "-m",
                        "bench.drain_baselines",
                        "--variant",
                        variant,
                        "--nats-url",
                        stack.nats.url,
                        "--ca",
                        str(tls_files.ca),
                        "--cert",
                        str(tls_files.cert),
                        "--key",
                        str(tls_files.key),
                        "--dsn",
                        stack.pg.dsn.rsplit("/", 1)[0] + f"/{db}",
                        "--durable",
                        durable,
                        "--expected",
                        str(n),
                    ]
                r = await measure(stack, nc, [(argv, env)], durable, n, first_seq)
                rows = stack.pg._psql("SELECT count(*) FROM telemetry", database=db)  # noqa: SLF001
                if int(rows) != n:
                    raise RuntimeError(f"{variant}: {rows} rows for {n} messages")
                results[variant].append(r)
                print(
                    f"  drain {variant} run {i + 1}: {r.rate:,.0f} msg/s "
                    f"(cpu nats {r.cpu['nats']:.0%} pg {r.cpu['postgres']:.0%} py {r.cpu['python']:.0%}, "
                    f"rss {r.peak_rss_mb:.0f} MB)",
                    flush=True,
                )
                stack.pg._psql(f'DROP DATABASE "{db}" WITH (FORCE)')  # noqa: SLF001
                await bridge.call(nc.jetstream().delete_consumer, contracts.TELEMETRY.name, durable)
    finally:
        await natsio.drain(nc)

    figures: list[Figure] = []
    med = {v: median([r.rate for r in rs]) for v, rs in results.items()}
    for v, rs in results.items():
        figures.append(
            Figure("drain", f"{v} msg/s (N={n:,})", med[v], "msg/s", runs=[r.rate for r in rs])
        )
    if "ours" in med:
        ours = med["ours"]
        figures[[f.name.startswith("ours") for f in figures].index(True)].target = ">= 60,000"
        figures[[f.name.startswith("ours") for f in figures].index(True)].met = ours >= 60_000
        if "limit" in med:
            ratios = [
                o.rate / lim.rate for o, lim in zip(results["ours"], results["limit"], strict=True)
            ]
            figures.append(
                Figure(
                    "drain",
                    "ours / limit",
                    median(ratios),
                    "ratio",
                    ">= 0.8",
                    median(ratios) >= 0.8,
                    ratios,
                )
            )
        if "naive" in med:
            ratios = [
                o.rate / nv.rate for o, nv in zip(results["ours"], results["naive"], strict=True)
            ]
            figures.append(
                Figure(
                    "drain",
                    "ours / naive",
                    median(ratios),
                    "ratio",
                    ">= 5",
                    median(ratios) >= 5,
                    ratios,
                )
            )
        rs = results["ours"]
        figures.append(
            Figure(
                "drain",
                "ours peak RSS",
                median([r.peak_rss_mb for r in rs]),
                "MB",
                "< 300",
                median([r.peak_rss_mb for r in rs]) < 300,
            )
        )
        figures.extend(
            Figure(
                "drain",
                f"ours CPU {part}",
                100 * median([r.cpu[part] for r in rs]),
                "% of a core",
            )
            for part in ("nats", "postgres", "python")
        )
    return figures


def summary(figures: list[Figure]) -> dict[str, Any]:
    return {f.name: f.value for f in figures}


if __name__ == "__main__":  # quick manual run: python -m bench.consumer_drain N
    from bench.harness import print_table, stack

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    variants = tuple(sys.argv[2].split(",")) if len(sys.argv) > 2 else ("limit", "naive")
    with stack() as s:
        figs = bridge.run(lambda: run(s, n, 1, variants))
    print_table(figs)
    print(json.dumps(summary(figs)))
