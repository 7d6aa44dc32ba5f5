"""Benchmark 5: the simulator's control plane. No targets yet: recorded.

`notip mgmt`, `notip provisioning` and `notip simulator` run as separate processes
(bench/services.py), with 8 gateways created. A load-generator process
(bench/loadgen.py) then runs, `runs` times, a window of gRPC `GetGateway` calls and a
window of REST `GET /sim/gateways/{id}` requests, from 8 concurrent clients each
(closed loop, own connection each). The simulator's CPU over each window is read from
/proc, so the figure can be told apart from the load generator's limits (both share
this machine's two cores). Then, `runs` times, B fresh gateways are created with one
`POST /sim/gateways/bulk` (onboarding included: an RSA-2048 key per gateway, the
provisioning round trip, mgmt's factory-key check): wall time of the request.
"""

from __future__ import annotations

import bisect
import sys
import time
from typing import Any

import trio

from bench import services
from bench.harness import Child, Figure, Stack, cpu_seconds, median, read_json_line

CLIENTS = 8
READ_GATEWAYS = 8
MAX_ERROR_RATE = 0.01


class CpuSampler:
    """CPU seconds of some processes, sampled every 0.1 s with wall-clock times."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.times: list[float] = []
        self.values: dict[str, list[float]] = {k: [] for k in pids}

    async def run(self) -> None:
        while True:
            self.times.append(time.time())
            for name, pid in self.pids.items():
                self.values[name].append(cpu_seconds(pid))
            await trio.sleep(0.1)

    def _at(self, name: str, t: float) -> float:
        i = bisect.bisect_left(self.times, t)
        if i <= 0:
            return self.values[name][0]
        if i >= len(self.times):
            return self.values[name][-1]
        t0, t1 = self.times[i - 1], self.times[i]
        v0, v1 = self.values[name][i - 1], self.values[name][i]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0)

    def share(self, name: str, start: float, end: float) -> float:
        """CPU used over [start, end], as a fraction of one core."""
        return (self._at(name, end) - self._at(name, start)) / (end - start)


async def run(stack: Stack, seconds: float, bulk: int, runs: int = 3) -> list[Figure]:
    async with services.platform(stack) as svc:
        factory_ids = await svc.seed_factories(READ_GATEWAYS + runs * bulk)
        ids = await svc.bulk_create(factory_ids[:READ_GATEWAYS], 1000)
        argv = [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--grpc",
            svc.sim_grpc,
            "--rest",
            svc.sim_url,
            "--ids",
            ",".join(ids),
            "--clients",
            str(CLIENTS),
            "--seconds",
            str(seconds),
            "--runs",
            str(runs),
        ]
        log = stack.root / "logs" / "loadgen.log"
        async with Child(argv, stdout=True, log=log) as gen:
            sampler = CpuSampler({"simulator": svc.sim.pid, "loadgen": gen.pid})
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sampler.run)
                with trio.fail_after(60 + 4 * runs * seconds):
                    try:
                        result: dict[str, Any] = await read_json_line(gen)
                    except (IndexError, ValueError):
                        raise RuntimeError(
                            f"load generator failed:\n{log.read_text()[-3000:]}"
                        ) from None
                nursery.cancel_scope.cancel()
        rates: dict[str, list[float]] = {"grpc": [], "rest": []}
        server_cpu: dict[str, list[float]] = {"grpc": [], "rest": []}
        for i in range(runs):
            for kind in ("grpc", "rest"):
                w = result[kind][i]
                if w["errors"] > MAX_ERROR_RATE * max(1, w["calls"]):
                    raise RuntimeError(
                        f"control plane {kind}: {w['errors']} errors, {w['calls']} calls"
                    )
                rate = w["calls"] / w["seconds"]
                sim = sampler.share("simulator", w["wall_start"], w["wall_end"])
                client = sampler.share("loadgen", w["wall_start"], w["wall_end"])
                rates[kind].append(rate)
                server_cpu[kind].append(100 * sim)
                print(
                    f"  control {kind} run {i + 1}: {rate:,.0f} calls/s, p50 {w['p50_ms']:.2f} ms, "
                    f"p99 {w['p99_ms']:.2f} ms (simulator cpu {sim:.0%}, load generator {client:.0%})",
                    flush=True,
                )
        walls: list[float] = []
        for i in range(runs):
            chunk = factory_ids[READ_GATEWAYS + i * bulk : READ_GATEWAYS + (i + 1) * bulk]
            t0 = trio.current_time()
            created = await svc.bulk_create(chunk, 1000)
            walls.append(trio.current_time() - t0)
            if len(created) != bulk:
                raise RuntimeError(f"bulk create: {len(created)} of {bulk} created")
            print(
                f"  control bulk run {i + 1}: {bulk} gateways in {walls[-1]:.2f} s "
                f"({bulk / walls[-1]:.1f} gateways/s)",
                flush=True,
            )

    per_s = [bulk / w for w in walls]
    clients = f"{CLIENTS} clients"
    return [
        Figure(
            "control",
            f"gRPC GetGateway ({clients})",
            median(rates["grpc"]),
            "calls/s",
            runs=rates["grpc"],
        ),
        Figure(
            "control",
            f"REST GET /sim/gateways/{{id}} ({clients})",
            median(rates["rest"]),
            "req/s",
            runs=rates["rest"],
        ),
        Figure(
            "control",
            "simulator CPU under gRPC load",
            median(server_cpu["grpc"]),
            "% of a core",
            runs=server_cpu["grpc"],
        ),
        Figure(
            "control",
            "simulator CPU under REST load",
            median(server_cpu["rest"]),
            "% of a core",
            runs=server_cpu["rest"],
        ),
        Figure(
            "control",
            f"bulk create {bulk} gateways (onboarding incl.)",
            median(walls),
            "s",
            runs=walls,
        ),
        Figure("control", "bulk create rate", median(per_s), "gateways/s", runs=per_s),
    ]
