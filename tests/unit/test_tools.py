from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def _tool(name: str) -> str:
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    assert found, f"{name} is not installed (dev extra)"
    return found


def test_grpcurl_runs_from_the_dev_extra() -> None:
    out = subprocess.run(
        [_tool("grpcurl"), "--version"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0
    assert "grpcurl" in (out.stdout + out.stderr)


def test_nats_server_runs_from_the_dev_extra() -> None:
    out = subprocess.run(
        [_tool("nats-server"), "--version"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0 and "nats-server: v2." in out.stdout
