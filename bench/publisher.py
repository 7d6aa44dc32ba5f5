"""Steady-rate telemetry publisher, run as its own process by the latency benchmark:
`python -m bench.publisher --rate 5000 --seconds 60 ...`. Each envelope's timestamp
is taken right before it is published, so `commit time - timestamp` is the
publish → committed-row latency."""

from __future__ import annotations

import argparse
import json
import os
import uuid
from pathlib import Path

import trio

from notip import bridge, contracts, envelope, natsio

TICK_S = 0.01


async def main(args: argparse.Namespace) -> dict[str, float]:
    tls = natsio.tls_context(natsio.TlsFiles(Path(args.ca), Path(args.cert), Path(args.key)))
    nc = await natsio.connect(args.nats_url, tls, name="bench-publisher")
    gateways = [
        (f"lat-{t}", str(uuid.uuid4()), os.urandom(32))
        for t in range(10)
        for _ in range(args.gateways // 10)
    ]
    per_tick = args.rate * TICK_S
    sent = 0
    owed = 0.0
    start = trio.current_time()
    lateness: list[float] = []
    try:
        i = 0
        while trio.current_time() - start < args.seconds:
            deadline = start + (i + 1) * TICK_S
            owed += per_tick
            batch = []
            for _ in range(int(owed)):
                tenant, gw, key = gateways[sent % len(gateways)]
                env = envelope.seal(
                    key, gateway_id=gw, sensor_id=gw, sensor_type="temperature", value=20.0
                )
                batch.append((contracts.telemetry_subject(tenant, gw), env.encode()))
                sent += 1
            owed -= int(owed)

            async def publish(batch: list[tuple[str, bytes]] = batch) -> None:
                for subject, data in batch:
                    await nc.publish(subject, data)
                await nc.flush()

            await bridge.call(publish)
            lateness.append(max(0.0, trio.current_time() - deadline))
            await trio.sleep_until(deadline)
            i += 1
    finally:
        await natsio.drain(nc)
    elapsed = trio.current_time() - start
    return {
        "sent": sent,
        "seconds": elapsed,
        "rate": sent / elapsed,
        "max_tick_lateness_s": max(lateness, default=0),
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    for opt in ("nats-url", "ca", "cert", "key"):
        p.add_argument(f"--{opt}", required=True)
    p.add_argument("--rate", type=int, default=5000)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--gateways", type=int, default=500)
    a = p.parse_args()
    print(json.dumps(bridge.run(lambda: main(a))), flush=True)
