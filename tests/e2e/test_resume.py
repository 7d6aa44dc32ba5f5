"""A second `notip dev` on the same state directory resumes: same CA, same database,
the same gateways restored and running, no second seed."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from notip.devstack import DevInfo, run_stack
from tests.waiting import eventually

from .conftest import e2e_config, query


async def _rows(dev: DevInfo) -> int:
    rows = await query(
        dev.pg_dsn, "SELECT count(*) AS n FROM telemetry WHERE tenant_id = $1", dev.tenant_id
    )
    return int(rows[0]["n"])


async def test_second_run_resumes(aio_loop: None, state_dir: Path) -> None:
    cfg = e2e_config(state_dir, gateways=2)
    async with trio.open_nursery() as nursery:
        first: DevInfo = await nursery.start(run_stack, cfg)
        await eventually(lambda: _more_than(first, 0), timeout=60)
        rows_before = await _rows(first)
        nursery.cancel_scope.cancel()
    ca = (state_dir / "pki" / "ca.crt").read_bytes()

    async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=20) as http:
        second: DevInfo = await nursery.start(run_stack, cfg)
        assert second.gateway_ids == first.gateway_ids
        assert (state_dir / "pki" / "ca.crt").read_bytes() == ca
        listed = (await http.get(f"{second.sim_rest_url}/sim/gateways")).json()
        assert sorted(g["id"] for g in listed) == sorted(first.gateway_ids), "no second seed"
        assert all(g["status"] == "online" for g in listed)
        # Same database (rows of the first run are there) and the restored gateways publish again.
        assert await _rows(second) >= rows_before
        await eventually(
            lambda: _more_than(second, rows_before + 2 * len(first.gateway_ids)), timeout=60
        )
        admin = (
            await http.get(
                f"{second.mgmt_url}/admin/gateways", params={"tenant_id": second.tenant_id}
            )
        ).json()
        assert len(admin) == 2
        nursery.cancel_scope.cancel()


async def _more_than(dev: DevInfo, n: int) -> bool:
    return await _rows(dev) > n
