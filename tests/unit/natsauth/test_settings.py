from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from notip.config import ConfigError
from notip.natsauth import jwt
from notip.natsauth.settings import Settings


@pytest.fixture
def base(tmp_path: Path) -> dict[str, str]:
    for name in ("ca.crt", "c.crt", "c.key"):
        (tmp_path / name).write_text("x")
    (tmp_path / "issuer.nk").write_bytes(jwt.new_seed(jwt.PREFIX_ACCOUNT))
    (tmp_path / "sys.nk").write_bytes(jwt.new_seed(jwt.PREFIX_USER))
    (tmp_path / "x.xk").write_bytes(jwt.new_seed(jwt.PREFIX_CURVE))
    return {
        "NATS_URL": "tls://nats:4222",
        "NATS_TLS_CA": str(tmp_path / "ca.crt"),
        "NATS_TLS_CERT": str(tmp_path / "c.crt"),
        "NATS_TLS_KEY": str(tmp_path / "c.key"),
        "CALLOUT_ISSUER_SEED_FILE": str(tmp_path / "issuer.nk"),
        "NATS_SYSTEM_SEED_FILE": str(tmp_path / "sys.nk"),
        "CALLOUT_XKEY_SEED_FILE": str(tmp_path / "x.xk"),
    }


def problems(env: Mapping[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    return str(info.value)


def test_defaults(base: dict[str, str], tmp_path: Path) -> None:
    s = Settings.from_env(base)
    assert s.issuer_seed.startswith(b"SA") and s.xkey_seed and s.xkey_seed.startswith(b"SX")
    assert s.system_seed_file == tmp_path / "sys.nk"
    assert s.metrics_addr == ":9090"
    assert s.mgmt_request_timeout_ms == 750
    policy = s.cache_policy
    assert (policy.positive_ttl_s, policy.negative_ttl_s, policy.stale_limit_s) == (30, 3, 600)
    assert s.sweep_interval_ms == 60_000
    assert s.queue_group == "notip-nats-auth" and s.decommission_durable == "nats-auth-decommission"
    assert s.issuer_seed.decode() not in repr(s) and s.xkey_seed.decode() not in repr(s)


def test_the_xkey_is_optional(base: dict[str, str]) -> None:
    del base["CALLOUT_XKEY_SEED_FILE"]
    assert Settings.from_env(base).xkey_seed is None


@pytest.mark.parametrize(
    "missing", ["CALLOUT_ISSUER_SEED_FILE", "NATS_SYSTEM_SEED_FILE", "NATS_URL"]
)
def test_required(base: dict[str, str], missing: str) -> None:
    del base[missing]
    assert f"{missing} is required" in problems(base)


def test_seed_types_are_checked(base: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "garbage").write_text("not a seed")
    env = {
        **base,
        "CALLOUT_ISSUER_SEED_FILE": base["NATS_SYSTEM_SEED_FILE"],  # a user seed
        "CALLOUT_XKEY_SEED_FILE": str(tmp_path / "garbage"),
        "NATS_SYSTEM_SEED_FILE": str(tmp_path / "nowhere"),
    }
    text = problems(env)
    assert "CALLOUT_ISSUER_SEED_FILE" in text and "an account seed" in text
    assert "CALLOUT_XKEY_SEED_FILE" in text and "not a readable nkey seed" in text
    assert "NATS_SYSTEM_SEED_FILE" in text and "does not exist" in text


def test_numbers_are_bounded(base: dict[str, str]) -> None:
    env = {
        **base,
        "MGMT_REQUEST_TIMEOUT_MS": "1400",  # would not fit in the server's 1.5 s
        "AUTH_CACHE_TTL_MS": "60000",
        "AUTH_CACHE_STALE_LIMIT_MS": "1000",
        "SWEEP_INTERVAL_MS": "10",
    }
    text = problems(env)
    assert "MGMT_REQUEST_TIMEOUT_MS='1400': must be <= 1250" in text
    assert "AUTH_CACHE_STALE_LIMIT_MS=1000 must be >= AUTH_CACHE_TTL_MS=60000" in text
    assert "SWEEP_INTERVAL_MS='10': must be >= 1000" in text
