"""The committed stubs must match simulator.proto (docs/design.md#one-proto-two-faces): regenerate and compare."""

from __future__ import annotations

import re
from pathlib import Path

from google.protobuf import descriptor_pb2

from notip import protogen
from notip.simulator.v1 import simulator_pb2

# Version stamps differ between grpcio-tools releases without the code differing.
_VERSION_NOISE = (
    re.compile(r"^# Protobuf Python Version: .*$", re.M),
    re.compile(r"_runtime_version\.ValidateProtobufRuntimeVersion\([^)]*\)", re.S),
    re.compile(r"^GRPC_GENERATED_VERSION = .*$", re.M),
)


def _normalise(text: str) -> str:
    for pattern in _VERSION_NOISE:
        text = pattern.sub("<version>", text)
    return text


def test_committed_stubs_are_up_to_date(tmp_path: Path) -> None:
    written = protogen.generate(tmp_path)
    assert written, "protogen wrote nothing"
    for rel in written:
        fresh = (tmp_path / rel).read_text()
        committed_path = protogen.REPO / rel
        assert committed_path.exists(), f"{rel} is not committed: run `just proto`"
        assert _normalise(committed_path.read_text()) == _normalise(fresh), (
            f"{rel} is stale relative to the proto: run `just proto`"
        )


def test_committed_descriptor_matches_the_proto(tmp_path: Path) -> None:
    """Version-independent check: the descriptor compiled from the proto equals the
    one embedded in the committed module."""
    from grpc_tools import protoc

    out = tmp_path / "set.pb"
    assert protoc.main(protogen.protoc_args(tmp_path, descriptor_set=out)) == 0
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    compiled = next(f for f in fds.file if f.name == "notip/simulator/v1/simulator.proto")
    compiled.ClearField("source_code_info")
    embedded = descriptor_pb2.FileDescriptorProto.FromString(simulator_pb2.DESCRIPTOR.serialized_pb)
    # protoc adds json_name to descriptor sets only; it is derived, not declared.
    assert _without_json_names(embedded) == _without_json_names(compiled)


def _without_json_names(
    fdp: descriptor_pb2.FileDescriptorProto,
) -> descriptor_pb2.FileDescriptorProto:
    out = descriptor_pb2.FileDescriptorProto()
    out.CopyFrom(fdp)

    def clear(messages: list[descriptor_pb2.DescriptorProto]) -> None:
        for m in messages:
            for f in list(m.field) + list(m.extension):
                f.ClearField("json_name")
            clear(list(m.nested_type))

    clear(list(out.message_type))
    for ext in out.extension:
        ext.ClearField("json_name")
    return out


def test_stale_detection_notices_a_change(tmp_path: Path) -> None:
    """The comparison above is not vacuous: a changed proto gives different stubs."""
    proto = (protogen.PROTO_ROOT / protogen.PROTOS[0]).read_text()
    changed_root = tmp_path / "proto"
    target = changed_root / protogen.PROTOS[0]
    target.parent.mkdir(parents=True)
    target.write_text(
        proto.replace("string last_error = 12;", "string last_error = 12;\n  string extra = 13;")
    )
    args = protogen.protoc_args(tmp_path / "out")
    args = [a if a != f"-I{protogen.PROTO_ROOT}" else f"-I{changed_root}" for a in args]
    (tmp_path / "out").mkdir()
    from grpc_tools import protoc

    assert protoc.main(args) == 0
    rel = "notip/simulator/v1/simulator_pb2.py"
    assert _normalise((tmp_path / "out" / rel).read_text()) != _normalise(
        (protogen.REPO / rel).read_text()
    )
