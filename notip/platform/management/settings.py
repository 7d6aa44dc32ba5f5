"""Settings of `notip mgmt` (docs/contracts.md#environment-variables, management stand-in)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from notip.config import Env
from notip.natsio import TlsFiles
from notip.platform.management.keys import KeyFileError, load_master_key

ENV_VARS: frozenset[str] = frozenset(
    {
        "NATS_URL",
        "NATS_TLS_CA",
        "NATS_TLS_CERT",
        "NATS_TLS_KEY",
        "MGMT_DB_PATH",
        "MGMT_KEY_FILE",
        "HTTP_ADDR",
    }
)


@dataclass(frozen=True)
class Settings:
    nats_url: str
    nats_tls: TlsFiles
    db_path: Path = Path("/data/mgmt.db")
    #: 32-byte key that seals stored AES keys (None: stored base64-encoded).
    key_file: Path | None = None
    http_addr: str = ":8080"
    #: `--seed FILE` (a command-line option, not an environment variable).
    seed_file: Path | None = None

    # Not read from the environment (docs/contracts.md#environment-variables fixes the variables); the defaults
    # are the platform's, tests override them with dataclasses.replace.
    #: A command without an ack reads as `timeout` this long after issued_at (docs/contracts.md#management-admin-http).
    command_timeout_s: float = 75.0
    #: Queue group of the request-reply responders (one reply per request).
    queue_group: str = "management-api"
    #: Durable consumer names are `{prefix}-command-acks` and `{prefix}-alerts`.
    #: Instances that share a prefix share the work (and should share a database).
    durable_prefix: str = "management-api"
    #: Let the server delete the durables after this long without a pull (tests use
    #: it so that their throw-away durables do not pile up); None: never.
    consumer_inactive_threshold_s: float | None = None
    #: How long one pull waits for acks/alerts before asking again.
    fetch_timeout_s: float = 1.0

    @property
    def acks_durable(self) -> str:
        return f"{self.durable_prefix}-command-acks"

    @property
    def alerts_durable(self) -> str:
        return f"{self.durable_prefix}-alerts"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        env = Env(environ)
        url, nats_tls = env.nats_service()
        db_path = env.path("MGMT_DB_PATH", cls.db_path)
        key_file = env.optional_path("MGMT_KEY_FILE", must_exist=True)
        http_addr = env.addr("HTTP_ADDR", cls.http_addr)
        if key_file is not None:
            try:
                load_master_key(key_file)
            except KeyFileError as exc:
                env.problem(f"MGMT_KEY_FILE={str(key_file)!r}: {exc}")
        env.check()
        return cls(
            nats_url=url,
            nats_tls=nats_tls,
            db_path=db_path,
            key_file=key_file,
            http_addr=http_addr,
        )
