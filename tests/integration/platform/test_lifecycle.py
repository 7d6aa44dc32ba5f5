"""Both stand-ins start quickly and stop cleanly (and quickly) by cancellation, also
after their pull loops have idled for a while."""

from __future__ import annotations

from pathlib import Path

import trio

from notip.localservers import NatsServer
from notip.pki import PkiPaths
from tests.platform_fixtures import (
    mgmt_settings,
    provisioning_settings,
    running_mgmt,
    running_provisioning,
)


async def test_start_and_stop_are_fast(
    aio_loop: None, nats_server: NatsServer, pki: PkiPaths, tmp_path: Path
) -> None:
    settings = mgmt_settings(nats_server, pki, tmp_path / "m.db", fetch_timeout_s=0.3)
    t0 = trio.current_time()
    async with running_mgmt(settings) as mgmt:
        started = trio.current_time() - t0
        async with running_provisioning(provisioning_settings(nats_server, pki)):
            prov_started = trio.current_time() - t0 - started
            # Let the durable pulls cycle through several expired pull requests:
            # their late status replies once made the connection's drain hang.
            await trio.sleep(2.5)
            assert (await mgmt.http.get("/health")).status_code == 200
            t1 = trio.current_time()
        prov_stopped = trio.current_time() - t1
        t2 = trio.current_time()
    stopped = trio.current_time() - t2
    assert started < 2.0 and prov_started < 2.0
    assert stopped < 2.0 and prov_stopped < 2.0
