"""Asking management about a gateway (`internal.mgmt.gateway.get-status`,
docs/contracts.md#management-request-reply): one attempt within a budget, because a
connection is waiting and the server refuses it at its auth timeout. No answer, an
error answer or nonsense all read as None ("management unavailable")."""

from __future__ import annotations

import logging

import nats.errors
from nats.aio.client import Client as NATS

from notip import contracts, natsio
from notip.natsauth.decide import Status, read_status

log = logging.getLogger("notip.natsauth.mgmt")

#: Below this, asking is pointless: the answer could not come back in time.
MIN_BUDGET_S = 0.02


async def ask_status(nc: NATS, tenant_id: str, gateway_id: str, budget_s: float) -> Status | None:
    if budget_s < MIN_BUDGET_S:
        return None
    try:
        data = await natsio.request(
            nc,
            contracts.MGMT_GATEWAY_GET_STATUS,
            contracts.get_status_request(gateway_id, tenant_id),
            timeout=budget_s,
            backoff=(),
        )
    except (natsio.RequestFailed, nats.errors.Error) as exc:
        log.warning("get-status unanswered: %s", exc, extra={"gateway_id": gateway_id})
        return None
    status = read_status(data, gateway_id)
    if status is None:
        log.warning("get-status answer unusable", extra={"gateway_id": gateway_id})
    return status
