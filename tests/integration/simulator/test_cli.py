"""`notip sim …` as a user runs it (a subprocess) against a running simulator, and
`notip simulator` refusing a bad configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import trio

from tests.waiting import eventually

from .conftest import SimHandle


async def notip(
    *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(60):
        return await trio.run_process(
            [sys.executable, "-m", "notip", *args],
            capture_stdout=True,
            capture_stderr=True,
            check=check,
            env={**os.environ, **(env or {})},
        )


async def test_cli_against_a_running_simulator(sim: SimHandle) -> None:
    addr = ["sim", "--addr", sim.grpc_target]
    one = await sim.seed()
    out = await notip(
        *addr,
        "gateways",
        "create",
        "--factory-id",
        one.factory_id,
        "--factory-key",
        one.factory_key,
        "--model",
        "cli-model",
        "--send-frequency-ms",
        "500",
    )
    table = out.stdout.decode().splitlines()
    assert table[0].split()[:3] == ["ID", "FACTORY", "MODEL"]
    assert one.gateway_id in table[1] and "cli-model" in table[1]

    many = [await sim.seed() for _ in range(3)]
    bulk = await notip(
        *addr,
        "gateways",
        "bulk",
        *[m.factory_id for m in many],
        "no-such-factory",
        "--factory-key",
        many[0].factory_key,
        "--chunk",
        "2",
        check=False,
    )
    assert bulk.returncode == 1  # one failed
    progress = bulk.stderr.decode()
    assert "[" in progress and "4/4 onboarded, 1 failed" in progress and "2/4" in progress
    text = bulk.stdout.decode()
    assert all(m.gateway_id in text for m in many)
    assert "no-such-factory" in text and "INVALID_CREDENTIALS" in text

    listed = json.loads((await notip(*addr[:3], "--json", "gateways", "list")).stdout)
    assert {g["id"] for g in listed} == {one.gateway_id, *(m.gateway_id for m in many)}
    got = json.loads((await notip(*addr[:3], "--json", "gateways", "get", one.gateway_id)).stdout)
    assert got["model"] == "cli-model" and got["sendFrequencyMs"] == 500

    added = json.loads(
        (
            await notip(
                *addr[:3],
                "--json",
                "sensors",
                "add",
                one.gateway_id,
                "--type",
                "temperature",
                "--min",
                "-5",
                "--max",
                "5",
            )
        ).stdout
    )
    assert added["type"] == "temperature" and added["minRange"] == -5
    sensors_table = (await notip(*addr, "sensors", "list", one.gateway_id)).stdout.decode()
    assert added["id"] in sensors_table and "uniform_random" in sensors_table

    await notip(*addr, "anomalies", "outlier", added["id"], "--value", "100")
    await notip(
        *addr,
        "anomalies",
        "network-degradation",
        one.gateway_id,
        "--duration",
        "0.5",
        "--packet-loss",
        "20",
    )
    await notip(*addr, "anomalies", "disconnect", one.gateway_id, "--duration", "0.5")
    for kind in ("outlier", "network_degradation", "disconnect"):
        assert sim.sample("notip_sim_anomalies_injected_total", type=kind) == 1
    bad = await notip(
        *addr, "anomalies", "disconnect", one.gateway_id, "--duration", "0", check=False
    )
    assert bad.returncode == 1 and b"INVALID_ARGUMENT" in bad.stderr

    await notip(*addr, "sensors", "delete", added["id"])
    await notip(*addr, "gateways", "stop", one.gateway_id)
    assert not sim.sim.registry.running(one.gateway_id)
    await notip(*addr, "gateways", "start", one.gateway_id)
    await eventually(lambda: sim.sim.registry.running(one.gateway_id))
    await notip(*addr, "gateways", "delete", one.gateway_id)
    missing = await notip(*addr, "gateways", "get", one.gateway_id, check=False)
    assert missing.returncode == 1 and b"NOT_FOUND" in missing.stderr
    env_addr = await notip("sim", "health", env={"SIM_GRPC_ADDR": sim.grpc_target})
    assert env_addr.stdout.decode().strip() == "ok"


async def test_daemon_refuses_a_bad_configuration() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"PROVISIONING_URL", "NATS_URL"}}
    env["NATS_CA_CERT_PATH"] = f"/nonexistent/{uuid.uuid4()}"
    with trio.fail_after(60):
        out = await trio.run_process(
            [sys.executable, "-m", "notip", "simulator"],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=env,
        )
    err = out.stderr.decode()
    assert out.returncode == 2
    assert (
        "PROVISIONING_URL is required" in err
        and "NATS_URL is required" in err
        and "NATS_CA_CERT_PATH" in err
    )
    assert "Traceback" not in err
