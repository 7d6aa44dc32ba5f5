"""End to end, real everything: simulator → NATS → consumer → PostgreSQL, with the
management and provisioning stand-ins, all driven through their public routes."""

from __future__ import annotations

import datetime as dt
import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import trio

from notip import envelope
from notip.devstack import DEMO_SENSORS, DevInfo
from tests.waiting import eventually

from .conftest import OFFLINE_TIMEOUT_MS, query

RANGES = {s["type"]: (s["minRange"], s["maxRange"]) for s in DEMO_SENSORS}


async def key_of(http: httpx.AsyncClient, dev: DevInfo, gateway_id: str) -> bytes:
    r = await http.get(f"{dev.mgmt_url}/keys", params={"gateway_id": gateway_id})
    assert r.status_code == 200, r.text
    return envelope.unb64(r.json()[-1]["key_material"])


def grpcurl(*args: str) -> str:
    exe = Path(sys.executable).parent / "grpcurl"
    out = subprocess.run(
        [str(exe), "-plaintext", *args], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


async def test_grpcurl_against_the_dev_stack(dev: DevInfo) -> None:
    # Reflection runs on the daemon's own trio-asyncio loop, opened by the dev stack.
    services = await trio.to_thread.run_sync(grpcurl, dev.sim_grpc_addr, "list")
    assert "notip.simulator.v1.SimulatorService" in services
    listed = await trio.to_thread.run_sync(
        grpcurl, dev.sim_grpc_addr, "notip.simulator.v1.SimulatorService/ListGateways"
    )
    assert all(gw in listed for gw in dev.gateway_ids)


async def test_rows_arrive_for_every_gateway_and_decrypt(
    dev: DevInfo, http: httpx.AsyncClient
) -> None:
    async def all_gateways_have_rows() -> list[asyncpg.Record] | None:
        rows = await query(
            dev.pg_dsn,
            "SELECT gateway_id, count(*) AS n FROM telemetry WHERE tenant_id = $1 GROUP BY gateway_id",
            dev.tenant_id,
        )
        ok = {r["gateway_id"] for r in rows if r["n"] >= 3} >= set(dev.gateway_ids)
        return rows if ok else None

    await eventually(all_gateways_have_rows, timeout=60)
    for gw in dev.gateway_ids:
        key = await key_of(http, dev, gw)
        rows = await query(
            dev.pg_dsn,
            "SELECT sensor_type, time, encrypted_data, iv, auth_tag, key_version FROM telemetry "
            "WHERE tenant_id = $1 AND gateway_id = $2 ORDER BY time DESC LIMIT 20",
            dev.tenant_id,
            gw,
        )
        for row in rows:
            reading = envelope.open_envelope(
                key,
                {
                    "gatewayId": gw,
                    "sensorId": "",
                    "sensorType": row["sensor_type"],
                    "timestamp": "",
                    "keyVersion": row["key_version"],
                    "encryptedData": row["encrypted_data"],
                    "iv": row["iv"],
                    "authTag": row["auth_tag"],
                },
            )
            assert reading["unit"] == envelope.UNITS[row["sensor_type"]]
            lo, hi = RANGES[row["sensor_type"]]
            span = hi - lo
            # spike readings may go 1.5 ranges beyond the bounds
            assert lo - 1.6 * span <= reading["value"] <= hi + 1.6 * span, (
                row["sensor_type"],
                reading,
            )
            assert abs(row["time"] - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)


async def _status(http: httpx.AsyncClient, dev: DevInfo, gw: str) -> dict[str, Any]:
    r = await http.get(f"{dev.mgmt_url}/gateways/{gw}")
    assert r.status_code == 200, r.text
    return r.json()


async def _alerts(http: httpx.AsyncClient, dev: DevInfo, gw: str) -> list[dict[str, Any]]:
    r = await http.get(
        f"{dev.mgmt_url}/alerts", params={"tenant_id": dev.tenant_id, "gateway_id": gw}
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_liveness_stop_alerts_start_recovers_pause_suppresses(
    dev: DevInfo, http: httpx.AsyncClient
) -> None:
    gw, paused_gw = dev.gateway_ids[0], dev.gateway_ids[1]

    async def online(g: str) -> bool:
        return (await _status(http, dev, g))["status"] == "online"

    # Liveness is fed by committed rows only: a gateway that never published is never
    # tracked (management shows it online from provisioning on).
    async def every_gateway_has_rows() -> bool:
        rows = await query(
            dev.pg_dsn,
            "SELECT DISTINCT gateway_id FROM telemetry WHERE tenant_id = $1",
            dev.tenant_id,
        )
        return {r["gateway_id"] for r in rows} >= set(dev.gateway_ids)

    await eventually(every_gateway_has_rows, timeout=60)
    await eventually(lambda: online(gw), timeout=60)
    assert (await http.post(f"{dev.sim_rest_url}/sim/gateways/{gw}/stop")).status_code == 204

    alerts = await eventually(
        lambda: _alerts(http, dev, gw), timeout=OFFLINE_TIMEOUT_MS / 1000 + 30
    )
    assert len(alerts) == 1
    assert alerts[0]["type"] == "gateway_offline" and alerts[0]["timeout_ms"] == OFFLINE_TIMEOUT_MS

    async def offline() -> bool:
        return (await _status(http, dev, gw))["status"] == "offline"

    await eventually(offline, timeout=30)

    assert (await http.post(f"{dev.sim_rest_url}/sim/gateways/{gw}/start")).status_code == 204
    await eventually(lambda: online(gw), timeout=30)
    assert len(await _alerts(http, dev, gw)) == 1, "one alert per transition"

    # Paused in management: silence is not an outage.
    assert (await http.post(f"{dev.mgmt_url}/gateways/{paused_gw}/pause")).status_code == 204
    assert (await http.post(f"{dev.sim_rest_url}/sim/gateways/{paused_gw}/stop")).status_code == 204
    # A second gateway stopped at the same moment, not paused, is the witness: once its
    # alert is in, the paused one has been past its timeout for as long.
    witness = dev.gateway_ids[2]
    assert (await http.post(f"{dev.sim_rest_url}/sim/gateways/{witness}/stop")).status_code == 204
    await eventually(lambda: _alerts(http, dev, witness), timeout=OFFLINE_TIMEOUT_MS / 1000 + 30)
    assert await _alerts(http, dev, paused_gw) == []
    status = await _status(http, dev, paused_gw)
    assert status["lifecycle"] == "paused" and status["status"] != "offline"


async def test_config_update_is_acked_and_changes_frequency(
    dev: DevInfo, http: httpx.AsyncClient
) -> None:
    gw = dev.gateway_ids[0]
    r = await http.post(f"{dev.mgmt_url}/cmd/{gw}/config", json={"send_frequency_ms": 150})
    assert r.status_code == 201, r.text
    command_id = r.json()["command_id"]

    async def acked() -> bool:
        s = await http.get(f"{dev.mgmt_url}/cmd/{gw}/status/{command_id}")
        return s.json()["status"] == "ack"

    await eventually(acked, timeout=30)
    assert (await http.get(f"{dev.sim_rest_url}/sim/gateways/{gw}")).json()[
        "sendFrequencyMs"
    ] == 150

    since = dt.datetime.now(dt.UTC)

    async def fast_rows() -> list[dt.datetime]:
        rows = await query(
            dev.pg_dsn,
            "SELECT sensor_id, time FROM telemetry WHERE gateway_id = $1 AND time > $2 ORDER BY time",
            gw,
            since,
        )
        per_sensor: dict[str, list[dt.datetime]] = {}
        for row in rows:
            per_sensor.setdefault(row["sensor_id"], []).append(row["time"])
        series = next(iter(per_sensor.values()), [])
        return series if len(series) >= 10 else []

    series = await eventually(fast_rows, timeout=30)
    gaps = sorted((b - a).total_seconds() for a, b in itertools.pairwise(series))
    median_gap = gaps[len(gaps) // 2]
    # Was 500 ms; now 150 ms.
    assert 0.1 <= median_gap <= 0.3, gaps


async def test_decommission_forgets_the_gateway(dev: DevInfo, http: httpx.AsyncClient) -> None:
    gw = dev.gateway_ids[-1]

    async def tracked() -> float:
        text = (await http.get(f"{dev.consumer_metrics_url}/metrics")).text
        line = next(
            x for x in text.splitlines() if x.startswith("notip_consumer_heartbeat_map_size ")
        )
        return float(line.split()[1])

    await eventually(lambda: _count_is(tracked, len(dev.gateway_ids)), timeout=60)
    assert (await http.delete(f"{dev.mgmt_url}/gateways/{gw}")).status_code == 204

    async def forgotten() -> bool:
        return (await http.get(f"{dev.sim_rest_url}/sim/gateways/{gw}")).status_code == 404

    await eventually(forgotten, timeout=30)
    await eventually(lambda: _count_is(tracked, len(dev.gateway_ids) - 1), timeout=30)


async def _count_is(read, expected: float) -> bool:  # type: ignore[no-untyped-def]
    return await read() == expected
