"""The request rules declared in simulator.proto (`(rules)`, `(less_than)`), as the
validator enforces them (both faces) and as /openapi.json publishes them."""

from __future__ import annotations

import math
import uuid
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from notip import envelope
from notip.simulator import rest_gateway, sensors, validation
from notip.simulator.errors import ApiError
from notip.simulator.settings import MAX_SEND_FREQUENCY_MS
from notip.simulator.v1 import simulator_pb2 as pb

GW = str(uuid.uuid4())
SENSOR = str(uuid.uuid4())


def _create(**over: Any) -> pb.CreateGatewayRequest:
    return pb.CreateGatewayRequest(**{"factory_id": "f-1", "factory_key": "k", **over})


def _bulk(**over: Any) -> pb.BulkCreateGatewaysRequest:
    return pb.BulkCreateGatewaysRequest(**{"factory_ids": ["a"], "factory_key": "k", **over})


def _sensor(**over: Any) -> pb.AddSensorRequest:
    base = {"gateway_id": GW, "type": "temperature", "min_range": -10, "max_range": 40}
    return pb.AddSensorRequest(**{**base, **over})


def _degrade(**over: Any) -> pb.NetworkDegradationRequest:
    return pb.NetworkDegradationRequest(**{"gateway_id": GW, "duration_seconds": 1.5, **over})


def _disconnect(**over: Any) -> pb.DisconnectRequest:
    return pb.DisconnectRequest(**{"gateway_id": GW, "duration_seconds": 2, **over})


VALID: list[message.Message] = [
    _create(),
    _create(model="m", firmware_version="x" * 256, send_frequency_ms=MAX_SEND_FREQUENCY_MS),
    _create(send_frequency_ms=0),  # 0 = the default
    _bulk(),
    _bulk(factory_ids=["a", " ", "a"]),  # blank and repeated ids: per-index errors (207)
    pb.GetGatewayRequest(id=GW),
    pb.GetGatewayRequest(id=GW.upper()),
    pb.StartGatewayRequest(id=GW),
    pb.StopGatewayRequest(id=GW),
    pb.DeleteGatewayRequest(id=GW),
    _sensor(),
    _sensor(algorithm=""),  # the default algorithm
    *[_sensor(type=t) for t in envelope.SENSOR_TYPES],
    *[_sensor(algorithm=a) for a in sensors.ALGORITHMS],
    _sensor(min_range=-1e300, max_range=1e300),
    pb.ListSensorsRequest(gateway_id=GW),
    pb.DeleteSensorRequest(sensor_id=SENSOR),
    _degrade(),
    _degrade(packet_loss_pct=0),
    _degrade(packet_loss_pct=100),
    _degrade(duration_seconds=5e-324),
    _disconnect(buffer_while_offline=True),
    pb.OutlierRequest(sensor_id=SENSOR),
    pb.OutlierRequest(sensor_id=SENSOR, value=-1e9),
    pb.WatchGatewayRequest(gateway_id=GW),
    pb.ListGatewaysRequest(),
    pb.GetHealthRequest(),
]


@pytest.mark.parametrize("request_", VALID, ids=lambda m: type(m).__name__)
def test_valid_requests_pass(request_: message.Message) -> None:
    assert validation.problem(request_) is None
    validation.check(request_)


# One row per rule: a literal request that breaks it, and the message.
BROKEN: list[tuple[message.Message, str]] = [
    # required (strings: non-blank; repeated: non-empty; numbers: non-zero)
    (_create(factory_id=""), "factoryId is required"),
    (_create(factory_id="  \t"), "factoryId is required"),
    (_create(factory_key=""), "factoryKey is required"),
    (_bulk(factory_ids=[]), "factoryIds must contain at least one item"),
    (_bulk(factory_key=" "), "factoryKey is required"),
    (_sensor(type=""), "type is required"),
    (_degrade(duration_seconds=0), "duration_seconds is required"),
    (_disconnect(duration_seconds=0), "duration_seconds is required"),
    (pb.GetGatewayRequest(), "id is required"),
    (pb.ListSensorsRequest(), "gatewayId is required"),
    (pb.OutlierRequest(), "sensor_id is required"),
    # uuid
    (pb.GetGatewayRequest(id="nope"), "id is not a UUID: 'nope'"),
    (pb.StartGatewayRequest(id=GW.replace("-", "")), "id is not a UUID"),
    (pb.StopGatewayRequest(id="{" + GW + "}"), "id is not a UUID"),
    (pb.DeleteGatewayRequest(id="urn:uuid:" + GW), "id is not a UUID"),
    (_sensor(gateway_id="123"), "gatewayId is not a UUID: '123'"),
    (pb.DeleteSensorRequest(sensor_id="x"), "sensorId is not a UUID"),
    (_degrade(gateway_id="x"), "gateway_id is not a UUID"),
    (pb.OutlierRequest(sensor_id=GW + "0"), "sensor_id is not a UUID"),
    (pb.WatchGatewayRequest(gateway_id="x"), "gatewayId is not a UUID"),
    # allowed (enum of strings)
    (_sensor(type="lava"), "type must be one of temperature, humidity, pressure, movement"),
    (_sensor(type="Temperature"), "type must be one of"),
    (_sensor(algorithm="chaos"), "algorithm must be one of uniform_random, sine_wave, spike"),
    # min / max (inclusive)
    (_create(send_frequency_ms=-1), "sendFrequencyMs must be within [0, 86400000]"),
    (_create(send_frequency_ms=MAX_SEND_FREQUENCY_MS + 1), "sendFrequencyMs must be within"),
    (_bulk(send_frequency_ms=-5), "sendFrequencyMs must be within [0, 86400000]"),
    (_degrade(packet_loss_pct=-0.1), "packet_loss_pct must be within [0, 100]"),
    (_degrade(packet_loss_pct=100.5), "packet_loss_pct must be within [0, 100]"),
    # exclusive_min
    (_degrade(duration_seconds=-3), "duration_seconds must be a positive number"),
    (_disconnect(duration_seconds=-0.001), "duration_seconds must be a positive number"),
    # max_len
    (_create(firmware_version="x" * 257), "firmwareVersion must be at most 256 characters"),
    (_bulk(firmware_version="x" * 300), "firmwareVersion must be at most 256 characters"),
    # every double is finite
    (_sensor(min_range=math.nan), "minRange must be a finite number"),
    (_sensor(max_range=math.inf), "maxRange must be a finite number"),
    (_degrade(duration_seconds=math.inf), "duration_seconds must be a finite number"),
    (_degrade(packet_loss_pct=math.nan), "packet_loss_pct must be a finite number"),
    (pb.OutlierRequest(sensor_id=SENSOR, value=-math.inf), "value must be a finite number"),
    # less_than (cross-field)
    (_sensor(min_range=5, max_range=5), "minRange must be less than maxRange"),
    (_sensor(min_range=6, max_range=5), "minRange must be less than maxRange"),
    (_sensor(min_range=0, max_range=0), "minRange must be less than maxRange"),
]


@pytest.mark.parametrize(
    ("request_", "expected"), BROKEN, ids=lambda x: getattr(x, "__name__", None)
)
def test_each_rule_is_enforced(request_: message.Message, expected: str) -> None:
    got = validation.problem(request_)
    assert got is not None and got.startswith(expected), got
    with pytest.raises(ApiError) as info:
        validation.check(request_)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert rest_gateway.HTTP_STATUS[info.value.code] == 400


def test_the_proto_lists_are_the_implementation_s() -> None:
    """The enums and bounds in the proto match what the simulator implements."""
    fields = pb.AddSensorRequest.DESCRIPTOR.fields_by_name
    types = fields["type"].GetOptions().Extensions[pb.rules].allowed
    algorithms = fields["algorithm"].GetOptions().Extensions[pb.rules].allowed
    assert sorted(types) == sorted(envelope.SENSOR_TYPES)
    assert list(algorithms) == list(sensors.ALGORITHMS)
    assert sensors.DEFAULT_ALGORITHM in algorithms
    for md in (pb.CreateGatewayRequest.DESCRIPTOR, pb.BulkCreateGatewaysRequest.DESCRIPTOR):
        freq = md.fields_by_name["send_frequency_ms"].GetOptions().Extensions[pb.rules]
        assert (freq.min, freq.max) == (0, MAX_SEND_FREQUENCY_MS)


def test_every_message_s_rules_compile() -> None:
    for md in pb.DESCRIPTOR.message_types_by_name.values():
        validation.compile_message(md)


def _message_with(rules: pb.FieldRules, field_type: int, name: str) -> Any:
    """A message in a throwaway file of the default pool, with one annotated field."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name=f"test_rules_{name}.proto",
        package=f"test_rules_{name}",
        syntax="proto3",
        dependency=["notip/simulator/v1/simulator.proto"],
    )
    msg = fdp.message_type.add(name="M")
    field = msg.field.add(name="f", number=1, type=field_type, label=1)
    field.options.Extensions[pb.rules].CopyFrom(rules)
    pool = descriptor_pool.Default()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"test_rules_{name}.M"))


@pytest.mark.parametrize(
    ("name", "rules", "field_type"),
    [
        (
            "uuid_on_double",
            pb.FieldRules(uuid=True),
            descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
        ),
        ("min_on_string", pb.FieldRules(min=1), descriptor_pb2.FieldDescriptorProto.TYPE_STRING),
        (
            "min_and_exclusive",
            pb.FieldRules(min=1, exclusive_min=0),
            descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
        ),
        (
            "required_bool",
            pb.FieldRules(required=True),
            descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
        ),
    ],
)
def test_rules_that_make_no_sense_fail_loudly(
    name: str, rules: pb.FieldRules, field_type: int
) -> None:
    cls = _message_with(rules, field_type, name)
    with pytest.raises(ValueError, match=r"\(rules\)"):
        validation.check(cls())


# -- the OpenAPI document --------------------------------------------------------------


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return rest_gateway.openapi(rest_gateway.routes())


def _body(doc: dict[str, Any], path: str, verb: str = "post") -> dict[str, Any]:
    op = doc["paths"][path][verb]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return doc["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_openapi_bodies_carry_the_rules(doc: dict[str, Any]) -> None:
    create = _body(doc, "/sim/gateways")
    assert create["required"] == ["factoryId", "factoryKey"]
    assert create["additionalProperties"] is False
    props = create["properties"]
    assert props["factoryId"] == {"type": "string", "minLength": 1, "pattern": r"\S"}
    assert props["firmwareVersion"]["maxLength"] == 256
    assert (props["sendFrequencyMs"]["minimum"], props["sendFrequencyMs"]["maximum"]) == (
        0,
        MAX_SEND_FREQUENCY_MS,
    )
    assert doc["paths"]["/sim/gateways"]["post"]["requestBody"]["required"] is True

    bulk = _body(doc, "/sim/gateways/bulk")
    assert bulk["required"] == ["factoryIds", "factoryKey"]
    assert bulk["properties"]["factoryIds"] == {
        "type": "array",
        "items": {"type": "string"},
        "minItems": 1,
    }

    sensor_path = "/sim/gateways/{gateway_id}/sensors"
    sensor = _body(doc, sensor_path)
    assert sensor["required"] == ["type"]
    assert sensor["properties"]["type"]["enum"] == [
        "temperature",
        "humidity",
        "pressure",
        "movement",
        "biometric",
    ]
    assert sensor["properties"]["algorithm"]["enum"] == ["", *sensors.ALGORITHMS]
    assert "minRange must be less than maxRange" in sensor["description"]
    assert "minRange must be less than maxRange" in doc["paths"][sensor_path]["post"]["description"]
    assert set(sensor["properties"]) == {"type", "minRange", "maxRange", "algorithm"}

    degrade = _body(doc, "/sim/gateways/{gateway_id}/anomaly/network-degradation")
    assert degrade["required"] == ["duration_seconds"]
    assert degrade["properties"]["duration_seconds"] == {
        "type": "number",
        "format": "double",
        "minimum": 0,
        "exclusiveMinimum": True,  # OpenAPI 3.0: the boolean form
    }
    loss = degrade["properties"]["packet_loss_pct"]
    assert (loss["minimum"], loss["maximum"]) == (0, 100)
    disconnect = _body(doc, "/sim/gateways/{gateway_id}/anomaly/disconnect")
    assert disconnect["required"] == ["duration_seconds"]

    outlier_path = "/sim/sensors/{sensor_id}/anomaly/outlier"
    outlier = _body(doc, outlier_path)
    assert "required" not in outlier and outlier["additionalProperties"] is False
    assert doc["paths"][outlier_path]["post"]["requestBody"]["required"] is False


def test_openapi_path_ids_are_uuids(doc: dict[str, Any]) -> None:
    seen = 0
    for path, ops in doc["paths"].items():
        for op in ops.values():
            for param in op.get("parameters", []):
                assert param["in"] == "path" and param["required"] is True
                assert param["schema"]["format"] == "uuid", (path, param)
                assert param["schema"]["pattern"] == validation.UUID_PATTERN
                seen += 1
    assert seen == 10


def test_openapi_responses_stay_unconstrained(doc: dict[str, Any]) -> None:
    """Rules describe requests; the response schemas are the plain messages."""
    gateway = doc["components"]["schemas"]["Gateway"]
    assert "required" not in gateway and "additionalProperties" not in gateway
    assert gateway["properties"]["id"] == {"type": "string"}
