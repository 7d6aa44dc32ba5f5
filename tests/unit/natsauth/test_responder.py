"""One request's pure part: open, verify, read; sign and seal the answer."""

from __future__ import annotations

import pytest

from notip.natsauth import decide, jwt
from notip.natsauth.responder import Answerer, Pending, Unreadable
from tests.unit.natsauth.vectors import (
    ACCOUNT_SEED,
    CURVE_SEED,
    SERVER_SEED,
    USER_PUBLIC,
    request_claims,
)

NOW = 1_800_000_001.0
SERVER_XKEY_SEED = jwt.encode_seed(jwt.PREFIX_CURVE, bytes(range(1, 33)))


def _token() -> bytes:
    return jwt.encode(request_claims(), jwt.Signer(SERVER_SEED), iat=1_800_000_000).encode()


def test_plain_request_and_answer() -> None:
    answerer = Answerer(jwt.Signer(ACCOUNT_SEED), None)
    request = answerer.read(Pending(_token(), None, "$SYS._INBOX.x", 0.0), NOW)
    assert request.user_nkey == USER_PUBLIC
    body = answerer.answer(request, decide.Refuse(decide.UNKNOWN_GATEWAY), None, NOW)
    claims = jwt.decode(body.decode(), issuer_prefix=jwt.PREFIX_ACCOUNT, now=NOW)
    assert claims["nats"]["error"] == "unknown gateway"


def test_sealed_request_gets_a_sealed_answer() -> None:
    server = jwt.XKey(SERVER_XKEY_SEED)
    ours = jwt.XKey(CURVE_SEED)
    answerer = Answerer(jwt.Signer(ACCOUNT_SEED), ours)
    sealed = server.seal(_token(), ours.public_key)
    request = answerer.read(Pending(sealed, server.public_key, "r", 0.0), NOW)
    spec = jwt.UserSpec("gw:t:g", ("a",), ("_INBOX.g.>",), expires_at=1_900_000_000)
    body = answerer.answer(request, decide.Admit(decide.PROVISIONED, spec), server.public_key, NOW)
    opened = server.open(body, ours.public_key)
    claims = jwt.decode(opened.decode(), issuer_prefix=jwt.PREFIX_ACCOUNT, now=NOW)
    user = jwt.decode(claims["nats"]["jwt"], issuer_prefix=jwt.PREFIX_ACCOUNT, now=NOW)
    assert user["name"] == "gw:t:g" and user["exp"] == 1_900_000_000


def test_unreadable_requests_are_not_answered() -> None:
    server = jwt.XKey(SERVER_XKEY_SEED)
    ours = jwt.XKey(CURVE_SEED)
    sealed = server.seal(_token(), ours.public_key)
    with pytest.raises(Unreadable, match="no_xkey"):
        Answerer(jwt.Signer(ACCOUNT_SEED), None).read(
            Pending(sealed, server.public_key, "r", 0), NOW
        )
    answerer = Answerer(jwt.Signer(ACCOUNT_SEED), ours)
    with pytest.raises(Unreadable, match="undecodable"):
        answerer.read(Pending(sealed[:-1], server.public_key, "r", 0), NOW)  # corrupt box
    with pytest.raises(Unreadable, match="undecodable"):
        answerer.read(Pending(b"garbage", None, "r", 0), NOW)
    # Addressed to another issuer (another deployment's callout).
    other = Answerer(jwt.Signer(jwt.encode_seed(jwt.PREFIX_ACCOUNT, bytes(32))), None)
    with pytest.raises(Unreadable, match="undecodable"):
        other.read(Pending(_token(), None, "r", 0), NOW)
