"""Admin HTTP surface of the management stand-in: exactly the routes of docs/contracts.md#management-admin-http.

The tenant is passed explicitly (body field or `tenant_id` query parameter) instead of
coming from a login token. Errors are JSON `{"error": "<what is wrong>"}`: 400
malformed input, 403 keys of a decommissioned gateway, 404 unknown ids, 409 conflicts,
503 when a NATS publish failed (nothing written).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from notip.httpserve import standard_routes
from notip.platform.management.core import Forbidden, Management, NotFound, Unavailable
from notip.platform.management.keys import KeyFileError
from notip.platform.management.store import Conflict
from notip.platform.validation import BadInput
from notip.platform.web import JSON_ERRORS, HttpError, read_json_object

log = logging.getLogger("notip.mgmt.admin")

Handler = Callable[[Request], Awaitable[Response]]


def _errors(fn: Handler) -> Handler:
    async def wrapped(request: Request) -> Response:
        try:
            return await fn(request)
        except HttpError as exc:
            return exc.response()
        except BadInput as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except NotFound as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        except Forbidden as exc:
            return JSONResponse({"error": str(exc)}, status_code=403)
        except Conflict as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        except Unavailable as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        except KeyFileError as exc:
            log.error("stored key unreadable: %s", exc)
            return JSONResponse({"error": "stored key unreadable"}, status_code=500)
        except Exception:
            log.exception("admin request failed", extra={"path": request.url.path})
            return JSONResponse({"error": "internal error"}, status_code=500)

    return wrapped


def _query(request: Request, *names: str) -> str | None:
    for name in names:
        value = request.query_params.get(name)
        if value:
            return value
    return None


async def _body(request: Request) -> dict[str, Any]:
    return await read_json_object(request, error="invalid JSON body")


def build_app(
    mgmt: Management, registry: CollectorRegistry, healthy: Callable[[], bool]
) -> Starlette:
    async def create_gateway(request: Request) -> Response:
        gateway_id = await mgmt.create_gateway(await _body(request))
        return JSONResponse({"id": gateway_id}, status_code=201)

    async def list_gateways(request: Request) -> Response:
        return JSONResponse(await mgmt.list_gateways(_query(request, "tenant_id")))

    async def get_gateway(request: Request) -> Response:
        return JSONResponse(await mgmt.gateway(request.path_params["id"]))

    async def pause(request: Request) -> Response:
        await mgmt.set_paused(request.path_params["id"], True)
        return Response(status_code=204)

    async def resume(request: Request) -> Response:
        await mgmt.set_paused(request.path_params["id"], False)
        return Response(status_code=204)

    async def decommission(request: Request) -> Response:
        await mgmt.decommission(request.path_params["id"])
        return Response(status_code=204)

    async def tenant_default(request: Request) -> Response:
        return JSONResponse(await mgmt.set_tenant_timeout(await _body(request)))

    async def gateway_override(request: Request) -> Response:
        gateway_id = request.path_params["gateway_id"]
        return JSONResponse(await mgmt.set_gateway_timeout(gateway_id, await _body(request)))

    async def clear_override(request: Request) -> Response:
        await mgmt.clear_gateway_timeout(request.path_params["gateway_id"])
        return Response(status_code=204)

    async def alerts(request: Request) -> Response:
        return JSONResponse(
            await mgmt.alerts(_query(request, "tenant_id"), _query(request, "gateway_id"))
        )

    async def config_command(request: Request) -> Response:
        body = await _body(request)
        out = await mgmt.send_command(request.path_params["gateway_id"], "config_update", body)
        return JSONResponse(out, status_code=201)

    async def firmware_command(request: Request) -> Response:
        body = await _body(request)
        out = await mgmt.send_command(request.path_params["gateway_id"], "firmware_push", body)
        return JSONResponse(out, status_code=201)

    async def command_status(request: Request) -> Response:
        return JSONResponse(
            await mgmt.command_status(
                request.path_params["gateway_id"], request.path_params["command_id"]
            )
        )

    async def get_keys(request: Request) -> Response:
        gateway_id = _query(request, "gateway_id", "id")
        if gateway_id is None:
            raise BadInput("gateway_id (or id) query parameter is required")
        return JSONResponse(await mgmt.keys(gateway_id))

    def route(path: str, fn: Handler, method: str) -> Route:
        return Route(path, _errors(fn), methods=[method])

    return Starlette(
        exception_handlers=JSON_ERRORS,
        routes=[
            route("/admin/gateways", create_gateway, "POST"),
            route("/admin/gateways", list_gateways, "GET"),
            route("/gateways/{id}", get_gateway, "GET"),
            route("/gateways/{id}", decommission, "DELETE"),
            route("/gateways/{id}/pause", pause, "POST"),
            route("/gateways/{id}/resume", resume, "POST"),
            route("/alerts/config/default", tenant_default, "PUT"),
            route("/alerts/config/gateway/{gateway_id}", gateway_override, "PUT"),
            route("/alerts/config/gateway/{gateway_id}", clear_override, "DELETE"),
            route("/alerts", alerts, "GET"),
            route("/cmd/{gateway_id}/config", config_command, "POST"),
            route("/cmd/{gateway_id}/firmware", firmware_command, "POST"),
            route("/cmd/{gateway_id}/status/{command_id}", command_status, "GET"),
            route("/keys", get_keys, "GET"),
            *standard_routes(registry, health_path="/health", nats_connected=healthy),
        ],
    )
