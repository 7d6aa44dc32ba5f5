from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from notip.config import ConfigError
from notip.consumer.settings import ENV_VARS, Settings


@pytest.fixture
def base(tmp_path: Path) -> dict[str, str]:
    for name in ("ca.crt", "c.crt", "c.key", "root.crt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "pw").write_text("  s3cret-value \n")
    return {
        "NATS_URL": "tls://nats:4222",
        "NATS_TLS_CA": str(tmp_path / "ca.crt"),
        "NATS_TLS_CERT": str(tmp_path / "c.crt"),
        "NATS_TLS_KEY": str(tmp_path / "c.key"),
        "DB_HOST": "timescaledb",
        "DB_NAME": "notip",
        "DB_USER": "notip",
        "DB_PASSWORD_FILE": str(tmp_path / "pw"),
    }


def problems(env: Mapping[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    return str(info.value)


def test_defaults_of_the_contract(base: dict[str, str]) -> None:
    s = Settings.from_env(base)
    assert s.db_password == "s3cret-value"  # read and stripped
    assert (s.db_port, s.db_max_conns, s.db_min_conns, s.db_ssl_mode) == (5432, 10, 2, "require")
    assert s.durable_name == "data-consumer-telemetry"
    assert s.decommission_durable_name == "data-consumer-decommission-listener"
    assert s.nats_connect_timeout_s == 10
    assert s.gateway_buffer_size == 1000
    assert (s.heartbeat_tick_ms, s.heartbeat_grace_period_ms) == (10_000, 120_000)
    assert (s.alert_config_refresh_ms, s.alert_config_default_timeout_ms) == (300_000, 60_000)
    assert s.alert_config_max_retries == 10
    assert s.metrics_addr == ":9090"
    assert s.ingest_batch_size == 1000 and s.ingest_flush_ms == 50 and s.ingest_writers == 3
    assert s.alert_subject("t1", "g1") == "alert.gw_offline.t1"
    assert s.ingest_deliver_policy == "all"


def test_password_never_in_repr(base: dict[str, str]) -> None:
    assert "s3cret" not in repr(Settings.from_env(base))


@pytest.mark.parametrize(
    "missing",
    [
        "NATS_URL",
        "NATS_TLS_CA",
        "NATS_TLS_CERT",
        "NATS_TLS_KEY",
        "DB_HOST",
        "DB_NAME",
        "DB_USER",
        "DB_PASSWORD_FILE",
    ],
)
def test_each_required_variable_is_named(base: dict[str, str], missing: str) -> None:
    env = dict(base)
    del env[missing]
    assert f"{missing} is required" in problems(env)


def test_all_problems_named_at_once(base: dict[str, str], tmp_path: Path) -> None:
    env = {
        **base,
        "DB_PORT": "seventy",
        "HEARTBEAT_TICK_MS": "0",
        "DB_SSL_MODE": "prefer",
        "INGEST_BATCH_SIZE": "-5",
        "INGEST_FLUSH_MS": "x",
        "ALERT_SUBJECT_TEMPLATE": "alert.{tenant}.gw_offline",
        "METRICS_ADDR": "nowhere",
        "LIVENESS_ENABLED": "perhaps",
        "NATS_CONSUMER_DURABLE_NAME": "bad.name",
    }
    msg = problems(env)
    for name in (
        "DB_PORT=",
        "HEARTBEAT_TICK_MS=",
        "DB_SSL_MODE=",
        "INGEST_BATCH_SIZE=",
        "INGEST_FLUSH_MS=",
        "ALERT_SUBJECT_TEMPLATE=",
        "METRICS_ADDR=",
        "LIVENESS_ENABLED=",
        "NATS_CONSUMER_DURABLE_NAME=",
    ):
        assert name in msg, name


def test_password_file_problems(base: dict[str, str], tmp_path: Path) -> None:
    assert "DB_PASSWORD_FILE=" in problems({**base, "DB_PASSWORD_FILE": str(tmp_path / "nope")})
    (tmp_path / "empty").write_text(" \n")
    msg = problems({**base, "DB_PASSWORD_FILE": str(tmp_path / "empty")})
    assert "DB_PASSWORD_FILE=" in msg and "empty" in msg


def test_missing_certificate_file_is_named(base: dict[str, str], tmp_path: Path) -> None:
    assert "NATS_TLS_KEY=" in problems({**base, "NATS_TLS_KEY": str(tmp_path / "gone.key")})


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
def test_verify_modes_need_a_root_certificate(
    base: dict[str, str], tmp_path: Path, mode: str
) -> None:
    assert "DB_SSL_ROOT_CERT is required" in problems({**base, "DB_SSL_MODE": mode})
    s = Settings.from_env(
        {**base, "DB_SSL_MODE": mode, "DB_SSL_ROOT_CERT": str(tmp_path / "root.crt")}
    )
    assert s.db_ssl_mode == mode and s.db_ssl_root_cert == tmp_path / "root.crt"


def test_connection_bounds(base: dict[str, str]) -> None:
    assert "DB_MIN_CONNS=5 must be <= DB_MAX_CONNS=3" in problems(
        {**base, "DB_MIN_CONNS": "5", "DB_MAX_CONNS": "3"}
    )
    assert "INGEST_WRITERS + 1" in problems({**base, "DB_MAX_CONNS": "2", "DB_MIN_CONNS": "1"})
    assert "INGEST_MAX_ACK_PENDING" in problems({**base, "INGEST_MAX_ACK_PENDING": "1000"})


def test_alert_subject_template(base: dict[str, str]) -> None:
    s = Settings.from_env({**base, "ALERT_SUBJECT_TEMPLATE": "alert.{tenant_id}.gw_offline"})
    assert s.alert_subject("t1", "g1") == "alert.t1.gw_offline"
    s = Settings.from_env({**base, "ALERT_SUBJECT_TEMPLATE": "alert.{tenant_id}.{gateway_id}"})
    assert s.alert_subject("t1", "g1") == "alert.t1.g1"
    for bad in ("alert..{tenant_id}", "alert.*.{tenant_id}", "alert.{0}", "alert.{tenant_id"):
        assert "ALERT_SUBJECT_TEMPLATE=" in problems({**base, "ALERT_SUBJECT_TEMPLATE": bad}), bad


class Recording(dict[str, str]):
    def __init__(self, data: Mapping[str, str]) -> None:
        super().__init__(data)
        self.asked: set[str] = set()

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("settings must not enumerate the environment")


def test_env_vars_lists_exactly_what_is_read(base: dict[str, str]) -> None:
    env = Recording({**base, "DB_SSL_MODE": "verify-full", "DB_SSL_ROOT_CERT": base["NATS_TLS_CA"]})
    Settings.from_env(env)
    assert env.asked == ENV_VARS


def test_liveness_lease_ttl(base: dict[str, str]) -> None:
    assert Settings.from_env(base).liveness_lease_ttl_ms == 15_000
    assert (
        Settings.from_env({**base, "LIVENESS_LEASE_TTL_MS": "2000"}).liveness_lease_ttl_ms == 2000
    )
    for bad in ("999", "600001", "soon"):
        assert "LIVENESS_LEASE_TTL_MS=" in problems({**base, "LIVENESS_LEASE_TTL_MS": bad}), bad
