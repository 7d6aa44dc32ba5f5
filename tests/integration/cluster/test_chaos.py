"""The platform on a three-node cluster with R3 streams (`notip dev --nats-cluster 3`,
in-process: consumer, simulator, nats-auth, mgmt, provisioning): SIGKILL one
nats-server mid-stream and restart it, then the same with the node that leads the
TELEMETRY stream. Afterwards every envelope the simulator saw confirmed is exactly one
row, and nothing was dropped on the way (docs/operations.md#nats-cluster)."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import trio

from notip import bridge, natsio
from notip.consumer.settings import Settings as ConsumerSettings
from notip.devstack import DevInfo, run_stack
from notip.localservers import NatsCluster, NatsServer
from notip.pki import PkiPaths
from tests.e2e.conftest import e2e_config, query
from tests.waiting import eventually


async def sim_metric(http: httpx.AsyncClient, url: str, name: str) -> float:
    text = (await http.get(f"{url}/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((name + "{", name + " "))
    )


async def test_node_kills_lose_nothing_and_duplicate_nothing(
    aio_loop: None, state_dir: Path
) -> None:
    async with trio.open_nursery() as nursery:
        with trio.fail_after(120):
            dev: DevInfo = await nursery.start(
                run_stack, e2e_config(state_dir, nats_cluster=3, send_frequency_ms=100)
            )
        cluster = dev.nats
        assert isinstance(cluster, NatsCluster)
        pki = PkiPaths(Path(dev.state_dir) / "pki")

        def tls(service: str) -> ssl.SSLContext:
            return natsio.tls_context(
                natsio.TlsFiles(pki.ca_cert, pki.cert(service), pki.key(service))
            )

        durable = ConsumerSettings.from_env(dev.consumer_env).durable_name
        as_mgmt = await natsio.connect(dev.nats_url, tls("management-api"), name="chaos-mgmt")
        as_consumer = await natsio.connect(
            dev.nats_url, tls("data-consumer"), name="chaos-consumer"
        )
        http = httpx.AsyncClient(timeout=20)
        try:

            async def rows() -> int:
                r = await query(
                    dev.pg_dsn,
                    "SELECT count(*) AS n FROM telemetry WHERE tenant_id = $1",
                    dev.tenant_id,
                )
                return int(r[0]["n"])

            async def grows_past(n: int) -> bool:
                return await rows() > n

            async def leader() -> str | None:
                return await natsio.stream_leader(as_mgmt, "TELEMETRY")

            async def kill_and_restart(victim: NatsServer, what: str) -> None:
                cluster.kill(victim)
                before = await rows()
                # The platform keeps going on two nodes: rows keep coming.
                await eventually(
                    lambda: grows_past(before + 30), timeout=45, what=f"rows with {what} down"
                )
                await cluster.restart_async(victim)
                await trio.to_thread.run_sync(cluster.wait_formed, 45)

            await eventually(lambda: grows_past(30), timeout=60, what="the first rows")

            led = await eventually(leader, what="a TELEMETRY leader")
            bystander = next(n for n in cluster.nodes if n.server_name != led)
            await kill_and_restart(bystander, f"follower {bystander.server_name}")

            led = await eventually(leader, what="a TELEMETRY leader")
            assert led is not None
            await kill_and_restart(cluster.node_named(led), f"TELEMETRY leader {led}")
            await eventually(leader, what="a TELEMETRY leader after the restart")

            for gw in dev.gateway_ids:
                r = await http.post(f"{dev.sim_rest_url}/sim/gateways/{gw}/stop")
                assert r.status_code == 204

            async def drained() -> bool:
                info = await bridge.call(
                    as_consumer.jetstream().consumer_info, "TELEMETRY", durable
                )
                return info.num_pending == 0 and info.num_ack_pending == 0

            await eventually(drained, timeout=60, what="the consumer to catch up")

            stored = await rows()
            url = dev.sim_metrics_url
            assert stored == await sim_metric(http, url, "notip_sim_envelopes_published_total")
            dupes = await query(
                dev.pg_dsn,
                "SELECT count(*) - count(DISTINCT (gateway_id, iv)) AS d FROM telemetry "
                "WHERE tenant_id = $1",
                dev.tenant_id,
            )
            assert dupes[0]["d"] == 0
            assert await sim_metric(http, url, "notip_sim_buffer_dropped_total") == 0
        finally:
            await http.aclose()
            await natsio.drain(as_mgmt)
            await natsio.drain(as_consumer)
        nursery.cancel_scope.cancel()
