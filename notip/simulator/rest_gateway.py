"""The REST face of the control plane, derived from the proto (docs/design.md#one-proto-two-faces).

Nothing about a route is written twice: for every RPC with a `google.api.http`
annotation this module builds a Starlette route from the annotation's method and
path template, fills the request message from the path variables and (per `body`)
the JSON body with `google.protobuf.json_format` — which accepts both the camelCase
and the snake_case spelling of every field — checks it against the request rules of
the proto (`validation.check`, the same check the gRPC face runs), calls the same
`Operations` method the gRPC servicer calls, and answers with the response (or its
`response_body` field) as JSON. Success codes come from the proto too
(`rest_success_code`, default 204 for `google.protobuf.Empty` and 200 otherwise;
`rest_partial_code` when the response's `errors` has an entry). Errors:
`{"error": "..."}` with the HTTP status of `HTTP_STATUS`, the one gRPC-code → HTTP
table. Bad input is a 4xx, never a 500.

Request bodies, on every route alike (400 otherwise):
- a JSON object (an empty body counts as `{}`), each key a field of the request in
  either spelling; an unknown key is a 400 (`unknown field ...`). Path fields may be
  repeated in the body: the path wins;
- `null` is never a value: for a required field it is a 400 "... is required", for
  any other a 400 "... must not be null" (leave the field out instead);
- values of the field's JSON type (proto3 JSON mapping, read by json_format), but a
  number field takes a JSON number only (no "12" or "NaN" strings, no booleans);
- then the proto's field and cross-field rules (`(rules)`, `(less_than)`).

A method the path does not support is a 405 whose `Allow` header lists the methods it
does support (RFC 9110); an unknown path is a 404.

JSON spelling out: lowerCamelCase (json_format's default), except for request
messages marked `rest_snake_case` (the anomaly bodies of docs/contracts.md#simulator-rest-api), which the
OpenAPI document shows snake_case; both spellings are accepted on input everywhere.

`GET /openapi.json` serves an OpenAPI 3.0 document generated from the same routes and
rules: required fields, `format: uuid`, enums, bounds and lengths; cross-field rules
(which JSON Schema cannot express) in the schema's and the operation's description.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.api import annotations_pb2
from google.protobuf import descriptor, json_format, message, message_factory
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute
from starlette.routing import request_response
from starlette.types import Receive, Scope, Send

from notip.simulator import validation
from notip.simulator.errors import ApiError
from notip.simulator.grpc_api import SERVICE, Operations
from notip.simulator.v1 import simulator_pb2 as pb

log = logging.getLogger("notip.simulator.rest")

# The one gRPC status → HTTP status table.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.DATA_LOSS: 500,
}

_HTTP_PATTERNS = ("get", "put", "post", "delete", "patch")
_VAR = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_.]*)(?:=([^}]*))?\}")
EMPTY_NAME = "google.protobuf.Empty"


@dataclass(frozen=True)
class HttpRoute:
    """One REST route, as the proto declares it."""

    rpc: descriptor.MethodDescriptor
    verb: str  # GET, POST, ...
    template: str  # the annotation's path template, e.g. /sim/gateways/{id}
    body: str  # "" (no body), "*" (whole request) or a field name
    response_body: str  # "" (whole response) or a field name
    success_code: int
    partial_code: int | None
    snake_case: bool

    @property
    def path_fields(self) -> tuple[str, ...]:
        return tuple(m.group(1) for m in _VAR.finditer(self.template))

    @property
    def starlette_path(self) -> str:
        def repl(m: re.Match[str]) -> str:
            pattern = m.group(2)
            return "{" + m.group(1) + (":path" if pattern and "**" in pattern else "") + "}"

        return _VAR.sub(repl, self.template)

    @property
    def returns_empty(self) -> bool:
        output_type: str = self.rpc.output_type.full_name
        return output_type == EMPTY_NAME


def routes() -> list[HttpRoute]:
    """Every annotated RPC of the service, in declaration order."""
    out: list[HttpRoute] = []
    for method in SERVICE.methods:
        options = method.GetOptions()
        if not options.HasExtension(annotations_pb2.http):
            continue
        rule = options.Extensions[annotations_pb2.http]
        pattern = rule.WhichOneof("pattern")
        if pattern not in _HTTP_PATTERNS:
            raise ValueError(f"{method.name}: unsupported http pattern {pattern!r}")
        empty = method.output_type.full_name == EMPTY_NAME
        success = options.Extensions[pb.rest_success_code] or (204 if empty else 200)
        partial = options.Extensions[pb.rest_partial_code] or None
        snake = bool(method.input_type.GetOptions().Extensions[pb.rest_snake_case])
        out.append(
            HttpRoute(
                rpc=method,
                verb=pattern.upper(),
                template=getattr(rule, pattern),
                body=rule.body,
                response_body=rule.response_body,
                success_code=success,
                partial_code=partial,
                snake_case=snake,
            )
        )
    return out


def error(status: int, text: str) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=status)


def _set_path_field(msg: message.Message, name: str, value: str) -> None:
    target = msg
    *parents, leaf = name.split(".")
    for part in parents:
        target = getattr(target, part)
    fd = target.DESCRIPTOR.fields_by_name.get(leaf)
    if fd is None:
        raise ValueError(f"unknown path field {name}")
    if fd.type == descriptor.FieldDescriptor.TYPE_STRING:
        setattr(target, leaf, value)
    else:  # numbers, bools, enums: let json_format parse the text
        json_format.ParseDict({leaf: value}, target)


def _json_body_field(route: HttpRoute, msg: message.Message) -> message.Message:
    if route.body == "*":
        return msg
    body: message.Message = getattr(msg, route.body)
    return body


class BadRequest(Exception):
    pass


_FLOAT_TYPES = frozenset(
    {descriptor.FieldDescriptor.TYPE_DOUBLE, descriptor.FieldDescriptor.TYPE_FLOAT}
)
# JSON numbers (64-bit integers are JSON strings in the proto3 mapping).
_INT32_TYPES = frozenset(
    {
        descriptor.FieldDescriptor.TYPE_INT32,
        descriptor.FieldDescriptor.TYPE_UINT32,
        descriptor.FieldDescriptor.TYPE_SINT32,
        descriptor.FieldDescriptor.TYPE_FIXED32,
        descriptor.FieldDescriptor.TYPE_SFIXED32,
    }
)


def _json_type_problem(fd: descriptor.FieldDescriptor, value: Any) -> str | None:
    """Stricter than json_format, which also reads numbers from strings ("12",
    "NaN") and doubles from booleans: a number field takes a JSON number."""
    if fd.is_repeated:
        items = value if isinstance(value, list) else []
        return next((p for p in (_json_type_problem_one(fd, v) for v in items) if p), None)
    return _json_type_problem_one(fd, value)


def _json_type_problem_one(fd: descriptor.FieldDescriptor, value: Any) -> str | None:
    if fd.type not in _FLOAT_TYPES and fd.type not in _INT32_TYPES:
        return None  # json_format checks the others
    name = validation.documented_name(fd)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{name} must be {'a number' if fd.type in _FLOAT_TYPES else 'an integer'}"
    if fd.type in _FLOAT_TYPES:
        try:  # 1e400 reads as inf, a 400-digit integer does not fit a double
            finite = math.isfinite(value)
        except OverflowError:
            finite = False
        if not finite:
            return f"{name} must be a finite number"
    return None


def parse_body(route: HttpRoute, msg: message.Message, raw: bytes) -> None:
    """Fill `msg` (or its `body` field) from a JSON body; BadRequest when the body is
    not what the module docstring says."""
    if not raw.strip():
        return
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    target = _json_body_field(route, msg)
    fields: dict[str, descriptor.FieldDescriptor] = {}
    for fd in target.DESCRIPTOR.fields:
        fields[fd.name] = fields[fd.json_name] = fd
    in_path = set(route.path_fields) if route.body == "*" else set()
    for key, value in data.items():
        fd = fields.get(key)
        if fd is None:
            expected = ", ".join(
                validation.documented_name(f)
                for f in target.DESCRIPTOR.fields
                if f.name not in in_path
            )
            raise BadRequest(f"unknown field {key!r} (expected: {expected})")
        if value is None:
            name = validation.documented_name(fd)
            required = fd.name not in in_path and validation.field_spec(fd).doc_required
            raise BadRequest(f"{name} is required" if required else f"{name} must not be null")
        problem = _json_type_problem(fd, value)
        if problem:
            raise BadRequest(f"invalid request: {problem}")
    try:
        json_format.ParseDict(data, target, ignore_unknown_fields=False)
    except (
        json_format.ParseError,
        ValueError,
        TypeError,
        AttributeError,
        OverflowError,
        RecursionError,
    ) as exc:
        raise BadRequest(f"invalid request: {exc}") from None


def build_handler(
    route: HttpRoute, call: Callable[[message.Message], Awaitable[message.Message]]
) -> Callable[[Request], Awaitable[Response]]:
    request_class = message_factory.GetMessageClass(route.rpc.input_type)

    async def handler(request: Request) -> Response:
        req = request_class()
        try:
            if route.body:
                parse_body(route, req, await request.body())
            for name, value in request.path_params.items():
                _set_path_field(req, name, value)
        except BadRequest as exc:
            return error(400, str(exc))
        except (json_format.ParseError, ValueError, TypeError, AttributeError) as exc:
            return error(400, f"invalid request: {exc}")
        try:
            validation.check(req)
            resp = await call(req)
        except ApiError as exc:
            return error(HTTP_STATUS.get(exc.code, 500), exc.message)
        status = route.success_code
        if route.partial_code and any(getattr(resp, "errors", ())):
            status = route.partial_code
        if route.returns_empty or status == 204:
            return Response(status_code=status)
        body: Any = json_format.MessageToDict(
            resp,
            preserving_proto_field_name=False,
            always_print_fields_with_no_presence=True,
        )
        if route.response_body:
            fd = resp.DESCRIPTOR.fields_by_name[route.response_body]
            body = body.get(fd.json_name, [] if fd.is_repeated else None)
        return JSONResponse(body, status_code=status)

    handler.__name__ = route.rpc.name
    return handler


# -- OpenAPI ---------------------------------------------------------------------------

_SCALARS: dict[int, dict[str, str]] = {
    descriptor.FieldDescriptor.TYPE_STRING: {"type": "string"},
    descriptor.FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    descriptor.FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    descriptor.FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    descriptor.FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    descriptor.FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int32"},
    descriptor.FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    descriptor.FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}


class _Schemas:
    def __init__(self) -> None:
        self.components: dict[str, Any] = {
            "Error": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }

    def field(self, fd: descriptor.FieldDescriptor, *, rules: bool = False) -> dict[str, Any]:
        """A field's schema; `rules`: with the request rules of the proto."""
        if fd.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
            if fd.message_type.full_name == "google.protobuf.Timestamp":
                schema: dict[str, Any] = {"type": "string", "format": "date-time"}
            else:
                schema = {"$ref": self.ref(fd.message_type)}
        elif fd.type == descriptor.FieldDescriptor.TYPE_ENUM:
            schema = {"type": "string", "enum": [v.name for v in fd.enum_type.values]}
        else:
            schema = dict(_SCALARS.get(fd.type, {"type": "string"}))
            if rules:
                schema.update(validation.field_schema(fd))
        if fd.is_repeated:
            return {
                "type": "array",
                "items": schema,
                **(validation.array_schema(fd) if rules else {}),
            }
        return schema

    def ref(self, md: descriptor.Descriptor) -> str:
        name = md.name
        if name not in self.components:
            self.components[name] = {}  # placeholder: recursion guard
            props = {fd.json_name: self.field(fd) for fd in md.fields}
            self.components[name] = {"type": "object", "properties": props}
        return f"#/components/schemas/{name}"

    def request_ref(
        self, md: descriptor.Descriptor, *, exclude: tuple[str, ...] = (), snake: bool = False
    ) -> tuple[str, bool]:
        """A request body's schema, with its rules; returns the reference and whether
        the body has required fields."""
        name = md.name + ("Body" if exclude else "")
        fields = [fd for fd in md.fields if fd.name not in exclude]

        def key(fd: descriptor.FieldDescriptor) -> str:
            return str(fd.name if snake else fd.json_name)

        required = [key(fd) for fd in validation.required_fields(md) if fd.name not in exclude]
        if name not in self.components:
            schema: dict[str, Any] = {
                "type": "object",
                "properties": {key(fd): self.field(fd, rules=True) for fd in fields},
                "additionalProperties": False,
            }
            if required:
                schema["required"] = required
            text = _body_description(md, snake)
            if text:
                schema["description"] = text
            self.components[name] = schema
        return f"#/components/schemas/{name}", bool(required)


def _body_description(md: descriptor.Descriptor, snake: bool) -> str:
    parts = [f"Also enforced (400 otherwise): {rule}." for rule in validation.cross_field_rules(md)]
    other = "camelCase" if snake else "snake_case"
    parts.append(f"Each field is also accepted in its {other} spelling.")
    return " ".join(parts)


def openapi(route_list: list[HttpRoute]) -> dict[str, Any]:
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for route in route_list:
        op: dict[str, Any] = {"operationId": route.rpc.name, "summary": route.rpc.name}
        md_in = route.rpc.input_type
        params = [
            {
                "name": f,
                "in": "path",
                "required": True,
                "schema": schemas.field(md_in.fields_by_name[f], rules=True),
            }
            for f in route.path_fields
        ]
        if params:
            op["parameters"] = params
        if route.body:
            md = md_in if route.body == "*" else md_in.fields_by_name[route.body].message_type
            ref, has_required = schemas.request_ref(
                md,
                exclude=route.path_fields if route.body == "*" else (),
                snake=route.snake_case,
            )
            op["requestBody"] = {
                "required": has_required,
                "content": {"application/json": {"schema": {"$ref": ref}}},
            }
            rules = validation.cross_field_rules(md)
            if rules:
                op["description"] = "Cross-field rules (400 otherwise): " + "; ".join(rules) + "."
        responses: dict[str, Any] = {}
        if route.returns_empty:
            responses[str(route.success_code)] = {"description": "done"}
        else:
            out = route.rpc.output_type
            if route.response_body:
                schema = schemas.field(out.fields_by_name[route.response_body])
            else:
                schema = {"$ref": schemas.ref(out)}
            content = {"application/json": {"schema": schema}}
            responses[str(route.success_code)] = {"description": "success", "content": content}
            if route.partial_code:
                responses[str(route.partial_code)] = {
                    "description": "partial success: see errors",
                    "content": content,
                }
        err = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        responses["400"] = {"description": "invalid input (a broken request rule)", **err}
        if route.path_fields:
            responses["404"] = {"description": "unknown id", **err}
        responses["default"] = {"description": "error", **err}
        op["responses"] = responses
        paths.setdefault(route.template, {})[route.verb.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "NoTIP gateway simulator",
            "version": "1",
            "description": (
                f"REST face of {SERVICE.full_name} (derived from simulator.proto, "
                "request rules included). Request bodies: unknown fields and null "
                "values are a 400; a method a path does not support is a 405 with Allow."
            ),
        },
        "paths": paths,
        "components": {"schemas": schemas.components},
    }


# -- the app -----------------------------------------------------------------------------


class _PathEndpoint:
    """The ASGI app of one path: the handler of the request's method (HEAD: GET's), or
    a 405 whose Allow header lists the path's methods. (An ASGI app, not a function:
    Starlette then routes every method here instead of answering 405 itself.)"""

    def __init__(self, handlers: dict[str, Callable[[Request], Awaitable[Response]]]) -> None:
        self.handlers = handlers
        self.allow = ", ".join(sorted({*handlers, *(["HEAD"] if "GET" in handlers else [])}))
        self.app = request_response(self.endpoint)

    async def endpoint(self, request: Request) -> Response:
        method = request.method
        if method == "HEAD" and "GET" in self.handlers:
            method = "GET"
        handler = self.handlers.get(method)
        if handler is None:
            response = error(405, f"method {request.method} not allowed (allowed: {self.allow})")
            response.headers["Allow"] = self.allow
            return response
        return await handler(request)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def create_app(ops: Operations) -> Starlette:
    route_list = routes()
    by_path: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {}
    for r in route_list:
        handlers = by_path.setdefault(r.starlette_path, {})
        if r.verb in handlers:
            raise ValueError(f"{r.verb} {r.template} is annotated twice")
        handlers[r.verb] = build_handler(r, getattr(ops, r.rpc.name))
    document = openapi(route_list)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(document)

    by_path.setdefault("/openapi.json", {})["GET"] = openapi_json
    starlette_routes = [
        StarletteRoute(path, _PathEndpoint(handlers), name=path)
        for path, handlers in by_path.items()
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        response = error(exc.status_code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected error", exc_info=exc)
        return error(500, "internal error")

    return Starlette(
        routes=starlette_routes,
        exception_handlers={HTTPException: http_error, Exception: unexpected},
    )
