"""Restarting the consumer mid-stream loses nothing and duplicates nothing: after the
gateways stop, every message the stream holds for the demo tenant is exactly one row."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import trio

from notip import bridge, natsio
from notip.consumer.service import serve as serve_consumer
from notip.consumer.settings import Settings as ConsumerSettings
from notip.devstack import DevInfo, run_stack
from notip.pki import PkiPaths
from tests.waiting import eventually

from .conftest import e2e_config, query


async def test_restart_mid_stream_no_duplicate_no_missing(aio_loop: None, state_dir: Path) -> None:
    async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=20) as http:
        with trio.fail_after(120):
            dev: DevInfo = await nursery.start(
                run_stack, e2e_config(state_dir, run_consumer=False, send_frequency_ms=100)
            )
        settings = ConsumerSettings.from_env(dev.consumer_env)

        async def rows() -> int:
            return int(
                (
                    await query(
                        dev.pg_dsn,
                        "SELECT count(*) AS n FROM telemetry WHERE tenant_id = $1",
                        dev.tenant_id,
                    )
                )[0]["n"]
            )

        # First run: until some rows are in, then stop it mid-stream.
        async with trio.open_nursery() as first:
            await first.start(serve_consumer, settings)
            await eventually(lambda: _more_than(rows, 50), timeout=60)
            first.cancel_scope.cancel()
        before_restart = await rows()

        # Second run: resumes from the durable.
        async with trio.open_nursery() as consumer_nursery:
            await consumer_nursery.start(serve_consumer, settings)
            await eventually(lambda: _more_than(rows, before_restart + 50), timeout=60)
            for gw in dev.gateway_ids:
                assert (
                    await http.post(f"{dev.sim_rest_url}/sim/gateways/{gw}/stop")
                ).status_code == 204

            # Each check as an identity allowed to make it (docs/nats-auth.md#permissions):
            # the consumer's durable info as the consumer, stream info as management.
            pki = PkiPaths(Path(dev.state_dir) / "pki")

            def tls(service: str) -> ssl.SSLContext:
                return natsio.tls_context(
                    natsio.TlsFiles(pki.ca_cert, pki.cert(service), pki.key(service))
                )

            as_consumer = await natsio.connect(dev.nats_url, tls("data-consumer"), name="e2e-lag")
            as_mgmt = await natsio.connect(dev.nats_url, tls("management-api"), name="e2e-stream")
            try:

                async def drained() -> bool:
                    info = await bridge.call(
                        as_consumer.jetstream().consumer_info, "TELEMETRY", settings.durable_name
                    )
                    return info.num_pending == 0 and info.num_ack_pending == 0

                await eventually(drained, timeout=60)
                info = await bridge.call(
                    as_mgmt.jetstream().stream_info,
                    "TELEMETRY",
                    subjects_filter=f"telemetry.data.{dev.tenant_id}.>",
                )
                per_subject = info.state.subjects or {}
            finally:
                await natsio.drain(as_consumer)
                await natsio.drain(as_mgmt)
            consumer_nursery.cancel_scope.cancel()

        stored = {
            r["gateway_id"]: r["n"]
            for r in await query(
                dev.pg_dsn,
                "SELECT gateway_id, count(*) AS n FROM telemetry WHERE tenant_id = $1 GROUP BY gateway_id",
                dev.tenant_id,
            )
        }
        published = {subject.rsplit(".", 1)[1]: n for subject, n in per_subject.items()}
        assert stored == published and sum(published.values()) > before_restart
        dupes = await query(
            dev.pg_dsn,
            "SELECT count(*) - count(DISTINCT (gateway_id, iv)) AS d FROM telemetry WHERE tenant_id = $1",
            dev.tenant_id,
        )
        assert dupes[0]["d"] == 0
        nursery.cancel_scope.cancel()


async def _more_than(read, n: int) -> bool:  # type: ignore[no-untyped-def]
    return await read() > n
