"""The gRPC face of the control plane, and the operations both faces share.

`Operations` is the application core seen through the proto: one Trio method per
RPC, named like it, taking and returning the generated messages and raising
`ApiError`. The gRPC servicer (grpc.aio, on the trio-asyncio loop) calls them through
`trio_asyncio.trio_as_aio`; the REST gateway (rest_gateway.py) calls the very same
methods directly from Trio. Both faces first check the request against the proto's
request rules (`validation.check`: INVALID_ARGUMENT naming the broken rule), so the
operations and the registry receive valid requests only.

Server (docs/design.md#the-trio-asyncio-bridge rule 4): created and started inside the trio-asyncio loop, the task
parks in `trio.sleep_forever()`, the server is stopped in a shielded `finally`.
Health (`grpc.health.v1`) and reflection are on, so `grpcurl -plaintext HOST:PORT
list|describe|<call>` works.

grpc.aio's request streams are Cython async generators that trio-asyncio's hooks
cannot handle; `notip.bridge` fixes that before the loop opens. One more interop fix
lives here:
- the upb descriptor pool cannot find a file by a *method* symbol, so `grpcurl
  describe pkg.Service.Method` failed; `_Reflection` falls back to the method's
  service.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import trio
import trio_asyncio
from google.protobuf import empty_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha._async import ReflectionServicer as _AioReflectionServicer

from notip import bridge
from notip.httpserve import host_port, parse_addr
from notip.simulator import validation
from notip.simulator.errors import ApiError
from notip.simulator.model import GatewayRecord, SensorRecord
from notip.simulator.registry import CreateSpec, Registry
from notip.simulator.v1 import simulator_pb2 as pb
from notip.simulator.v1 import simulator_pb2_grpc as pb_grpc

log = logging.getLogger("notip.simulator.grpc")

SERVICE = pb.DESCRIPTOR.services_by_name["SimulatorService"]
SERVICE_NAME = SERVICE.full_name
STOP_GRACE_S = 2.0

# -- interop fixes -----------------------------------------------------------------


class _Reflection(_AioReflectionServicer):  # type: ignore[misc]  # grpc_reflection is untyped
    def _file_containing_symbol(self, request: Any, fully_qualified_name: str) -> Any:
        response = super()._file_containing_symbol(request, fully_qualified_name)
        if response.HasField("error_response"):
            try:
                method = self._pool.FindMethodByName(fully_qualified_name)
            except KeyError:
                return response
            return super()._file_containing_symbol(request, method.containing_service.full_name)
        return response


# -- proto <-> core ----------------------------------------------------------------


def _ts(value: Any) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def gateway_message(registry: Registry, rec: GatewayRecord) -> pb.Gateway:
    return pb.Gateway(
        id=rec.id,
        factory_id=rec.factory_id,
        model=rec.model,
        firmware_version=rec.firmware_version,
        provisioned=True,
        send_frequency_ms=rec.send_frequency_ms,
        status=registry.status(rec),
        tenant_id=rec.tenant_id,
        created_at=_ts(rec.created_at),
        desired_state=rec.desired_state,
        connected=rec.connected,
        last_error=rec.last_error,
    )


def sensor_message(s: SensorRecord) -> pb.Sensor:
    return pb.Sensor(
        id=s.id,
        gateway_id=s.gateway_id,
        type=s.spec.type,
        min_range=s.spec.min_range,
        max_range=s.spec.max_range,
        algorithm=s.spec.algorithm,
        created_at=_ts(s.created_at),
    )


EMPTY = empty_pb2.Empty()


class Operations:
    """One Trio method per unary RPC, named like it (the REST gateway dispatches on
    the RPC name)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def CreateGateway(self, req: pb.CreateGatewayRequest) -> pb.Gateway:
        rec = await self.registry.create(
            CreateSpec(
                factory_id=req.factory_id,
                factory_key=req.factory_key,
                model=req.model,
                firmware_version=req.firmware_version,
                send_frequency_ms=req.send_frequency_ms,
            )
        )
        return gateway_message(self.registry, rec)

    async def BulkCreateGateways(
        self, req: pb.BulkCreateGatewaysRequest
    ) -> pb.BulkCreateGatewaysResponse:
        created, errors = await self.registry.bulk_create(
            list(req.factory_ids),
            CreateSpec(
                factory_id="",
                factory_key=req.factory_key,
                model=req.model,
                firmware_version=req.firmware_version,
                send_frequency_ms=req.send_frequency_ms,
            ),
        )
        return pb.BulkCreateGatewaysResponse(
            gateways=[gateway_message(self.registry, r) for r in created], errors=errors
        )

    async def ListGateways(self, req: pb.ListGatewaysRequest) -> pb.ListGatewaysResponse:
        return pb.ListGatewaysResponse(
            gateways=[gateway_message(self.registry, r) for r in self.registry.gateways()]
        )

    async def GetGateway(self, req: pb.GetGatewayRequest) -> pb.Gateway:
        return gateway_message(self.registry, self.registry.get(req.id))

    async def StartGateway(self, req: pb.StartGatewayRequest) -> empty_pb2.Empty:
        await self.registry.start(req.id)
        return EMPTY

    async def StopGateway(self, req: pb.StopGatewayRequest) -> empty_pb2.Empty:
        await self.registry.stop(req.id)
        return EMPTY

    async def DeleteGateway(self, req: pb.DeleteGatewayRequest) -> empty_pb2.Empty:
        await self.registry.delete(req.id)
        return EMPTY

    async def AddSensor(self, req: pb.AddSensorRequest) -> pb.Sensor:
        s = await self.registry.add_sensor(
            req.gateway_id, req.type, req.min_range, req.max_range, req.algorithm
        )
        return sensor_message(s)

    async def ListSensors(self, req: pb.ListSensorsRequest) -> pb.ListSensorsResponse:
        return pb.ListSensorsResponse(
            sensors=[sensor_message(s) for s in self.registry.list_sensors(req.gateway_id)]
        )

    async def DeleteSensor(self, req: pb.DeleteSensorRequest) -> empty_pb2.Empty:
        await self.registry.delete_sensor(req.sensor_id)
        return EMPTY

    async def InjectNetworkDegradation(self, req: pb.NetworkDegradationRequest) -> empty_pb2.Empty:
        loss = req.packet_loss_pct if req.HasField("packet_loss_pct") else None
        self.registry.network_degradation(req.gateway_id, req.duration_seconds, loss)
        return EMPTY

    async def InjectDisconnect(self, req: pb.DisconnectRequest) -> empty_pb2.Empty:
        self.registry.disconnect(req.gateway_id, req.duration_seconds, req.buffer_while_offline)
        return EMPTY

    async def InjectOutlier(self, req: pb.OutlierRequest) -> empty_pb2.Empty:
        self.registry.outlier(req.sensor_id, req.value if req.HasField("value") else None)
        return EMPTY

    async def GetHealth(self, req: pb.GetHealthRequest) -> pb.HealthStatus:
        return pb.HealthStatus(status="ok")

    def open_watch(self, gateway_id: str) -> trio.MemoryReceiveChannel[pb.GatewayEvent]:
        return self.registry.watch(gateway_id)


UNARY_METHODS: tuple[str, ...] = tuple(
    m.name for m in SERVICE.methods if not m.server_streaming and not m.client_streaming
)


# -- the servicer (asyncio side) ---------------------------------------------------


def _unary(name: str) -> Callable[..., Awaitable[Any]]:
    async def handler(self: Servicer, request: Any, context: grpc.aio.ServicerContext) -> Any:
        fn = getattr(self.ops, name)
        try:
            validation.check(request)
            return await trio_asyncio.trio_as_aio(fn)(request)
        except ApiError as exc:
            error: tuple[grpc.StatusCode, str] = (exc.code, exc.message)
        except Exception:
            log.exception("unexpected error in %s", name)
            error = (grpc.StatusCode.INTERNAL, "internal error")
        # abort() always raises (grpc.aio.AbortError), ending the RPC with `error`.
        return await context.abort(*error)

    handler.__name__ = name
    return handler


class Servicer(pb_grpc.SimulatorServiceServicer):
    def __init__(self, ops: Operations) -> None:
        self.ops = ops

    async def WatchGateway(
        self, request: pb.WatchGatewayRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GatewayEvent]:
        try:
            validation.check(request)
            recv = self.ops.open_watch(request.gateway_id)
        except ApiError as exc:
            await context.abort(exc.code, exc.message)
            return
        try:
            while True:
                try:
                    event = await trio_asyncio.trio_as_aio(recv.receive)()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    return
                yield event
        finally:
            recv.close()


for _name in UNARY_METHODS:
    setattr(Servicer, _name, _unary(_name))


async def serve(
    ops: Operations,
    addr: str,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the control plane on `addr` (`:PORT`, `HOST:PORT`; port 0 = any);
    reports the bound port."""
    host, port = parse_addr(addr)
    bind = host_port(host, port)
    health_servicer = health.aio.HealthServicer()

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server()
        pb_grpc.add_SimulatorServiceServicer_to_server(Servicer(ops), server)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        from grpc_reflection.v1alpha import reflection_pb2_grpc

        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            _Reflection([SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME]), server
        )
        bound = server.add_insecure_port(bind)
        await server.start()
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        return server, bound

    server, bound = await bridge.call(start)
    log.info("gRPC control plane listening", extra={"addr": f"{host}:{bound}"})
    try:
        task_status.started(bound)
        await trio.sleep_forever()
    finally:

        async def stop() -> None:
            await health_servicer.enter_graceful_shutdown()
            await server.stop(STOP_GRACE_S)

        await bridge.shielded(stop, timeout=STOP_GRACE_S + 3)
