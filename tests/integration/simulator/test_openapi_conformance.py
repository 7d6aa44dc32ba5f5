"""The REST gateway conforms to its own /openapi.json: schemathesis against the live
daemon (the session's nats-server, the real provisioning and management stand-ins).

`schemathesis run` (the CLI, in a subprocess, so its Hypothesis settings and pytest
plugin stay out of this process) with its default checks, all on: no 5xx, documented
status codes, content types, headers and bodies; schema-valid data accepted
(`positive_data_acceptance`), schema-invalid data rejected
(`negative_data_rejection`); 405 with `Allow` for undocumented methods. Bounded and
reproducible: `--max-examples` per operation, deterministic generation (no seed, no
example database), one worker, no time limit on anything but the whole run.

Two passes:
- every operation with generated path ids (unknown ones: 404 after the request
  rules are checked; onboarding random factory ids gets provisioning's 401), all
  phases;
- the operations that act on an existing gateway or sensor without removing it, with
  the path ids pinned to a real running gateway and sensor, so requests that pass the
  rules reach the registry and the gateway runtime (sensors added, anomalies
  injected).

Cross-field rules: schemathesis_hooks.py.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import trio

from notip.simulator.grpc_api import SERVICE

from .conftest import SimHandle

REPO = Path(__file__).resolve().parents[3]
MAX_EXAMPLES = 20
RUN_CEILING_S = 900  # a hang guard only: a pass takes ~20 s on an idle machine
HOOKS = "tests.integration.simulator.schemathesis_hooks"

# Operations that act on one existing gateway/sensor and leave it in place.
PINNED_OPERATIONS = (
    "GetGateway",
    "StartGateway",
    "AddSensor",
    "ListSensors",
    "InjectNetworkDegradation",
    "InjectDisconnect",
    "InjectOutlier",
)


def _config(path: Path, *, pinned: dict[str, str] | None = None) -> Path:
    lines = [
        "[generation]",
        "deterministic = true",
        f"max-examples = {MAX_EXAMPLES}",
        "",
    ]
    if pinned:
        lines.append("[parameters]")
        lines += [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in pinned.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


async def _schemathesis(
    sim: SimHandle, workdir: Path, config: Path, *args: str
) -> tuple[int, str, float]:
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": HOOKS,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "NO_COLOR": "1",
        "COLUMNS": "120",
    }
    argv = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"http://127.0.0.1:{sim.info.http_port}/openapi.json",
        "--workers",
        "1",
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "60",
        *args,
    ]
    started = trio.current_time()
    with trio.fail_after(RUN_CEILING_S):
        done = await trio.run_process(
            argv, cwd=workdir, env=env, capture_stdout=True, capture_stderr=True, check=False
        )
    output = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    return done.returncode, output, trio.current_time() - started


async def test_every_operation_conforms(sim: SimHandle, tmp_path: Path) -> None:
    code, output, took = await _schemathesis(sim, tmp_path, _config(tmp_path / "st.toml"))
    assert code == 0, output
    assert f"Tested: {len(SERVICE.methods) - 1}" in output, output  # WatchGateway: gRPC only
    print(f"schemathesis, all operations: {took:.1f}s")


async def test_operations_on_an_existing_gateway_conform(sim: SimHandle, tmp_path: Path) -> None:
    gw, _ = await sim.create(send_frequency_ms=1000)
    sensor = await sim.add_sensor(gw["id"])
    pinned = {"path.id": gw["id"], "path.gateway_id": gw["id"], "path.sensor_id": sensor["id"]}
    include = [a for op in PINNED_OPERATIONS for a in ("--include-operation-id", op)]
    code, output, took = await _schemathesis(
        sim,
        tmp_path,
        _config(tmp_path / "st.toml", pinned=pinned),
        "--phases",
        "examples,coverage,fuzzing",
        *include,
    )
    assert code == 0, output
    assert f"Tested: {len(PINNED_OPERATIONS)}" in output, output
    # Requests did get past the rules: sensors were added, the gateway is still there.
    r = await sim.http.get(f"/sim/gateways/{gw['id']}/sensors")
    assert r.status_code == 200 and len(r.json()) > 1, r.text
    print(f"schemathesis, pinned to a gateway: {took:.1f}s")
