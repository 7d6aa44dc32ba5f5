from __future__ import annotations

import pytest

from notip.config import ConfigError, Env


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
