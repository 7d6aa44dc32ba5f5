"""Onboarding through HTTP against the real stand-ins on the session's mTLS NATS
(docs/contracts.md#provisioning-http)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import uuid
from typing import Any

import httpx
import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from notip import bridge, natsio
from notip.localservers import NatsServer
from notip.pki import PkiPaths, make_gateway_csr
from tests.platform_fixtures import (
    MgmtHandle,
    gateway_csr,
    onboard,
    provisioning_settings,
    running_provisioning,
)
from tests.waiting import eventually


async def test_onboarding_signs_the_csr_and_stores_the_key(
    mgmt: MgmtHandle, provisioning: str, pki: PkiPaths, nc: natsio.NATS
) -> None:
    gw = await mgmt.new_gateway()
    audit: list[Any] = []
    token = trio.lowlevel.current_trio_token()

    async def on_audit(msg: Any) -> None:
        token.run_sync_soon(audit.append, json.loads(msg.data))

    sub = await bridge.call(nc.subscribe, f"log.audit.{gw.tenant_id}", cb=on_audit)
    await bridge.call(nc.flush)

    key, csr = gateway_csr()  # RSA-2048, what gateways send
    resp = await onboard(
        provisioning, gw.factory_id, gw.factory_key, csr=csr, send_frequency_ms=750
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert set(body) == {"certPem", "aesKey", "identity", "sendFrequencyMs"}
    assert body["identity"] == {"gatewayId": gw.gateway_id, "tenantId": gw.tenant_id}
    assert body["sendFrequencyMs"] == 750

    cert = x509.load_pem_x509_certificate(body["certPem"].encode())
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)  # signature and issuer name check
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == gw.gateway_id
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [
        f"{gw.gateway_id}.{gw.tenant_id}.gateways.notip.internal"
    ]
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_encipherment and not usage.key_cert_sign
    assert cert.serial_number > 0
    lifetime = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=89) < lifetime <= dt.timedelta(days=90)
    assert cert.public_key() == key.public_key()

    aes = base64.b64decode(body["aesKey"], validate=True)
    assert len(aes) == 32
    assert await mgmt.get_key(gw.gateway_id) == aes
    state = await mgmt.get_gateway(gw.gateway_id)
    assert state["provisioned"] and state["status"] == "online"
    assert state["send_frequency_ms"] == 750

    await eventually(lambda: audit, timeout=10, every=0.02, what="the audit event")
    await bridge.call(sub.unsubscribe)
    event = audit[0]
    assert event["event"] == "gateway.provisioned"
    assert (event["gatewayId"], event["tenantId"]) == (gw.gateway_id, gw.tenant_id)
    assert body["aesKey"] not in json.dumps(event)


async def test_second_onboarding_is_409_and_wrong_key_is_401(
    mgmt: MgmtHandle, provisioning: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    gw = await mgmt.new_gateway()
    wrong = await onboard(provisioning, gw.factory_id, "not-the-key")
    assert (wrong.status_code, wrong.json()) == (401, {"error": "INVALID_CREDENTIALS"})
    unknown = await onboard(provisioning, "no-such-factory-id", gw.factory_key)
    assert (unknown.status_code, unknown.json()) == (401, {"error": "INVALID_CREDENTIALS"})

    first = await onboard(
        provisioning, gw.factory_id, gw.factory_key, path="/api/provision/onboard"
    )
    assert first.status_code == 201, first.text
    again = await onboard(provisioning, gw.factory_id, gw.factory_key)
    assert (again.status_code, again.json()) == (409, {"error": "ALREADY_PROVISIONED"})
    # the stored key is still the first onboarding's
    assert await mgmt.get_key(gw.gateway_id) == base64.b64decode(first.json()["aesKey"])

    # One audit line per attempt, with its outcome; never a key.
    audit = [r for r in caplog.records if r.name == "notip.provisioning.audit"]
    assert [(r.outcome, r.reason if r.outcome == "failure" else r.gateway_id) for r in audit] == [  # type: ignore[attr-defined]
        ("failure", "invalid_credentials"),
        ("failure", "invalid_credentials"),
        ("success", gw.gateway_id),
        ("failure", "already_provisioned"),
    ]
    everything = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert gw.factory_key not in everything
    assert first.json()["aesKey"] not in everything


async def test_ec_p256_csr_is_accepted(mgmt: MgmtHandle, provisioning: str) -> None:
    gw = await mgmt.new_gateway()
    key = ec.generate_private_key(ec.SECP256R1())
    resp = await onboard(
        provisioning, gw.factory_id, gw.factory_key, csr=make_gateway_csr(key).decode()
    )
    assert resp.status_code == 201, resp.text
    cert = x509.load_pem_x509_certificate(resp.json()["certPem"].encode())
    assert cert.public_key() == key.public_key()


async def test_bad_csrs_are_400_and_consume_nothing(mgmt: MgmtHandle, provisioning: str) -> None:
    gw = await mgmt.new_gateway()
    weak_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    weak_ec = ec.generate_private_key(ec.SECP192R1())
    for csr in (
        "garbage",
        make_gateway_csr(weak_rsa).decode(),
        make_gateway_csr(weak_ec).decode(),
    ):
        resp = await onboard(provisioning, gw.factory_id, gw.factory_key, csr=csr)
        assert (resp.status_code, resp.json()["error"]) == (400, "MALFORMED_CSR")
    assert (await mgmt.get_gateway(gw.gateway_id))["provisioned"] is False
    # The factory key was not used up: a good CSR still onboards.
    ok = await onboard(provisioning, gw.factory_id, gw.factory_key)
    assert ok.status_code == 201, ok.text


async def test_request_validation_is_400_not_500(mgmt: MgmtHandle, provisioning: str) -> None:
    url = provisioning + "/provision/onboard"
    _, csr = gateway_csr()
    async with httpx.AsyncClient(timeout=20) as client:
        for body in (
            {"csr": csr, "sendFrequencyMs": 1000},  # no credentials object
            {"credentials": None, "csr": csr, "sendFrequencyMs": 1000},
            {
                "credentials": {"factoryId": "f", "factoryKey": "k"},
                "csr": csr,
                "sendFrequencyMs": 0,
            },
            {"credentials": {"factoryId": "f", "factoryKey": "k"}, "sendFrequencyMs": 10},
        ):
            resp = await client.post(url, json=body)
            assert resp.status_code == 400, (body, resp.text)
            assert resp.json()["error"] == "VALIDATION_ERROR"
        for raw in (b"{not json", b"", b"[]"):
            resp = await client.post(url, content=raw, headers={"content-type": "application/json"})
            assert (resp.status_code, resp.json()["error"]) == (400, "VALIDATION_ERROR")
        metrics = (await client.get(provisioning + "/metrics")).text
        assert 'notip_provisioning_failures_total{reason="validation"} 7.0' in metrics
        assert "notip_provisioning_attempts_total 7.0" in metrics
        assert "notip_provisioning_duration_seconds_count 7.0" in metrics
        health = await client.get(provisioning + "/health")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})


async def test_management_down_is_503_within_the_clients_15_s(
    aio_loop: None, nats_server: NatsServer, pki: PkiPaths
) -> None:
    """No management at all: NATS answers "no responders" at once; the request is
    retried with backoff and the gateway gets 503 well before its 15 s timeout."""
    async with running_provisioning(provisioning_settings(nats_server, pki)) as info:
        start = trio.current_time()
        resp = await onboard(info.http_url, f"F-{uuid.uuid4().hex}", "key")
        elapsed = trio.current_time() - start
    assert (resp.status_code, resp.json()) == (503, {"error": "SERVICE_UNAVAILABLE"})
    assert elapsed < 15.0


async def test_management_silent_is_503_within_the_clients_15_s(
    aio_loop: None, nats_server: NatsServer, pki: PkiPaths, nc: natsio.NATS
) -> None:
    """A management that takes requests but never answers: every attempt times out,
    and the default budget still answers 503 before 15 s."""
    seen: list[str] = []
    token = trio.lowlevel.current_trio_token()

    async def swallow(msg: Any) -> None:
        token.run_sync_soon(seen.append, msg.subject)

    sub = await bridge.call(nc.subscribe, "internal.mgmt.factory.validate", cb=swallow)
    await bridge.call(nc.flush)
    try:
        async with running_provisioning(provisioning_settings(nats_server, pki)) as info:
            start = trio.current_time()
            resp = await onboard(info.http_url, f"F-{uuid.uuid4().hex}", "key")
            elapsed = trio.current_time() - start
    finally:
        await bridge.call(sub.unsubscribe)
    assert (resp.status_code, resp.json()) == (503, {"error": "SERVICE_UNAVAILABLE"})
    assert elapsed < 15.0
    assert len(seen) >= 2  # it did retry


async def test_unpaired_surrogate_escape_is_400_not_500(
    mgmt: MgmtHandle, provisioning: str
) -> None:
    """`"\\ud800"` is valid JSON but cannot be encoded (CSR, NATS request): 400, and the
    factory key is not used up."""
    gw = await mgmt.new_gateway()
    async with httpx.AsyncClient(timeout=20) as client:
        creds = json.dumps({"factoryId": gw.factory_id, "factoryKey": gw.factory_key})
        raw = '{"credentials": ' + creds + ', "csr": "\\ud800", "sendFrequencyMs": 1000}'
        resp = await client.post(
            provisioning + "/provision/onboard",
            content=raw.encode(),
            headers={"content-type": "application/json"},
        )
    assert (resp.status_code, resp.json()["error"]) == (400, "VALIDATION_ERROR"), resp.text
    assert (await onboard(provisioning, gw.factory_id, gw.factory_key)).status_code == 201
