"""`notip simulator` settings (docs/contracts.md#environment-variables)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast
from urllib.parse import urlparse

from notip.config import Env
from notip.natsio import TlsFiles

ENV_VARS: frozenset[str] = frozenset(
    {
        "PROVISIONING_URL",
        "NATS_URL",
        "NATS_CA_CERT_PATH",
        "NATS_TLS_CERT",
        "NATS_TLS_KEY",
        "SQLITE_PATH",
        "HTTP_ADDR",
        "METRICS_ADDR",
        "DEFAULT_SEND_FREQUENCY_MS",
        "GATEWAY_BUFFER_SIZE",
        "RECOVERY_MODE",
        "GRPC_ADDR",
        "FIRMWARE_APPLY_MS",
        "GATEWAY_IDENTITY",
    }
)

MAX_SEND_FREQUENCY_MS = 86_400_000  # one day; keeps the value an int32 on the wire

#: GATEWAY_IDENTITY: which certificate each gateway's NATS connection presents.
#: `own`: the certificate it got from provisioning (CN = gateway id), as a real
#: gateway does; `shared`: the service certificate NATS_TLS_CERT/KEY for every
#: gateway, an opt-in for a NATS that grants no per-gateway users (that identity then
#: needs every gateway's rights).
GatewayIdentity = Literal["own", "shared"]
OWN: GatewayIdentity = "own"
SHARED: GatewayIdentity = "shared"
GATEWAY_IDENTITIES: tuple[GatewayIdentity, ...] = (OWN, SHARED)


@dataclass(frozen=True)
class Settings:
    provisioning_url: str
    nats_url: str
    # NATS_CA_CERT_PATH, and NATS_TLS_CERT/NATS_TLS_KEY: both or neither. The
    # certificate is the simulator's own service identity (its decommission listener),
    # and every gateway's too when gateway_identity is `shared`.
    nats_tls: TlsFiles
    gateway_identity: GatewayIdentity = OWN
    sqlite_path: Path = Path("/data/simulator.db")
    http_addr: str = ":8090"
    metrics_addr: str = ":9090"
    grpc_addr: str = ":50051"
    default_send_frequency_ms: int = 5000
    gateway_buffer_size: int = 1000
    recovery_mode: bool = False

    # -- not read from the environment: code-level knobs (tests shorten them) ------
    provisioning_timeout_s: float = 15.0
    provisioning_backoff_s: tuple[float, ...] = (0.5, 1.0, 2.0)
    bulk_concurrency: int = 10
    publish_timeout_s: float = 5.0
    # One pull request per gateway stays outstanding this long (server-side
    # `expires`): an idle command subscription costs one request per period, and a
    # reconnect re-issues it at once (gateway.py), so a long one delays nothing.
    command_fetch_timeout_s: float = 30.0
    command_ttl_s: float = 60.0
    firmware_apply_s: float = 1.0
    restart_backoff_s: float = 0.5
    restart_backoff_cap_s: float = 30.0
    nats_read_buffer_bytes: int = 16 * 1024
    decommission_durable: str = "simulator-decommission"
    shutdown_grace_s: float = 2.0

    def __post_init__(self) -> None:
        if self.gateway_identity not in GATEWAY_IDENTITIES:
            raise ValueError(f"gateway_identity must be one of {GATEWAY_IDENTITIES}")
        if self.shared_identity and not self.has_service_cert:
            raise ValueError("gateway_identity 'shared' needs the service certificate (nats_tls)")

    @property
    def has_service_cert(self) -> bool:
        """NATS_TLS_CERT/KEY are set: the simulator has its own service identity."""
        return self.nats_tls.cert is not None and self.nats_tls.key is not None

    @property
    def shared_identity(self) -> bool:
        """Every gateway connects with the service certificate (GATEWAY_IDENTITY=shared)."""
        return self.gateway_identity == SHARED

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        env = Env(environ)
        provisioning_url = env.str("PROVISIONING_URL")
        if isinstance(provisioning_url, str):
            parsed = urlparse(provisioning_url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                env.problem(f"PROVISIONING_URL={provisioning_url!r}: expected an http(s) URL")
        nats_url = env.nats_url()
        nats_tls = env.nats_tls("NATS_CA_CERT_PATH", client_cert_required=False)
        identity = cast(GatewayIdentity, env.choice("GATEWAY_IDENTITY", GATEWAY_IDENTITIES, OWN))
        if identity == SHARED and (nats_tls.cert is None or nats_tls.key is None):
            env.problem(
                "GATEWAY_IDENTITY=shared needs NATS_TLS_CERT and NATS_TLS_KEY "
                "(the certificate every gateway then connects with)"
            )
            identity = OWN  # reported above; check() raises before it is used
        settings = cls(
            provisioning_url=provisioning_url,
            nats_url=nats_url,
            nats_tls=nats_tls,
            gateway_identity=identity,
            sqlite_path=env.path("SQLITE_PATH", cls.sqlite_path),
            http_addr=env.addr("HTTP_ADDR", cls.http_addr),
            metrics_addr=env.addr("METRICS_ADDR", cls.metrics_addr),
            grpc_addr=env.addr("GRPC_ADDR", cls.grpc_addr),
            default_send_frequency_ms=env.int(
                "DEFAULT_SEND_FREQUENCY_MS",
                cls.default_send_frequency_ms,
                min=1,
                max=MAX_SEND_FREQUENCY_MS,
            ),
            gateway_buffer_size=env.int("GATEWAY_BUFFER_SIZE", cls.gateway_buffer_size, min=1),
            recovery_mode=env.bool("RECOVERY_MODE", cls.recovery_mode),
            firmware_apply_s=env.int(
                "FIRMWARE_APPLY_MS", round(cls.firmware_apply_s * 1000), min=0, max=600_000
            )
            / 1000.0,
        )
        env.check()
        return settings
