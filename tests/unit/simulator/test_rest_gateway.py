"""The REST face, derived from the proto: routes, codes, JSON spelling, errors.
The operations behind it are a recording stand-in here; tests/integration/simulator
runs the same face against the real daemon."""

from __future__ import annotations

import json
import uuid
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import empty_pb2

from notip.simulator import rest_gateway
from notip.simulator.errors import ApiError, check_uuid
from notip.simulator.v1 import simulator_pb2 as pb

# docs/contracts.md#simulator-rest-api, verbatim: (method, path, success code)
CONTRACT_ROUTES = {
    ("POST", "/sim/gateways", 201),
    ("POST", "/sim/gateways/bulk", 201),
    ("GET", "/sim/gateways", 200),
    ("GET", "/sim/gateways/{id}", 200),
    ("POST", "/sim/gateways/{id}/start", 204),
    ("POST", "/sim/gateways/{id}/stop", 204),
    ("DELETE", "/sim/gateways/{id}", 204),
    ("POST", "/sim/gateways/{id}/sensors", 201),
    ("GET", "/sim/gateways/{id}/sensors", 200),
    ("DELETE", "/sim/sensors/{sensorId}", 204),
    ("POST", "/sim/gateways/{id}/anomaly/network-degradation", 204),
    ("POST", "/sim/gateways/{id}/anomaly/disconnect", 204),
    ("POST", "/sim/sensors/{sensorId}/anomaly/outlier", 204),
    ("GET", "/health", 200),
}

GW = str(uuid.uuid4())


def _normalise(template: str) -> str:
    # the proto names path variables after fields; the contract names them id/sensorId
    return template.replace("{gateway_id}", "{id}").replace("{sensor_id}", "{sensorId}")


def test_routes_are_exactly_the_contract() -> None:
    derived = {(r.verb, _normalise(r.template), r.success_code) for r in rest_gateway.routes()}
    assert derived == CONTRACT_ROUTES
    bulk = next(r for r in rest_gateway.routes() if r.template.endswith("/bulk"))
    assert bulk.partial_code == 207


def test_anomaly_bodies_are_the_snake_case_ones() -> None:
    snake = {r.rpc.name for r in rest_gateway.routes() if r.snake_case}
    assert snake == {"InjectNetworkDegradation", "InjectDisconnect", "InjectOutlier"}


def test_status_table_covers_every_grpc_code() -> None:
    assert set(rest_gateway.HTTP_STATUS) == set(grpc.StatusCode)
    t = rest_gateway.HTTP_STATUS
    assert (t[grpc.StatusCode.INVALID_ARGUMENT], t[grpc.StatusCode.UNAUTHENTICATED]) == (400, 401)
    assert (t[grpc.StatusCode.NOT_FOUND], t[grpc.StatusCode.ALREADY_EXISTS]) == (404, 409)
    assert t[grpc.StatusCode.UNAVAILABLE] == 503


class RecordingOps:
    """Answers like the core would, remembering the requests it got."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def _rec(self, name: str, req: Any) -> None:
        self.calls.append((name, req))

    def _gateway(self, gid: str = GW) -> pb.Gateway:
        g = pb.Gateway(
            id=gid,
            factory_id="f1",
            model="m",
            send_frequency_ms=1000,
            status="online",
            tenant_id="t",
        )
        g.created_at.FromJsonString("2025-01-01T00:00:00.123Z")
        return g

    async def CreateGateway(self, req: pb.CreateGatewayRequest) -> pb.Gateway:
        self._rec("CreateGateway", req)
        if req.factory_key == "wrong":
            raise ApiError(grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")
        if not req.factory_id:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, "factoryId is required")
        return self._gateway()

    async def BulkCreateGateways(
        self, req: pb.BulkCreateGatewaysRequest
    ) -> pb.BulkCreateGatewaysResponse:
        self._rec("Bulk", req)
        errors = ["" if not f.startswith("bad") else "INVALID_CREDENTIALS" for f in req.factory_ids]
        return pb.BulkCreateGatewaysResponse(
            gateways=[self._gateway() for e in errors if not e], errors=errors
        )

    async def ListGateways(self, req: Any) -> pb.ListGatewaysResponse:
        return pb.ListGatewaysResponse(gateways=[self._gateway()])

    async def GetGateway(self, req: pb.GetGatewayRequest) -> pb.Gateway:
        self._rec("GetGateway", req)
        gid = check_uuid(req.id, "gateway id")
        if gid != GW:
            raise ApiError(grpc.StatusCode.NOT_FOUND, "gateway not found")
        return self._gateway()

    async def _empty(self, name: str, req: Any) -> empty_pb2.Empty:
        self._rec(name, req)
        return empty_pb2.Empty()

    async def StartGateway(self, req: Any) -> empty_pb2.Empty:
        return await self._empty("StartGateway", req)

    async def StopGateway(self, req: Any) -> empty_pb2.Empty:
        return await self._empty("StopGateway", req)

    async def DeleteGateway(self, req: Any) -> empty_pb2.Empty:
        return await self._empty("DeleteGateway", req)

    async def AddSensor(self, req: pb.AddSensorRequest) -> pb.Sensor:
        self._rec("AddSensor", req)
        return pb.Sensor(
            id="s",
            gateway_id=req.gateway_id,
            type=req.type,
            min_range=req.min_range,
            max_range=req.max_range,
            algorithm=req.algorithm,
        )

    async def ListSensors(self, req: Any) -> pb.ListSensorsResponse:
        return pb.ListSensorsResponse()

    async def DeleteSensor(self, req: Any) -> empty_pb2.Empty:
        return await self._empty("DeleteSensor", req)

    async def InjectNetworkDegradation(self, req: Any) -> empty_pb2.Empty:
        return await self._empty("InjectNetworkDegradation", req)

    async def InjectDisconnect(self, req: Any) -> empty_pb2.Empty:
        return await self._empty("InjectDisconnect", req)

    async def InjectOutlier(self, req: Any) -> empty_pb2.Empty:
        return await self._empty("InjectOutlier", req)

    async def GetHealth(self, req: Any) -> pb.HealthStatus:
        return pb.HealthStatus(status="ok")


@pytest.fixture
def ops() -> RecordingOps:
    return RecordingOps()


@pytest.fixture
async def http(ops: RecordingOps) -> Any:
    app = rest_gateway.create_app(ops)  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sim"
    ) as c:
        yield c


async def test_create_camel_and_snake_case_input(
    http: httpx.AsyncClient, ops: RecordingOps
) -> None:
    camel = {
        "factoryId": "f1",
        "factoryKey": "k",
        "model": "m",
        "firmwareVersion": "1.0",
        "sendFrequencyMs": 500,
    }
    snake = {
        "factory_id": "f1",
        "factory_key": "k",
        "model": "m",
        "firmware_version": "1.0",
        "send_frequency_ms": 500,
    }
    for body in (camel, snake):
        r = await http.post("/sim/gateways", json=body)
        assert r.status_code == 201
        assert r.json() == {
            "id": GW,
            "factoryId": "f1",
            "model": "m",
            "firmwareVersion": "",
            "provisioned": False,
            "sendFrequencyMs": 1000,
            "status": "online",
            "tenantId": "t",
            "createdAt": "2025-01-01T00:00:00.123Z",
            "desiredState": "",
            "connected": False,
            "lastError": "",
        }
    got = [req for name, req in ops.calls if name == "CreateGateway"]
    assert (
        got[0]
        == got[1]
        == pb.CreateGatewayRequest(
            factory_id="f1",
            factory_key="k",
            model="m",
            firmware_version="1.0",
            send_frequency_ms=500,
        )
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"text"', "JSON object"),
        (b'{"sendFrequencyMs": "soon"}', "invalid request"),
        (b'{"sendFrequencyMs": 1.5}', "invalid request"),
        (b'{"sendFrequencyMs": 99999999999}', "invalid request"),
        (b'{"factoryId": 12}', "invalid request"),
        (b'{"factoryId": null, "factoryKey": "k"}', "factoryId is required"),
        (b"\xff\xfe", "malformed JSON"),
    ],
)
async def test_bad_input_is_400_json(http: httpx.AsyncClient, body: bytes, fragment: str) -> None:
    r = await http.post("/sim/gateways", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert fragment in r.json()["error"]


async def test_error_codes_from_the_core(http: httpx.AsyncClient) -> None:
    r = await http.post("/sim/gateways", json={"factoryId": "f", "factoryKey": "wrong"})
    assert (r.status_code, r.json()) == (401, {"error": "INVALID_CREDENTIALS"})
    r = await http.get("/sim/gateways/not-a-uuid")
    assert r.status_code == 400 and "not a UUID" in r.json()["error"]
    r = await http.get(f"/sim/gateways/{uuid.uuid4()}")
    assert r.status_code == 404 and r.json() == {"error": "gateway not found"}


async def test_bulk_201_and_207(http: httpx.AsyncClient) -> None:
    r = await http.post("/sim/gateways/bulk", json={"factoryIds": ["a", "b"], "factoryKey": "k"})
    assert r.status_code == 201
    assert r.json()["errors"] == ["", ""] and len(r.json()["gateways"]) == 2
    r = await http.post(
        "/sim/gateways/bulk", json={"factory_ids": ["a", "bad1"], "factory_key": "k"}
    )
    assert r.status_code == 207
    assert r.json()["errors"] == ["", "INVALID_CREDENTIALS"] and len(r.json()["gateways"]) == 1


async def test_lists_are_bare_arrays_and_empty_is_204(http: httpx.AsyncClient) -> None:
    r = await http.get("/sim/gateways")
    assert r.status_code == 200 and isinstance(r.json(), list) and r.json()[0]["id"] == GW
    r = await http.get(f"/sim/gateways/{GW}/sensors")
    assert (r.status_code, r.json()) == (200, [])
    for method, path in (
        ("POST", f"/sim/gateways/{GW}/start"),
        ("POST", f"/sim/gateways/{GW}/stop"),
        ("DELETE", f"/sim/gateways/{GW}"),
        ("DELETE", f"/sim/sensors/{GW}"),
    ):
        r = await http.request(method, path)
        assert (r.status_code, r.content) == (204, b""), path


async def test_path_fields_win_and_anomaly_bodies_accept_both_spellings(
    http: httpx.AsyncClient, ops: RecordingOps
) -> None:
    r = await http.post(
        f"/sim/gateways/{GW}/sensors",
        json={"type": "humidity", "minRange": 1, "max_range": 2, "gatewayId": "other"},
    )
    assert r.status_code == 201 and r.json()["gatewayId"] == GW and r.json()["maxRange"] == 2
    r = await http.post(
        f"/sim/gateways/{GW}/anomaly/network-degradation",
        json={"duration_seconds": 3, "packet_loss_pct": 50},
    )
    assert r.status_code == 204
    r = await http.post(
        f"/sim/gateways/{GW}/anomaly/disconnect",
        json={"durationSeconds": 2, "buffer_while_offline": True},
    )
    assert r.status_code == 204
    r = await http.post(f"/sim/sensors/{GW}/anomaly/outlier")  # no body at all
    assert r.status_code == 204
    deg = next(req for name, req in ops.calls if name == "InjectNetworkDegradation")
    assert deg.gateway_id == GW and deg.duration_seconds == 3 and deg.HasField("packet_loss_pct")
    disc = next(req for name, req in ops.calls if name == "InjectDisconnect")
    assert disc.duration_seconds == 2 and disc.buffer_while_offline
    out = next(req for name, req in ops.calls if name == "InjectOutlier")
    assert not out.HasField("value")


async def test_health_unknown_routes_and_methods(http: httpx.AsyncClient) -> None:
    r = await http.get("/health")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    r = await http.get("/nope")
    assert r.status_code == 404 and "error" in r.json()
    r = await http.put("/sim/gateways")
    assert r.status_code == 405 and "error" in r.json()


async def test_openapi_document(http: httpx.AsyncClient) -> None:
    r = await http.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    assert set(paths) == {r.template for r in rest_gateway.routes()}
    create = paths["/sim/gateways"]["post"]
    assert set(create["responses"]) >= {"201", "400"}
    body_schema = doc["components"]["schemas"]["CreateGatewayRequest"]["properties"]
    assert set(body_schema) == {
        "factoryId",
        "factoryKey",
        "model",
        "firmwareVersion",
        "sendFrequencyMs",
    }
    deg = paths["/sim/gateways/{gateway_id}/anomaly/network-degradation"]["post"]
    ref = deg["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(doc["components"]["schemas"][ref]["properties"]) == {
        "duration_seconds",
        "packet_loss_pct",
    }
    bulk = paths["/sim/gateways/bulk"]["post"]["responses"]
    assert {"201", "207"} <= set(bulk)
    listing = paths["/sim/gateways"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]
    assert listing["type"] == "array"
    json.dumps(doc)  # serialisable


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/sim/gateways", "GET, HEAD, POST"),
        ("DELETE", "/sim/gateways", "GET, HEAD, POST"),
        ("PATCH", f"/sim/gateways/{GW}", "DELETE, GET, HEAD"),
        ("GET", f"/sim/gateways/{GW}/start", "POST"),
        ("OPTIONS", f"/sim/gateways/{GW}/sensors", "GET, HEAD, POST"),
        ("TRACE", "/health", "GET, HEAD"),
        ("POST", "/openapi.json", "GET, HEAD"),
        ("GET", f"/sim/sensors/{GW}/anomaly/outlier", "POST"),
    ],
)
async def test_405_lists_the_path_s_methods_in_allow(
    http: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    """RFC 9110 §15.5.6: a 405 carries Allow, listing every method of the path (not
    only those of the first route Starlette matched)."""
    r = await http.request(method, path)
    assert r.status_code == 405
    assert r.headers["allow"] == allow
    assert r.json()["error"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"value": null}', "value must not be null"),
        (b'{"value": 1, "extra": 2}', "unknown field 'extra'"),
        (b'{"value": null, "extra": 2}', "value must not be null"),
        (b'{"extra": true}', "unknown field 'extra'"),
        (b'{"value": false}', "value must be a number"),
        (b'{"value": "12"}', "value must be a number"),
        (b'{"value": "NaN"}', "value must be a number"),
        (b'{"value": "Infinity"}', "value must be a number"),
        (b'{"value": 1e400}', "value must be a finite number"),
        (b'{"value": 1' + b"0" * 400 + b"}", "value must be a finite number"),
        (b'{"sensor_id": null}', "sensor_id must not be null"),
        (b'{"value": [1]}', "value must be a number"),
        (b"[" * 100_000, "malformed JSON"),
    ],
)
async def test_outlier_body_unknown_fields_and_nulls_are_400(
    http: httpx.AsyncClient, ops: RecordingOps, body: bytes, fragment: str
) -> None:
    r = await http.post(
        f"/sim/sensors/{GW}/anomaly/outlier",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert fragment in r.json()["error"]
    assert not [name for name, _ in ops.calls if name == "InjectOutlier"]


async def test_outlier_value_in_either_spelling_and_absent(
    http: httpx.AsyncClient, ops: RecordingOps
) -> None:
    for body in ({"value": 7.5}, {}, {"value": 0}):
        r = await http.post(f"/sim/sensors/{GW}/anomaly/outlier", json=body)
        assert r.status_code == 204, (body, r.text)
    got = [req for name, req in ops.calls if name == "InjectOutlier"]
    assert [req.HasField("value") for req in got] == [True, False, True]
    assert got[0].value == 7.5


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/sim/gateways", {"factoryId": "f", "factoryKey": "k", "colour": "red"}, "unknown field"),
        ("/sim/gateways", {"factoryId": "f", "factoryKey": "k", "model": None}, "model must not"),
        ("/sim/gateways", {"factory_id": None, "factoryKey": "k"}, "factoryId is required"),
        (
            "/sim/gateways",
            {"factoryId": "f", "factoryKey": "k", "sendFrequencyMs": "500"},
            "integer",
        ),
        ("/sim/gateways", {"factoryId": "f", "factoryKey": "k", "sendFrequencyMs": -1}, "within"),
        ("/sim/gateways/bulk", {"factoryIds": ["a"], "factoryKey": "k", "x": 1}, "unknown field"),
        ("/sim/gateways/bulk", {"factoryIds": [], "factoryKey": "k"}, "at least one"),
        ("/sim/gateways/bulk", {"factoryIds": None, "factoryKey": "k"}, "factoryIds is required"),
        (f"/sim/gateways/{GW}/sensors", {"type": "humidity", "maxRange": 1, "x": 0}, "unknown"),
        (f"/sim/gateways/{GW}/sensors", {"type": None, "maxRange": 1}, "type is required"),
        (f"/sim/gateways/{GW}/sensors", {"type": "humidity", "maxRange": True}, "number"),
        (f"/sim/gateways/{GW}/sensors", {"type": "humidity", "minRange": 2, "maxRange": 1}, "less"),
        (f"/sim/gateways/{GW}/sensors", {"type": "lava", "maxRange": 1}, "type must be one of"),
        ("/sim/gateways/nope/sensors", {"type": "humidity", "maxRange": 1}, "not a UUID"),
        (f"/sim/gateways/{GW}/anomaly/disconnect", {"duration_seconds": 1, "x": 0}, "unknown"),
        (f"/sim/gateways/{GW}/anomaly/disconnect", {"duration_seconds": None}, "is required"),
        (f"/sim/gateways/{GW}/anomaly/disconnect", {"buffer_while_offline": True}, "is required"),
        (
            f"/sim/gateways/{GW}/anomaly/network-degradation",
            {"duration_seconds": 1, "packet_loss_pct": None},
            "packet_loss_pct must not be null",
        ),
        (
            f"/sim/gateways/{GW}/anomaly/network-degradation",
            {"durationSeconds": 1, "packetLossPct": 101},
            "packet_loss_pct must be within [0, 100]",
        ),
    ],
)
async def test_bodies_are_checked_alike_on_every_route(
    http: httpx.AsyncClient, ops: RecordingOps, path: str, body: dict[str, Any], fragment: str
) -> None:
    r = await http.post(path, json=body)
    assert r.status_code == 400, r.text
    assert fragment in r.json()["error"]
    assert ops.calls == []  # rejected before the operation


async def test_openapi_document_is_served_with_the_rules(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/openapi.json")).json()
    assert doc == json.loads(json.dumps(rest_gateway.openapi(rest_gateway.routes())))
    create = doc["components"]["schemas"]["CreateGatewayRequest"]
    assert create["required"] == ["factoryId", "factoryKey"]
