"""Small HTTP helpers shared by the two stand-ins: JSON bodies in, JSON errors out.

Bad input is always a 4xx with a JSON body `{"error": ...}`, never a 500.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from notip.httpserve import http_url, parse_addr

MAX_BODY_BYTES = 64 * 1024


class HttpError(Exception):
    """An error answer: `status` and a JSON body `{"error": error, "message"?: ...}`."""

    def __init__(self, status: int, error: str, message: str | None = None) -> None:
        super().__init__(message or error)
        self.status = status
        self.error = error
        self.message = message

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"error": self.error}
        if self.message is not None:
            body["message"] = self.message
        return JSONResponse(body, status_code=self.status)


async def read_json(
    request: Request, *, error: str = "invalid JSON body", max_bytes: int = MAX_BODY_BYTES
) -> Any:
    """The request's JSON body. Raises HttpError 400 with `error` as the code
    and a precise message."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HttpError(400, error, f"body larger than {max_bytes} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise HttpError(400, error, f"body larger than {max_bytes} bytes")
    if not body:
        raise HttpError(400, error, "empty body; expected a JSON object")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HttpError(400, error, f"body is not valid JSON: {exc}") from None
    try:  # `"\ud800"` parses into a str that no store, certificate or UTF-8 can hold
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise HttpError(400, error, "body contains an unpaired UTF-16 surrogate escape") from None
    return value


async def read_json_object(request: Request, *, error: str = "invalid JSON body") -> dict[str, Any]:
    value = await read_json(request, error=error)
    if not isinstance(value, dict):
        raise HttpError(400, error, "body must be a JSON object")
    return value


def local_url(addr: str, port: int) -> str:
    """The URL a local client uses for a server bound on `addr` (wildcards → loopback)."""
    host, _ = parse_addr(addr)
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return http_url(host, port)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        {"error": exc.detail}, status_code=exc.status_code, headers=dict(exc.headers or {})
    )


#: `Starlette(exception_handlers=JSON_ERRORS)`: unknown routes (404) and wrong methods
#: (405) answer with a JSON body too.
JSON_ERRORS = {HTTPException: _http_exception}
