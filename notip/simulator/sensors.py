"""Reading generators (docs/contracts.md#simulator-rest-api): sans-io and seedable.

`reading(spec, t, rng)` is a pure function of the sensor's spec, the time `t` in
seconds (only `sine_wave` uses it) and a `random.Random`, so tests replay exact
sequences from a seed. Sensor definitions are checked where requests arrive, against
the rules of simulator.proto (validation.py); `ALGORITHMS` and `SENSOR_TYPES` are what
those rules allow (tests/unit/simulator/test_validation.py keeps them equal).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from notip.envelope import SENSOR_TYPES, UNITS

ALGORITHMS: tuple[str, ...] = ("uniform_random", "sine_wave", "spike", "constant")
DEFAULT_ALGORITHM = "uniform_random"
SINE_PERIOD_S = 60.0
SPIKE_PROBABILITY = 0.1
SPIKE_RANGES = 1.5
OUTLIER_RANGES = 2.0
DECIMALS = 3

__all__ = [
    "ALGORITHMS",
    "SENSOR_TYPES",
    "SensorSpec",
    "outlier_value",
    "reading",
    "unit",
]


@dataclass(frozen=True)
class SensorSpec:
    type: str
    min_range: float
    max_range: float
    algorithm: str = DEFAULT_ALGORITHM

    @property
    def width(self) -> float:
        return self.max_range - self.min_range

    @property
    def midpoint(self) -> float:
        return (self.min_range + self.max_range) / 2


def unit(type_: str) -> str:
    return UNITS[type_]


def _in_range(spec: SensorSpec, value: float) -> float:
    # Rounding must not push a value out of its range.
    return min(max(round(value, DECIMALS), spec.min_range), spec.max_range)


def reading(spec: SensorSpec, t: float, rng: random.Random) -> float:
    """One reading at time `t` (seconds)."""
    algo = spec.algorithm
    if algo == "uniform_random":
        return _in_range(spec, spec.min_range + rng.random() * spec.width)
    if algo == "sine_wave":
        return _in_range(
            spec, spec.midpoint + spec.width / 2 * math.sin(2 * math.pi * t / SINE_PERIOD_S)
        )
    if algo == "constant":
        return _in_range(spec, spec.midpoint)
    if algo == "spike":
        if rng.random() < SPIKE_PROBABILITY:
            if rng.random() < 0.5:
                return round(spec.max_range + SPIKE_RANGES * spec.width, DECIMALS)
            return round(spec.min_range - SPIKE_RANGES * spec.width, DECIMALS)
        return _in_range(spec, spec.min_range + rng.random() * spec.width)
    raise ValueError(f"unknown algorithm {algo!r}")


def outlier_value(spec: SensorSpec) -> float:
    """A value clearly outside the range: two range widths above the maximum (for a
    negative range too, since the width is always positive)."""
    return round(spec.max_range + OUTLIER_RANGES * spec.width, DECIMALS)
