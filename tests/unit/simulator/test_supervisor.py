"""One nursery per gateway: a failing gateway restarts with backoff and never takes
its siblings down; stop really stops (MockClock, no NATS)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, ClassVar

import trio
import trio.testing

from notip.simulator.gateway import GatewayDeps
from notip.simulator.metrics import Metrics
from notip.simulator.registry import Registry
from notip.simulator.store import Store

from .conftest import make_record, make_settings


class NoOnboarding:
    async def onboard(self, **kwargs: Any) -> Any:
        raise AssertionError("not used")


class FakeRuntime:
    starts: ClassVar[dict[str, list[float]]] = {}
    fail_first: ClassVar[dict[str, int]] = {}

    def __init__(self, rec: Any, deps: GatewayDeps) -> None:
        self.rec = rec

    async def run(self) -> None:
        times = FakeRuntime.starts.setdefault(self.rec.id, [])
        times.append(trio.current_time())
        if len(times) <= FakeRuntime.fail_first.get(self.rec.id, 0):
            raise RuntimeError("boom")
        await trio.sleep_forever()


async def test_failing_gateway_restarts_with_backoff_siblings_untouched(
    tmp_path: Path, store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    metrics = Metrics()
    settings = make_settings(tmp_path, restart_backoff_s=0.5, restart_backoff_cap_s=2.0)
    registry = Registry(settings, store, metrics, NoOnboarding(), runtime_factory=FakeRuntime)
    bad, good = make_record(), make_record()
    FakeRuntime.starts = {}
    FakeRuntime.fail_first = {bad.id: 4}

    def running() -> float | None:
        return metrics.registry.get_sample_value("notip_sim_gateways_running")

    async with trio.open_nursery() as n:
        await n.start(registry.run)
        for rec in (bad, good):
            registry._gateways[rec.id] = rec
            registry._spawn(rec)
        await trio.sleep(10)
        starts = FakeRuntime.starts[bad.id]
        gaps = [round(b - a, 3) for a, b in itertools.pairwise(starts)]
        assert gaps == [0.5, 1.0, 2.0, 2.0]  # doubling, capped
        assert len(FakeRuntime.starts[good.id]) == 1  # never disturbed
        assert "boom" in bad.last_error
        assert running() == 2
        await registry._halt(bad)  # what stop() does after persisting the desired state
        assert not registry.running(bad.id) and registry.running(good.id)
        assert running() == 1
        await trio.sleep(5)
        assert len(FakeRuntime.starts[bad.id]) == 5  # stopped means no more restarts
        n.cancel_scope.cancel()
    assert running() == 0
