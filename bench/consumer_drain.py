"""Benchmark 1: consumer ingest throughput while draining a backlog.

TELEMETRY is pre-filled with N realistic envelopes (many tenants and gateways, real
AES-GCM blobs). Then, for each variant, a fresh durable and a fresh database drain
it; each variant runs in its own process. Throughput is measured from outside, the
same way for every variant, on the JetStream consumer: from the first ack until
nothing is pending or un-acked (acks follow commits, so every row is committed).
Over the same interval, the drainer process's CPU (utime+stime from /proc) ÷ the
messages acked in it is its CPU µs per message.

Two transports, each variant on either (`VARIANTS`):

- tls: the deployed setting, nats-server with mTLS (`tls://`, client certificates)
  and PostgreSQL over TLS (`DB_SSL_MODE=require`);
- plain: a second nats-server without TLS (`NatsServer(plain=True)`, a `nats://`
  URL) and PostgreSQL without TLS (`DB_SSL_MODE=disable`, the same server).

Both streams are pre-filled with the same envelopes; the variants of both
transports are interleaved run by run.
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
from notip.localservers import NatsServer

POLL_S = 0.02

TRANSPORTS = ("plain", "tls")
#: (drainer, transport), in the order they run within a round; naive only on plain
#: TCP (it is the floor the others are compared with, not a deployment candidate).
VARIANTS: tuple[tuple[str, str], ...] = (
    ("ours", "plain"),
    ("limit", "plain"),
    ("naive", "plain"),
    ("ours", "tls"),
    ("limit", "tls"),
)
RATE_TARGET = 60_000
LIMIT_RATIO_TARGET = 1.0
NAIVE_RATIO_TARGET = 5.0
CPU_US_TARGET = 30.0
RSS_TARGET_MB = 300.0


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
    #: share of a core over the drain, per process group (nats, postgres, python)
    cpu: dict[str, float]
    peak_rss_mb: float
    #: messages acked over the timed interval
    messages: int = 0

    @property
    def python_us_per_msg(self) -> float:
        """CPU µs of the drainer process(es) per message acked."""
        return 1e6 * self.cpu["python"] * self.seconds / max(self.messages, 1)


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
    server: NatsServer | None = None,
) -> DrainResult:
    """Run the drainer process(es) and time them from the outside. `before_stop`
    runs once the drain is complete, while the processes still run (e.g. to read
    their metrics). `server`: the nats-server `nc` is on (the stack's by default),
    whose CPU is read."""
    server = server or stack.nats
    assert server.proc is not None and stack.pg.proc is not None, "stack not started"
    nats_pid = server.proc.pid
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
        return DrainResult((n - acked0) / elapsed, elapsed, cpu, rss, n - acked0)


def nats_server(stack: Stack, transport: str) -> NatsServer:
    if transport == "tls":
        return stack.nats
    if stack.plain_nats is None:
        raise RuntimeError("the plain-TCP variants need harness.stack(plain_nats=True)")
    return stack.plain_nats


def consumer_env(
    stack: Stack, database: str, durable: str, transport: str = "tls"
) -> dict[str, str]:
    """The consumer's environment (docs/consumer.md#settings). On plain TCP the TLS
    files are still given (they are required settings) but unused: the server does
    not ask for TLS, and PostgreSQL is told `DB_SSL_MODE=disable`."""
    tls = stack.tls("data-consumer")
    return {
        "NATS_URL": nats_server(stack, transport).url,
        "NATS_TLS_CA": str(tls.ca),
        "NATS_TLS_CERT": str(tls.cert),
        "NATS_TLS_KEY": str(tls.key),
        "DB_HOST": "127.0.0.1",
        "DB_PORT": str(stack.pg.port),
        "DB_NAME": database,
        "DB_USER": stack.pg.user,
        "DB_PASSWORD_FILE": str(stack.password_file()),
        "DB_SSL_MODE": "require" if transport == "tls" else "disable",
        "NATS_CONSUMER_DURABLE_NAME": durable,
        "METRICS_ADDR": "127.0.0.1:0",
        "LOG_LEVEL": "warning",
    }


async def run(
    stack: Stack, n: int, runs: int, variants: tuple[tuple[str, str], ...] = VARIANTS
) -> list[Figure]:
    transports = [t for t in TRANSPORTS if any(vt == t for _, vt in variants)]
    tls = natsio.tls_context(stack.tls("management-api"))
    conns: dict[str, natsio.NATS] = {}
    first_seq: dict[str, int] = {}
    results: dict[tuple[str, str], list[DrainResult]] = {v: [] for v in variants}
    try:
        for t in transports:
            nc = conns[t] = await natsio.connect(
                nats_server(stack, t).url, tls, name=f"bench-drain-{t}"
            )
            await natsio.init_streams(nc)
            info = await bridge.call(nc.jetstream().stream_info, contracts.TELEMETRY.name)
            first_seq[t] = info.state.last_seq + 1
            await prefill(nc, n)  # the same seed: the same envelopes on both servers
        for i in range(runs):
            for variant, t in variants:  # interleaved, so drift hits every variant alike
                r = await _drain_once(stack, conns[t], variant, t, n, first_seq[t], i)
                results[variant, t].append(r)
                print(
                    f"  drain {variant} {t} run {i + 1}: {r.rate:,.0f} msg/s, "
                    f"{r.python_us_per_msg:.1f} CPU µs/msg (cpu nats {r.cpu['nats']:.0%} "
                    f"pg {r.cpu['postgres']:.0%} py {r.cpu['python']:.0%}, "
                    f"rss {r.peak_rss_mb:.0f} MB)",
                    flush=True,
                )
    finally:
        for nc in conns.values():
            await natsio.drain(nc)
    return figures(results, n)


async def _drain_once(
    stack: Stack, nc: natsio.NATS, variant: str, transport: str, n: int, first_seq: int, i: int
) -> DrainResult:
    db = f"bench_{variant}_{transport}_{i}_{uuid.uuid4().hex[:6]}"
    stack.pg._psql(f'CREATE DATABASE "{db}"')  # noqa: SLF001
    durable = f"bench-{variant}-{transport}-{uuid.uuid4().hex[:8]}"
    env = consumer_env(stack, db, durable, transport)
    server = nats_server(stack, transport)
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
            server.url,
            "--ca",
            str(tls_files.ca),
            "--cert",
            str(tls_files.cert),
            "--key",
            str(tls_files.key),
            "--dsn",
            stack.pg.dsn.rsplit("/", 1)[0] + f"/{db}",
            "--ssl",
            "require" if transport == "tls" else "disable",
            "--durable",
            durable,
            "--expected",
            str(n),
        ]
    r = await measure(stack, nc, [(argv, env)], durable, n, first_seq, server=server)
    rows = stack.pg._psql("SELECT count(*) FROM telemetry", database=db)  # noqa: SLF001
    if int(rows) != n:
        raise RuntimeError(f"{variant} {transport}: {rows} rows for {n} messages")
    stack.pg._psql(f'DROP DATABASE "{db}" WITH (FORCE)')  # noqa: SLF001
    await bridge.call(nc.jetstream().delete_consumer, contracts.TELEMETRY.name, durable)
    return r


def figures(results: dict[tuple[str, str], list[DrainResult]], n: int) -> list[Figure]:
    """Per variant: rate and CPU µs/msg; per transport: ours ÷ limit (and ÷ naive),
    each the median of the per-round ratios; ours' RSS and CPU split."""
    out: list[Figure] = []

    def ratio(a: list[DrainResult], b: list[DrainResult]) -> list[float]:
        return [x.rate / y.rate for x, y in zip(a, b, strict=True)]

    for (v, t), rs in results.items():
        rates = [r.rate for r in rs]
        us = [r.python_us_per_msg for r in rs]
        ours = v == "ours"
        out.append(
            Figure(
                "drain",
                f"{v} msg/s, {t} (N={n:,})",
                median(rates),
                "msg/s",
                f">= {RATE_TARGET:,}" if ours else "",
                median(rates) >= RATE_TARGET if ours else None,
                rates,
            )
        )
        out.append(
            Figure(
                "drain",
                f"{v} CPU µs/msg, {t} (drainer process)",
                median(us),
                "µs/msg",
                f"<= {CPU_US_TARGET:g}" if ours else "",
                median(us) <= CPU_US_TARGET if ours else None,
                us,
            )
        )
    for t in TRANSPORTS:
        ours_rs = results.get(("ours", t))
        if not ours_rs:
            continue
        for other, target in (("limit", LIMIT_RATIO_TARGET), ("naive", NAIVE_RATIO_TARGET)):
            if (other, t) in results:
                ratios = ratio(ours_rs, results[other, t])
                out.append(
                    Figure(
                        "drain",
                        f"ours / {other}, {t}",
                        median(ratios),
                        "ratio",
                        f">= {target:g}",
                        median(ratios) >= target,
                        ratios,
                    )
                )
        rss = [r.peak_rss_mb for r in ours_rs]
        out.append(
            Figure(
                "drain",
                f"ours peak RSS, {t}",
                median(rss),
                "MB",
                f"< {RSS_TARGET_MB:g}",
                median(rss) < RSS_TARGET_MB,
                rss,
            )
        )
        out.extend(
            Figure(
                "drain",
                f"ours CPU {part}, {t}",
                100 * median([r.cpu[part] for r in ours_rs]),
                "% of a core",
            )
            for part in ("nats", "postgres", "python")
        )
    return out


def summary(figures: list[Figure]) -> dict[str, Any]:
    return {f.name: f.value for f in figures}


if __name__ == "__main__":  # quick manual run: python -m bench.consumer_drain N
    from bench.harness import print_table, stack

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    # e.g. "ours:tls,limit:tls"; all of VARIANTS by default
    variants = (
        tuple((v.partition(":")[0], v.partition(":")[2]) for v in sys.argv[2].split(","))
        if len(sys.argv) > 2
        else VARIANTS
    )
    with stack(plain_nats=True) as s:
        figs = bridge.run(lambda: run(s, n, 1, variants))
    print_table(figs)
    print(json.dumps(summary(figs)))
