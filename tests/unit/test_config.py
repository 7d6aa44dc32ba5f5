from __future__ import annotations

from pathlib import Path

import pytest

from notip.config import ConfigError, Env
from notip.natsio import TlsFiles


def test_every_problem_is_named_at_once() -> None:
    env = Env({"A": "x", "B": "-1", "D": "maybe"})
    env.int("A")
    env.int("B", min=1)
    env.str("C")
    env.bool("D")
    with pytest.raises(ConfigError) as info:
        env.check()
    msg = str(info.value)
    for name in ("A=", "B=", "C is required", "D="):
        assert name in msg


def test_defaults_and_values() -> None:
    env = Env({"N": " 42 ", "FLAG": "true", "ADDR": ":9090"})
    assert env.int("N", min=1) == 42
    assert env.int("MISSING", 7) == 7
    assert env.bool("FLAG") is True
    assert env.addr("ADDR") == ":9090"
    assert env.choice("MODE", ("a", "b"), "a") == "a"
    env.check()


def test_parsed_applies_a_parser_and_names_its_error() -> None:
    def even(s: str) -> int:
        v = int(s)
        if v % 2:
            raise ValueError("must be even")
        return v

    env = Env({"GOOD": "4", "BAD": "3"})
    assert env.parsed("GOOD", 0, even) == 4
    assert env.parsed("UNSET", 8, even) == 8
    assert env.parsed("BAD", 2, even) == 2
    with pytest.raises(ConfigError, match=r"BAD='3': must be even"):
        env.check()


def test_nats_tls_service_identity_is_required(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    env = Env({"NATS_TLS_CA": str(ca)})
    files = env.nats_tls()
    assert files.ca == ca
    with pytest.raises(ConfigError) as info:
        env.check()
    assert "NATS_TLS_CERT is required" in str(info.value)
    assert "NATS_TLS_KEY is required" in str(info.value)


def test_nats_tls_optional_client_cert_is_both_or_neither(tmp_path: Path) -> None:
    ca, cert, key = (tmp_path / n for n in ("ca.crt", "c.crt", "c.key"))
    for p in (ca, cert, key):
        p.write_text("x")
    neither = Env({"NATS_CA_CERT_PATH": str(ca)})
    assert neither.nats_tls("NATS_CA_CERT_PATH", client_cert_required=False) == TlsFiles(ca)
    neither.check()
    both = Env({"NATS_CA_CERT_PATH": str(ca), "NATS_TLS_CERT": str(cert), "NATS_TLS_KEY": str(key)})
    assert both.nats_tls("NATS_CA_CERT_PATH", client_cert_required=False) == TlsFiles(ca, cert, key)
    both.check()
    one = Env({"NATS_CA_CERT_PATH": str(ca), "NATS_TLS_CERT": str(cert)})
    one.nats_tls("NATS_CA_CERT_PATH", client_cert_required=False)
    with pytest.raises(ConfigError, match="must be set together"):
        one.check()
