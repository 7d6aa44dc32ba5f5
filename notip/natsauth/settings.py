"""Settings of `notip nats-auth` (docs/nats-auth.md#settings), from the environment.

The three key files are read (and checked) here, so that a missing or wrong file
stops start-up with a message naming it; the seeds never appear in a repr."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from notip.config import Env
from notip.natsauth import decide, jwt
from notip.natsauth.permissions import NATS_AUTH_DECOMMISSION_DURABLE
from notip.natsconf import AUTH_TIMEOUT_S
from notip.natsio import TlsFiles

ENV_VARS: frozenset[str] = frozenset(
    {
        "NATS_URL",
        "NATS_TLS_CA",
        "NATS_TLS_CERT",
        "NATS_TLS_KEY",
        "CALLOUT_ISSUER_SEED_FILE",
        "CALLOUT_XKEY_SEED_FILE",
        "NATS_SYSTEM_SEED_FILE",
        "METRICS_ADDR",
        "MGMT_REQUEST_TIMEOUT_MS",
        "AUTH_CACHE_TTL_MS",
        "AUTH_NEGATIVE_CACHE_TTL_MS",
        "AUTH_CACHE_STALE_LIMIT_MS",
        "SWEEP_INTERVAL_MS",
    }
)


def _read_seed(env: Env, name: str, path: Path | None, prefix: int, what: str) -> bytes:
    if path is None:
        return b""
    try:
        seed = path.read_bytes().strip()
        got, _ = jwt.decode_seed(seed)
    except (OSError, jwt.NkeyError) as exc:
        env.problem(f"{name}={str(path)!r}: not a readable nkey seed ({exc})")
        return b""
    if got != prefix:
        env.problem(f"{name}={str(path)!r}: not {what}")
        return b""
    return seed


@dataclass(frozen=True)
class Settings:
    nats_url: str
    #: The service identity CN=nats-auth,O=notip (a static user in auth_users).
    nats_tls: TlsFiles
    #: CALLOUT_ISSUER_SEED_FILE: the account seed (`SA…`) whose public key is
    #: `auth_callout.issuer`; signs every answer.
    issuer_seed: bytes = field(repr=False)
    #: NATS_SYSTEM_SEED_FILE: the system-account user (`SU…`) for CONNZ and KICK.
    system_seed_file: Path
    #: CALLOUT_XKEY_SEED_FILE: the curve seed (`SX…`) whose public key is
    #: `auth_callout.xkey` (None: the server sends requests unsealed).
    xkey_seed: bytes | None = field(default=None, repr=False)
    metrics_addr: str = ":9090"
    #: One get-status attempt per decision, well inside the server's auth timeout.
    mgmt_request_timeout_ms: int = 750
    cache_ttl_ms: int = round(decide.POSITIVE_TTL_S * 1000)
    negative_cache_ttl_ms: int = round(decide.NEGATIVE_TTL_S * 1000)
    cache_stale_limit_ms: int = round(decide.STALE_LIMIT_S * 1000)
    sweep_interval_ms: int = 60_000

    # Not read from the environment: the permissions table names them.
    queue_group: str = "notip-nats-auth"
    decommission_durable: str = NATS_AUTH_DECOMMISSION_DURABLE
    #: Deciders working at once (each may wait for management).
    workers: int = 16
    #: Requests waiting for a worker; beyond, a request is dropped (the server
    #: refuses the connection at its timeout: never admitted).
    backlog: int = 10_000

    @property
    def cache_policy(self) -> decide.CachePolicy:
        return decide.CachePolicy(
            positive_ttl_s=self.cache_ttl_ms / 1000.0,
            negative_ttl_s=self.negative_cache_ttl_ms / 1000.0,
            stale_limit_s=self.cache_stale_limit_ms / 1000.0,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        env = Env(environ)
        url, tls = env.nats_service()
        issuer_path = env.path("CALLOUT_ISSUER_SEED_FILE", must_exist=True)
        issuer = _read_seed(
            env,
            "CALLOUT_ISSUER_SEED_FILE",
            issuer_path if isinstance(issuer_path, Path) else None,
            jwt.PREFIX_ACCOUNT,
            "an account seed (SA…)",
        )
        xkey_path = env.optional_path("CALLOUT_XKEY_SEED_FILE", must_exist=True)
        xkey = _read_seed(
            env, "CALLOUT_XKEY_SEED_FILE", xkey_path, jwt.PREFIX_CURVE, "a curve seed (SX…)"
        )
        system = env.path("NATS_SYSTEM_SEED_FILE", must_exist=True)
        _read_seed(
            env,
            "NATS_SYSTEM_SEED_FILE",
            system if isinstance(system, Path) else None,
            jwt.PREFIX_USER,
            "a user seed (SU…)",
        )
        metrics_addr = env.addr("METRICS_ADDR", cls.metrics_addr)
        mgmt_timeout = env.int(
            "MGMT_REQUEST_TIMEOUT_MS",
            cls.mgmt_request_timeout_ms,
            min=10,
            # Inside the server's authorization timeout, with room for the rest.
            max=round(AUTH_TIMEOUT_S * 1000) - 250,
        )
        ttl = env.int("AUTH_CACHE_TTL_MS", cls.cache_ttl_ms, min=0, max=86_400_000)
        negative = env.int(
            "AUTH_NEGATIVE_CACHE_TTL_MS", cls.negative_cache_ttl_ms, min=0, max=86_400_000
        )
        stale = env.int(
            "AUTH_CACHE_STALE_LIMIT_MS", cls.cache_stale_limit_ms, min=0, max=86_400_000
        )
        if isinstance(ttl, int) and isinstance(stale, int) and stale < ttl:
            env.problem(f"AUTH_CACHE_STALE_LIMIT_MS={stale} must be >= AUTH_CACHE_TTL_MS={ttl}")
        sweep = env.int("SWEEP_INTERVAL_MS", cls.sweep_interval_ms, min=1_000, max=86_400_000)
        env.check()
        return cls(
            nats_url=url,
            nats_tls=tls,
            issuer_seed=issuer,
            system_seed_file=system,
            xkey_seed=xkey or None,
            metrics_addr=metrics_addr,
            mgmt_request_timeout_ms=mgmt_timeout,
            cache_ttl_ms=ttl,
            negative_cache_ttl_ms=negative,
            cache_stale_limit_ms=stale,
            sweep_interval_ms=sweep,
        )
