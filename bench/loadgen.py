"""Load generator of the control-plane benchmark, run as its own process:
`python -m bench.loadgen --grpc HOST:PORT --rest URL --ids ID,ID --clients 8
--seconds 5 --runs 3`.

For each run it drives, one after the other, a window of gRPC `GetGateway` calls and
a window of REST `GET /sim/gateways/{id}` requests, each from `--clients` concurrent
clients with their own connection, each client issuing its next call as soon as the
previous one answered (closed loop). Prints one JSON line: per window the calls
completed, errors, the window's wall-clock start and end (so the benchmark can read
the server's CPU over exactly that window) and latency percentiles.

This process is a client, not a daemon: it runs plain asyncio (grpc.aio and a
minimal keep-alive HTTP/1.1 client on asyncio streams) rather than Trio +
trio-asyncio, so that the load generator costs as little CPU as possible and the
figure is the server's, not the client's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

import grpc

from notip.simulator.v1 import simulator_pb2 as pb
from notip.simulator.v1 import simulator_pb2_grpc as pb_grpc

WARMUP_S = 0.5

Call = Callable[[str], Awaitable[None]]


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def closed_loop(clients: list[Call], ids: list[str], seconds: float) -> dict[str, Any]:
    """Every client calls back to back for WARMUP_S (not counted) + `seconds`."""
    calls = errors = 0
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    start = loop.time() + WARMUP_S
    end = start + seconds
    wall: dict[str, float] = {}

    async def client(call: Call, k: int) -> None:
        nonlocal calls, errors
        i = k
        while True:
            t0 = loop.time()
            if t0 >= end:
                return
            try:
                await call(ids[i % len(ids)])
                ok = True
            except Exception:  # noqa: BLE001 — any failed call counts as an error, the load goes on
                ok = False
            t1 = loop.time()
            i += 1
            if t0 >= start and t1 <= end:
                if ok:
                    calls += 1
                    latencies.append(t1 - t0)
                else:
                    errors += 1

    async def clock() -> None:
        await asyncio.sleep(max(0.0, start - loop.time()))
        wall["start"] = time.time()
        await asyncio.sleep(max(0.0, end - loop.time()))
        wall["end"] = time.time()

    await asyncio.gather(clock(), *(client(c, k) for k, c in enumerate(clients)))
    return {
        "calls": calls,
        "errors": errors,
        "seconds": seconds,
        "wall_start": wall["start"],
        "wall_end": wall["end"],
        "p50_ms": 1000 * _percentile(latencies, 50),
        "p99_ms": 1000 * _percentile(latencies, 99),
    }


class HttpClient:
    """One keep-alive HTTP/1.1 connection; GET only, Content-Length bodies only. When
    the server ends the connection (hypercorn closes a keep-alive connection after
    1,000 requests, as browsers and httpx expect), it reconnects, as they do."""

    def __init__(self, url: str) -> None:
        u = urlparse(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> bytes:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAccept: application/json\r\n\r\n"
        ).encode()
        for attempt in (1, 2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            try:
                self.writer.write(request)
                head = await self.reader.readuntil(b"\r\n\r\n")
                break
            except (asyncio.IncompleteReadError, ConnectionError):
                await self.close()  # closed by the server between two requests
                if attempt == 2:
                    raise
        status = int(head.split(b" ", 2)[1])
        length, close = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        assert self.reader is not None  # connected above
        body = await self.reader.readexactly(length)
        if close:
            await self.close()
        if status != 200:
            raise RuntimeError(f"HTTP {status}")
        return body

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    ids = args.ids.split(",")
    # Each gRPC client its own channel and connection (no shared subchannel pool).
    channels = [
        grpc.aio.insecure_channel(args.grpc, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(args.clients)
    ]
    stubs = [pb_grpc.SimulatorServiceStub(ch) for ch in channels]
    http = [HttpClient(args.rest) for _ in range(args.clients)]

    def grpc_call(stub: pb_grpc.SimulatorServiceStub) -> Call:
        async def call(gateway_id: str) -> None:
            reply = await stub.GetGateway(pb.GetGatewayRequest(id=gateway_id), timeout=10)
            if reply.id != gateway_id:
                raise RuntimeError("wrong gateway")

        return call

    def rest_call(client: HttpClient) -> Call:
        async def call(gateway_id: str) -> None:
            body = await client.get(f"/sim/gateways/{gateway_id}")
            if json.loads(body)["id"] != gateway_id:
                raise RuntimeError("wrong gateway")

        return call

    out: dict[str, list[dict[str, Any]]] = {"grpc": [], "rest": []}
    try:
        for _ in range(args.runs):
            out["grpc"].append(await closed_loop([grpc_call(s) for s in stubs], ids, args.seconds))
            out["rest"].append(await closed_loop([rest_call(c) for c in http], ids, args.seconds))
    finally:
        for ch in channels:
            await ch.close()
        for c in http:
            await c.close()
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--grpc", required=True, help="HOST:PORT of the simulator's gRPC server")
    p.add_argument("--rest", required=True, help="base URL of the simulator's REST gateway")
    p.add_argument("--ids", required=True, help="gateway ids, comma-separated")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    # Importing trio_asyncio (notip.bridge) makes asyncio.run run a trio-asyncio loop:
    # the load generator would then cost more than it should (see simulator_floor.py).
    if "trio_asyncio" in sys.modules:
        sys.exit(
            "bench.loadgen: trio_asyncio was imported; the load generator must run plain asyncio"
        )
    print(json.dumps(asyncio.run(main(a))), flush=True)
