from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from notip.config import ConfigError
from notip.natsio import TlsFiles
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
    assert s.recovery_mode is False
    # Each gateway on its own provisioned certificate; no service identity.
    assert s.gateway_identity == "own" and not s.shared_identity and not s.has_service_cert


def test_everything_set(files: dict[str, str]) -> None:
    s = Settings.from_env(
        env(
            files,
            NATS_TLS_CERT=files["_cert"],
            NATS_TLS_KEY=files["_key"],
            GATEWAY_IDENTITY="shared",
            SQLITE_PATH="/tmp/x.db",
            HTTP_ADDR="127.0.0.1:0",
            METRICS_ADDR=":9191",
            GRPC_ADDR="[::1]:50052",
            DEFAULT_SEND_FREQUENCY_MS="250",
            GATEWAY_BUFFER_SIZE="10",
            RECOVERY_MODE="true",
        )
    )
    assert s.has_service_cert and s.shared_identity and s.recovery_mode
    assert s.nats_tls.cert == Path(files["_cert"]) and s.nats_tls.key == Path(files["_key"])
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
                "GATEWAY_IDENTITY": "borrowed",
            }
        )
    msg = str(info.value)
    for name in (
        "GATEWAY_IDENTITY='borrowed': expected one of own, shared",
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
        "GATEWAY_IDENTITY",
    }


def test_service_certificate_alone_is_the_simulators_own_identity(files: dict[str, str]) -> None:
    """NATS_TLS_CERT/KEY no longer switch the gateways: they are the simulator's own
    connection (decommission listener); gateways keep their own certificates."""
    s = Settings.from_env(env(files, NATS_TLS_CERT=files["_cert"], NATS_TLS_KEY=files["_key"]))
    assert s.has_service_cert
    assert s.gateway_identity == "own" and not s.shared_identity


def test_explicit_own_identity(files: dict[str, str]) -> None:
    s = Settings.from_env(env(files, GATEWAY_IDENTITY="own"))
    assert s.gateway_identity == "own" and not s.has_service_cert


@pytest.mark.parametrize("given", [{}, {"NATS_TLS_CERT": "_cert"}, {"NATS_TLS_KEY": "_key"}])
def test_shared_identity_needs_the_service_certificate(
    files: dict[str, str], given: dict[str, str]
) -> None:
    extra = {name: files[key] for name, key in given.items()}
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env(files, GATEWAY_IDENTITY="shared", **extra))
    assert "GATEWAY_IDENTITY=shared needs NATS_TLS_CERT and NATS_TLS_KEY" in str(info.value)


def test_constructed_settings_keep_the_same_rules(tmp_path: Path) -> None:
    def make(identity: Any = None) -> Settings:
        tls = TlsFiles(tmp_path / "ca.crt")
        if identity is None:
            return Settings("http://p:3000", "tls://n:4222", tls)
        return Settings("http://p:3000", "tls://n:4222", tls, gateway_identity=identity)

    assert make().gateway_identity == "own"
    with pytest.raises(ValueError, match="needs the service certificate"):
        make("shared")
    with pytest.raises(ValueError, match="must be one of"):
        make("borrowed")
