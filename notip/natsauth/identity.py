"""Who a client certificate names (docs/nats-auth.md#identities). Pure: PEM in, an
identity or a rejection reason out.

The server has already verified the chain against the platform CA (`verify: true`);
what is checked here is the *shape* of the leaf, because its fields end up in NATS
subjects and user names:

- a **gateway** certificate is what provisioning signs (`notip.pki.sign_gateway_csr`):
  subject exactly `CN=<gatewayId>` with the id a lowercase UUID, and exactly one SAN,
  the DNS name `{gatewayId}.{tenantId}.gateways.notip.internal`, whose tenant is one
  subject token (`[A-Za-z0-9_-]+`: no dot, no wildcard);
- a **service** certificate is what `notip pki init` issues: subject exactly
  `CN=<service>,O=notip`. Provisioning never signs an `O` (it ignores the CSR's
  subject), so a gateway cannot pass for a service.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from notip.pki import GATEWAY_SAN_SUFFIX

GATEWAY_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TENANT_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
SERVICE_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
SERVICE_ORG = "notip"
GATEWAY_USER_PREFIX = "gw:"
SERVICE_USER_PREFIX = "svc:"

# Rejection reasons: a fixed set (they label metrics).
NO_CERTIFICATE = "no_verified_certificate"
UNREADABLE = "unreadable_certificate"
NOT_A_GATEWAY = "not_a_gateway_certificate"
BAD_GATEWAY_SAN = "bad_gateway_san"
REJECTION_REASONS = (NO_CERTIFICATE, UNREADABLE, NOT_A_GATEWAY, BAD_GATEWAY_SAN)


@dataclass(frozen=True)
class Gateway:
    tenant_id: str
    gateway_id: str
    #: The certificate's notAfter (epoch seconds): the admitted user expires then.
    not_after: int

    @property
    def user_name(self) -> str:
        return gateway_user_name(self.tenant_id, self.gateway_id)


@dataclass(frozen=True)
class Service:
    name: str
    not_after: int

    @property
    def user_name(self) -> str:
        return f"{SERVICE_USER_PREFIX}{self.name}"


@dataclass(frozen=True)
class Rejected:
    reason: str


Identity = Gateway | Service | Rejected


def gateway_user_name(tenant_id: str, gateway_id: str) -> str:
    """The admitted user's name, `gw:{tenantId}:{gatewayId}`: what CONNZ filters on
    and server logs show."""
    return f"{GATEWAY_USER_PREFIX}{tenant_id}:{gateway_id}"


def parse_gateway_user(name: str) -> tuple[str, str] | None:
    """(tenant, gateway) of a `gw:{tenantId}:{gatewayId}` user name, else None."""
    if not name.startswith(GATEWAY_USER_PREFIX):
        return None
    tenant, sep, gateway = name[len(GATEWAY_USER_PREFIX) :].partition(":")
    if not sep or not TENANT_TOKEN.fullmatch(tenant) or not GATEWAY_ID.fullmatch(gateway):
        return None
    return tenant, gateway


def _attributes(name: x509.Name) -> list[tuple[x509.ObjectIdentifier, str]]:
    return [(attr.oid, str(attr.value)) for attr in name]


def _gateway(cert: x509.Certificate, cn: str, not_after: int) -> Identity:
    if not GATEWAY_ID.fullmatch(cn):
        return Rejected(NOT_A_GATEWAY)
    try:
        names = list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return Rejected(BAD_GATEWAY_SAN)
    if len(names) != 1 or not isinstance(names[0], x509.DNSName):
        return Rejected(BAD_GATEWAY_SAN)
    dns = names[0].value
    head, suffix = f"{cn}.", f".{GATEWAY_SAN_SUFFIX}"
    if not (dns.startswith(head) and dns.endswith(suffix)):
        return Rejected(BAD_GATEWAY_SAN)
    tenant = dns[len(head) : len(dns) - len(suffix)]
    if not TENANT_TOKEN.fullmatch(tenant):
        return Rejected(BAD_GATEWAY_SAN)
    return Gateway(tenant, cn, not_after)


def identify(chain: Sequence[str]) -> Identity:
    """The identity of a verified chain's leaf (`chain[0]`, PEM)."""
    if not chain:
        return Rejected(NO_CERTIFICATE)
    try:
        cert = x509.load_pem_x509_certificate(chain[0].encode("ascii"))
        attributes = _attributes(cert.subject)
        not_after = int(cert.not_valid_after_utc.timestamp())
    except (ValueError, UnicodeError):
        return Rejected(UNREADABLE)
    oids = [oid for oid, _ in attributes]
    values = dict(attributes)
    if oids == [NameOID.COMMON_NAME]:
        return _gateway(cert, values[NameOID.COMMON_NAME], not_after)
    if sorted(oids, key=lambda o: o.dotted_string) == sorted(
        [NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME], key=lambda o: o.dotted_string
    ):
        name = values[NameOID.COMMON_NAME]
        if values[NameOID.ORGANIZATION_NAME] == SERVICE_ORG and SERVICE_NAME.fullmatch(name):
            return Service(name, not_after)
    return Rejected(NOT_A_GATEWAY)


def identify_chains(chains: Sequence[Sequence[str]]) -> Identity:
    """The identity of the first verified chain the server reports (none: rejected;
    the unverified `certs` of a request are never looked at)."""
    return identify(chains[0]) if chains else Rejected(NO_CERTIFICATE)
