"""Schemathesis hooks for test_openapi_conformance.py (loaded through
SCHEMATHESIS_HOOKS by the `schemathesis run` it starts).

The document's cross-field rules (`(less_than)` in simulator.proto, e.g. minRange <
maxRange) cannot be written in OpenAPI 3.0's JSON Schema; the document states them in
prose. Schemathesis's positive-data check (`positive_data_acceptance`) counts any 400
to a schema-valid request as a failure, documented 400 or not, so a *positive* case
that breaks a cross-field rule is not positive data: it is dropped here. The rules
come from the proto (`validation.compile_message`), like the server's check: nothing
is restated. Negative cases are left alone.
"""

from __future__ import annotations

from typing import Any, TypeGuard

import schemathesis

from notip.simulator import validation
from notip.simulator.grpc_api import SERVICE


def _less_than_pairs(operation_id: str) -> list[tuple[str, str]]:
    method = SERVICE.methods_by_name.get(operation_id)
    if method is None:
        return []
    spec = validation.compile_message(method.input_type)
    return [(a.name, b.name) for a, b in spec.less_than]


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


@schemathesis.hook
def filter_case(context: schemathesis.HookContext, case: schemathesis.Case[Any]) -> bool:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return True
    operation_id = str(case.operation.definition.raw.get("operationId", ""))
    for a, b in _less_than_pairs(operation_id):
        lo, hi = case.body.get(a, 0), case.body.get(b, 0)  # absent: the zero value
        if _is_number(lo) and _is_number(hi) and not lo < hi:
            return False
    return True
