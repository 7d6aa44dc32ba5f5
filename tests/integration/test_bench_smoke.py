"""The benchmarks cannot rot: `python -m bench --profile smoke` runs every benchmark on
a tiny input (its own nats-server and PostgreSQL) and must produce every figure.
Performance targets are NOT asserted here (CI machines vary): only that each figure
exists and is a sane number."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Figure names (prefixes) each benchmark must report.
EXPECTED: dict[str, tuple[str, ...]] = {
    "drain": (
        # Both transports: mTLS NATS + PostgreSQL TLS, and plain TCP.
        *(
            f"{figure}, {transport}"
            for transport in ("plain", "tls")
            for figure in (
                "ours msg/s",
                "ours CPU µs/msg",
                "limit msg/s",
                "limit CPU µs/msg",
                "ours / limit",
                "ours peak RSS",
                "ours CPU nats",
                "ours CPU postgres",
                "ours CPU python",
            )
        ),
        "naive msg/s, plain",
        "naive CPU µs/msg, plain",
        "ours / naive, plain",
    ),
    "latency": (
        "published rate",
        "publish → commit p50",
        "publish → commit p99",
        "publish → commit max",
        "lag growth",
    ),
    "scaleout": (
        "1 instance msg/s",
        "2 instances, 1 durable, total msg/s",
        "2 / 1 instances",
        "instance 2 share of messages",
        "duplicate rows (2 instances)",
        "duplicates skipped by the insert",
        "2 instances CPU python",
        "2 instances CPU postgres",
    ),
    "simulator": (
        "confirmed / scheduled",
        "tick lateness p99",
        "simulator CPU",
        "simulator CPU µs per confirmed envelope",
        "floor CPU µs per envelope",
        "simulator / floor CPU per envelope",
        "simulator RSS (peak)",
        "5 gateways sustained",
        "RSS (peak) at 5 gateways",
        "largest N meeting",
    ),
    "control": (
        "gRPC GetGateway",
        "REST GET /sim/gateways/{id}",
        "simulator CPU under gRPC load",
        "simulator CPU under REST load",
        "bulk create 3 gateways",
        "bulk create rate",
    ),
}
# May legitimately be zero on a tiny input (CPU ticks are 10 ms; the second consumer
# may start after a 10k backlog is gone; a 3-gateway run may miss 99.9 %, which also
# makes the simulator ÷ floor ratio 0 when a 3-s window confirms nothing).
MAY_BE_ZERO = ("CPU", "share", "duplicates skipped", "largest N", "sustained", "/ floor")
ANY_SIGN = ("lag growth",)


def test_every_benchmark_produces_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--profile", "smoke", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        # About 2 minutes on a 2-core machine under load; generous for a busier one.
        timeout=420,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "benchmark  figure" in proc.stdout  # the table was printed

    data = json.loads(out.read_text())
    assert data["meta"]["profile"] == "smoke"
    # The host calibration (a fixed pure-Python loop's CPU time) is printed and kept.
    assert "calibration" in proc.stdout
    for key in ("calibration_s", "calibration_end_s"):
        assert 0 < data["meta"][key] < 60, data["meta"]
    figures = data["figures"]
    by_bench: dict[str, list[dict[str, object]]] = {}
    for f in figures:
        by_bench.setdefault(str(f["bench"]), []).append(f)
    assert set(by_bench) == set(EXPECTED)

    for bench, prefixes in EXPECTED.items():
        names = [str(f["name"]) for f in by_bench[bench]]
        for prefix in prefixes:
            assert any(n.startswith(prefix) for n in names), f"{bench}: no {prefix!r} in {names}"
    for f in figures:
        name, value = str(f["name"]), f["value"]
        assert isinstance(value, int | float) and math.isfinite(value), f
        if any(k in name for k in ANY_SIGN):
            continue
        if any(k in name for k in MAY_BE_ZERO):
            assert value >= 0, f
        elif name.startswith("duplicate rows"):
            assert value == 0, f
        else:
            assert value > 0, f
        if f["target"]:
            assert isinstance(f["met"], bool), f  # the table marks it met or not
