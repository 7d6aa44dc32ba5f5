"""`notip consumer` with a bad environment: exit 2, a message naming each variable, no
traceback (the CLI module wiring is real: `python -m notip consumer`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_config_error_names_the_variables_and_exits_2(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NATS_", "DB_", "INGEST_", "HEARTBEAT_", "ALERT_"))
    }
    env.update({"DB_PORT": "not-a-port", "HEARTBEAT_TICK_MS": "0"})
    out = subprocess.run(
        [sys.executable, "-m", "notip", "consumer"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == 2, out.stderr
    for name in (
        "NATS_URL is required",
        "DB_PASSWORD_FILE is required",
        "DB_PORT=",
        "HEARTBEAT_TICK_MS=",
    ):
        assert name in out.stderr, name
    assert "Traceback" not in out.stderr


def test_tune_gc_freezes_the_start_up_heap_and_raises_the_thresholds() -> None:
    import gc

    from notip.gctuning import GC_THRESHOLDS, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0  # what start-up built is out of the collector's sight
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
