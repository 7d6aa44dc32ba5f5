"""A small typed client over the generated stubs (synchronous gRPC).

```python
from notip.simulator.client import SimulatorClient

with SimulatorClient("localhost:50051") as sim:
    gw = sim.create_gateway("factory-1", "secret", model="X1")
    sim.add_sensor(gw.id, "temperature", -10, 40, "sine_wave")
    for event in sim.watch(gw.id):
        print(event)
```
Errors raise `SimulatorError` with the gRPC code and the server's message.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc

from notip.simulator.v1 import simulator_pb2 as pb
from notip.simulator.v1 import simulator_pb2_grpc as pb_grpc

T = TypeVar("T")

DEFAULT_TARGET = "localhost:50051"


class SimulatorError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class SimulatorClient:
    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float = 60.0,
        channel: grpc.Channel | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._channel = channel or grpc.insecure_channel(target)
        self._stub = pb_grpc.SimulatorServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> SimulatorClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            raise SimulatorError(exc.code(), exc.details() or "") from None

    # -- gateways -------------------------------------------------------------------

    def create_gateway(
        self,
        factory_id: str,
        factory_key: str,
        *,
        model: str = "",
        firmware_version: str = "",
        send_frequency_ms: int = 0,
    ) -> pb.Gateway:
        gateway: pb.Gateway = self._call(
            "CreateGateway",
            pb.CreateGatewayRequest(
                factory_id=factory_id,
                factory_key=factory_key,
                model=model,
                firmware_version=firmware_version,
                send_frequency_ms=send_frequency_ms,
            ),
        )
        return gateway

    def bulk_create(
        self,
        factory_ids: Sequence[str],
        factory_key: str,
        *,
        model: str = "",
        firmware_version: str = "",
        send_frequency_ms: int = 0,
        timeout: float | None = None,
    ) -> pb.BulkCreateGatewaysResponse:
        response: pb.BulkCreateGatewaysResponse = self._call(
            "BulkCreateGateways",
            pb.BulkCreateGatewaysRequest(
                factory_ids=list(factory_ids),
                factory_key=factory_key,
                model=model,
                firmware_version=firmware_version,
                send_frequency_ms=send_frequency_ms,
            ),
            timeout,
        )
        return response

    def list_gateways(self) -> list[pb.Gateway]:
        return list(self._call("ListGateways", pb.ListGatewaysRequest()).gateways)

    def get_gateway(self, gateway_id: str) -> pb.Gateway:
        gateway: pb.Gateway = self._call("GetGateway", pb.GetGatewayRequest(id=gateway_id))
        return gateway

    def start_gateway(self, gateway_id: str) -> None:
        self._call("StartGateway", pb.StartGatewayRequest(id=gateway_id))

    def stop_gateway(self, gateway_id: str) -> None:
        self._call("StopGateway", pb.StopGatewayRequest(id=gateway_id))

    def delete_gateway(self, gateway_id: str) -> None:
        self._call("DeleteGateway", pb.DeleteGatewayRequest(id=gateway_id))

    # -- sensors --------------------------------------------------------------------

    def add_sensor(
        self,
        gateway_id: str,
        type: str,
        min_range: float,
        max_range: float,
        algorithm: str = "uniform_random",
    ) -> pb.Sensor:
        sensor: pb.Sensor = self._call(
            "AddSensor",
            pb.AddSensorRequest(
                gateway_id=gateway_id,
                type=type,
                min_range=min_range,
                max_range=max_range,
                algorithm=algorithm,
            ),
        )
        return sensor

    def list_sensors(self, gateway_id: str) -> list[pb.Sensor]:
        return list(self._call("ListSensors", pb.ListSensorsRequest(gateway_id=gateway_id)).sensors)

    def delete_sensor(self, sensor_id: str) -> None:
        self._call("DeleteSensor", pb.DeleteSensorRequest(sensor_id=sensor_id))

    # -- anomalies ------------------------------------------------------------------

    def network_degradation(
        self, gateway_id: str, duration_seconds: float, packet_loss_pct: float | None = None
    ) -> None:
        req = pb.NetworkDegradationRequest(gateway_id=gateway_id, duration_seconds=duration_seconds)
        if packet_loss_pct is not None:
            req.packet_loss_pct = packet_loss_pct
        self._call("InjectNetworkDegradation", req)

    def disconnect(
        self, gateway_id: str, duration_seconds: float, *, buffer_while_offline: bool = False
    ) -> None:
        self._call(
            "InjectDisconnect",
            pb.DisconnectRequest(
                gateway_id=gateway_id,
                duration_seconds=duration_seconds,
                buffer_while_offline=buffer_while_offline,
            ),
        )

    def outlier(self, sensor_id: str, value: float | None = None) -> None:
        req = pb.OutlierRequest(sensor_id=sensor_id)
        if value is not None:
            req.value = value
        self._call("InjectOutlier", req)

    # -- misc -----------------------------------------------------------------------

    def health(self) -> str:
        return str(self._call("GetHealth", pb.GetHealthRequest()).status)

    def watch(self, gateway_id: str, *, timeout: float | None = None) -> Iterator[pb.GatewayEvent]:
        """The gateway's live events; stops when the gateway is deleted, on
        `timeout`, or when the caller stops iterating."""
        stream = self._stub.WatchGateway(
            pb.WatchGatewayRequest(gateway_id=gateway_id), timeout=timeout
        )
        try:
            yield from stream
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise SimulatorError(exc.code(), exc.details() or "") from None
        finally:
            stream.cancel()
