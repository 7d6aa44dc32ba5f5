"""Settings of `notip provisioning` (docs/contracts.md#environment-variables, provisioning stand-in)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from notip.config import Env
from notip.natsio import TlsFiles
from notip.pki import load_key

ENV_VARS: frozenset[str] = frozenset(
    {
        "NATS_URL",
        "NATS_TLS_CA",
        "NATS_TLS_CERT",
        "NATS_TLS_KEY",
        "CA_CERTS_PATH",
        "CA_KEY_PATH",
        "CERT_TTL_DAYS",
        "HTTP_ADDR",
    }
)

CA_CERT_NAME = "ca.crt"


def _spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class Settings:
    nats_url: str
    nats_tls: TlsFiles
    #: Directory holding `ca.crt` (CA_CERTS_PATH).
    ca_certs_path: Path
    ca_key_path: Path
    cert_ttl_days: int = 90
    http_addr: str = ":3000"

    # The request-reply budget towards management (not read from the environment).
    # A gateway gives up on onboarding after 15 s; the caller policy of docs/contracts.md#request-reply-policy
    # (5 s per attempt, 1/2/4 s backoff: up to 27 s) does not fit in that, so this
    # stand-in uses 2 s per attempt and 0.5/1/2 s backoff (at most 11.5 s for one
    # request) under an overall deadline of 12 s per onboarding for both requests
    # together: the answer (201, or 503 SERVICE_UNAVAILABLE) comes within ~12 s.
    mgmt_attempt_timeout_s: float = 2.0
    mgmt_backoff_s: tuple[float, ...] = (0.5, 1.0, 2.0)
    onboard_deadline_s: float = 12.0

    @property
    def ca_cert_path(self) -> Path:
        return self.ca_certs_path / CA_CERT_NAME

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        env = Env(environ)
        url, nats_tls = env.nats_service()
        ca_dir = env.path("CA_CERTS_PATH")
        ca_key = env.path("CA_KEY_PATH", must_exist=True)
        ttl = env.int("CERT_TTL_DAYS", cls.cert_ttl_days, min=1, max=3650)
        http_addr = env.addr("HTTP_ADDR", cls.http_addr)
        ca_cert_obj = ca_key_obj = None
        if isinstance(ca_dir, Path):
            try:
                ca_cert_obj = x509.load_pem_x509_certificate((ca_dir / CA_CERT_NAME).read_bytes())
            except (OSError, ValueError) as exc:
                env.problem(f"CA_CERTS_PATH={str(ca_dir)!r}: no readable {CA_CERT_NAME} ({exc})")
        if isinstance(ca_key, Path) and ca_key.exists():
            try:
                ca_key_obj = load_key(ca_key.read_bytes())
            except (OSError, ValueError, TypeError):
                env.problem(f"CA_KEY_PATH={str(ca_key)!r}: not an unencrypted PEM private key")
        if (
            ca_cert_obj is not None
            and ca_key_obj is not None
            and _spki(ca_cert_obj.public_key()) != _spki(ca_key_obj.public_key())
        ):
            env.problem(f"CA_KEY_PATH={str(ca_key)!r}: does not belong to the CA in CA_CERTS_PATH")
        env.check()
        return cls(
            nats_url=url,
            nats_tls=nats_tls,
            ca_certs_path=ca_dir,
            ca_key_path=ca_key,
            cert_ttl_days=ttl,
            http_addr=http_addr,
        )
