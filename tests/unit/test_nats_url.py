"""NATS_URL: one server or a cluster's nodes, comma-separated — one parse
(`notip.config.parse_nats_urls`), used by every daemon's settings and by
`natsio.connect` for nats-py's server list (docs/contracts.md#environment-variables)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from notip import natsio
from notip.config import ConfigError, Env, parse_nats_urls


def test_one_url_and_a_cluster() -> None:
    assert parse_nats_urls("tls://nats:4222") == ["tls://nats:4222"]
    assert parse_nats_urls(" tls://nats-1:4222 , tls://nats-2:4222,nats://10.0.0.3 ") == [
        "tls://nats-1:4222",
        "tls://nats-2:4222",
        "nats://10.0.0.3",
    ]


def test_the_server_list_nats_py_gets() -> None:
    assert natsio.servers("tls://a:4222, tls://b:4223") == ["tls://a:4222", "tls://b:4223"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tls://a:4222,", "entry 2 is empty (a stray comma?)"),
        ("tls://a:4222,,tls://b:4222", "entry 2 is empty"),
        ("nats-1:4222", "entry 1 'nats-1:4222' has no scheme (e.g. tls://nats-1:4222)"),
        ("tls://a:4222,http://b:80", "entry 2 'http://b:80': scheme 'http' is not one of"),
        ("tls://:4222", "entry 1 'tls://:4222' has no host"),
        ("tls://a:42x2", "entry 1 'tls://a:42x2': bad port"),
        ("tls://a:99999", "bad port"),
        ("tls://a:4222/x", "expected scheme://host[:port]"),
        ("tls://a:4222,tls://a:4222", "entry 2 'tls://a:4222' is listed twice"),
    ],
)
def test_bad_lists_name_the_entry(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_nats_urls(value)


def test_env_normalises_and_reports_as_config_error() -> None:
    env = Env({"NATS_URL": " tls://a:4222 ,tls://b:4222"})
    assert env.nats_url() == "tls://a:4222,tls://b:4222"
    env.check()
    bad = Env({"NATS_URL": "tls://a:4222,"})
    bad.nats_url()
    with pytest.raises(ConfigError) as info:
        bad.check()
    assert "NATS_URL='tls://a:4222,': entry 2 is empty (a stray comma?)" in str(info.value)


def test_a_daemon_exits_2_naming_the_bad_entry(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NATS_")}
    env["NATS_URL"] = "tls://nats-1:4222,nats-2:4222"
    out = subprocess.run(
        [sys.executable, "-m", "notip", "consumer"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == 2, out.stderr
    assert "NATS_URL='tls://nats-1:4222,nats-2:4222': entry 2 'nats-2:4222' has no scheme" in (
        out.stderr
    )
    assert "Traceback" not in out.stderr
