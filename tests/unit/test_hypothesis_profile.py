"""The suite's property tests run under a load-independent, deterministic profile."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.mark.skipif(
    os.environ.get("HYPOTHESIS_PROFILE", "ci") != "ci", reason="another profile was asked for"
)
def test_ci_profile_is_loaded() -> None:
    active = settings.default
    assert active is not None
    assert active.deadline is None
    assert active.derandomize is True
    assert active.database is None
    assert HealthCheck.too_slow in active.suppress_health_check


seen: list[list[int]] = []


@given(st.lists(st.integers()))
def _record(xs: list[int]) -> None:
    seen.append(xs)


def test_examples_are_the_same_on_every_run() -> None:
    if os.environ.get("HYPOTHESIS_PROFILE", "ci") != "ci":
        pytest.skip("another profile was asked for")
    _record()
    first = list(seen)
    seen.clear()
    _record()
    assert seen == first
    assert len(first) > 1
