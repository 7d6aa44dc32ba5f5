"""The consumer's settings: docs/contracts.md#environment-variables plus the ingest, liveness and operations
knobs this implementation adds (every one documented in docs/consumer.md#settings).

`Settings.from_env` collects every problem and raises one `ConfigError` naming each
variable; `DB_PASSWORD_FILE` is read (and stripped) here so that a missing or empty
file stops start-up, and the password never appears in a repr or a log line."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from notip import contracts
from notip.config import Env
from notip.natsio import TlsFiles

SSL_MODES = ("disable", "require", "verify-ca", "verify-full")
DELIVER_POLICIES = ("all", "new")
ALERT_TEMPLATE_FIELDS = frozenset({"tenant_id", "gateway_id"})

ENV_VARS: frozenset[str] = frozenset(
    {
        # docs/contracts.md#environment-variables, required
        "NATS_URL",
        "NATS_TLS_CA",
        "NATS_TLS_CERT",
        "NATS_TLS_KEY",
        "DB_HOST",
        "DB_NAME",
        "DB_USER",
        "DB_PASSWORD_FILE",
        # docs/contracts.md#environment-variables, optional
        "DB_PORT",
        "DB_MAX_CONNS",
        "DB_MIN_CONNS",
        "DB_SSL_MODE",
        "DB_SSL_ROOT_CERT",
        "NATS_CONSUMER_DURABLE_NAME",
        "NATS_CONNECT_TIMEOUT_SECONDS",
        "GATEWAY_BUFFER_SIZE",
        "HEARTBEAT_TICK_MS",
        "HEARTBEAT_GRACE_PERIOD_MS",
        "ALERT_CONFIG_REFRESH_MS",
        "ALERT_CONFIG_DEFAULT_TIMEOUT_MS",
        "ALERT_CONFIG_MAX_RETRIES",
        "METRICS_ADDR",
        # added by this implementation
        "INGEST_BATCH_SIZE",
        "INGEST_FLUSH_MS",
        "INGEST_WRITERS",
        "INGEST_ACK_WAIT_MS",
        "INGEST_MAX_DELIVER",
        "INGEST_MAX_ACK_PENDING",
        "INGEST_DELIVER_POLICY",
        "ALERT_SUBJECT_TEMPLATE",
        "NATS_DECOMMISSION_DURABLE_NAME",
        "LIVENESS_ENABLED",
        "LIVENESS_LEASE_TTL_MS",
        "LIVENESS_FEED_SUBJECT",
        "LIVENESS_CHECK_CONCURRENCY",
        "STATUS_DISPATCH_CONCURRENCY",
        "DECOMMISSION_QUARANTINE_MS",
        "MGMT_REQUEST_TIMEOUT_MS",
        "MGMT_REQUEST_MAX_RETRIES",
        "DB_PROBE_INTERVAL_MS",
        "SHUTDOWN_TIMEOUT_MS",
    }
)

_DURABLE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_SUBJECT_TOKEN = re.compile(r"^[^\s.*>]+$")


def _durable(name: str) -> str:
    if not _DURABLE.match(name):
        raise ValueError("a durable name is letters, digits, '-' and '_' only")
    return name


def _subject(value: str, *, wildcards: bool = False) -> str:
    tokens = value.split(".")
    for token in tokens:
        if not token or (not wildcards and not _SUBJECT_TOKEN.match(token)):
            raise ValueError("not a valid NATS subject (empty token, space or wildcard)")
    return value


def _alert_template(value: str) -> str:
    fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    unknown = fields - ALERT_TEMPLATE_FIELDS
    if unknown:
        raise ValueError(
            "unknown placeholder(s) "
            + ", ".join("{" + f + "}" for f in sorted(unknown))
            + "; use {tenant_id} and/or {gateway_id}"
        )
    try:
        rendered = value.format(tenant_id="t", gateway_id="g")
    except (ValueError, IndexError) as exc:
        raise ValueError(f"bad template: {exc}") from None
    _subject(rendered)
    return value


@dataclass(frozen=True)
class Settings:
    nats_url: str
    #: NATS_TLS_CA, NATS_TLS_CERT, NATS_TLS_KEY (all required)
    nats_tls: TlsFiles
    db_host: str
    db_name: str
    db_user: str
    db_password_file: Path
    db_password: str = field(repr=False)
    db_port: int = 5432
    db_max_conns: int = 10
    db_min_conns: int = 2
    db_ssl_mode: str = "require"
    db_ssl_root_cert: Path | None = None
    durable_name: str = "data-consumer-telemetry"
    nats_connect_timeout_s: float = 10.0
    gateway_buffer_size: int = 1000
    heartbeat_tick_ms: int = 10_000
    heartbeat_grace_period_ms: int = 120_000
    alert_config_refresh_ms: int = 300_000
    alert_config_default_timeout_ms: int = 60_000
    alert_config_max_retries: int = 10
    metrics_addr: str = ":9090"
    # ingest
    ingest_batch_size: int = 1000
    ingest_flush_ms: int = 50
    ingest_writers: int = 3
    ingest_ack_wait_ms: int = 30_000
    ingest_max_deliver: int = 20
    ingest_max_ack_pending: int = 20_000
    ingest_deliver_policy: str = "all"
    # liveness and alerts
    alert_subject_template: str = contracts.GW_OFFLINE_ALERT_TEMPLATE
    decommission_durable_name: str = "data-consumer-decommission-listener"
    liveness_enabled: bool = True  # this instance may take the liveness lease
    liveness_lease_ttl_ms: int = 15_000
    liveness_feed_subject: str = contracts.LIVENESS_FEED_SUBJECT
    liveness_check_concurrency: int = 16
    status_dispatch_concurrency: int = 8
    decommission_quarantine_ms: int = 86_400_000
    mgmt_request_timeout_ms: int = 5_000
    mgmt_request_max_retries: int = 3
    # operations
    db_probe_interval_ms: int = 2_000
    shutdown_timeout_ms: int = 10_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        env = Env(environ)
        nats_url, nats_tls = env.nats_service()
        db_host = env.str("DB_HOST")
        db_name = env.str("DB_NAME")
        db_user = env.str("DB_USER")
        pw_file = env.path("DB_PASSWORD_FILE")
        password = ""
        if isinstance(pw_file, Path):
            try:
                password = pw_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                env.problem(
                    f"DB_PASSWORD_FILE={str(pw_file)!r}: cannot read ({exc.__class__.__name__})"
                )
            else:
                if not password:
                    env.problem(f"DB_PASSWORD_FILE={str(pw_file)!r}: the file is empty")

        db_port = env.int("DB_PORT", cls.db_port, min=1, max=65535)
        max_conns = env.int("DB_MAX_CONNS", cls.db_max_conns, min=1, max=1000)
        min_conns = env.int("DB_MIN_CONNS", cls.db_min_conns, min=0, max=1000)
        if isinstance(max_conns, int) and isinstance(min_conns, int) and min_conns > max_conns:
            env.problem(f"DB_MIN_CONNS={min_conns} must be <= DB_MAX_CONNS={max_conns}")
        ssl_mode = env.choice("DB_SSL_MODE", SSL_MODES, cls.db_ssl_mode)
        root_cert = env.optional_path("DB_SSL_ROOT_CERT", must_exist=True)
        if (
            ssl_mode in ("verify-ca", "verify-full")
            and root_cert is None
            and not environ.get("DB_SSL_ROOT_CERT", "").strip()
        ):
            env.problem(f"DB_SSL_ROOT_CERT is required when DB_SSL_MODE={ssl_mode}")

        durable = env.parsed("NATS_CONSUMER_DURABLE_NAME", cls.durable_name, _durable)
        decom_durable = env.parsed(
            "NATS_DECOMMISSION_DURABLE_NAME", cls.decommission_durable_name, _durable
        )
        connect_timeout = env.int(
            "NATS_CONNECT_TIMEOUT_SECONDS", round(cls.nats_connect_timeout_s), min=1, max=600
        )
        buffer_size = env.int("GATEWAY_BUFFER_SIZE", cls.gateway_buffer_size, min=1, max=10_000_000)
        tick = env.int("HEARTBEAT_TICK_MS", cls.heartbeat_tick_ms, min=10)
        grace = env.int("HEARTBEAT_GRACE_PERIOD_MS", cls.heartbeat_grace_period_ms, min=0)
        refresh = env.int("ALERT_CONFIG_REFRESH_MS", cls.alert_config_refresh_ms, min=100)
        default_timeout = env.int(
            "ALERT_CONFIG_DEFAULT_TIMEOUT_MS", cls.alert_config_default_timeout_ms, min=1
        )
        max_retries = env.int(
            "ALERT_CONFIG_MAX_RETRIES", cls.alert_config_max_retries, min=0, max=1000
        )
        metrics_addr = env.addr("METRICS_ADDR", cls.metrics_addr)

        batch = env.int("INGEST_BATCH_SIZE", cls.ingest_batch_size, min=1, max=10_000)
        flush = env.int("INGEST_FLUSH_MS", cls.ingest_flush_ms, min=0, max=60_000)
        writers = env.int("INGEST_WRITERS", cls.ingest_writers, min=1, max=64)
        ack_wait = env.int("INGEST_ACK_WAIT_MS", cls.ingest_ack_wait_ms, min=1_000, max=3_600_000)
        max_deliver = env.int("INGEST_MAX_DELIVER", cls.ingest_max_deliver, min=2, max=10_000)
        max_ack_pending = env.int(
            "INGEST_MAX_ACK_PENDING", cls.ingest_max_ack_pending, min=1, max=10_000_000
        )
        if all(isinstance(v, int) for v in (batch, writers, max_ack_pending)):
            needed = batch * (writers + 4)
            if max_ack_pending < needed:
                env.problem(
                    f"INGEST_MAX_ACK_PENDING={max_ack_pending} must be >= "
                    f"INGEST_BATCH_SIZE x (INGEST_WRITERS + 4) = {needed}"
                )
        if isinstance(writers, int) and isinstance(max_conns, int) and max_conns < writers + 1:
            env.problem(f"DB_MAX_CONNS={max_conns} must be >= INGEST_WRITERS + 1 = {writers + 1}")
        deliver = env.choice("INGEST_DELIVER_POLICY", DELIVER_POLICIES, cls.ingest_deliver_policy)
        template = env.parsed("ALERT_SUBJECT_TEMPLATE", cls.alert_subject_template, _alert_template)
        liveness = env.bool("LIVENESS_ENABLED", cls.liveness_enabled)
        # At least 1 s: the holder renews every third of it over a database round trip.
        lease_ttl = env.int(
            "LIVENESS_LEASE_TTL_MS", cls.liveness_lease_ttl_ms, min=1_000, max=600_000
        )
        feed = env.parsed("LIVENESS_FEED_SUBJECT", cls.liveness_feed_subject, _subject)
        check_conc = env.int(
            "LIVENESS_CHECK_CONCURRENCY", cls.liveness_check_concurrency, min=1, max=10_000
        )
        dispatch_conc = env.int(
            "STATUS_DISPATCH_CONCURRENCY", cls.status_dispatch_concurrency, min=1, max=10_000
        )
        quarantine = env.int("DECOMMISSION_QUARANTINE_MS", cls.decommission_quarantine_ms, min=0)
        mgmt_timeout = env.int(
            "MGMT_REQUEST_TIMEOUT_MS", cls.mgmt_request_timeout_ms, min=10, max=600_000
        )
        mgmt_retries = env.int(
            "MGMT_REQUEST_MAX_RETRIES", cls.mgmt_request_max_retries, min=0, max=100
        )
        probe = env.int("DB_PROBE_INTERVAL_MS", cls.db_probe_interval_ms, min=10, max=3_600_000)
        shutdown = env.int("SHUTDOWN_TIMEOUT_MS", cls.shutdown_timeout_ms, min=100, max=600_000)
        env.check()

        return cls(
            nats_url=nats_url,
            nats_tls=nats_tls,
            db_host=db_host,
            db_name=db_name,
            db_user=db_user,
            db_password_file=pw_file,
            db_password=password,
            db_port=db_port,
            db_max_conns=max_conns,
            db_min_conns=min_conns,
            db_ssl_mode=ssl_mode,
            db_ssl_root_cert=root_cert,
            durable_name=durable,
            nats_connect_timeout_s=float(connect_timeout),
            gateway_buffer_size=buffer_size,
            heartbeat_tick_ms=tick,
            heartbeat_grace_period_ms=grace,
            alert_config_refresh_ms=refresh,
            alert_config_default_timeout_ms=default_timeout,
            alert_config_max_retries=max_retries,
            metrics_addr=metrics_addr,
            ingest_batch_size=batch,
            ingest_flush_ms=flush,
            ingest_writers=writers,
            ingest_ack_wait_ms=ack_wait,
            ingest_max_deliver=max_deliver,
            ingest_max_ack_pending=max_ack_pending,
            ingest_deliver_policy=deliver,
            alert_subject_template=template,
            decommission_durable_name=decom_durable,
            liveness_enabled=liveness,
            liveness_lease_ttl_ms=lease_ttl,
            liveness_feed_subject=feed,
            liveness_check_concurrency=check_conc,
            status_dispatch_concurrency=dispatch_conc,
            decommission_quarantine_ms=quarantine,
            mgmt_request_timeout_ms=mgmt_timeout,
            mgmt_request_max_retries=mgmt_retries,
            db_probe_interval_ms=probe,
            shutdown_timeout_ms=shutdown,
        )

    def alert_subject(self, tenant_id: str, gateway_id: str) -> str:
        return self.alert_subject_template.format(tenant_id=tenant_id, gateway_id=gateway_id)
