import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
REST_SUCCESS_CODE_FIELD_NUMBER: int
rest_success_code: _descriptor.FieldDescriptor
REST_PARTIAL_CODE_FIELD_NUMBER: int
rest_partial_code: _descriptor.FieldDescriptor
REST_SNAKE_CASE_FIELD_NUMBER: int
rest_snake_case: _descriptor.FieldDescriptor
RULES_FIELD_NUMBER: int
rules: _descriptor.FieldDescriptor
LESS_THAN_FIELD_NUMBER: int
less_than: _descriptor.FieldDescriptor

class FieldRules(_message.Message):
    __slots__ = ("required", "uuid", "min", "max", "exclusive_min", "allowed", "max_len", "ignore_empty")
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    EXCLUSIVE_MIN_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    MAX_LEN_FIELD_NUMBER: _ClassVar[int]
    IGNORE_EMPTY_FIELD_NUMBER: _ClassVar[int]
    required: bool
    uuid: bool
    min: float
    max: float
    exclusive_min: float
    allowed: _containers.RepeatedScalarFieldContainer[str]
    max_len: int
    ignore_empty: bool
    def __init__(self, required: _Optional[bool] = ..., uuid: _Optional[bool] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., exclusive_min: _Optional[float] = ..., allowed: _Optional[_Iterable[str]] = ..., max_len: _Optional[int] = ..., ignore_empty: _Optional[bool] = ...) -> None: ...

class LessThan(_message.Message):
    __slots__ = ("field", "than")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    THAN_FIELD_NUMBER: _ClassVar[int]
    field: str
    than: str
    def __init__(self, field: _Optional[str] = ..., than: _Optional[str] = ...) -> None: ...

class Gateway(_message.Message):
    __slots__ = ("id", "factory_id", "model", "firmware_version", "provisioned", "send_frequency_ms", "status", "tenant_id", "created_at", "desired_state", "connected", "last_error")
    ID_FIELD_NUMBER: _ClassVar[int]
    FACTORY_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FIRMWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROVISIONED_FIELD_NUMBER: _ClassVar[int]
    SEND_FREQUENCY_MS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DESIRED_STATE_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    factory_id: str
    model: str
    firmware_version: str
    provisioned: bool
    send_frequency_ms: int
    status: str
    tenant_id: str
    created_at: _timestamp_pb2.Timestamp
    desired_state: str
    connected: bool
    last_error: str
    def __init__(self, id: _Optional[str] = ..., factory_id: _Optional[str] = ..., model: _Optional[str] = ..., firmware_version: _Optional[str] = ..., provisioned: _Optional[bool] = ..., send_frequency_ms: _Optional[int] = ..., status: _Optional[str] = ..., tenant_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., desired_state: _Optional[str] = ..., connected: _Optional[bool] = ..., last_error: _Optional[str] = ...) -> None: ...

class Sensor(_message.Message):
    __slots__ = ("id", "gateway_id", "type", "min_range", "max_range", "algorithm", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MIN_RANGE_FIELD_NUMBER: _ClassVar[int]
    MAX_RANGE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    gateway_id: str
    type: str
    min_range: float
    max_range: float
    algorithm: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., gateway_id: _Optional[str] = ..., type: _Optional[str] = ..., min_range: _Optional[float] = ..., max_range: _Optional[float] = ..., algorithm: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateGatewayRequest(_message.Message):
    __slots__ = ("factory_id", "factory_key", "model", "firmware_version", "send_frequency_ms")
    FACTORY_ID_FIELD_NUMBER: _ClassVar[int]
    FACTORY_KEY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FIRMWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    SEND_FREQUENCY_MS_FIELD_NUMBER: _ClassVar[int]
    factory_id: str
    factory_key: str
    model: str
    firmware_version: str
    send_frequency_ms: int
    def __init__(self, factory_id: _Optional[str] = ..., factory_key: _Optional[str] = ..., model: _Optional[str] = ..., firmware_version: _Optional[str] = ..., send_frequency_ms: _Optional[int] = ...) -> None: ...

class BulkCreateGatewaysRequest(_message.Message):
    __slots__ = ("factory_ids", "factory_key", "model", "firmware_version", "send_frequency_ms")
    FACTORY_IDS_FIELD_NUMBER: _ClassVar[int]
    FACTORY_KEY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FIRMWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    SEND_FREQUENCY_MS_FIELD_NUMBER: _ClassVar[int]
    factory_ids: _containers.RepeatedScalarFieldContainer[str]
    factory_key: str
    model: str
    firmware_version: str
    send_frequency_ms: int
    def __init__(self, factory_ids: _Optional[_Iterable[str]] = ..., factory_key: _Optional[str] = ..., model: _Optional[str] = ..., firmware_version: _Optional[str] = ..., send_frequency_ms: _Optional[int] = ...) -> None: ...

class BulkCreateGatewaysResponse(_message.Message):
    __slots__ = ("gateways", "errors")
    GATEWAYS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    gateways: _containers.RepeatedCompositeFieldContainer[Gateway]
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, gateways: _Optional[_Iterable[_Union[Gateway, _Mapping]]] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...

class ListGatewaysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListGatewaysResponse(_message.Message):
    __slots__ = ("gateways",)
    GATEWAYS_FIELD_NUMBER: _ClassVar[int]
    gateways: _containers.RepeatedCompositeFieldContainer[Gateway]
    def __init__(self, gateways: _Optional[_Iterable[_Union[Gateway, _Mapping]]] = ...) -> None: ...

class GetGatewayRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class StartGatewayRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class StopGatewayRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteGatewayRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class AddSensorRequest(_message.Message):
    __slots__ = ("gateway_id", "type", "min_range", "max_range", "algorithm")
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MIN_RANGE_FIELD_NUMBER: _ClassVar[int]
    MAX_RANGE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    gateway_id: str
    type: str
    min_range: float
    max_range: float
    algorithm: str
    def __init__(self, gateway_id: _Optional[str] = ..., type: _Optional[str] = ..., min_range: _Optional[float] = ..., max_range: _Optional[float] = ..., algorithm: _Optional[str] = ...) -> None: ...

class ListSensorsRequest(_message.Message):
    __slots__ = ("gateway_id",)
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    gateway_id: str
    def __init__(self, gateway_id: _Optional[str] = ...) -> None: ...

class ListSensorsResponse(_message.Message):
    __slots__ = ("sensors",)
    SENSORS_FIELD_NUMBER: _ClassVar[int]
    sensors: _containers.RepeatedCompositeFieldContainer[Sensor]
    def __init__(self, sensors: _Optional[_Iterable[_Union[Sensor, _Mapping]]] = ...) -> None: ...

class DeleteSensorRequest(_message.Message):
    __slots__ = ("sensor_id",)
    SENSOR_ID_FIELD_NUMBER: _ClassVar[int]
    sensor_id: str
    def __init__(self, sensor_id: _Optional[str] = ...) -> None: ...

class NetworkDegradationRequest(_message.Message):
    __slots__ = ("gateway_id", "duration_seconds", "packet_loss_pct")
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PACKET_LOSS_PCT_FIELD_NUMBER: _ClassVar[int]
    gateway_id: str
    duration_seconds: float
    packet_loss_pct: float
    def __init__(self, gateway_id: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., packet_loss_pct: _Optional[float] = ...) -> None: ...

class DisconnectRequest(_message.Message):
    __slots__ = ("gateway_id", "duration_seconds", "buffer_while_offline")
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BUFFER_WHILE_OFFLINE_FIELD_NUMBER: _ClassVar[int]
    gateway_id: str
    duration_seconds: float
    buffer_while_offline: bool
    def __init__(self, gateway_id: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., buffer_while_offline: _Optional[bool] = ...) -> None: ...

class OutlierRequest(_message.Message):
    __slots__ = ("sensor_id", "value")
    SENSOR_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    sensor_id: str
    value: float
    def __init__(self, sensor_id: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class GetHealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthStatus(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: str
    def __init__(self, status: _Optional[str] = ...) -> None: ...

class WatchGatewayRequest(_message.Message):
    __slots__ = ("gateway_id",)
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    gateway_id: str
    def __init__(self, gateway_id: _Optional[str] = ...) -> None: ...

class GatewayEvent(_message.Message):
    __slots__ = ("gateway_id", "time", "reading", "drop", "command", "anomaly", "connection")
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    READING_FIELD_NUMBER: _ClassVar[int]
    DROP_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    gateway_id: str
    time: _timestamp_pb2.Timestamp
    reading: ReadingEvent
    drop: DropEvent
    command: CommandEvent
    anomaly: AnomalyEvent
    connection: ConnectionEvent
    def __init__(self, gateway_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reading: _Optional[_Union[ReadingEvent, _Mapping]] = ..., drop: _Optional[_Union[DropEvent, _Mapping]] = ..., command: _Optional[_Union[CommandEvent, _Mapping]] = ..., anomaly: _Optional[_Union[AnomalyEvent, _Mapping]] = ..., connection: _Optional[_Union[ConnectionEvent, _Mapping]] = ...) -> None: ...

class ReadingEvent(_message.Message):
    __slots__ = ("sensor_id", "sensor_type", "value", "unit", "outlier")
    SENSOR_ID_FIELD_NUMBER: _ClassVar[int]
    SENSOR_TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    OUTLIER_FIELD_NUMBER: _ClassVar[int]
    sensor_id: str
    sensor_type: str
    value: float
    unit: str
    outlier: bool
    def __init__(self, sensor_id: _Optional[str] = ..., sensor_type: _Optional[str] = ..., value: _Optional[float] = ..., unit: _Optional[str] = ..., outlier: _Optional[bool] = ...) -> None: ...

class DropEvent(_message.Message):
    __slots__ = ("reason", "count")
    REASON_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    reason: str
    count: int
    def __init__(self, reason: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class CommandEvent(_message.Message):
    __slots__ = ("command_id", "type", "outcome", "ack_status", "message")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ACK_STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    type: str
    outcome: str
    ack_status: str
    message: str
    def __init__(self, command_id: _Optional[str] = ..., type: _Optional[str] = ..., outcome: _Optional[str] = ..., ack_status: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class AnomalyEvent(_message.Message):
    __slots__ = ("type", "phase", "detail")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    type: str
    phase: str
    detail: str
    def __init__(self, type: _Optional[str] = ..., phase: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class ConnectionEvent(_message.Message):
    __slots__ = ("state", "detail")
    STATE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    state: str
    detail: str
    def __init__(self, state: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...
