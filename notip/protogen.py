"""Generate the committed gRPC/protobuf stubs from `proto/` (`just proto`).

`python -m notip.protogen` writes `*_pb2.py`, `*_pb2.pyi` and `*_pb2_grpc.py` next to
the package (`notip/simulator/v1/`). The include path holds `proto/`, grpcio-tools'
copy of the well-known types and googleapis-common-protos (for
`google/api/annotations.proto`). `tests/unit/simulator/test_protogen.py` fails when
the committed stubs are stale relative to the proto.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO / "proto"
PROTOS: tuple[str, ...] = ("notip/simulator/v1/simulator.proto",)


def include_paths() -> list[Path]:
    import google.api
    import grpc_tools

    googleapis = Path(next(iter(google.api.__path__))).parent.parent  # site-packages
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    return [PROTO_ROOT, well_known, googleapis]


def protoc_args(out_dir: Path, *, descriptor_set: Path | None = None) -> list[str]:
    args = ["grpc_tools.protoc", *(f"-I{p}" for p in include_paths())]
    if descriptor_set is not None:
        args += [f"--descriptor_set_out={descriptor_set}", "--include_imports"]
    else:
        args += [
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
        ]
    return args + list(PROTOS)


def generate(out_dir: Path = REPO) -> list[Path]:
    """Run protoc; returns the files it wrote (relative to `out_dir`)."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    code = protoc.main(protoc_args(out_dir))
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    written: list[Path] = []
    for proto in PROTOS:
        stem = proto.removesuffix(".proto")
        written.extend(Path(stem + suffix) for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"))
        _fix_pyi(out_dir / (stem + "_pb2.pyi"))
    return written


_MODULE_CLASSVAR = re.compile(r"^(\w+): _ClassVar\[int\]$", re.M)


def _fix_pyi(path: Path) -> None:
    """protoc's pyi generator types module-level extension numbers as `ClassVar`,
    which type checkers reject outside a class body; make them plain ints."""
    text = path.read_text()
    path.write_text(_MODULE_CLASSVAR.sub(r"\1: int", text))


def main() -> int:
    for path in generate(REPO):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
