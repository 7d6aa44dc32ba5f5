"""Request rules, declared once in simulator.proto and derived from there (docs/design.md#one-proto-two-faces).

A request field carries `(rules)` (`FieldRules`: required, uuid, min, max,
exclusive_min, allowed, max_len, ignore_empty) and a request message may carry
`(less_than)` rules between two of its number fields; the proto documents their
meaning. From those options this module derives both

- the server-side check: `check(request)` raises `ApiError(INVALID_ARGUMENT)` (REST
  400) naming the first broken rule. Both faces call it before the operation: the gRPC
  servicer (grpc_api) and the REST gateway (rest_gateway), so the application core
  (registry.py) receives valid requests only; and
- the OpenAPI schema keywords of each field (`field_schema`), the `required` list of
  each body (`required_fields`: declared `required`, or a zero value the rules reject,
  e.g. a duration that must be > 0) and the prose of the cross-field rules JSON Schema
  cannot express (`cross_field_rules`).

One rule holds without a declaration: every double/float field must be finite (JSON
numbers are; json_format also reads "NaN" and "Infinity" strings).

Errors name the field in its documented JSON spelling (lowerCamelCase, or snake_case
for `rest_snake_case` messages), e.g. "factoryId is required",
"duration_seconds must be a positive number", "minRange must be less than maxRange".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from google.protobuf import descriptor, message

from notip.simulator.errors import invalid
from notip.simulator.v1 import simulator_pb2 as pb

FD = descriptor.FieldDescriptor

UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
NON_BLANK_PATTERN = r"\S"  # a required string: one non-whitespace character at least
_UUID = re.compile(UUID_PATTERN)
_NON_BLANK = re.compile(NON_BLANK_PATTERN)

_FLOATS = frozenset({FD.TYPE_DOUBLE, FD.TYPE_FLOAT})
_INTS = frozenset(
    {
        FD.TYPE_INT32,
        FD.TYPE_INT64,
        FD.TYPE_UINT32,
        FD.TYPE_UINT64,
        FD.TYPE_SINT32,
        FD.TYPE_SINT64,
        FD.TYPE_FIXED32,
        FD.TYPE_FIXED64,
        FD.TYPE_SFIXED32,
        FD.TYPE_SFIXED64,
    }
)
_NUMBERS = _FLOATS | _INTS


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


@dataclass(frozen=True)
class FieldSpec:
    """One field and its rules, checked for consistency when compiled."""

    fd: descriptor.FieldDescriptor
    name: str  # documented JSON spelling
    rules: pb.FieldRules

    @property
    def is_string(self) -> bool:
        return bool(self.fd.type == FD.TYPE_STRING)

    @property
    def is_number(self) -> bool:
        return self.fd.type in _NUMBERS

    @property
    def repeated(self) -> bool:
        return bool(self.fd.is_repeated)

    @property
    def has_presence(self) -> bool:
        return bool(self.fd.has_presence) and not self.repeated

    def value_problem(self, value: Any, name: str | None = None) -> str | None:
        """What is wrong with one value (an item, for repeated fields), rules other
        than `required`; None when it is fine."""
        r = self.rules
        name = name or self.name
        if self.is_string:
            if value == "" and r.ignore_empty:
                return None
            if r.uuid and not _UUID.match(value):
                return f"{name} is not a UUID: {value!r}"
            if r.allowed and value not in r.allowed:
                return f"{name} must be one of {', '.join(r.allowed)} (got {value!r})"
            if r.max_len and len(value) > r.max_len:
                return f"{name} must be at most {r.max_len} characters"
            return None
        if self.is_number:
            if self.fd.type in _FLOATS and not math.isfinite(value):
                return f"{name} must be a finite number"
            lo = r.min if r.HasField("min") else None
            hi = r.max if r.HasField("max") else None
            if lo is not None and hi is not None:
                if not lo <= value <= hi:
                    return f"{name} must be within [{_num(lo)}, {_num(hi)}]"
            elif lo is not None and value < lo:
                return f"{name} must be >= {_num(lo)}"
            elif hi is not None and value > hi:
                return f"{name} must be <= {_num(hi)}"
            if r.HasField("exclusive_min") and not value > r.exclusive_min:
                if r.exclusive_min == 0:
                    return f"{name} must be a positive number"
                return f"{name} must be > {_num(r.exclusive_min)}"
        return None

    def problem(self, msg: message.Message) -> str | None:
        r = self.rules
        if self.repeated:
            items = list(getattr(msg, self.fd.name))
            if r.required and not items:
                return f"{self.name} must contain at least one item"
            for i, item in enumerate(items):
                found = self.value_problem(item, f"{self.name}[{i}]")
                if found:
                    return found
            return None
        if self.has_presence and not msg.HasField(self.fd.name):
            return f"{self.name} is required" if r.required else None
        value = getattr(msg, self.fd.name)
        if r.required and not self.has_presence and not self._given(value):
            return f"{self.name} is required"
        return self.value_problem(value)

    @staticmethod
    def _given(value: Any) -> bool:
        if isinstance(value, str):
            return bool(_NON_BLANK.search(value))
        return bool(value)

    @property
    def doc_required(self) -> bool:
        """Whether the OpenAPI body lists the field as required: declared so, or its
        zero value (what an absent implicit-presence field reads as) is rejected."""
        if self.rules.required:
            return True
        if self.repeated or self.has_presence:
            return False
        return self.value_problem(self.fd.default_value) is not None

    def schema(self) -> dict[str, Any]:
        """JSON Schema keywords (OpenAPI 3.0) for one value (an item, for repeated
        fields); `required` of a string adds minLength/pattern."""
        r = self.rules
        out: dict[str, Any] = {}
        if self.is_string:
            if r.uuid:
                out["format"] = "uuid"
                out["pattern"] = UUID_PATTERN
            if r.allowed:
                out["enum"] = [*([""] if r.ignore_empty else []), *r.allowed]
            if r.max_len:
                out["maxLength"] = r.max_len
            if r.required and not self.repeated and not r.uuid and not r.allowed:
                out["minLength"] = 1
                out["pattern"] = NON_BLANK_PATTERN
        elif self.is_number:
            if r.HasField("min"):
                out["minimum"] = _json_number(r.min, self.fd.type)
            if r.HasField("max"):
                out["maximum"] = _json_number(r.max, self.fd.type)
            if r.HasField("exclusive_min"):
                out["minimum"] = _json_number(r.exclusive_min, self.fd.type)
                out["exclusiveMinimum"] = True
            if r.required and not self.has_presence and not self.repeated:
                zero_excluded = (r.HasField("min") and r.min > 0) or (
                    r.HasField("exclusive_min") and r.exclusive_min >= 0
                )
                if not zero_excluded:
                    out["not"] = {"enum": [0]}
        return out


def _json_number(x: float, kind: int) -> int | float:
    return int(x) if kind in _INTS or float(x).is_integer() else x


@dataclass(frozen=True)
class MessageSpec:
    fields: tuple[FieldSpec, ...]
    less_than: tuple[tuple[FieldSpec, FieldSpec], ...]

    def problem(self, msg: message.Message) -> str | None:
        for spec in self.fields:
            found = spec.problem(msg)
            if found:
                return found
        for a, b in self.less_than:
            if not getattr(msg, a.fd.name) < getattr(msg, b.fd.name):
                return f"{a.name} must be less than {b.name}"
        return None


def documented_name(fd: descriptor.FieldDescriptor) -> str:
    """The field's JSON spelling as the OpenAPI document shows it."""
    snake = fd.containing_type.GetOptions().Extensions[pb.rest_snake_case]
    return str(fd.name if snake else fd.json_name)


def _compile_field(fd: descriptor.FieldDescriptor) -> FieldSpec:
    opts = fd.GetOptions()
    rules = opts.Extensions[pb.rules] if opts.HasExtension(pb.rules) else pb.FieldRules()
    spec = FieldSpec(fd, documented_name(fd), rules)
    where = f"{fd.full_name}: (rules)"
    string_only = rules.uuid or bool(rules.allowed) or rules.max_len or rules.ignore_empty
    number_only = any(rules.HasField(k) for k in ("min", "max", "exclusive_min"))
    if string_only and not spec.is_string:
        raise ValueError(f"{where} uuid/allowed/max_len/ignore_empty need a string field")
    if number_only and not spec.is_number:
        raise ValueError(f"{where} min/max/exclusive_min need a number field")
    if rules.HasField("exclusive_min") and rules.HasField("min"):
        raise ValueError(f"{where} min and exclusive_min exclude each other")
    if rules.required and not (
        spec.is_string or spec.is_number or spec.repeated or spec.has_presence
    ):
        raise ValueError(f"{where} required needs a string, number, repeated or optional field")
    if rules.ignore_empty and rules.required:
        raise ValueError(f"{where} required and ignore_empty exclude each other")
    return spec


@cache
def compile_message(md: descriptor.Descriptor) -> MessageSpec:
    """The checks of one request message (cached; raises ValueError for rules that
    make no sense, so a bad annotation fails loudly)."""
    fields = tuple(
        _compile_field(fd) for fd in md.fields if fd.type != FD.TYPE_MESSAGE or fd.is_repeated
    )
    by_name = {s.fd.name: s for s in fields}
    pairs: list[tuple[FieldSpec, FieldSpec]] = []
    for rule in md.GetOptions().Extensions[pb.less_than]:
        a, b = by_name.get(rule.field), by_name.get(rule.than)
        if a is None or b is None or not (a.is_number and b.is_number) or a.repeated or b.repeated:
            raise ValueError(f"{md.full_name}: (less_than) needs two singular number fields")
        pairs.append((a, b))
    return MessageSpec(fields, tuple(pairs))


def problem(msg: message.Message) -> str | None:
    """The first broken rule of a request, or None."""
    return compile_message(msg.DESCRIPTOR).problem(msg)


def check(msg: message.Message) -> None:
    """Raise ApiError(INVALID_ARGUMENT) naming the first broken rule."""
    found = problem(msg)
    if found:
        raise invalid(found)


# -- what the OpenAPI document shows -------------------------------------------------


def field_spec(fd: descriptor.FieldDescriptor) -> FieldSpec:
    spec = next((s for s in compile_message(fd.containing_type).fields if s.fd is fd), None)
    return spec or _compile_field(fd)


def field_schema(fd: descriptor.FieldDescriptor) -> dict[str, Any]:
    """JSON Schema keywords for one value of the field (for repeated fields: of one
    item; see `array_schema`)."""
    return field_spec(fd).schema()


def array_schema(fd: descriptor.FieldDescriptor) -> dict[str, Any]:
    """Keywords of a repeated field's array itself."""
    return {"minItems": 1} if field_spec(fd).rules.required else {}


def required_fields(md: descriptor.Descriptor) -> list[descriptor.FieldDescriptor]:
    return [s.fd for s in compile_message(md).fields if s.doc_required]


def cross_field_rules(md: descriptor.Descriptor) -> list[str]:
    """The `(less_than)` rules in words, e.g. "minRange must be less than maxRange"."""
    return [f"{a.name} must be less than {b.name}" for a, b in compile_message(md).less_than]
