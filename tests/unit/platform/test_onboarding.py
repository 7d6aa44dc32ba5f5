"""The onboarding flow (docs/contracts.md#provisioning-http) against a scripted management: order, error
mapping, the CSR checks, and the deadline under a mock clock."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any

import pytest
import trio
import trio.testing
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from notip import pki
from notip.contracts import MGMT_FACTORY_VALIDATE as VALIDATE
from notip.contracts import MGMT_PROVISIONING_COMPLETE as COMPLETE
from notip.platform.provisioning.onboarding import (
    MgmtUnreachable,
    OnboardError,
    Onboarding,
    OnboardRequest,
    parse_request,
)
from notip.platform.provisioning.settings import Settings

GW, TENANT = str(uuid.uuid4()), str(uuid.uuid4())
CA_KEY, CA_CERT = pki.make_ca("test-ca")
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_CSR = pki.make_gateway_csr(RSA_KEY).decode()


class Mgmt:
    """Answers from a script: subject → answer or callable(body) → answer."""

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {
            VALIDATE: {"gateway_id": GW, "tenant_id": TENANT},
            COMPLETE: {"success": True},
        }
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, subject: str, body: dict[str, Any]) -> Any:
        self.calls.append((subject, body))
        answer = self.answers[subject]
        if callable(answer):
            answer = answer(body)
        if isinstance(answer, BaseException):
            raise answer
        if answer == "hang":
            await trio.sleep_forever()
        return answer


def request(**changes: Any) -> OnboardRequest:
    base = {
        "credentials": {"factoryId": "F-1", "factoryKey": "secret"},
        "csr": RSA_CSR,
        "sendFrequencyMs": 2500,
        "firmwareVersion": "1.2.3",
    }
    base.update(changes)
    return parse_request(base)


def onboarding(mgmt: Mgmt, **kw: Any) -> Onboarding:
    return Onboarding(mgmt, CA_KEY, CA_CERT, **kw)


async def test_success_in_contract_order() -> None:
    mgmt = Mgmt()
    done = await onboarding(mgmt, random_bytes=lambda n: b"\x07" * n).onboard(request())
    assert [s for s, _ in mgmt.calls] == [VALIDATE, COMPLETE]
    assert mgmt.calls[0][1] == {"factory_id": "F-1", "factory_key": "secret"}
    assert mgmt.calls[1][1] == {
        "gateway_id": GW,
        "key_material": base64.b64encode(b"\x07" * 32).decode(),
        "key_version": 1,
        "send_frequency_ms": 2500,
        "firmware_version": "1.2.3",
    }
    body = done.response()
    assert body["identity"] == {"gatewayId": GW, "tenantId": TENANT}
    assert base64.b64decode(body["aesKey"]) == b"\x07" * 32
    assert body["sendFrequencyMs"] == 2500
    cert = x509.load_pem_x509_certificate(body["certPem"].encode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == GW
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [f"{GW}.{TENANT}.gateways.notip.internal"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.public_key() == RSA_KEY.public_key()
    assert "secret" not in repr(request()) and "\\x07" not in repr(done)


async def test_default_randomness_is_32_fresh_bytes() -> None:
    a = await onboarding(Mgmt()).onboard(request())
    b = await onboarding(Mgmt()).onboard(request())
    assert len(a.aes_key) == 32 and a.aes_key != b.aes_key


async def test_ttl_is_the_setting() -> None:
    done = await onboarding(Mgmt(), cert_ttl_days=7).onboard(request())
    cert = done.certificate
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=7, minutes=1)


@pytest.mark.parametrize(
    ("validate", "status", "code"),
    [
        ({"error": "INVALID"}, 401, "INVALID_CREDENTIALS"),
        ({"error": "ALREADY_PROVISIONED"}, 409, "ALREADY_PROVISIONED"),
        ({"error": "INTERNAL"}, 503, "SERVICE_UNAVAILABLE"),
        ({"gateway_id": "not-a-uuid", "tenant_id": TENANT}, 503, "SERVICE_UNAVAILABLE"),
        ([1, 2], 503, "SERVICE_UNAVAILABLE"),
        (None, 503, "SERVICE_UNAVAILABLE"),
        (MgmtUnreachable("no responders"), 503, "SERVICE_UNAVAILABLE"),
    ],
)
async def test_validate_answers_map_to_http(validate: Any, status: int, code: str) -> None:
    mgmt = Mgmt()
    mgmt.answers[VALIDATE] = validate
    with pytest.raises(OnboardError) as err:
        await onboarding(mgmt).onboard(request())
    assert (err.value.status, err.value.code) == (status, code)
    assert err.value.body() == {"error": code}
    assert [s for s, _ in mgmt.calls] == [VALIDATE]  # nothing signed, nothing completed


def _csr_for(key: Any) -> str:
    return pki.make_gateway_csr(key).decode()


@pytest.mark.parametrize(
    "csr",
    [
        "not a csr",
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        _csr_for(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
        _csr_for(ec.generate_private_key(ec.SECP192R1())),
    ],
    ids=["garbage", "bad-der", "rsa-1024", "ec-p192"],
)
async def test_bad_csrs_are_400_and_nothing_completes(csr: str) -> None:
    mgmt = Mgmt()
    with pytest.raises(OnboardError) as err:
        await onboarding(mgmt).onboard(request(csr=csr))
    assert (err.value.status, err.value.code) == (400, "MALFORMED_CSR")
    assert [s for s, _ in mgmt.calls] == [VALIDATE]


async def test_ec_p256_csr_works() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    done = await onboarding(Mgmt()).onboard(request(csr=_csr_for(key)))
    assert done.certificate.public_key() == key.public_key()


async def test_complete_refused_then_validate_says_provisioned_is_409() -> None:
    validations = iter([{"gateway_id": GW, "tenant_id": TENANT}, {"error": "ALREADY_PROVISIONED"}])
    mgmt = Mgmt()
    mgmt.answers[VALIDATE] = lambda body: next(validations)
    mgmt.answers[COMPLETE] = {"success": False, "error": "INTERNAL"}
    with pytest.raises(OnboardError) as err:
        await onboarding(mgmt).onboard(request())
    assert (err.value.status, err.value.code) == (409, "ALREADY_PROVISIONED")
    assert [s for s, _ in mgmt.calls] == [VALIDATE, COMPLETE, VALIDATE]


@pytest.mark.parametrize(
    "complete",
    [{"success": False, "error": "NOT_FOUND"}, {"success": "yes"}, MgmtUnreachable("timeout")],
)
async def test_complete_failures_are_503(complete: Any) -> None:
    mgmt = Mgmt()
    mgmt.answers[COMPLETE] = complete
    with pytest.raises(OnboardError) as err:
        await onboarding(mgmt).onboard(request())
    assert (err.value.status, err.value.code) == (503, "SERVICE_UNAVAILABLE")


async def test_deadline_bounds_the_whole_flow(autojump_clock: trio.testing.MockClock) -> None:
    mgmt = Mgmt()
    mgmt.answers[COMPLETE] = "hang"
    start = trio.current_time()
    with pytest.raises(OnboardError) as err:
        await onboarding(mgmt, deadline_s=12.0).onboard(request())
    assert (err.value.status, err.value.reason) == (503, "deadline")
    assert trio.current_time() - start == pytest.approx(12.0)


def test_default_retry_budget_fits_the_clients_15_s() -> None:
    s = Settings(
        nats_url="tls://x:4222",
        nats_tls=None,  # type: ignore[arg-type]
        ca_certs_path=None,  # type: ignore[arg-type]
        ca_key_path=None,  # type: ignore[arg-type]
    )
    one_request = (len(s.mgmt_backoff_s) + 1) * s.mgmt_attempt_timeout_s + sum(s.mgmt_backoff_s)
    assert one_request <= s.onboard_deadline_s < 15.0


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"csr": RSA_CSR, "sendFrequencyMs": 1}, "credentials must be an object"),
        ({"credentials": "F-1:secret", "csr": RSA_CSR, "sendFrequencyMs": 1}, "credentials"),
        ({"credentials": {"factoryKey": "k"}, "csr": RSA_CSR, "sendFrequencyMs": 1}, "factoryId"),
        ({"credentials": {"factoryId": "f"}, "csr": RSA_CSR, "sendFrequencyMs": 1}, "factoryKey"),
        ({"credentials": {"factoryId": "f", "factoryKey": "k"}, "sendFrequencyMs": 1}, "csr"),
        ({"credentials": {"factoryId": "f", "factoryKey": "k"}, "csr": RSA_CSR}, "sendFrequencyMs"),
        (
            {
                "credentials": {"factoryId": "f", "factoryKey": "k"},
                "csr": RSA_CSR,
                "sendFrequencyMs": 0,
            },
            "sendFrequencyMs",
        ),
        (
            {
                "credentials": {"factoryId": "f", "factoryKey": "k"},
                "csr": RSA_CSR,
                "sendFrequencyMs": True,
            },
            "sendFrequencyMs",
        ),
        (
            {
                "credentials": {"factoryId": "f", "factoryKey": "k"},
                "csr": RSA_CSR,
                "sendFrequencyMs": 5,
                "firmwareVersion": 3,
            },
            "firmwareVersion",
        ),
        ([], "JSON object"),
    ],
)
def test_request_validation(body: Any, match: str) -> None:
    with pytest.raises(OnboardError, match=match) as err:
        parse_request(body)
    assert (err.value.status, err.value.code) == (400, "VALIDATION_ERROR")
    assert err.value.body()["error"] == "VALIDATION_ERROR"
