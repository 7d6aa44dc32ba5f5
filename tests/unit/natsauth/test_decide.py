"""Admit or refuse, with literal identities, times and management answers."""

from __future__ import annotations

import json

import pytest

from notip.natsauth import decide, permissions
from notip.natsauth.decide import Admit, Ask, CachePolicy, Decider, Refuse, Status
from notip.natsauth.identity import Gateway, Rejected, Service

T, G = "tenant-a", "3b4e9eb2-9d99-48f1-a684-ee7fe70f495e"
NOT_AFTER = 2_000_000_000
GW = Gateway(T, G, NOT_AFTER)
T0 = 1_800_000_000.0


def admitted(decision: object, reason: str) -> Admit:
    assert isinstance(decision, Admit), decision
    assert decision.reason == reason
    return decision


def test_an_admitted_gateway_gets_its_template_and_expires_with_its_certificate() -> None:
    d = Decider()
    assert d.decide(GW, T0) == Ask(GW)
    admit = admitted(d.resolve(GW, Status.PROVISIONED, T0), decide.PROVISIONED)
    perms = permissions.gateway(T, G)
    assert admit.user.name == f"gw:{T}:{G}"
    assert (admit.user.pub_allow, admit.user.sub_allow) == (perms.publish, perms.subscribe)
    assert not admit.user.allow_responses
    assert admit.user.expires_at == NOT_AFTER


def test_positive_answers_are_cached_for_the_positive_ttl() -> None:
    d = Decider(CachePolicy(positive_ttl_s=30, negative_ttl_s=3, stale_limit_s=600))
    d.resolve(GW, Status.PROVISIONED, T0)
    admitted(d.decide(GW, T0 + 30), decide.CACHED)
    assert d.decide(GW, T0 + 30.01) == Ask(GW)
    # Another tenant's gateway with the same id is another key.
    assert d.decide(Gateway("tenant-b", G, NOT_AFTER), T0 + 1) == Ask(
        Gateway("tenant-b", G, NOT_AFTER)
    )


@pytest.mark.parametrize(
    ("status", "reason", "ttl"),
    [
        (Status.UNKNOWN, decide.UNKNOWN_GATEWAY, 3),
        (Status.NOT_PROVISIONED, decide.NOT_PROVISIONED, 3),
        (Status.DECOMMISSIONED, decide.DECOMMISSIONED, 30),  # final: cached like a positive
    ],
)
def test_refusals_and_their_cache_lifetime(status: Status, reason: str, ttl: float) -> None:
    d = Decider(CachePolicy(positive_ttl_s=30, negative_ttl_s=3, stale_limit_s=600))
    assert d.resolve(GW, status, T0) == Refuse(reason)
    assert d.decide(GW, T0 + ttl) == Refuse(reason)
    assert d.decide(GW, T0 + ttl + 0.01) == Ask(GW)


def test_management_unavailable_admits_only_recent_provisioned_gateways() -> None:
    d = Decider(CachePolicy(positive_ttl_s=30, negative_ttl_s=3, stale_limit_s=600))
    # Never seen: refused, never admitted without a decision.
    assert d.resolve(GW, None, T0) == Refuse(decide.MANAGEMENT_UNAVAILABLE)
    assert Refuse(decide.MANAGEMENT_UNAVAILABLE).message == "management unavailable"
    d.resolve(GW, Status.PROVISIONED, T0)
    admitted(d.resolve(GW, None, T0 + 599), decide.STALE_CACHE)
    assert d.resolve(GW, None, T0 + 601) == Refuse(decide.MANAGEMENT_UNAVAILABLE)


@pytest.mark.parametrize("status", [Status.UNKNOWN, Status.NOT_PROVISIONED, Status.DECOMMISSIONED])
def test_management_unavailable_never_admits_a_cached_refusal(status: Status) -> None:
    d = Decider()
    d.resolve(GW, status, T0)
    assert d.resolve(GW, None, T0 + 60) == Refuse(decide.MANAGEMENT_UNAVAILABLE)


def test_a_decommission_event_is_final() -> None:
    d = Decider()
    d.resolve(GW, Status.PROVISIONED, T0)
    d.decommissioned(T, G, T0 + 1)
    assert d.decide(GW, T0 + 2) == Refuse(decide.DECOMMISSIONED)
    # An answer that raced with the event (management records the decommission after
    # publishing it) cannot undo it.
    assert d.resolve(GW, Status.PROVISIONED, T0 + 3) == Refuse(decide.DECOMMISSIONED)
    assert d.resolve(GW, None, T0 + 4) == Refuse(decide.MANAGEMENT_UNAVAILABLE)
    assert d.decide(GW, T0 + 10_000) == Refuse(decide.DECOMMISSIONED)  # no expiry
    assert d.still_allowed(T, G, T0 + 10_000) is False


def test_rejected_certificates_services_and_expiry() -> None:
    d = Decider()
    assert d.decide(Rejected("bad_gateway_san"), T0) == Refuse("bad_gateway_san")
    svc = admitted(d.decide(Service("data-api", NOT_AFTER), T0), decide.SERVICE)
    row = permissions.SERVICES["data-api"]
    assert (svc.user.name, svc.user.pub_allow, svc.user.sub_allow) == (
        "svc:data-api",
        row.publish,
        row.subscribe,
    )
    assert svc.user.expires_at == NOT_AFTER
    assert admitted(
        d.decide(Service("nats-auth", NOT_AFTER), T0), decide.SERVICE
    ).user.allow_responses
    assert d.decide(Service("billing", NOT_AFTER), T0) == Refuse(decide.UNKNOWN_SERVICE)
    assert d.decide(Gateway(T, G, int(T0)), T0) == Refuse(decide.CERTIFICATE_EXPIRED)
    assert d.decide(Service("data-api", int(T0) - 1), T0) == Refuse(decide.CERTIFICATE_EXPIRED)


def test_still_allowed_for_the_sweep() -> None:
    d = Decider(CachePolicy(positive_ttl_s=30, negative_ttl_s=3, stale_limit_s=600))
    assert d.still_allowed(T, G, T0) is None
    d.record(T, G, Status.PROVISIONED, T0)
    assert d.still_allowed(T, G, T0 + 1) is True
    assert d.still_allowed(T, G, T0 + 31) is None
    d.record(T, G, Status.UNKNOWN, T0 + 31)
    assert d.still_allowed(T, G, T0 + 32) is False


def test_the_cache_is_bounded_and_pruned() -> None:
    policy = CachePolicy(positive_ttl_s=30, negative_ttl_s=3, stale_limit_s=600, max_entries=2)
    cache = decide.StatusCache(policy)
    cache.store(("t", "a"), Status.PROVISIONED, T0)
    cache.store(("t", "b"), Status.PROVISIONED, T0 + 1)
    cache.store(("t", "c"), Status.PROVISIONED, T0 + 2)
    assert len(cache) == 2 and cache.fresh(("t", "a"), T0 + 2) is None  # oldest evicted
    cache.store(("t", "b"), Status.DECOMMISSIONED, T0 + 3, final=True)
    assert cache.prune(T0 + 700) == 1  # "c" is stale; the final entry stays
    assert len(cache) == 1 and cache.fresh(("t", "b"), T0 + 700) is Status.DECOMMISSIONED


def test_cache_policy_is_checked() -> None:
    with pytest.raises(ValueError, match="TTL"):
        CachePolicy(positive_ttl_s=60, stale_limit_s=30)
    with pytest.raises(ValueError, match="TTL"):
        CachePolicy(negative_ttl_s=-1)
    with pytest.raises(ValueError, match="one entry"):
        CachePolicy(max_entries=0)


def _answer(**fields: object) -> bytes:
    return json.dumps({"gateway_id": G, **fields}).encode()


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (_answer(state="online", provisioned=True, decommissioned=False), Status.PROVISIONED),
        (_answer(state="paused", provisioned=True, decommissioned=False), Status.PROVISIONED),
        (_answer(state="paused", provisioned=False, decommissioned=False), Status.NOT_PROVISIONED),
        (_answer(state="provisioning", provisioned=False), Status.NOT_PROVISIONED),
        (_answer(error="NOT_FOUND", decommissioned=True), Status.DECOMMISSIONED),
        (_answer(error="NOT_FOUND", decommissioned=False), Status.UNKNOWN),
        (_answer(error="NOT_FOUND"), Status.UNKNOWN),
        (_answer(error="INTERNAL"), None),
        (json.dumps({"error": "INVALID_PAYLOAD"}).encode(), None),
        (_answer(state="online"), None),  # a management without the flag: no decision
        (
            json.dumps({"gateway_id": "other", "state": "online", "provisioned": True}).encode(),
            None,
        ),
        (b"not json", None),
        (b"[1]", None),
    ],
)
def test_reading_managements_answer(data: bytes, status: Status | None) -> None:
    assert decide.read_status(data, G) is status


def test_describe() -> None:
    d = Decider()
    admit = d.resolve(GW, Status.PROVISIONED, T0)
    assert decide.describe(admit) == {
        "outcome": "admitted",
        "reason": "provisioned",
        "user": GW.user_name,
    }
    assert decide.describe(Refuse(decide.UNKNOWN_GATEWAY)) == {
        "outcome": "refused",
        "reason": "unknown_gateway",
    }
