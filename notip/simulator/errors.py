"""The one error type of the simulator's application core.

Operations raise `ApiError` with a gRPC status code; the gRPC face aborts with it, the
REST face maps the code to an HTTP status through one table
(`rest_gateway.HTTP_STATUS`)."""

from __future__ import annotations

import uuid

import grpc


class ApiError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ApiError({self.code.name}, {self.message!r})"


def invalid(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.NOT_FOUND, message)


def conflict(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.FAILED_PRECONDITION, message)


def check_uuid(value: str, what: str) -> str:
    """A lowercase UUID string, or a 400 naming the field."""
    if not value:
        raise invalid(f"{what} is required")
    try:
        parsed = uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise invalid(f"{what} is not a UUID: {value!r}") from None
    return str(parsed)
