"""Admit or refuse a connection (docs/nats-auth.md#decisions). Sans-io: no NATS, no
clock. Times are epoch seconds passed in; management's answer is passed in.

A decision takes one or two steps:

1. `Decider.decide(identity, now)`: a rejected certificate, a service, or a gateway
   whose status is fresh in the cache is decided at once; otherwise the answer is
   `Ask(tenant, gateway)`: ask management (`internal.mgmt.gateway.get-status`).
2. `Decider.resolve(gateway, status, now)` with what management said
   (`read_status`), or `None` when it did not answer usably in time.

Rules:

- a gateway is admitted only when management says it exists in that tenant, is
  provisioned and is not decommissioned; answers are cached (`CachePolicy`): a
  provisioned or decommissioned gateway for `positive_ttl_s` (30 s), an unknown or
  not yet provisioned one for `negative_ttl_s` (3 s);
- management unreachable (or answering nonsense): a gateway cached as provisioned
  within `stale_limit_s` (10 min) is admitted; anything else is refused with
  `management unavailable`. Nothing is ever admitted without a decision;
- a decommission event (`Decider.decommissioned`) marks the gateway decommissioned
  for good in this instance's cache: an answer that raced with it (management
  publishes the event before it records the decommission) cannot undo it;
- a service certificate gets its row of the permissions table (services are static
  users and normally never reach the callout; one that does gets the same rights);
- the admitted user expires with the certificate (`exp` = notAfter).
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from notip import contracts
from notip.natsauth import permissions
from notip.natsauth.identity import Gateway, Identity, Rejected, Service
from notip.natsauth.jwt import UserSpec

POSITIVE_TTL_S = 30.0
NEGATIVE_TTL_S = 3.0
STALE_LIMIT_S = 600.0
MAX_ENTRIES = 100_000


class Status(enum.Enum):
    """What management says about a gateway of a tenant."""

    PROVISIONED = "provisioned"
    NOT_PROVISIONED = "not_provisioned"
    DECOMMISSIONED = "decommissioned"
    UNKNOWN = "unknown"


# -- outcomes ----------------------------------------------------------------------------

ADMITTED = "admitted"
REFUSED = "refused"

# Reasons: a fixed set (they label `notip_nats_auth_decisions_total`).
PROVISIONED = "provisioned"  # management said so just now
CACHED = "cached"  # a fresh cache entry said so
STALE_CACHE = "stale_cache"  # management unavailable; a cached provisioned gateway
SERVICE = "service"
UNKNOWN_GATEWAY = "unknown_gateway"
NOT_PROVISIONED = "not_provisioned"
DECOMMISSIONED = "decommissioned"
MANAGEMENT_UNAVAILABLE = "management_unavailable"
UNKNOWN_SERVICE = "unknown_service"
CERTIFICATE_EXPIRED = "certificate_expired"
BAD_REQUEST = "bad_request"  # the authorization request itself (service.py)

ADMIT_REASONS = (PROVISIONED, CACHED, STALE_CACHE, SERVICE)
_REFUSALS_BY_STATUS = {
    Status.UNKNOWN: UNKNOWN_GATEWAY,
    Status.NOT_PROVISIONED: NOT_PROVISIONED,
    Status.DECOMMISSIONED: DECOMMISSIONED,
}


def message(reason: str) -> str:
    """The error text sent to the server (it logs it; the client only sees
    `Authorization Violation`): `management unavailable`, `unknown gateway`, …"""
    return reason.replace("_", " ")


@dataclass(frozen=True)
class Admit:
    reason: str
    user: UserSpec
    outcome: str = ADMITTED


@dataclass(frozen=True)
class Refuse:
    reason: str
    outcome: str = REFUSED

    @property
    def message(self) -> str:
        return message(self.reason)


@dataclass(frozen=True)
class Ask:
    """Not decidable from the cache: ask management about this gateway."""

    gateway: Gateway


Decision = Admit | Refuse


# -- management's answer -----------------------------------------------------------------


def read_status(data: bytes, gateway_id: str) -> Status | None:
    """A get-status answer (docs/contracts.md#management-request-reply) → Status; None
    when it says nothing usable (INVALID_PAYLOAD, INTERNAL, another gateway, an answer
    without the `provisioned` flag, not JSON): treated like no answer."""
    try:
        fields = contracts.read_get_status(data, gateway_id)
    except ValueError:
        return None
    if fields.error == contracts.NOT_FOUND:
        return Status.DECOMMISSIONED if fields.decommissioned is True else Status.UNKNOWN
    if fields.error is not None or not isinstance(fields.state, str):
        return None
    if fields.decommissioned is True:
        return Status.DECOMMISSIONED
    if fields.provisioned is True:
        return Status.PROVISIONED
    if fields.provisioned is False:
        return Status.NOT_PROVISIONED
    return None


# -- the cache ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CachePolicy:
    positive_ttl_s: float = POSITIVE_TTL_S
    negative_ttl_s: float = NEGATIVE_TTL_S
    stale_limit_s: float = STALE_LIMIT_S
    max_entries: int = MAX_ENTRIES

    def __post_init__(self) -> None:
        if not (0 <= self.negative_ttl_s and 0 <= self.positive_ttl_s <= self.stale_limit_s):
            raise ValueError("need 0 <= TTLs and positive TTL <= stale limit")
        if self.max_entries < 1:
            raise ValueError("the cache holds at least one entry")

    def ttl(self, status: Status) -> float:
        # Provisioned and decommissioned are settled facts (decommissioning is final);
        # unknown and not-yet-provisioned may change any moment (provisioning runs).
        if status in (Status.PROVISIONED, Status.DECOMMISSIONED):
            return self.positive_ttl_s
        return self.negative_ttl_s


@dataclass
class _Entry:
    status: Status
    at: float
    final: bool = False  # decommissioned by an event: never overwritten


Key = tuple[str, str]  # (tenant, gateway)


class StatusCache:
    """Management's answers per (tenant, gateway), oldest first, bounded."""

    def __init__(self, policy: CachePolicy | None = None) -> None:
        self.policy = policy or CachePolicy()
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def fresh(self, key: Key, now: float) -> Status | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.final or now - entry.at <= self.policy.ttl(entry.status):
            return entry.status
        return None

    def usable_when_stale(self, key: Key, now: float) -> Status | None:
        """The entry, if no older than the stale limit (management unavailable)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.final or now - entry.at <= self.policy.stale_limit_s:
            return entry.status
        return None

    def store(self, key: Key, status: Status, now: float, *, final: bool = False) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry.final:
            return
        self._entries[key] = _Entry(status, now, final)
        self._entries.move_to_end(key)
        while len(self._entries) > self.policy.max_entries:
            self._entries.popitem(last=False)

    def prune(self, now: float) -> int:
        """Drop entries past the stale limit (not final ones); returns how many."""
        limit = self.policy.stale_limit_s
        old = [k for k, e in self._entries.items() if not e.final and now - e.at > limit]
        for key in old:
            del self._entries[key]
        return len(old)


# -- the decider -------------------------------------------------------------------------


def _gateway_user(gw: Gateway) -> UserSpec:
    perms = permissions.gateway(gw.tenant_id, gw.gateway_id)
    return UserSpec(
        name=gw.user_name,
        pub_allow=perms.publish,
        sub_allow=perms.subscribe,
        allow_responses=perms.allow_responses,
        expires_at=gw.not_after,
    )


class Decider:
    def __init__(
        self,
        policy: CachePolicy | None = None,
        services: Mapping[str, permissions.Permissions] = permissions.SERVICES,
    ) -> None:
        self.cache = StatusCache(policy)
        self.services = services

    def decide(self, identity: Identity, now: float) -> Decision | Ask:
        if isinstance(identity, Rejected):
            return Refuse(identity.reason)
        if identity.not_after <= now:
            # The server checked validity at the handshake; a user JWT already expired
            # would be refused anyway, with a less telling log line.
            return Refuse(CERTIFICATE_EXPIRED)
        if isinstance(identity, Service):
            perms = self.services.get(identity.name)
            if perms is None:
                return Refuse(UNKNOWN_SERVICE)
            return Admit(
                SERVICE,
                UserSpec(
                    name=identity.user_name,
                    pub_allow=perms.publish,
                    sub_allow=perms.subscribe,
                    allow_responses=perms.allow_responses,
                    expires_at=identity.not_after,
                ),
            )
        status = self.cache.fresh((identity.tenant_id, identity.gateway_id), now)
        if status is None:
            return Ask(identity)
        return self._by_status(identity, status, CACHED)

    def resolve(self, gateway: Gateway, status: Status | None, now: float) -> Decision:
        """Decide with management's answer (None: no usable answer in time)."""
        key = (gateway.tenant_id, gateway.gateway_id)
        if status is not None:
            self.cache.store(key, status, now)
            # A final (event) entry wins over what management just said.
            settled = self.cache.fresh(key, now) or status
            return self._by_status(gateway, settled, PROVISIONED)
        cached = self.cache.usable_when_stale(key, now)
        if cached is Status.PROVISIONED:
            return self._by_status(gateway, cached, STALE_CACHE)
        return Refuse(MANAGEMENT_UNAVAILABLE)

    def _by_status(self, gateway: Gateway, status: Status, admit_reason: str) -> Decision:
        if status is Status.PROVISIONED:
            return Admit(admit_reason, _gateway_user(gateway))
        return Refuse(_REFUSALS_BY_STATUS[status])

    def decommissioned(self, tenant_id: str, gateway_id: str, now: float) -> None:
        """A decommission event: refuse this gateway from now on, whatever is cached."""
        self.cache.store((tenant_id, gateway_id), Status.DECOMMISSIONED, now, final=True)

    def record(self, tenant_id: str, gateway_id: str, status: Status, now: float) -> None:
        """Management's answer outside a connection's decision (the sweep)."""
        self.cache.store((tenant_id, gateway_id), status, now)

    def still_allowed(self, tenant_id: str, gateway_id: str, now: float) -> bool | None:
        """For the sweep of open connections: False when the cache holds a fresh
        refusal (kick), True when fresh and provisioned, None when management must
        be asked."""
        status = self.cache.fresh((tenant_id, gateway_id), now)
        if status is None:
            return None
        return status is Status.PROVISIONED


def describe(decision: Decision) -> dict[str, Any]:
    """Log fields of a decision."""
    if isinstance(decision, Admit):
        return {"outcome": decision.outcome, "reason": decision.reason, "user": decision.user.name}
    return {"outcome": decision.outcome, "reason": decision.reason}
