from __future__ import annotations

from pathlib import Path

import pytest

from notip.config import ConfigError
from notip.simulator.settings import ENV_VARS, Settings


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    for name in ("ca.crt", "sim.crt", "sim.key"):
        (tmp_path / name).write_text("x")
    return {
        "PROVISIONING_URL": "http://provisioning:3000",
        "NATS_URL": "tls://nats:4222",
        "NATS_CA_CERT_PATH": str(tmp_path / "ca.crt"),
        "_cert": str(tmp_path / "sim.crt"),
        "_key": str(tmp_path / "sim.key"),
    }


def env(files: dict[str, str], **extra: str) -> dict[str, str]:
    base = {k: v for k, v in files.items() if not k.startswith("_")}
    base.update(extra)
    return base


def test_defaults(files: dict[str, str]) -> None:
    s = Settings.from_env(env(files))
    assert s.sqlite_path == Path("/data/simulator.db")
    assert (s.http_addr, s.metrics_addr, s.grpc_addr) == (":8090", ":9090", ":50051")
    assert s.default_send_frequency_ms == 5000 and s.gateway_buffer_size == 1000
    assert s.recovery_mode is False and not s.uses_service_cert


def test_everything_set(files: dict[str, str]) -> None:
    s = Settings.from_env(
        env(
            files,
            NATS_TLS_CERT=files["_cert"],
            NATS_TLS_KEY=files["_key"],
            SQLITE_PATH="/tmp/x.db",
            HTTP_ADDR="127.0.0.1:0",
            METRICS_ADDR=":9191",
            GRPC_ADDR="[::1]:50052",
            DEFAULT_SEND_FREQUENCY_MS="250",
            GATEWAY_BUFFER_SIZE="10",
            RECOVERY_MODE="true",
        )
    )
    assert s.uses_service_cert and s.recovery_mode
    assert s.default_send_frequency_ms == 250 and s.gateway_buffer_size == 10
    assert s.grpc_addr == "[::1]:50052"


def test_all_problems_named_at_once(files: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(
            {
                "PROVISIONING_URL": "provisioning:3000",
                "NATS_CA_CERT_PATH": "/nope/ca.crt",
                "NATS_TLS_CERT": files["_cert"],
                "DEFAULT_SEND_FREQUENCY_MS": "0",
                "GATEWAY_BUFFER_SIZE": "many",
                "RECOVERY_MODE": "maybe",
                "GRPC_ADDR": "50051",
            }
        )
    msg = str(info.value)
    for name in (
        "PROVISIONING_URL",
        "NATS_URL is required",
        "NATS_CA_CERT_PATH",
        "NATS_TLS_CERT and NATS_TLS_KEY must be set together",
        "DEFAULT_SEND_FREQUENCY_MS",
        "GATEWAY_BUFFER_SIZE",
        "RECOVERY_MODE",
        "GRPC_ADDR",
    ):
        assert name in msg


def test_env_vars_lists_what_is_read() -> None:
    assert ENV_VARS == {
        "PROVISIONING_URL",
        "NATS_URL",
        "NATS_CA_CERT_PATH",
        "NATS_TLS_CERT",
        "NATS_TLS_KEY",
        "SQLITE_PATH",
        "HTTP_ADDR",
        "METRICS_ADDR",
        "DEFAULT_SEND_FREQUENCY_MS",
        "GATEWAY_BUFFER_SIZE",
        "RECOVERY_MODE",
        "GRPC_ADDR",
        "FIRMWARE_APPLY_MS",
    }
