"""THE permissions table (docs/contracts.md#permissions-by-identity): what each identity may
publish and subscribe on NATS. `notip nats conf` writes the service rows as the static
users' `permissions` (`natsconf.py`); the auth service puts the gateway row into the
user JWT of every gateway it admits (`decide.py`). Subjects come from
`notip.contracts`.

How each service's row was derived, from what the daemon does on the wire:

- every JetStream publish waits for a PubAck, every request for its reply, every
  pull for its messages: all on the connection's inbox (nats-py `_INBOX.<nuid>…`),
  hence `_INBOX.>` for every service that does any of them;
- a durable pull consumer needs four subjects (`durable_subjects`): the filtered
  create (every daemon sets `name` = durable name and one filter, so nats-py creates
  and updates through it; the legacy `DURABLE.CREATE` subject, which carries no
  filter, is never allowed), its info (the create-or-update starts with it; the
  consumer's lag probe), its pull requests and the acks of its messages;
- a responder answers on the requester's inbox: `allow_responses` (one reply per
  request received), never a publish permission on `_INBOX.>`.

| identity | what it does (module) |
|---|---|
| management-api | answers the five `internal.mgmt.*` requests (platform/management/responders.py); publishes commands and decommission events (core.py); its durables on COMMAND_ACKS and ALERTS (consumers.py); `notip nats init-streams` and the stream bootstrap of `notip dev` and the tests run as it (natsio.init_streams: stream INFO, CREATE, UPDATE) |
| data-consumer | its TELEMETRY and DECOMMISSION durables (consumer/durable.py, decommission.py); gw_offline alerts (owner.py; both subject forms management reads); get-status, update-status, alert-configs.list (mgmt.py); the liveness feed, published by ingest-only instances and subscribed by the owner (feed.py) |
| simulator | its own connection only: the DECOMMISSION durable `simulator-decommission` (simulator/decommission.py). Gateways connect with their own certificates |
| provisioning | factory.validate and provisioning.complete requests, audit events on `log.audit.{tenantId}` (platform/provisioning) |
| data-api | `notip tail`: a core subscription to telemetry (tail.py); publishes nothing |
| nats-auth | answers `$SYS.REQ.USER.AUTH` (allow_responses), asks get-status, its DECOMMISSION durable `nats-auth-decommission` (natsauth/service.py) |

Durable names are the daemons' defaults (pinned by tests/unit/natsauth/test_permissions.py):
a deployment that renames one through its environment must change this table too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from notip import contracts
from notip.natsauth.identity import GATEWAY_ID, TENANT_TOKEN


@dataclass(frozen=True)
class Permissions:
    """Allow lists (anything not listed is refused; an empty list refuses all)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    #: May publish one reply to the reply subject of each message it receives.
    allow_responses: bool = False


def durable_subjects(stream: str, durable: str, filter_subject: str) -> tuple[str, ...]:
    """Create (filtered, exactly this consumer), read, pull from and ack one durable."""
    return (
        contracts.js_consumer_create(stream, durable, filter_subject),
        contracts.js_consumer_info(stream, durable),
        contracts.js_consumer_next(stream, durable),
        contracts.js_consumer_acks(stream, durable),
    )


# -- gateways ----------------------------------------------------------------------------


def gateway(tenant_id: str, gateway_id: str) -> Permissions:
    """Gateway G of tenant T: its telemetry and command acks, its own command durable
    `gw-G` on COMMANDS (created only with the filter `command.gw.T.G`), and replies
    under its own inbox prefix `_INBOX.G` (part of the gateway contract). Nothing
    else: no other gateway's or tenant's subjects, no wildcard subscription outside
    its inbox, no stream or other consumer API."""
    if not TENANT_TOKEN.fullmatch(tenant_id) or not GATEWAY_ID.fullmatch(gateway_id):
        # Both become subject tokens: a dot or a wildcard would widen the grant.
        raise ValueError("tenant and gateway ids must be plain subject tokens")
    durable = contracts.command_durable(gateway_id)
    return Permissions(
        publish=(
            contracts.telemetry_subject(tenant_id, gateway_id),
            contracts.command_ack_subject(tenant_id, gateway_id),
            *durable_subjects(
                contracts.COMMANDS.name, durable, contracts.command_subject(tenant_id, gateway_id)
            ),
        ),
        subscribe=(f"{contracts.gateway_inbox_prefix(gateway_id)}.>",),
    )


# -- services ----------------------------------------------------------------------------

#: The daemons' default durable names (their settings' defaults).
MGMT_ACKS_DURABLE = "management-api-command-acks"
MGMT_ALERTS_DURABLE = "management-api-alerts"
CONSUMER_TELEMETRY_DURABLE = "data-consumer-telemetry"
CONSUMER_DECOMMISSION_DURABLE = "data-consumer-decommission-listener"
SIMULATOR_DECOMMISSION_DURABLE = "simulator-decommission"
NATS_AUTH_DECOMMISSION_DURABLE = "nats-auth-decommission"

#: The gw_offline alert subjects: the contract's form (ALERT_SUBJECT_TEMPLATE's
#: default) and the tenant-first form, the two management reads.
GW_OFFLINE_SUBJECTS = (
    contracts.GW_OFFLINE_ALERT_TEMPLATE.format(tenant_id="*"),
    f"alert.*.{contracts.GW_OFFLINE}",
)

_STREAM_ADMIN = tuple(
    contracts.js_stream_api(action, stream.name)
    for stream in contracts.STREAMS
    for action in ("INFO", "CREATE", "UPDATE")
)

MANAGEMENT = Permissions(
    publish=(
        contracts.command_subject("*", "*"),
        contracts.decommissioned_subject("*", "*"),
        *durable_subjects(
            contracts.COMMAND_ACKS.name, MGMT_ACKS_DURABLE, contracts.COMMAND_ACKS_ALL
        ),
        *durable_subjects(contracts.ALERTS.name, MGMT_ALERTS_DURABLE, contracts.ALERTS_ALL),
        *_STREAM_ADMIN,
    ),
    subscribe=(*contracts.MGMT_SUBJECTS, contracts.INBOX_ALL),
    allow_responses=True,
)

DATA_CONSUMER = Permissions(
    publish=(
        *GW_OFFLINE_SUBJECTS,
        contracts.MGMT_ALERT_CONFIGS_LIST,
        contracts.MGMT_GATEWAY_GET_STATUS,
        contracts.MGMT_GATEWAY_UPDATE_STATUS,
        contracts.LIVENESS_FEED_SUBJECT,
        *durable_subjects(
            contracts.TELEMETRY.name, CONSUMER_TELEMETRY_DURABLE, contracts.TELEMETRY_ALL
        ),
        *durable_subjects(
            contracts.DECOMMISSION.name,
            CONSUMER_DECOMMISSION_DURABLE,
            contracts.DECOMMISSIONED_ALL,
        ),
    ),
    subscribe=(contracts.LIVENESS_FEED_SUBJECT, contracts.INBOX_ALL),
)

SIMULATOR = Permissions(
    publish=durable_subjects(
        contracts.DECOMMISSION.name, SIMULATOR_DECOMMISSION_DURABLE, contracts.DECOMMISSIONED_ALL
    ),
    subscribe=(contracts.INBOX_ALL,),
)

PROVISIONING = Permissions(
    publish=(
        contracts.audit_subject("*"),
        contracts.MGMT_FACTORY_VALIDATE,
        contracts.MGMT_PROVISIONING_COMPLETE,
    ),
    subscribe=(contracts.INBOX_ALL,),
)

DATA_API = Permissions(publish=(), subscribe=(contracts.TELEMETRY_ALL,))

NATS_AUTH = Permissions(
    publish=(
        contracts.MGMT_GATEWAY_GET_STATUS,
        *durable_subjects(
            contracts.DECOMMISSION.name,
            NATS_AUTH_DECOMMISSION_DURABLE,
            contracts.DECOMMISSIONED_ALL,
        ),
    ),
    subscribe=(contracts.SYS_USER_AUTH, contracts.INBOX_ALL),
    allow_responses=True,
)

#: Every service identity (certificate `CN=<name>,O=notip`) and its permissions.
SERVICES: Mapping[str, Permissions] = MappingProxyType(
    {
        "management-api": MANAGEMENT,
        "data-consumer": DATA_CONSUMER,
        "provisioning": PROVISIONING,
        "simulator": SIMULATOR,
        "data-api": DATA_API,
        "nats-auth": NATS_AUTH,
    }
)

#: The auth service's user in the system account: find a gateway's connections on
#: every server and close them.
SYSTEM_USER = Permissions(
    publish=(contracts.SYS_CONNZ_ALL, contracts.SYS_KICK_ANY),
    subscribe=(contracts.INBOX_ALL,),
)
