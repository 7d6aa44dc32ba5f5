"""Certificate → identity: the shapes provisioning and `notip pki init` issue are
recognised, anything else is rejected with a reason."""

from __future__ import annotations

import datetime as dt
from functools import cache

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from notip import pki
from notip.natsauth import identity
from notip.natsauth.identity import Gateway, Rejected, Service

GW = "3b4e9eb2-9d99-48f1-a684-ee7fe70f495e"
TENANT = "tenant_A-1"


@cache
def _ca() -> tuple[pki.PrivateKey, x509.Certificate]:
    return pki.make_ca()


def _pem(cert: x509.Certificate) -> str:
    return pki.cert_pem(cert).decode("ascii")


def provisioned(gateway_id: str = GW, tenant_id: str = TENANT, *, cn: str = "gateway") -> str:
    """What provisioning signs for a CSR (whose subject it ignores)."""
    ca_key, ca_cert = _ca()
    csr = pki.load_csr(pki.make_gateway_csr(pki.new_key(), common_name=cn))
    return _pem(
        pki.sign_gateway_csr(ca_key, ca_cert, csr, gateway_id=gateway_id, tenant_id=tenant_id)
    )


def issued(subject: x509.Name, sans: tuple[str, ...] = ()) -> str:
    ca_key, ca_cert = _ca()
    key = pki.new_key()
    return _pem(pki.issue(ca_key, ca_cert, subject, key.public_key(), sans=sans, client=True))


def cn(value: str, *more: x509.NameAttribute[str]) -> x509.Name:
    return x509.Name([*more, x509.NameAttribute(NameOID.COMMON_NAME, value)])


def test_a_provisioned_gateway_certificate() -> None:
    found = identity.identify([provisioned(), _pem(_ca()[1])])
    assert isinstance(found, Gateway)
    assert (found.tenant_id, found.gateway_id) == (TENANT, GW)
    cert = x509.load_pem_x509_certificate(provisioned().encode())
    assert abs(found.not_after - cert.not_valid_after_utc.timestamp()) < 5
    assert found.not_after > dt.datetime.now(dt.UTC).timestamp()
    assert found.user_name == f"gw:{TENANT}:{GW}"


def test_provisioning_never_makes_a_service_identity() -> None:
    # A CSR asking for a service's subject still gets CN = its gateway id only.
    found = identity.identify([provisioned(cn="CN=nats-auth,O=notip")])
    assert isinstance(found, Gateway) and found.gateway_id == GW


def test_a_service_certificate() -> None:
    found = identity.identify([issued(pki.service_subject("nats-auth"))])
    assert isinstance(found, Service) and found.name == "nats-auth"
    assert found.user_name == "svc:nats-auth"


@pytest.mark.parametrize(
    ("chain", "reason"),
    [
        ([], identity.NO_CERTIFICATE),
        (["-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"], identity.UNREADABLE),
        ([provisioned("gw-1")], identity.NOT_A_GATEWAY),  # CN not a UUID
        ([provisioned(GW.upper())], identity.NOT_A_GATEWAY),  # not lowercase
        ([provisioned(tenant_id="a.b")], identity.BAD_GATEWAY_SAN),  # two tokens
        ([provisioned(tenant_id="*")], identity.BAD_GATEWAY_SAN),
        ([provisioned(tenant_id="")], identity.BAD_GATEWAY_SAN),
        ([issued(cn(GW))], identity.BAD_GATEWAY_SAN),  # no SAN
        (
            [
                issued(
                    cn(GW), (f"{GW}.t.gateways.notip.internal", f"{GW}.u.gateways.notip.internal")
                )
            ],
            identity.BAD_GATEWAY_SAN,  # two tenants
        ),
        (
            [issued(cn(GW), (f"{GW}.t.gateways.notip.internal", "127.0.0.1"))],
            identity.BAD_GATEWAY_SAN,  # a second SAN of another type
        ),
        (
            [issued(cn(GW), (f"{'0' * 8}-0000-4000-8000-{'0' * 12}.t.gateways.notip.internal",))],
            identity.BAD_GATEWAY_SAN,  # another gateway's SAN
        ),
        ([issued(cn(GW), (f"{GW}.t.gateways.example.com",))], identity.BAD_GATEWAY_SAN),
        (
            [issued(cn(GW, x509.NameAttribute(NameOID.ORGANIZATION_NAME, "acme")))],
            identity.NOT_A_GATEWAY,  # a gateway id with an organisation
        ),
        (
            [issued(cn("management-api", x509.NameAttribute(NameOID.ORGANIZATION_NAME, "x")))],
            identity.NOT_A_GATEWAY,  # not the platform's organisation
        ),
        (
            [issued(cn("Bad Name", x509.NameAttribute(NameOID.ORGANIZATION_NAME, "notip")))],
            identity.NOT_A_GATEWAY,
        ),
    ],
    ids=[
        "empty",
        "unreadable",
        "cn-not-uuid",
        "cn-uppercase",
        "tenant-with-dot",
        "tenant-wildcard",
        "tenant-empty",
        "no-san",
        "two-sans",
        "extra-ip-san",
        "other-gateway-san",
        "other-domain",
        "gateway-with-org",
        "other-org",
        "service-name-syntax",
    ],
)
def test_rejections(chain: list[str], reason: str) -> None:
    assert identity.identify(chain) == Rejected(reason)


def test_only_verified_chains_are_looked_at() -> None:
    assert identity.identify_chains(()) == Rejected(identity.NO_CERTIFICATE)
    assert isinstance(identity.identify_chains(((provisioned(),),)), Gateway)


def test_gateway_user_names_round_trip() -> None:
    assert identity.parse_gateway_user(identity.gateway_user_name(TENANT, GW)) == (TENANT, GW)
    for bad in ("svc:nats-auth", f"gw:{TENANT}", f"gw:a.b:{GW}", "gw:t:not-a-uuid", f"x:t:{GW}"):
        assert identity.parse_gateway_user(bad) is None, bad
