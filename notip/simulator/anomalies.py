"""Anomaly state of one gateway (docs/contracts.md#simulator-rest-api), sans-io: time is passed in.

- network degradation: each envelope is dropped with probability `loss` until it ends;
- disconnect: the gateway's connection is closed until it ends;
- outliers live with the sensors (the next reading of that sensor).

While a degradation or a disconnect is active, commands wait (gateway.py).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

DEFAULT_PACKET_LOSS = 0.3
NETWORK_DEGRADATION = "network_degradation"
DISCONNECT = "disconnect"
OUTLIER = "outlier"


def normalise_packet_loss(value: float | None) -> float:
    """docs/contracts.md#simulator-rest-api: absent → 0.3; values above 1 are percentages (50 → 0.5); outside
    [0, 100] (or not a number) is invalid (ValueError)."""
    if value is None:
        return DEFAULT_PACKET_LOSS
    if not math.isfinite(value) or value < 0 or value > 100:
        raise ValueError("packet_loss_pct must be within [0, 100]")
    return value / 100 if value > 1 else value


def check_duration(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValueError("duration_seconds must be a positive number")
    return value


@dataclass
class Degradation:
    loss: float
    until: float


class AnomalyState:
    def __init__(self) -> None:
        self.degradation: Degradation | None = None
        self.disconnect_until: float | None = None

    # -- starting -------------------------------------------------------------------

    def start_degradation(self, now: float, duration: float, loss: float) -> None:
        self.degradation = Degradation(loss=loss, until=now + check_duration(duration))

    def start_disconnect(self, now: float, duration: float) -> float:
        until = now + check_duration(duration)
        self.disconnect_until = max(self.disconnect_until or until, until)
        return self.disconnect_until

    # -- queries --------------------------------------------------------------------

    def degradation_active(self, now: float) -> bool:
        return self.degradation is not None and now < self.degradation.until

    def disconnected(self, now: float) -> bool:
        return self.disconnect_until is not None and now < self.disconnect_until

    def commands_blocked(self, now: float) -> bool:
        return self.degradation_active(now) or self.disconnected(now)

    def drop(self, now: float, rng: random.Random) -> bool:
        """Whether the network drops this envelope."""
        if not self.degradation_active(now):
            return False
        assert self.degradation is not None
        return rng.random() < self.degradation.loss

    def next_deadline(self) -> float | None:
        ends = [
            t
            for t in (
                self.degradation.until if self.degradation else None,
                self.disconnect_until,
            )
            if t is not None
        ]
        return min(ends) if ends else None

    def expire(self, now: float) -> list[str]:
        """Forget what has ended; returns the types that ended."""
        ended: list[str] = []
        if self.degradation is not None and now >= self.degradation.until:
            self.degradation = None
            ended.append(NETWORK_DEGRADATION)
        if self.disconnect_until is not None and now >= self.disconnect_until:
            self.disconnect_until = None
            ended.append(DISCONNECT)
        return ended
