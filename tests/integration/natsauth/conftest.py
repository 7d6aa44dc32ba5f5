"""Harness of the auth-callout tests: a nats-server of their own with the callout and
least-privilege service users (`NatsConfig(service_permissions=True,
auth_callout=…)`), the platform's streams bootstrapped by the management-api identity
(as `notip nats init-streams` does), and per test: the management and provisioning
stand-ins and `notip nats-auth`, in-process, each one stoppable and restartable.

Gateways are onboarded for real (management creates them, provisioning signs their
CSR), and connect with their own certificate through `Client`, a bare nats-py
connection that records the errors the server sends it (permissions violations)."""

from __future__ import annotations

import base64
import dataclasses
import json
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import nats.errors
import pytest
import trio
from cryptography.hazmat.primitives.asymmetric import ec
from nats.aio.client import Client as NATS

from notip import bridge, contracts, natsio
from notip import pki as pkimod
from notip.localservers import NatsServer
from notip.natsauth import service as auth_service
from notip.natsauth.service import NatsAuthInfo
from notip.natsauth.settings import Settings as AuthSettings
from notip.natsconf import CalloutKeys
from notip.pki import PkiPaths
from tests.conftest import service_tls
from tests.platform_fixtures import (
    MgmtHandle,
    gateway_csr,
    mgmt_settings,
    onboard,
    provisioning_settings,
    running_mgmt,
    running_provisioning,
)
from tests.waiting import eventually

START_TIMEOUT_S = 30.0


@pytest.fixture(scope="session")
def callout_nats(workdir: Path, pki: PkiPaths) -> Iterator[NatsServer]:
    server = NatsServer(
        workdir / "callout-nats",
        pki.root,
        service_permissions=True,
        auth_callout=CalloutKeys.from_pki(pki),
    )
    with server:
        # The management-api identity creates the streams, as init-streams does.
        bridge.run(lambda: natsio.bootstrap_streams(server.url, service_tls(pki, "management-api")))
        yield server


def auth_settings(server: NatsServer, pki: PkiPaths, **overrides: Any) -> AuthSettings:
    base = AuthSettings(
        nats_url=server.url,
        nats_tls=service_tls(pki, "nats-auth"),
        issuer_seed=pki.callout_issuer_seed.read_bytes().strip(),
        system_seed_file=pki.system_user_seed,
        xkey_seed=pki.callout_xkey_seed.read_bytes().strip(),
        metrics_addr="127.0.0.1:0",
    )
    return dataclasses.replace(base, **overrides)


# -- clients ------------------------------------------------------------------------------


class Client:
    """A bare nats-py connection (no retries of our own) that records what the server
    tells it: errors (permissions violations, refusals) and disconnections."""

    def __init__(self) -> None:
        self.nc = NATS()
        self.errors: list[str] = []
        self.disconnects = 0
        self.reconnects = 0

    async def connect(
        self,
        url: str,
        tls: ssl.SSLContext,
        *,
        name: str,
        inbox_prefix: str | None = None,
        reconnect: bool = False,
        nkeys_seed: Path | None = None,
    ) -> Client:
        async def on_error(exc: Exception) -> None:
            self.errors.append(str(exc).lower())

        async def on_disconnect() -> None:
            self.disconnects += 1

        async def on_reconnect() -> None:
            self.reconnects += 1

        options: dict[str, Any] = {
            "servers": [url],
            "tls": tls,
            "name": name,
            "connect_timeout": 5,
            "allow_reconnect": reconnect,
            "max_reconnect_attempts": -1 if reconnect else 0,
            "reconnect_time_wait": 0.2,
            "error_cb": on_error,
            "disconnected_cb": on_disconnect,
            "reconnected_cb": on_reconnect,
        }
        if inbox_prefix is not None:
            options["inbox_prefix"] = inbox_prefix
        if nkeys_seed is not None:
            options["nkeys_seed"] = str(nkeys_seed)
        try:
            await bridge.call(self.nc.connect, **options)
        except BaseException:
            await self.close()
            raise
        if not self.nc.is_connected:  # nats-py's quirk (natsio.NotConfirmed)
            await self.close()
            raise natsio.NotConfirmed("connect returned unconfirmed")
        return self

    async def close(self) -> None:
        await bridge.shielded(self.nc.close, timeout=5)

    async def flush(self) -> None:
        await bridge.call(self.nc.flush, timeout=5)

    def refused(self, kind: str, subject: str) -> bool:
        """The server sent `Permissions Violation for {Publish|Subscription} to "subject"`
        (nats-py lower-cases the whole message)."""
        needle = f'permissions violation for {kind} to "{subject.lower()}"'
        return any(needle in e for e in self.errors)

    def violations(self) -> list[str]:
        return [e for e in self.errors if natsio.PERMISSIONS_VIOLATION in e]


async def connect_client(
    url: str,
    tls: ssl.SSLContext,
    *,
    name: str = "test",
    inbox_prefix: str | None = None,
    reconnect: bool = False,
    nkeys_seed: Path | None = None,
) -> Client:
    with trio.fail_after(15):
        return await Client().connect(
            url,
            tls,
            name=name,
            inbox_prefix=inbox_prefix,
            reconnect=reconnect,
            nkeys_seed=nkeys_seed,
        )


async def refusal(
    url: str, tls: ssl.SSLContext, *, inbox_prefix: str | None = None
) -> BaseException:
    """The error a single connection attempt ends with (fails the test if it succeeds)."""
    client = Client()
    try:
        with trio.fail_after(15):
            await client.connect(url, tls, name="refused", inbox_prefix=inbox_prefix)
    except (nats.errors.Error, OSError, ssl.SSLError, natsio.NotConfirmed) as exc:
        return exc
    await client.close()
    raise AssertionError("the connection was admitted")


def is_authorization_violation(exc: BaseException) -> bool:
    return isinstance(exc, nats.errors.Error) and "authorization violation" in str(exc).lower()


# -- gateways -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GatewayIdentity:
    gateway_id: str
    tenant_id: str
    aes_key: bytes
    tls_files: natsio.TlsFiles

    @property
    def inbox_prefix(self) -> str:
        return contracts.gateway_inbox_prefix(self.gateway_id)

    def tls(self) -> ssl.SSLContext:
        return natsio.tls_context(self.tls_files)


def gateway_files(
    pki: PkiPaths, directory: Path, gateway_id: str, tenant_id: str
) -> natsio.TlsFiles:
    """A certificate as provisioning signs it (`pki.sign_gateway_csr`), without asking
    management: for identities management does not know."""
    ca_key, ca_cert = pkimod.load_ca(pki)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = pkimod.load_csr(pkimod.make_gateway_csr(key))
    cert = pkimod.sign_gateway_csr(ca_key, ca_cert, csr, gateway_id=gateway_id, tenant_id=tenant_id)
    return _write(directory, gateway_id, pkimod.cert_pem(cert), pkimod.key_pem(key), pki.ca_cert)


def _write(directory: Path, name: str, cert: bytes, key: bytes, ca: Path) -> natsio.TlsFiles:
    directory.mkdir(parents=True, exist_ok=True)
    pkimod.write_public(directory / f"{name}.crt", cert)
    pkimod.write_private(directory / f"{name}.key", key)
    return natsio.TlsFiles(ca, directory / f"{name}.crt", directory / f"{name}.key")


# -- the stack ------------------------------------------------------------------------------


@dataclass
class Running:
    """A service started in the stack's nursery; `stop()` cancels it and waits."""

    scope: trio.CancelScope
    stopped: trio.Event

    async def stop(self) -> None:
        self.scope.cancel()
        with trio.fail_after(START_TIMEOUT_S):
            await self.stopped.wait()


@dataclass
class AuthInstance(Running):
    info: NatsAuthInfo | None = None


@dataclass
class Stack:
    server: NatsServer
    pki: PkiPaths
    tmp: Path
    nursery: trio.Nursery
    mgmt: MgmtHandle | None = None
    mgmt_running: Running | None = None
    provisioning_url: str = ""
    auth: list[AuthInstance] = field(default_factory=list)
    admin: natsio.NATS | None = None

    # -- services --------------------------------------------------------------------------

    async def _run(self, run: Any, task_status: trio.TaskStatus[Any]) -> None:
        stopped = trio.Event()
        try:
            with trio.CancelScope() as scope:
                await run(scope, stopped, task_status)
        finally:
            stopped.set()

    async def start_mgmt(self) -> MgmtHandle:
        # The default durable prefix: the management-api identity may use no other.
        settings = mgmt_settings(
            self.server, self.pki, self.tmp / "mgmt.db", durable_prefix="management-api"
        )

        async def run(scope: trio.CancelScope, stopped: trio.Event, task_status: Any) -> None:
            async with running_mgmt(settings) as handle:
                task_status.started((handle, Running(scope, stopped)))
                await trio.sleep_forever()

        with trio.fail_after(START_TIMEOUT_S):
            handle, running = await self.nursery.start(self._run, run)
        self.mgmt, self.mgmt_running = handle, running
        return handle

    async def start_auth(self, **overrides: Any) -> AuthInstance:
        settings = auth_settings(self.server, self.pki, **overrides)

        async def run(scope: trio.CancelScope, stopped: trio.Event, task_status: Any) -> None:
            instance = AuthInstance(scope, stopped)
            async with trio.open_nursery() as nursery:
                instance.info = await nursery.start(partial(auth_service.serve, settings))
                task_status.started(instance)

        with trio.fail_after(START_TIMEOUT_S):
            instance: AuthInstance = await self.nursery.start(self._run, run)
        self.auth.append(instance)
        return instance

    async def start_provisioning(self) -> str:
        async def run(scope: trio.CancelScope, stopped: trio.Event, task_status: Any) -> None:
            async with running_provisioning(provisioning_settings(self.server, self.pki)) as info:
                task_status.started(info.http_url)
                await trio.sleep_forever()

        with trio.fail_after(START_TIMEOUT_S):
            self.provisioning_url = await self.nursery.start(self._run, run)
        return self.provisioning_url

    # -- gateways --------------------------------------------------------------------------

    async def onboard(self, tenant_id: str | None = None) -> GatewayIdentity:
        """A gateway created in management and provisioned through provisioning."""
        assert self.mgmt is not None
        gw = await self.mgmt.new_gateway(tenant_id)
        key = ec.generate_private_key(ec.SECP256R1())
        _, csr = gateway_csr(key)
        resp = await onboard(self.provisioning_url, gw.factory_id, gw.factory_key, csr=csr)
        assert resp.status_code == 201, resp.text
        body = resp.json()
        files = _write(
            self.tmp / "gateways",
            gw.gateway_id,
            body["certPem"].encode(),
            pkimod.key_pem(key),
            self.pki.ca_cert,
        )
        return GatewayIdentity(gw.gateway_id, gw.tenant_id, base64.b64decode(body["aesKey"]), files)

    async def connect(self, gw: GatewayIdentity, *, reconnect: bool = False) -> Client:
        return await connect_client(
            self.server.url,
            gw.tls(),
            name=f"gw-{gw.gateway_id}",
            inbox_prefix=gw.inbox_prefix,
            reconnect=reconnect,
        )

    async def connect_service(self, service: str) -> Client:
        return await connect_client(
            self.server.url, natsio.tls_context(service_tls(self.pki, service)), name=service
        )

    # -- looking at the streams (as management-api: stream INFO is in its row) ------------

    async def stream_messages(self) -> dict[str, int]:
        assert self.admin is not None
        admin = self.admin

        async def run() -> dict[str, int]:
            js = admin.jetstream()
            return {
                s.name: (await js.stream_info(s.name)).state.messages for s in contracts.STREAMS
            }

        return await bridge.call(run)


def daemon_violations(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Permissions violations the daemons' own connections met (`natsio.connect` logs
    each connection's first one): a row of the table missing something they do."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "notip.nats" and natsio.PERMISSIONS_VIOLATION in r.getMessage().lower()
    ]


@pytest.fixture
async def stack(
    aio_loop: None,
    callout_nats: NatsServer,
    pki: PkiPaths,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> AsyncIterator[Stack]:
    """Management, provisioning and one auth service running on the callout server.
    At the end, no daemon may have met a permissions violation."""
    async with trio.open_nursery() as nursery:
        s = Stack(callout_nats, pki, tmp_path, nursery)
        tls = natsio.tls_context(service_tls(pki, "management-api"))
        with trio.fail_after(START_TIMEOUT_S):
            s.admin = await natsio.connect(callout_nats.url, tls, name="test-admin")
        try:
            await s.start_mgmt()
            await s.start_provisioning()
            await s.start_auth()
            yield s
        finally:
            await natsio.drain(s.admin)
            nursery.cancel_scope.cancel()
    assert daemon_violations(caplog) == []


def metric(instance: AuthInstance, name: str, **labels: str) -> float:
    assert instance.info is not None
    return instance.info.metrics.registry.get_sample_value(name, labels) or 0.0


def decisions(instance: AuthInstance, outcome: str, reason: str) -> float:
    return metric(instance, "notip_nats_auth_decisions_total", outcome=outcome, reason=reason)


async def js_publish(client: Client, subject: str, payload: bytes, timeout: float = 5.0) -> int:
    """A JetStream publish; its stream sequence."""

    async def run() -> int:
        ack = await client.nc.jetstream().publish(subject, payload, timeout=timeout)
        return int(ack.seq)

    return await bridge.call(run)


async def request(client: Client, subject: str, payload: bytes, timeout: float = 2.0) -> Any:
    msg = await bridge.call(client.nc.request, subject, payload, timeout=timeout)
    return json.loads(msg.data) if msg.data else None


async def wait_refused(client: Client, kind: str, subjects: list[str]) -> None:
    await client.flush()
    await eventually(
        lambda: all(client.refused(kind, s) for s in subjects),
        timeout=10,
        what=f"{kind} refusals of {subjects} (seen: {client.violations()})",
    )


def new_tenant() -> str:
    return str(uuid.uuid4())
