from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from notip import pki


def test_init_is_idempotent_and_keys_are_private(tmp_path: Path) -> None:
    first = pki.init_pki(tmp_path)
    assert "ca.crt" in first and "nats-server.crt" in first and "postgres-server.key" in first
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert pki.init_pki(tmp_path) == []
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    for path in tmp_path.glob("*.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_service_subjects_and_server_sans(tmp_path: Path) -> None:
    pki.init_pki(tmp_path)
    paths = pki.PkiPaths(tmp_path)
    for service in pki.SERVICES:
        cert = x509.load_pem_x509_certificate(paths.cert(service).read_bytes())
        assert cert.subject.rfc4514_string() == f"CN={service},O=notip"
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    nats = x509.load_pem_x509_certificate(paths.nats_server_cert.read_bytes())
    san = nats.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = set(san.get_values_for_type(x509.DNSName)) | {
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    }
    # The cluster's node names too (compose's `cluster` profile: tls://nats-1:4222, …).
    assert names == {"nats", "localhost", "127.0.0.1", "nats-1", "nats-2", "nats-3"}


@pytest.mark.parametrize(
    "key",
    [rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP256R1())],
    ids=["rsa2048", "p256"],
)
def test_gateway_profile(tmp_path: Path, key: pki.PrivateKey) -> None:
    pki.init_pki(tmp_path)
    ca_key, ca_cert = pki.load_ca(pki.PkiPaths(tmp_path))
    csr = pki.load_csr(pki.make_gateway_csr(key, common_name="ignored"))
    cert = pki.sign_gateway_csr(ca_key, ca_cert, csr, gateway_id="gw-1", tenant_id="t-1", days=90)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gw-1"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["gw-1.t-1.gateways.notip.internal"]
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_encipherment and not ku.key_cert_sign
    assert cert.serial_number > 0
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days in (89, 90)
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)
    cert.verify_directly_issued_by(ca_cert)


@pytest.mark.parametrize(
    "key",
    [rsa.generate_private_key(65537, 1024), ec.generate_private_key(ec.SECP192R1())],
    ids=["rsa1024", "p192"],
)
def test_weak_keys_are_refused(key: pki.PrivateKey) -> None:
    with pytest.raises(pki.CsrError):
        pki.load_csr(pki.make_gateway_csr(key))


def test_garbage_csr_is_refused() -> None:
    with pytest.raises(pki.CsrError):
        pki.load_csr(
            "-----BEGIN CERTIFICATE REQUEST-----\nnope\n-----END CERTIFICATE REQUEST-----\n"
        )


def test_init_writes_the_auth_callout_seeds(tmp_path: Path) -> None:
    from notip.natsauth import jwt

    written = pki.init_pki(tmp_path)
    paths = pki.PkiPaths(tmp_path)
    for path, prefix in (
        (paths.callout_issuer_seed, jwt.PREFIX_ACCOUNT),
        (paths.callout_xkey_seed, jwt.PREFIX_CURVE),
        (paths.system_user_seed, jwt.PREFIX_USER),
    ):
        assert path.name in written
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert jwt.decode_seed(path.read_bytes())[0] == prefix
    # Idempotent: a second run keeps them (the server config names their public keys).
    before = paths.callout_issuer_seed.read_bytes()
    paths.system_user_seed.unlink()
    assert pki.init_pki(tmp_path) == [paths.system_user_seed.name]
    assert paths.callout_issuer_seed.read_bytes() == before
