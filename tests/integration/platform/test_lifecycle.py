"""Both stand-ins start quickly and stop cleanly (and quickly) by cancellation, also
after their pull loops have idled for a while."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import trio

from notip.jetstream.pull import BatchPuller
from notip.localservers import NatsServer
from notip.pki import PkiPaths
from tests.platform_fixtures import (
    mgmt_settings,
    provisioning_settings,
    running_mgmt,
    running_provisioning,
)
from tests.waiting import eventually

# The management stand-in pulls from two durables: COMMAND_ACKS and ALERTS.
MGMT_DURABLES = 2


async def test_start_and_stop_are_fast(
    aio_loop: None,
    nats_server: NatsServer,
    pki: PkiPaths,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expired: Counter[str] = Counter()  # pull requests that expired empty, per durable
    on_status = BatchPuller._on_status

    def counting_on_status(self: BatchPuller, hdr: dict[str, str]) -> None:
        if str(hdr.get("Status")) == "408":
            expired[self.durable] += 1
        on_status(self, hdr)

    monkeypatch.setattr(BatchPuller, "_on_status", counting_on_status)
    settings = mgmt_settings(nats_server, pki, tmp_path / "m.db", fetch_timeout_s=0.3)
    t0 = trio.current_time()
    async with running_mgmt(settings) as mgmt:
        started = trio.current_time() - t0
        async with running_provisioning(provisioning_settings(nats_server, pki)):
            prov_started = trio.current_time() - t0 - started
            # Let every durable pull cycle through several expired pull requests:
            # their late status replies once made the connection's drain hang.
            await eventually(
                lambda: len(expired) == MGMT_DURABLES and min(expired.values()) >= 3,
                what="three expired pull requests on each durable",
            )
            assert (await mgmt.http.get("/health")).status_code == 200
            t1 = trio.current_time()
        prov_stopped = trio.current_time() - t1
        t2 = trio.current_time()
    stopped = trio.current_time() - t2
    assert started < 2.0 and prov_started < 2.0
    assert stopped < 2.0 and prov_stopped < 2.0
