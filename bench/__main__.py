"""`just bench` / `python -m bench [--full] [--only NAME ...]`.

Runs the benchmarks on a fresh local nats-server and PostgreSQL (fsync on), prints a
table with the targets beside the figures and writes the figures as JSON
(`bench/results/latest.json` unless `--json` says otherwise). Each figure is the
median of several runs; comparisons are ratios measured within the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bench import harness
from bench.harness import Figure, Stack


@dataclass(frozen=True)
class Profile:
    drain_n: int
    drain_runs: int
    latency_rate: int
    latency_seconds: float
    latency_runs: int
    scaleout_n: int
    scaleout_runs: int
    sim_gateways: int
    sim_sensors: int
    sim_seconds: float
    sim_runs: int
    control_seconds: float
    control_bulk: int
    # Windows of the search for the largest simulator N meeting its targets (0: none).
    sim_search_seconds: float = 0.0
    # The size whose RSS and targets are reported besides sim_gateways (0: none).
    sim_big_gateways: int = 0
    control_runs: int = 3


PROFILES = {
    # Aimed at about 8 minutes on the quiet 2-core reference machine. Measured there
    # while it was shared (load average ~12): drain ~4 min (five variants × 3 runs,
    # most of it naive's), simulator ~9½ min (4 of them onboarding the 500
    # gateways). Earlier, quiet: latency ~80 s, scale-out ~20 s, control ~30 s.
    "short": Profile(
        drain_n=50_000,
        drain_runs=3,
        latency_rate=5000,
        latency_seconds=20,
        latency_runs=3,
        scaleout_n=50_000,
        scaleout_runs=3,
        sim_gateways=500,
        sim_sensors=5,
        sim_seconds=10,
        sim_runs=3,
        control_seconds=2,
        control_bulk=30,
    ),
    "full": Profile(
        drain_n=1_000_000,
        drain_runs=3,
        latency_rate=5000,
        latency_seconds=60,
        latency_runs=3,
        scaleout_n=200_000,
        scaleout_runs=3,
        sim_gateways=500,
        sim_sensors=5,
        sim_seconds=60,
        sim_runs=3,
        control_seconds=10,
        control_bulk=500,
        sim_search_seconds=20,
        sim_big_gateways=1000,
    ),
    # For the smoke test: every benchmark on a tiny input, so they cannot rot.
    "smoke": Profile(
        # Backlogs of 10k so that a drain spans many polls of the consumer's state.
        drain_n=10_000,
        drain_runs=1,
        latency_rate=200,
        latency_seconds=2,
        latency_runs=1,
        scaleout_n=10_000,
        scaleout_runs=1,
        sim_gateways=3,
        sim_sensors=2,
        sim_seconds=3,
        sim_runs=1,
        sim_big_gateways=5,
        control_seconds=1,
        control_bulk=3,
        control_runs=1,
    ),
}

Bench = Callable[[Stack, Profile], Awaitable[list[Figure]]]


def benches() -> dict[str, Bench]:
    from bench import consumer_drain, consumer_latency

    out: dict[str, Bench] = {
        "drain": lambda s, p: consumer_drain.run(s, p.drain_n, p.drain_runs),
        "latency": lambda s, p: consumer_latency.run(
            s, p.latency_rate, p.latency_seconds, p.latency_runs
        ),
    }
    try:
        from bench import consumer_scaleout

        out["scaleout"] = lambda s, p: consumer_scaleout.run(s, p.scaleout_n, p.scaleout_runs)
    except ImportError:
        pass
    try:
        from bench import simulator_scale

        out["simulator"] = lambda s, p: simulator_scale.run(
            s,
            p.sim_gateways,
            p.sim_sensors,
            p.sim_seconds,
            p.sim_runs,
            p.sim_search_seconds,
            big_gateways=p.sim_big_gateways,
        )
    except ImportError:
        pass
    try:
        from bench import control_plane

        out["control"] = lambda s, p: control_plane.run(
            s, p.control_seconds, p.control_bulk, p.control_runs
        )
    except ImportError:
        pass
    return out


def main(argv: list[str] | None = None) -> int:
    from notip import bridge

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--full", action="store_true", help="the long profile (1M-message drain, 1,000 gateways)"
    )
    parser.add_argument(
        "--profile", choices=sorted(PROFILES), help="explicit profile (overrides --full)"
    )
    parser.add_argument("--only", nargs="*", help="run only these benchmarks")
    parser.add_argument(
        "--json", default="bench/results/latest.json", help="where to write the figures"
    )
    args = parser.parse_args(argv)
    name = args.profile or ("full" if args.full else "short")
    profile = PROFILES[name]
    selected = benches()
    if args.only:
        unknown = set(args.only) - set(selected)
        if unknown:
            parser.error(
                f"unknown benchmark(s): {', '.join(sorted(unknown))}; have {', '.join(selected)}"
            )
        selected = {k: v for k, v in selected.items() if k in args.only}

    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    calibration, calibration_runs = harness.calibrate()
    load = os.getloadavg()
    print(
        f"host: {machine}; calibration {calibration * 1000:.0f} ms CPU (fixed pure-Python "
        f"loop, median of {len(calibration_runs)}: "
        + ", ".join(f"{1000 * c:.0f}" for c in calibration_runs)
        + f" ms); load average {load[0]:.2f}",
        flush=True,
    )
    figures: list[Figure] = []
    durations: dict[str, float] = {}
    started_all = time.monotonic()
    for bench_name, bench in selected.items():
        print(f"== {bench_name} ({name} profile)", flush=True)
        started = time.monotonic()
        with harness.stack(plain_nats=bench_name == "drain") as s:
            figures += bridge.run(functools.partial(bench, s, profile))
        durations[bench_name] = round(time.monotonic() - started, 1)
        print(f"   ({bench_name}: {durations[bench_name]:.0f} s)", flush=True)
    calibration_end, calibration_end_runs = harness.calibrate()
    load_end = os.getloadavg()
    print()
    print(
        f"calibration at the end: {calibration_end * 1000:.0f} ms CPU; load average "
        f"{load_end[0]:.2f}; total {time.monotonic() - started_all:.0f} s"
    )
    harness.print_table(figures)
    meta = {
        "profile": name,
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "argv": sys.argv[1:],
        # CPU seconds of harness.calibration_loop, median of 5, before and after the
        # benchmarks: divide CPU figures by it to compare hosts.
        "calibration_s": round(calibration, 4),
        "calibration_runs_s": [round(c, 4) for c in calibration_runs],
        "calibration_end_s": round(calibration_end, 4),
        "calibration_end_runs_s": [round(c, 4) for c in calibration_end_runs],
        "load_average": [round(x, 2) for x in (load[0], load_end[0])],
        "seconds": durations,
    }
    harness.write_json(figures, Path(args.json), meta)
    print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
