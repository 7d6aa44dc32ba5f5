"""The gRPC face: the same operations through the typed client over the generated
stubs, the event stream, health, and the real grpcurl binary (list, describe, calls)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import grpc
import trio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from notip.simulator.client import SimulatorClient, SimulatorError

from .conftest import SimHandle


def grpcurl() -> str:
    here = Path(sys.executable).parent / "grpcurl"
    found = str(here) if here.exists() else shutil.which("grpcurl")
    assert found, "grpcurl is not installed (dev extra)"
    return found


async def test_operations_over_grpc(sim: SimHandle) -> None:
    seeded = await sim.seed()

    def scenario() -> dict[str, Any]:
        with SimulatorClient(sim.grpc_target, timeout=60) as c:
            out: dict[str, Any] = {"health": c.health()}
            gw = c.create_gateway(
                seeded.factory_id, seeded.factory_key, model="g", send_frequency_ms=100
            )
            out["gw"] = gw
            out["get"] = c.get_gateway(gw.id)
            out["list"] = c.list_gateways()
            s = c.add_sensor(gw.id, "movement", 0, 5, "sine_wave")
            out["sensors"] = c.list_sensors(gw.id)
            events = []
            for ev in c.watch(gw.id, timeout=10):
                events.append(ev)
                if sum(1 for e in events if e.HasField("reading")) >= 3:
                    break
            out["events"] = events
            c.outlier(s.id, 77.0)
            c.network_degradation(gw.id, 0.5, 10)
            c.disconnect(gw.id, 0.5, buffer_while_offline=True)
            errors = {}
            for name, call in (
                ("not_found", lambda: c.get_gateway(str(uuid.uuid4()))),
                ("bad_uuid", lambda: c.start_gateway("nope")),
                ("bad_sensor", lambda: c.add_sensor(gw.id, "humidity", 2, 1)),
                ("bad_duration", lambda: c.disconnect(gw.id, 0)),
                ("bad_key", lambda: c.create_gateway("f-unknown", "k")),
            ):
                try:
                    call()
                except SimulatorError as exc:
                    errors[name] = exc.code
            out["errors"] = errors
            c.stop_gateway(gw.id)
            out["stopped"] = c.get_gateway(gw.id)
            c.delete_sensor(s.id)
            c.delete_gateway(gw.id)
            out["after"] = c.list_gateways()
            with grpc.insecure_channel(sim.grpc_target) as ch:
                out["serving"] = (
                    health_pb2_grpc.HealthStub(ch)
                    .Check(
                        health_pb2.HealthCheckRequest(
                            service="notip.simulator.v1.SimulatorService"
                        ),
                        timeout=10,
                    )
                    .status
                )
            return out

    out = await trio.to_thread.run_sync(scenario)
    assert out["health"] == "ok"
    gw = out["gw"]
    assert (
        gw.id == seeded.gateway_id
        and gw.tenant_id == seeded.tenant_id
        and gw.send_frequency_ms == 100
    )
    assert out["get"].id == gw.id and [g.id for g in out["list"]] == [gw.id]
    assert [s.type for s in out["sensors"]] == ["movement"]
    readings = [e.reading for e in out["events"] if e.HasField("reading")]
    assert all(r.unit == "m/s" and 0 <= r.value <= 5 for r in readings)
    assert out["errors"] == {
        "not_found": grpc.StatusCode.NOT_FOUND,
        "bad_uuid": grpc.StatusCode.INVALID_ARGUMENT,
        "bad_sensor": grpc.StatusCode.INVALID_ARGUMENT,
        "bad_duration": grpc.StatusCode.INVALID_ARGUMENT,
        "bad_key": grpc.StatusCode.UNAUTHENTICATED,
    }
    assert out["stopped"].desired_state == "stopped" and out["stopped"].status == "offline"
    assert out["after"] == []
    assert out["serving"] == health_pb2.HealthCheckResponse.SERVING
    for kind in ("outlier", "network_degradation", "disconnect"):
        assert sim.sample("notip_sim_anomalies_injected_total", type=kind) == 1


async def run_grpcurl(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(30):
        return await trio.run_process(
            [grpcurl(), *args], capture_stdout=True, capture_stderr=True, check=check
        )


async def test_grpcurl_list_describe_and_call(sim: SimHandle) -> None:
    target = sim.grpc_target
    listed = (await run_grpcurl("-plaintext", target, "list")).stdout.decode().split()
    assert {"notip.simulator.v1.SimulatorService", "grpc.health.v1.Health"} <= set(listed)

    service = (
        await run_grpcurl("-plaintext", target, "describe", "notip.simulator.v1.SimulatorService")
    ).stdout.decode()
    assert "rpc CreateGateway" in service and "rpc WatchGateway" in service and "stream" in service
    method = (
        await run_grpcurl(
            "-plaintext", target, "describe", "notip.simulator.v1.SimulatorService.AddSensor"
        )
    ).stdout.decode()
    assert "rpc AddSensor" in method and '"/sim/gateways/{gateway_id}/sensors"' in method
    message = (
        await run_grpcurl("-plaintext", target, "describe", "notip.simulator.v1.Gateway")
    ).stdout.decode()
    assert "send_frequency_ms" in message and "key" not in message.replace("keyVersion", "")

    health = await run_grpcurl(
        "-plaintext", target, "notip.simulator.v1.SimulatorService/GetHealth"
    )
    assert json.loads(health.stdout) == {"status": "ok"}
    gw, _ = await sim.create(send_frequency_ms=1000)
    got = await run_grpcurl(
        "-plaintext",
        "-d",
        json.dumps({"id": gw["id"]}),
        target,
        "notip.simulator.v1.SimulatorService/GetGateway",
    )
    assert json.loads(got.stdout)["id"] == gw["id"]
    listed_gw = await run_grpcurl(
        "-plaintext", "-d", "{}", target, "notip.simulator.v1.SimulatorService/ListGateways"
    )
    assert [g["id"] for g in json.loads(listed_gw.stdout)["gateways"]] == [gw["id"]]
    sensor = await run_grpcurl(
        "-plaintext",
        "-d",
        json.dumps({"gateway_id": gw["id"], "type": "humidity", "min_range": 10, "max_range": 20}),
        target,
        "notip.simulator.v1.SimulatorService/AddSensor",
    )
    added = json.loads(sensor.stdout)  # grpcurl prints proto field names
    assert added["gateway_id"] == gw["id"] and added["type"] == "humidity"
    missing = await run_grpcurl(
        "-plaintext",
        "-d",
        json.dumps({"id": str(uuid.uuid4())}),
        target,
        "notip.simulator.v1.SimulatorService/GetGateway",
        check=False,
    )
    assert missing.returncode != 0 and b"NotFound" in missing.stderr
    checked = await run_grpcurl("-plaintext", target, "grpc.health.v1.Health/Check")
    assert json.loads(checked.stdout) == {"status": "SERVING"}


async def test_request_rules_answer_alike_on_both_faces(sim: SimHandle) -> None:
    """One validator (validation.py, from the proto's rules) behind both faces: the
    same broken request is INVALID_ARGUMENT over gRPC and 400 over REST, with the same
    message, before any lookup (the ids below exist nowhere)."""
    from notip.simulator.v1 import simulator_pb2 as pb
    from notip.simulator.v1 import simulator_pb2_grpc as pb_grpc

    gid, sid = str(uuid.uuid4()), str(uuid.uuid4())
    cases: list[tuple[str, Any, str, str, dict[str, Any] | None]] = [
        (
            "CreateGateway",
            pb.CreateGatewayRequest(factory_id="f", factory_key="k", send_frequency_ms=-1),
            "POST",
            "/sim/gateways",
            {"factoryId": "f", "factoryKey": "k", "sendFrequencyMs": -1},
        ),
        (
            "BulkCreateGateways",
            pb.BulkCreateGatewaysRequest(factory_key="k"),
            "POST",
            "/sim/gateways/bulk",
            {"factoryKey": "k"},
        ),
        ("GetGateway", pb.GetGatewayRequest(id="nope"), "GET", "/sim/gateways/nope", None),
        (
            "AddSensor",
            pb.AddSensorRequest(gateway_id=gid, type="humidity", min_range=2, max_range=1),
            "POST",
            f"/sim/gateways/{gid}/sensors",
            {"type": "humidity", "minRange": 2, "maxRange": 1},
        ),
        (
            "AddSensor",
            pb.AddSensorRequest(gateway_id=gid, type="lava", max_range=1),
            "POST",
            f"/sim/gateways/{gid}/sensors",
            {"type": "lava", "maxRange": 1},
        ),
        (
            "InjectNetworkDegradation",
            pb.NetworkDegradationRequest(gateway_id=gid, duration_seconds=1, packet_loss_pct=150),
            "POST",
            f"/sim/gateways/{gid}/anomaly/network-degradation",
            {"duration_seconds": 1, "packet_loss_pct": 150},
        ),
        (
            "InjectDisconnect",
            pb.DisconnectRequest(gateway_id=gid, duration_seconds=-1),
            "POST",
            f"/sim/gateways/{gid}/anomaly/disconnect",
            {"duration_seconds": -1},
        ),
        (
            "InjectOutlier",
            pb.OutlierRequest(sensor_id=sid, value=float("nan")),
            "POST",
            f"/sim/sensors/{sid}/anomaly/outlier",
            None,  # NaN is no JSON number: the REST twin is checked below
        ),
    ]

    def grpc_errors() -> list[tuple[grpc.StatusCode, str]]:
        out = []
        with grpc.insecure_channel(sim.grpc_target) as ch:
            stub = pb_grpc.SimulatorServiceStub(ch)
            for rpc, request, *_ in cases:
                try:
                    getattr(stub, rpc)(request, timeout=30)
                except grpc.RpcError as exc:
                    out.append((exc.code(), exc.details() or ""))
                else:
                    out.append((grpc.StatusCode.OK, ""))
            try:
                next(iter(stub.WatchGateway(pb.WatchGatewayRequest(gateway_id="x"), timeout=30)))
            except grpc.RpcError as exc:
                out.append((exc.code(), exc.details() or ""))
        return out

    got = await trio.to_thread.run_sync(grpc_errors)
    assert all(code == grpc.StatusCode.INVALID_ARGUMENT for code, _ in got), got
    assert got[-1][1] == "gatewayId is not a UUID: 'x'"
    assert got[-2][1] == "value must be a finite number"
    for (_, method, path, body), (_, message) in zip(
        [c[1:] for c in cases[:-1]], got[:-2], strict=True
    ):
        r = await sim.http.request(method, path, json=body)
        assert (r.status_code, r.json()) == (400, {"error": message}), (path, body)
