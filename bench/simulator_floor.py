"""The simulator's floor, run as its own process by the simulator benchmark:
`python -m bench.simulator_floor --nats-url URL --ca CA --cert CERT --key KEY
--gateways 500 --sensors 5 --hz 1 --seconds 10`.

The least a process can do to produce the simulator's traffic: N gateways, one mTLS
NATS connection each (the certificate the benchmark's simulator gateways present),
each sealing S envelopes per tick with `notip.envelope.seal` (the same shape and
sizes as the simulator's: random UUIDs, the sensor ranges of bench/services.py,
values rounded as the simulator rounds them, one ISO timestamp per tick) and
publishing them with core NATS publishes — no PubAck, no buffer, no metrics, no
control plane. Ticks are on a fixed grid (gateway g is due at start + g/N·period +
k·period: phases spread over the period), without catching up missed ticks.

After all connections are up and `--warmup` seconds of ticking, it measures
`--seconds`: its own CPU (utime+stime, all threads), the envelopes published and
the ticks' lateness, and prints them as one JSON line. CPU µs per envelope is the
floor the simulator's CPU µs per confirmed envelope is compared with.

Plain asyncio, not Trio + trio-asyncio: this is benchmark code in a process of its
own, and a floor is meant to carry no runtime overhead the daemon's design chose;
the `asyncio` rule of the project applies to notip/, whose adapters go through the
bridge. Importing trio_asyncio (notip.bridge, hence notip.natsio) makes
`asyncio.run` run a trio-asyncio loop, which about doubles the CPU per envelope
here: so this module builds its TLS context itself, imports nothing that imports
the bridge, and refuses to run if something did.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import ssl
import sys
import time
import uuid
from typing import Any

import nats

from notip import contracts, envelope

CONNECT_CONCURRENCY = 32
DECIMALS = 2  # as notip/simulator/sensors.py rounds readings

# (type, min, max): the sensors the benchmark adds to each simulator gateway
# (bench/services.py SENSOR_SPECS), so the envelopes have the same sizes.
SENSORS = (
    ("temperature", 18.0, 26.0),
    ("humidity", 30.0, 60.0),
    ("pressure", 990.0, 1030.0),
    ("movement", 0.0, 3.0),
    ("biometric", 50.0, 120.0),
)


def _cpu() -> float:
    # CLOCK_PROCESS_CPUTIME_ID (all threads, nanosecond resolution): os.times() counts
    # in clock ticks, which can read 0 for a short, small run.
    return time.process_time()


def _waited() -> float:
    """Seconds this process's threads were runnable but waiting for a CPU
    (schedstat; as bench.harness.runqueue_wait_seconds reads it for others)."""
    total = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as fh:
                total += int(fh.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Gateway:
    def __init__(self, rng: random.Random, tenant: str, sensors: int) -> None:
        self.id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        self.key = os.urandom(envelope.KEY_BYTES)
        self.subject = contracts.telemetry_subject(tenant, self.id)
        self.sensors = [
            (str(uuid.UUID(int=rng.getrandbits(128), version=4)), *SENSORS[k % len(SENSORS)])
            for k in range(sensors)
        ]
        self.nc: Any = None


async def main(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(11)
    tenants = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(10)]
    gateways = [Gateway(rng, tenants[g % len(tenants)], args.sensors) for g in range(args.gateways)]
    # As notip.natsio.tls_context builds it (not imported: see the module docstring).
    tls = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=args.ca)
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    tls.load_cert_chain(args.cert, args.key)
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def connect(gw: Gateway) -> None:
        async with limit:
            gw.nc = await nats.connect(
                servers=[args.nats_url], tls=tls, name=f"bench-floor-{gw.id}", connect_timeout=30
            )

    await asyncio.gather(*(connect(gw) for gw in gateways))

    loop = asyncio.get_running_loop()
    period = 1.0 / args.hz
    start = loop.time() + 0.1
    measure_from = start + args.warmup
    measure_to = measure_from + args.seconds
    published = 0  # envelopes of the ticks due inside the window
    sent = 0  # every envelope published, warm-up included
    ticks = 0
    lateness: list[float] = []
    marks: dict[str, float] = {}

    async def run(g: int, gw: Gateway) -> None:
        nonlocal published, sent, ticks
        due = start + g * period / len(gateways)
        while due < measure_to:
            await asyncio.sleep(due - loop.time())
            now = loop.time()
            late = max(0.0, now - due)
            timestamp = envelope.iso(dt.datetime.now(dt.UTC))
            for sensor_id, kind, lo, hi in gw.sensors:
                env = envelope.seal(
                    gw.key,
                    gateway_id=gw.id,
                    sensor_id=sensor_id,
                    sensor_type=kind,
                    value=round(rng.uniform(lo, hi), DECIMALS),
                    timestamp=timestamp,
                )
                await gw.nc.publish(gw.subject, env.encode())
            sent += len(gw.sensors)
            if measure_from <= due < measure_to:
                published += len(gw.sensors)
                ticks += 1
                lateness.append(late)
            # The next due time on the grid; a whole period late or more skips the
            # missed ticks (no burst to catch up), as the simulator does.
            due += period * (int(late // period) + 1)

    async def clock() -> None:
        await asyncio.sleep(measure_from - loop.time())
        marks["cpu0"], marks["t0"], marks["n0"] = _cpu(), loop.time(), published
        marks["waited0"] = _waited()
        await asyncio.sleep(measure_to - loop.time())
        marks["cpu1"], marks["t1"], marks["n1"] = _cpu(), loop.time(), published
        marks["waited1"] = _waited()
        marks["rss_mb"] = _rss_mb()

    await asyncio.gather(clock(), *(run(g, gw) for g, gw in enumerate(gateways)))
    for gw in gateways:
        await gw.nc.flush(timeout=30)
    await asyncio.gather(*(gw.nc.close() for gw in gateways))
    lateness.sort()
    n = marks["n1"] - marks["n0"]
    cpu = marks["cpu1"] - marks["cpu0"]
    return {
        "gateways": args.gateways,
        "sensors": args.sensors,
        "seconds": marks["t1"] - marks["t0"],
        "sent": sent,
        # Counted when a tick due inside the window starts; the CPU is read at the
        # window's edges: the difference is the work of the ticks in progress at
        # each edge, which cancels (the grid spreads the gateways over the period).
        "published_in_window": n,
        "cpu_s": cpu,
        "cpu_us_per_envelope": 1e6 * cpu / max(n, 1),
        "waited_s": marks["waited1"] - marks["waited0"],
        "ticks": ticks,
        "lateness_p99_s": lateness[min(len(lateness) - 1, int(0.99 * len(lateness)))]
        if lateness
        else 0.0,
        "rss_mb": marks["rss_mb"],
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    for opt in ("nats-url", "ca", "cert", "key"):
        p.add_argument(f"--{opt}", required=True)
    p.add_argument("--gateways", type=int, required=True)
    p.add_argument("--sensors", type=int, default=5)
    p.add_argument("--hz", type=float, default=1.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    a = p.parse_args()
    if "trio_asyncio" in sys.modules:
        sys.exit(
            "bench.simulator_floor: trio_asyncio was imported; the floor must run plain asyncio"
        )
    print(json.dumps(asyncio.run(main(a))), flush=True)
