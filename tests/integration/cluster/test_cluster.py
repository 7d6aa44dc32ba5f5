"""The three-node cluster itself: it forms with routes over mutual TLS, the streams
have three replicas, a client given every node in NATS_URL moves on to another node
when its own is SIGKILLed, and the killed node, restarted on its ports and store,
catches up."""

from __future__ import annotations

import shutil
import urllib.request
import uuid
from functools import partial
from pathlib import Path

import nats.errors
import nats.js.errors
from nats.js import api

from notip import bridge, contracts, natsio
from notip.localservers import NatsCluster, NatsServer, free_port
from notip.natsconf import ClusterSpec
from notip.pki import PkiPaths
from tests.conftest import service_tls
from tests.waiting import eventually, stays_true


async def _replicas_current(nc: natsio.NATS, stream: str, nodes: set[str]) -> bool:
    info = await bridge.call(nc.jetstream().stream_info, stream)
    c = info.cluster
    if c is None or c.leader is None:
        return False
    peers = {p.name: p for p in c.replicas or []}
    return {c.leader, *peers} == nodes and all(p.current for p in peers.values())


async def test_r3_streams_and_a_client_moves_to_another_node(
    aio_loop: None, cluster: NatsCluster, pki: PkiPaths
) -> None:
    names = {n.server_name for n in cluster.nodes}
    reconnects: list[int] = []
    tls = natsio.tls_context(service_tls(pki, "management-api"))
    nc = await natsio.connect(
        cluster.url,
        tls,
        name="cluster-test",
        events=natsio.ConnectionEvents(on_reconnect=lambda: reconnects.append(1)),
        reconnect_wait=0.2,
    )
    try:
        js = nc.jetstream()
        for spec in contracts.STREAMS:
            info = await bridge.call(js.stream_info, spec.name)
            assert info.config.num_replicas == 3
            await eventually(partial(_replicas_current, nc, spec.name, names), timeout=30)

        subject = f"telemetry.data.{uuid.uuid4()}.{uuid.uuid4()}"
        first = await bridge.call(js.publish, subject, b"{}", timeout=10)

        # SIGKILL the node this client is connected to.
        port = nc.connected_url.port if nc.connected_url else None
        victim = next(n for n in cluster.nodes if n.port == port)
        cluster.kill(victim)

        def moved() -> bool:
            url = nc.connected_url
            return nc.is_connected and url is not None and url.port != victim.port

        await eventually(moved, timeout=30, what="the client to reconnect to another node")
        assert reconnects

        async def publish() -> api.PubAck | None:
            # Refused or timed out while the streams the victim led elect a new leader.
            # A timed-out attempt may still have been stored: the message id lets the
            # stream drop the retry, so the count below stays exact.
            try:
                return await bridge.call(
                    js.publish, subject, b"{}", timeout=2, headers={"Nats-Msg-Id": "second"}
                )
            except (
                nats.errors.TimeoutError,
                nats.errors.NoRespondersError,
                nats.js.errors.NoStreamResponseError,
                nats.js.errors.APIError,
                TimeoutError,
            ):
                return None

        second = await eventually(publish, timeout=30, what="a publish after the kill")
        assert second is not None and second.seq > first.seq

        await cluster.restart_async(victim)
        await eventually(
            lambda: _replicas_current(nc, "TELEMETRY", names),
            timeout=30,
            what="the restarted node to catch up",
        )
        info = await bridge.call(js.stream_info, "TELEMETRY", subjects_filter=subject)
        assert (info.state.subjects or {}).get(subject) == 2
    finally:
        await natsio.drain(nc)


async def test_a_certificate_of_the_ca_that_is_not_the_route_one_cannot_join(
    aio_loop: None, cluster: NatsCluster, pki: PkiPaths, tmp_path: Path
) -> None:
    """A node presenting another certificate of the same CA on its routes (here the
    simulator's; a gateway's would do too) is refused: only the route certificate's
    subject is a route user."""
    rogue_pki = tmp_path / "pki"
    shutil.copytree(pki.root, rogue_pki)
    shutil.copyfile(pki.cert("simulator"), rogue_pki / "nats-route.crt")
    shutil.copyfile(pki.key("simulator"), rogue_pki / "nats-route.key")
    spec = cluster.nodes[0].cluster
    assert spec is not None
    rogue = NatsServer(
        tmp_path / "rogue",
        rogue_pki,
        server_name="rogue",
        cluster=ClusterSpec(routes=spec.routes, port=free_port(), host="127.0.0.1"),
    )
    await rogue.start_async()
    try:

        def log() -> str:
            return rogue.log_file.read_text(errors="replace").lower()

        # Refused by the nodes it dials...
        await eventually(lambda: "authorization violation" in log(), what="a refused route")

        def nobody_routes_to_it() -> bool:
            return all(
                "rogue" not in urllib.request.urlopen(f"{n.monitor_url}/routez").read().decode()
                for n in cluster.nodes
            )

        # ...and never routed to (a few of its reconnect attempts).
        await stays_true(nobody_routes_to_it, for_s=3)
    finally:
        await rogue.stop_async()
