"""The permissions table: the gateway template exactly, every service identity has a
row, the rows grant what the daemons actually use (the subjects and durables their
own code builds) and nothing broad."""

from __future__ import annotations

from pathlib import Path

import pytest
from nats.js import api

from notip import contracts, natsio, pki
from notip.consumer import decommission as consumer_decommission
from notip.consumer import durable as consumer_durable
from notip.consumer.settings import Settings as ConsumerSettings
from notip.natsauth import permissions
from notip.natsauth.enforcer import consumer_config as nats_auth_consumer_config
from notip.natsauth.permissions import Permissions
from notip.natsauth.settings import Settings as NatsAuthSettings
from notip.platform.management.consumers import Durable
from notip.platform.management.settings import Settings as MgmtSettings
from notip.simulator import natslink
from notip.simulator.settings import Settings as SimulatorSettings

T, G = "tenant-a", "3b4e9eb2-9d99-48f1-a684-ee7fe70f495e"


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` one token, `>` the rest (one or more)."""
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)


def allowed(subjects: tuple[str, ...], subject: str) -> bool:
    return any(matches(p, subject) for p in subjects)


def test_subject_matcher() -> None:
    assert matches("a.*", "a.b") and matches("a.>", "a.b.c") and not matches("a.>", "a")
    assert not matches("a.*", "a.b.c") and not matches("a.b", "a.c")


def test_gateway_template_is_exactly_the_contract() -> None:
    assert permissions.gateway(T, G) == Permissions(
        publish=(
            f"telemetry.data.{T}.{G}",
            f"command.ack.{T}.{G}",
            f"$JS.API.CONSUMER.CREATE.COMMANDS.gw-{G}.command.gw.{T}.{G}",
            f"$JS.API.CONSUMER.INFO.COMMANDS.gw-{G}",
            f"$JS.API.CONSUMER.MSG.NEXT.COMMANDS.gw-{G}",
            f"$JS.ACK.COMMANDS.gw-{G}.>",
        ),
        subscribe=(f"_INBOX.{G}.>",),
    )


@pytest.mark.parametrize(
    ("tenant", "gateway"), [("a.b", G), ("*", G), (">", G), (T, "x.y"), (T, "*")]
)
def test_gateway_ids_must_be_plain_tokens(tenant: str, gateway: str) -> None:
    with pytest.raises(ValueError, match="subject tokens"):
        permissions.gateway(tenant, gateway)


def test_the_gateway_command_durable_is_what_the_simulator_creates() -> None:
    config = natslink.command_consumer_config(T, G)
    assert config.name == config.durable_name  # nats-py then uses the filtered create
    assert config.durable_name and config.filter_subject
    create = contracts.js_consumer_create(
        contracts.COMMANDS.name, config.durable_name, config.filter_subject
    )
    assert create in permissions.gateway(T, G).publish
    assert contracts.gateway_inbox_prefix(G) + ".>" in permissions.gateway(T, G).subscribe


def test_every_service_identity_has_a_row() -> None:
    assert set(permissions.SERVICES) == set(pki.SERVICES)


@pytest.mark.parametrize("name", sorted(permissions.SERVICES))
def test_no_service_gets_broad_rights(name: str) -> None:
    perms = permissions.SERVICES[name]
    for subject in (*perms.publish, *perms.subscribe):
        assert subject not in (">", "*.>", "$JS.API.>", "$JS.>", "$SYS.>"), subject
    for subject in perms.publish:
        for forbidden in ("STREAM.DELETE", "STREAM.PURGE", "CONSUMER.DELETE", "DURABLE.CREATE"):
            assert forbidden not in subject, subject
        assert not subject.startswith("_INBOX"), "replies go through allow_responses"


def _create_subject(stream: str, config: api.ConsumerConfig) -> str:
    assert config.name == config.durable_name, "nats-py must use the filtered create"
    assert config.durable_name and config.filter_subject
    return contracts.js_consumer_create(stream, config.durable_name, config.filter_subject)


def _durable_rights(perms: Permissions, stream: str, config: api.ConsumerConfig) -> None:
    assert config.durable_name
    for subject in (
        _create_subject(stream, config),
        contracts.js_consumer_info(stream, config.durable_name),
        contracts.js_consumer_next(stream, config.durable_name),
        f"$JS.ACK.{stream}.{config.durable_name}.1.2.3.4.5.6.7",
    ):
        assert allowed(perms.publish, subject), subject


def _consumer_settings() -> ConsumerSettings:
    return ConsumerSettings(
        nats_url="tls://x:4222",
        nats_tls=natsio.TlsFiles(Path("ca")),
        db_host="h",
        db_name="d",
        db_user="u",
        db_password_file=Path("p"),
        db_password="x",
    )


def test_data_consumer_row_covers_its_daemon() -> None:
    perms = permissions.SERVICES["data-consumer"]
    s = _consumer_settings()
    _durable_rights(perms, contracts.TELEMETRY.name, consumer_durable.telemetry_consumer_config(s))
    _durable_rights(
        perms,
        contracts.DECOMMISSION.name,
        consumer_decommission.consumer_config(s.decommission_durable_name),
    )
    for subject in (
        s.alert_subject(T, G),
        "alert.t.gw_offline",  # the tenant-first form management also reads
        contracts.MGMT_ALERT_CONFIGS_LIST,
        contracts.MGMT_GATEWAY_GET_STATUS,
        contracts.MGMT_GATEWAY_UPDATE_STATUS,
        s.liveness_feed_subject,
    ):
        assert allowed(perms.publish, subject), subject
    assert allowed(perms.subscribe, s.liveness_feed_subject)
    assert not allowed(perms.publish, contracts.command_subject(T, G))
    assert not allowed(perms.subscribe, contracts.telemetry_subject(T, G))  # JetStream only


def test_management_row_covers_its_daemon() -> None:
    perms = permissions.SERVICES["management-api"]
    s = MgmtSettings(nats_url="x", nats_tls=natsio.TlsFiles(Path("ca")))
    for stream, name, filt in (
        (contracts.COMMAND_ACKS.name, s.acks_durable, contracts.COMMAND_ACKS_ALL),
        (contracts.ALERTS.name, s.alerts_durable, contracts.ALERTS_ALL),
    ):
        _durable_rights(perms, stream, Durable(stream, name, filt).config())
    for subject in contracts.MGMT_SUBJECTS:
        assert allowed(perms.subscribe, subject)
    assert perms.allow_responses
    assert allowed(perms.publish, contracts.command_subject(T, G))
    assert allowed(perms.publish, contracts.decommissioned_subject(T, G))
    # `notip nats init-streams` runs as management-api: info, create, update each stream.
    for spec in natsio.STREAMS:
        for action in ("INFO", "CREATE", "UPDATE"):
            assert allowed(perms.publish, f"$JS.API.STREAM.{action}.{spec.name}")
        assert not allowed(perms.publish, f"$JS.API.STREAM.DELETE.{spec.name}")
    assert not allowed(perms.publish, contracts.telemetry_subject(T, G))


def test_simulator_row_is_its_decommission_listener() -> None:
    perms = permissions.SERVICES["simulator"]
    durable = SimulatorSettings.decommission_durable
    _durable_rights(
        perms, contracts.DECOMMISSION.name, natslink.decommission_consumer_config(durable)
    )
    assert not allowed(perms.publish, contracts.telemetry_subject(T, G))


def test_provisioning_data_api_and_nats_auth_rows() -> None:
    prov = permissions.SERVICES["provisioning"]
    for subject in (
        contracts.audit_subject(T),
        contracts.MGMT_FACTORY_VALIDATE,
        contracts.MGMT_PROVISIONING_COMPLETE,
    ):
        assert allowed(prov.publish, subject)
    assert not allowed(prov.publish, contracts.MGMT_GATEWAY_GET_STATUS)

    api_perms = permissions.SERVICES["data-api"]
    assert api_perms.publish == ()
    assert allowed(api_perms.subscribe, contracts.telemetry_subject(T, G))
    assert allowed(api_perms.subscribe, contracts.telemetry_gateway_filter(G))  # `tail --gateway`

    auth = permissions.SERVICES["nats-auth"]
    assert auth.allow_responses
    assert contracts.SYS_USER_AUTH in auth.subscribe
    assert allowed(auth.publish, contracts.MGMT_GATEWAY_GET_STATUS)
    durable = NatsAuthSettings.decommission_durable
    _durable_rights(auth, contracts.DECOMMISSION.name, nats_auth_consumer_config(durable))
    assert set(permissions.SYSTEM_USER.publish) == {
        "$SYS.REQ.SERVER.PING.CONNZ",
        "$SYS.REQ.SERVER.*.KICK",
    }


def test_durable_names_are_the_daemons_defaults() -> None:
    s = _consumer_settings()
    mgmt = MgmtSettings(nats_url="x", nats_tls=natsio.TlsFiles(Path("ca")))
    assert (
        s.durable_name,
        s.decommission_durable_name,
        SimulatorSettings.decommission_durable,
        mgmt.acks_durable,
        mgmt.alerts_durable,
        NatsAuthSettings.decommission_durable,
    ) == (
        permissions.CONSUMER_TELEMETRY_DURABLE,
        permissions.CONSUMER_DECOMMISSION_DURABLE,
        permissions.SIMULATOR_DECOMMISSION_DURABLE,
        permissions.MGMT_ACKS_DURABLE,
        permissions.MGMT_ALERTS_DURABLE,
        permissions.NATS_AUTH_DECOMMISSION_DURABLE,
    )
