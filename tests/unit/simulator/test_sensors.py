from __future__ import annotations

import math
import random
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notip.simulator import sensors, validation
from notip.simulator.sensors import SensorSpec
from notip.simulator.v1 import simulator_pb2 as pb

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def ranges(draw: st.DrawFn) -> tuple[float, float]:
    lo = draw(finite)
    width = draw(st.floats(min_value=0.01, max_value=1e5))
    return lo, lo + width


@given(ranges(), st.sampled_from(["uniform_random", "sine_wave", "constant"]), st.floats(0, 1e6))
def test_in_range_algorithms_stay_in_range(
    rng_range: tuple[float, float], algo: str, t: float
) -> None:
    lo, hi = rng_range
    spec = SensorSpec("temperature", lo, hi, algo)
    r = random.Random(1)
    for _ in range(20):
        v = sensors.reading(spec, t, r)
        assert lo <= v <= hi
        assert math.isfinite(v)


def test_seeded_generators_repeat() -> None:
    spec = SensorSpec("humidity", 20, 80, "spike")
    a = [sensors.reading(spec, i, random.Random(42)) for i in range(5)]
    b = [sensors.reading(spec, i, random.Random(42)) for i in range(5)]
    assert a == b
    seq1 = random.Random(7)
    seq2 = random.Random(7)
    assert [sensors.reading(spec, 0, seq1) for _ in range(50)] == [
        sensors.reading(spec, 0, seq2) for _ in range(50)
    ]


def test_constant_is_the_midpoint() -> None:
    assert (
        sensors.reading(SensorSpec("pressure", 990, 1010, "constant"), 5, random.Random()) == 1000
    )


def test_sine_wave_follows_a_60s_period() -> None:
    spec = SensorSpec("temperature", 10, 30, "sine_wave")
    r = random.Random()
    assert sensors.reading(spec, 0, r) == 20
    assert sensors.reading(spec, 15, r) == 30  # quarter period: the maximum
    assert sensors.reading(spec, 45, r) == 10
    assert sensors.reading(spec, 60, r) == pytest.approx(20)


def test_spike_leaves_the_range_about_one_time_in_ten() -> None:
    spec = SensorSpec("movement", 0, 10, "spike")
    r = random.Random(3)
    values = [sensors.reading(spec, 0, r) for _ in range(5000)]
    spikes = [v for v in values if not 0 <= v <= 10]
    assert 0.07 < len(spikes) / len(values) < 0.13
    # 1.5 ranges beyond max or below min
    assert set(spikes) == {25.0, -15.0}


@pytest.mark.parametrize(("lo", "hi"), [(-40.0, -10.0), (0.0, 1.0), (950.0, 1050.0)])
def test_outlier_is_clearly_outside_the_range(lo: float, hi: float) -> None:
    spec = SensorSpec("temperature", lo, hi)
    v = sensors.outlier_value(spec)
    assert v > hi + (hi - lo)  # more than one range width away, also for negative ranges


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("temperature", 0, 10, "uniform_random"), None),
        (("temperature", 0, 10, ""), None),  # the default algorithm
        (("lava", 0, 10, "uniform_random"), "type must be one of"),
        (("temperature", 0, 10, "chaos"), "algorithm must be one of"),
        (("temperature", 10, 10, "constant"), "minRange must be less than maxRange"),
        (("temperature", 11, 10, "constant"), "minRange must be less than maxRange"),
        (("temperature", float("nan"), 10, "constant"), "finite"),
        (("temperature", 0, float("inf"), "constant"), "finite"),
    ],
)
def test_validate(args: tuple[str, float, float, str], problem: str | None) -> None:
    """A sensor definition is checked by the proto's rules (validation.py)."""
    type_, lo, hi, algorithm = args
    request = pb.AddSensorRequest(
        gateway_id=str(uuid.uuid4()), type=type_, min_range=lo, max_range=hi, algorithm=algorithm
    )
    got = validation.problem(request)
    if problem is None:
        assert got is None
    else:
        assert got is not None and problem in got


def test_units_follow_the_contract() -> None:
    assert [
        sensors.unit(t) for t in ("temperature", "humidity", "pressure", "movement", "biometric")
    ] == [
        "°C",
        "%",
        "hPa",
        "m/s",
        "bpm",
    ]
