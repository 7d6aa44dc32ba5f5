"""The simulator's NATS specifics: its durables' configurations (docs/design.md#the-trio-asyncio-bridge).
Publishing and pulling go through the shared adapters (notip.jetstream), subjects
come from notip.contracts, TLS (and each connection's read buffer) from
notip.simulator.tls.
"""

from __future__ import annotations

from nats.aio.client import Client as NATS
from nats.js import api

from notip import contracts

COMMAND_ACK_WAIT_S = 30.0
DECOMMISSION_ACK_WAIT_S = 30.0


# -- durables -------------------------------------------------------------------------


def command_consumer_config(tenant_id: str, gateway_id: str) -> api.ConsumerConfig:
    durable = contracts.command_durable(gateway_id)
    return api.ConsumerConfig(
        # `name` makes nats-py create (and update) it through the filtered-create
        # subject `$JS.API.CONSUMER.CREATE.COMMANDS.gw-{id}.command.gw.{tenant}.{id}`,
        # which the server checks against the body's filter, so a gateway identity can
        # be allowed exactly that subject. With `durable_name` alone nats-py uses the
        # legacy `$JS.API.CONSUMER.DURABLE.CREATE.COMMANDS.gw-{id}`, whose filter is
        # whatever the body says.
        name=durable,
        durable_name=durable,
        filter_subject=contracts.command_subject(tenant_id, gateway_id),
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=COMMAND_ACK_WAIT_S,
        max_ack_pending=1,  # one command at a time, in order
    )


def decommission_consumer_config(durable: str) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        name=durable,  # the filtered create, as for the command durable above
        durable_name=durable,
        filter_subject=contracts.DECOMMISSIONED_ALL,
        deliver_policy=api.DeliverPolicy.NEW,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=DECOMMISSION_ACK_WAIT_S,
    )


async def close(nc: NATS) -> None:
    await nc.close()
