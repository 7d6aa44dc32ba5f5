"""The platform's PKI: one CA, service client certificates, server certificates, the
gateway-certificate profile the provisioning stand-in signs (docs/contracts.md#provisioning-http),
and the nkey seeds of the NATS auth callout (docs/nats-auth.md#keys).

The provisioning profile sets the subject to `CN=<gatewayId>` only, whatever the CSR
asks: a gateway certificate can never carry `O=notip`, which marks service identities.

Everything here is plain functions over `cryptography` objects and files; no I/O
beyond reading and writing the PKI directory.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from notip.natsauth import jwt as natsjwt

SERVICES = (
    "management-api",
    "data-consumer",
    "provisioning",
    "simulator",
    "data-api",
    "nats-auth",
)
NATS_SERVER_SANS = ("nats", "localhost", "127.0.0.1")
#: The NATS cluster's node names (compose's `cluster` profile; docs/operations.md#nats-cluster).
NATS_CLUSTER_NODES = ("nats-1", "nats-2", "nats-3")
#: The certificate every node of a NATS cluster presents on its routes, as server and
#: as client: the nodes dial each other. Its subject is the one route user
#: (`cluster.authorization`, verify_and_map), so a gateway certificate, signed by the
#: same CA, cannot join the cluster.
NATS_ROUTE = "nats-route"
POSTGRES_SERVER_SANS = ("timescaledb", "postgres", "localhost", "127.0.0.1")
GATEWAY_SAN_SUFFIX = "gateways.notip.internal"

CA_DAYS = 3650
LEAF_DAYS = 825

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class CsrError(ValueError):
    """A CSR that cannot be signed: unparsable, bad signature or too weak a key."""


def service_subject(service: str) -> x509.Name:
    # Order O then CN so that the RFC 4514 string (what nats-server's verify_and_map
    # matches) reads "CN=<service>,O=notip".
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "notip"),
            x509.NameAttribute(NameOID.COMMON_NAME, service),
        ]
    )


def service_user(service: str) -> str:
    return service_subject(service).rfc4514_string()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _serial() -> int:
    # Positive and at most 159 bits, as RFC 5280 asks.
    return secrets.randbits(159) | 1


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_key(data: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("unsupported private key type")
    return key


def make_ca(common_name: str = "notip-ca") -> tuple[PrivateKey, x509.Certificate]:
    key = new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "notip"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _key_usage(*, key_encipherment: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _san(names: tuple[str, ...] | list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def issue(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    subject: x509.Name,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    *,
    sans: tuple[str, ...] | list[str] = (),
    server: bool = False,
    client: bool = False,
    days: int = LEAF_DAYS,
) -> x509.Certificate:
    now = _now()
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(_serial())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(key_encipherment=isinstance(public_key, rsa.RSAPublicKey)), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(_san(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


# --- gateway certificates (provisioning stand-in) ---------------------------------


def load_csr(pem: str | bytes) -> x509.CertificateSigningRequest:
    """Parse a PEM CSR and check what the signer needs: a valid self-signature and a
    key at least as strong as RSA-2048 or EC P-256."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError as exc:
        raise CsrError("not a PEM PKCS#10 request") from exc
    try:
        valid = csr.is_signature_valid
        public_key = csr.public_key()
    except Exception as exc:  # unsupported algorithms surface here
        raise CsrError("unsupported key or signature algorithm") from exc
    if not valid:
        raise CsrError("CSR signature does not verify")
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < 2048:
            raise CsrError("RSA key shorter than 2048 bits")
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.key_size < 256:
            raise CsrError("EC key weaker than P-256")
    else:
        raise CsrError("only RSA and EC keys are accepted")
    return csr


def gateway_san(gateway_id: str, tenant_id: str) -> str:
    return f"{gateway_id}.{tenant_id}.{GATEWAY_SAN_SUFFIX}"


def sign_gateway_csr(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    csr: x509.CertificateSigningRequest,
    *,
    gateway_id: str,
    tenant_id: str,
    days: int = 90,
) -> x509.Certificate:
    """docs/contracts.md#provisioning-http profile: CN = gatewayId (the CSR's subject is ignored), SAN DNS
    `{gw}.{tenant}.gateways.notip.internal`, EKU clientAuth, keyUsage
    digitalSignature only, random positive serial, `days` of validity."""
    public_key = csr.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise CsrError("only RSA and EC keys are accepted")
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gateway_id)]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(_serial())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(key_encipherment=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(gateway_san(gateway_id, tenant_id))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def make_gateway_csr(key: PrivateKey, common_name: str = "gateway") -> bytes:
    """What a gateway sends: a PKCS#10 request for its own key."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


# --- the PKI directory --------------------------------------------------------------


@dataclass(frozen=True)
class PkiPaths:
    """Where `notip pki init --dir DIR` puts things."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    def cert(self, name: str) -> Path:
        return self.root / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.root / f"{name}.key"

    @property
    def nats_server_cert(self) -> Path:
        return self.cert("nats-server")

    @property
    def nats_server_key(self) -> Path:
        return self.key("nats-server")

    @property
    def nats_route_cert(self) -> Path:
        return self.cert(NATS_ROUTE)

    @property
    def nats_route_key(self) -> Path:
        return self.key(NATS_ROUTE)

    @property
    def postgres_server_cert(self) -> Path:
        return self.cert("postgres-server")

    @property
    def postgres_server_key(self) -> Path:
        return self.key("postgres-server")

    # NATS auth callout (docs/nats-auth.md#keys): nkey seeds, one per file, 0600.

    @property
    def callout_issuer_seed(self) -> Path:
        """Account seed (`SA…`) that signs the auth service's answers; its public key
        is `auth_callout.issuer`."""
        return self.root / "nats-callout-issuer.nk"

    @property
    def callout_xkey_seed(self) -> Path:
        """Curve seed (`SX…`): the server seals authorization requests to its public
        key (`auth_callout.xkey`)."""
        return self.root / "nats-callout.xk"

    @property
    def system_user_seed(self) -> Path:
        """User seed (`SU…`) of the auth service's system-account user (CONNZ, KICK)."""
        return self.root / "nats-system-user.nk"


def write_private(path: Path, data: bytes) -> None:
    """Write a secret with mode 0600 from the first byte (never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def touch_private(path: Path) -> None:
    """Create `path` with mode 0600 if missing and make sure it is 0600, before a
    library (SQLite) opens it; SQLite gives its side files the same mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


def write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, 0o644)


def load_ca(paths: PkiPaths) -> tuple[PrivateKey, x509.Certificate]:
    return (
        load_key(paths.ca_key.read_bytes()),
        x509.load_pem_x509_certificate(paths.ca_cert.read_bytes()),
    )


def init_pki(directory: Path | str) -> list[str]:
    """Create whatever is missing in `directory`; never replaces what exists, so a
    second run changes nothing. Returns the names of the files it wrote."""
    paths = PkiPaths(Path(directory))
    paths.root.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    if paths.ca_cert.exists() and paths.ca_key.exists():
        ca_key, ca_cert = load_ca(paths)
    else:
        ca_key, ca_cert = make_ca()
        write_private(paths.ca_key, key_pem(ca_key))
        write_public(paths.ca_cert, cert_pem(ca_cert))
        written += [paths.ca_key.name, paths.ca_cert.name]

    leaves: list[tuple[str, x509.Name, tuple[str, ...], bool, bool]] = [
        (s, service_subject(s), (), False, True) for s in SERVICES
    ]
    leaves.append(
        (
            "nats-server",
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nats")]),
            (*NATS_SERVER_SANS, *NATS_CLUSTER_NODES),
            True,
            False,
        )
    )
    leaves.append(
        (
            "postgres-server",
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "timescaledb")]),
            POSTGRES_SERVER_SANS,
            True,
            False,
        )
    )
    leaves.append(
        (
            NATS_ROUTE,
            service_subject(NATS_ROUTE),
            (*NATS_SERVER_SANS, *NATS_CLUSTER_NODES),
            True,
            True,
        )
    )
    for name, subject, sans, server, client in leaves:
        if paths.cert(name).exists() and paths.key(name).exists():
            continue
        key = new_key()
        cert = issue(
            ca_key, ca_cert, subject, key.public_key(), sans=sans, server=server, client=client
        )
        write_private(paths.key(name), key_pem(key))
        write_public(paths.cert(name), cert_pem(cert))
        written += [paths.key(name).name, paths.cert(name).name]
    seeds = (
        (paths.callout_issuer_seed, natsjwt.PREFIX_ACCOUNT),
        (paths.callout_xkey_seed, natsjwt.PREFIX_CURVE),
        (paths.system_user_seed, natsjwt.PREFIX_USER),
    )
    for path, prefix in seeds:
        if not path.exists():
            write_private(path, natsjwt.new_seed(prefix))
            written.append(path.name)
    return written
