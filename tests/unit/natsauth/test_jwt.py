"""The callout wire format: nkeys, JWTs and xkey boxes, with golden vectors (the
same inputs always give these bytes; interop with nats-server itself is
tests/integration/natsauth)."""

from __future__ import annotations

import base64
import json
from typing import Any

import nacl.signing
import nkeys
import pytest

from notip.natsauth import jwt
from tests.unit.natsauth.vectors import (
    ACCOUNT_PUBLIC,
    ACCOUNT_SEED,
    CURVE_PUBLIC,
    CURVE_SEED,
    GOLDEN_BOX,
    GOLDEN_TOKEN,
    ISSUER,
    PEER_CURVE_PUBLIC,
    RAW,
    SERVER_PUBLIC,
    SERVER_SEED,
    USER_PUBLIC,
    USER_SEED,
    request_claims,
)


def _claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=="))
    return result


# -- keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "seed", "public"),
    [
        (jwt.PREFIX_ACCOUNT, ACCOUNT_SEED, ACCOUNT_PUBLIC),
        (jwt.PREFIX_USER, USER_SEED, USER_PUBLIC),
        (jwt.PREFIX_SERVER, SERVER_SEED, SERVER_PUBLIC),
        (jwt.PREFIX_CURVE, CURVE_SEED, CURVE_PUBLIC),
    ],
    ids=["account", "user", "server", "curve"],
)
def test_seed_and_public_key_golden(prefix: int, seed: bytes, public: str) -> None:
    assert jwt.encode_seed(prefix, RAW) == seed
    assert jwt.decode_seed(seed) == (prefix, RAW)
    assert jwt.decode_seed(seed + b"\n") == (prefix, RAW)  # the file format
    assert jwt.public_key_of(seed) == public
    if prefix != jwt.PREFIX_CURVE:  # ed25519: the signing key's verify key
        assert jwt.decode_public(public, prefix) == bytes(nacl.signing.SigningKey(RAW).verify_key)


@pytest.mark.parametrize("seed", [ACCOUNT_SEED, USER_SEED, SERVER_SEED])
def test_signing_keys_agree_with_the_official_nkeys_package(seed: bytes) -> None:
    ours = jwt.Signer(seed)
    theirs = nkeys.from_seed(bytearray(seed))
    assert ours.public_key == theirs.public_key.decode()
    assert ours.sign(b"data") == theirs.sign(b"data")


def test_curve_public_key_is_nacls() -> None:
    import nacl.public

    raw_public = bytes(nacl.public.PrivateKey(RAW).public_key)
    assert jwt.decode_public(CURVE_PUBLIC, jwt.PREFIX_CURVE) == raw_public


def test_new_seeds_are_of_their_type_and_random() -> None:
    a, b = jwt.new_seed(jwt.PREFIX_ACCOUNT), jwt.new_seed(jwt.PREFIX_ACCOUNT)
    assert a.endswith(b"\n") and a.startswith(b"SA") and a != b
    assert jwt.new_seed(jwt.PREFIX_CURVE).startswith(b"SX")
    assert jwt.new_seed(jwt.PREFIX_USER, entropy=lambda n: RAW[:n]) == USER_SEED + b"\n"


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"not base32!",
        ACCOUNT_SEED[:-1] + (b"A" if ACCOUNT_SEED[-1:] != b"A" else b"B"),  # checksum
        ACCOUNT_PUBLIC.encode(),  # a public key is not a seed
    ],
)
def test_bad_seeds_are_refused(bad: bytes) -> None:
    with pytest.raises(jwt.NkeyError):
        jwt.decode_seed(bad)


def test_public_keys_are_checked_for_type_and_checksum() -> None:
    with pytest.raises(jwt.NkeyError, match="expected type"):
        jwt.decode_public(USER_PUBLIC, jwt.PREFIX_ACCOUNT)
    corrupt = USER_PUBLIC[:10] + ("A" if USER_PUBLIC[10] != "A" else "B") + USER_PUBLIC[11:]
    with pytest.raises(jwt.NkeyError, match="checksum"):
        jwt.decode_public(corrupt, jwt.PREFIX_USER)
    with pytest.raises(jwt.NkeyError):
        jwt.Signer(CURVE_SEED)  # a curve key does not sign
    with pytest.raises(jwt.NkeyError):
        jwt.XKey(ACCOUNT_SEED)


# -- JWTs ------------------------------------------------------------------------------


def test_encode_golden_vector() -> None:
    token = jwt.encode(
        {"sub": "x", "nats": {"type": "user", "version": 2}},
        jwt.Signer(ACCOUNT_SEED),
        iat=1_800_000_000,
    )
    assert token == GOLDEN_TOKEN
    h, p, s = token.split(".")
    assert json.loads(base64.urlsafe_b64decode(h + "==")) == {"typ": "JWT", "alg": "ed25519-nkey"}
    claims = _claims_of(token)
    assert claims["iss"] == ACCOUNT_PUBLIC and claims["iat"] == 1_800_000_000
    # The signature is plain ed25519 over "header.payload" by the key in `iss`.
    verify_key = nacl.signing.VerifyKey(jwt.decode_public(ACCOUNT_PUBLIC, jwt.PREFIX_ACCOUNT))
    verify_key.verify(f"{h}.{p}".encode(), base64.urlsafe_b64decode(s + "=="))


def test_decode_round_trip_and_refusals() -> None:
    signer = jwt.Signer(ACCOUNT_SEED)
    token = jwt.encode({"sub": "x", "exp": 100}, signer, iat=50)
    assert jwt.decode(token, issuer_prefix=jwt.PREFIX_ACCOUNT, now=99)["sub"] == "x"
    with pytest.raises(jwt.JwtError, match="expired"):
        jwt.decode(token, issuer_prefix=jwt.PREFIX_ACCOUNT, now=101)
    with pytest.raises(jwt.JwtError, match="signature or issuer"):
        jwt.decode(token, issuer_prefix=jwt.PREFIX_SERVER, now=0)  # signed by an account key
    h, p, s = token.split(".")
    forged = base64.urlsafe_b64encode(
        json.dumps({**_claims_of(token), "sub": "y"}).encode()
    ).decode()
    with pytest.raises(jwt.JwtError, match="signature"):
        jwt.decode(f"{h}.{forged.rstrip('=')}.{s}", issuer_prefix=jwt.PREFIX_ACCOUNT, now=0)
    for bad in ("", "a.b", "a.b.c.d", "!!.??.**"):
        with pytest.raises(jwt.JwtError, match="malformed"):
            jwt.decode(bad, issuer_prefix=jwt.PREFIX_ACCOUNT, now=0)
    other_alg = base64.urlsafe_b64encode(b'{"typ":"JWT","alg":"HS256"}').decode().rstrip("=")
    with pytest.raises(jwt.JwtError, match="alg"):
        jwt.decode(f"{other_alg}.{p}.{s}", issuer_prefix=jwt.PREFIX_ACCOUNT, now=0)


# -- xkeys -----------------------------------------------------------------------------


def test_xkey_golden_box_and_round_trip() -> None:
    ours = jwt.XKey(CURVE_SEED)
    peer = jwt.XKey(jwt.encode_seed(jwt.PREFIX_CURVE, bytes(range(1, 33))))
    assert peer.public_key == PEER_CURVE_PUBLIC
    assert ours.seal(b"hello", PEER_CURVE_PUBLIC, nonce=bytes(24)) == GOLDEN_BOX
    assert peer.open(GOLDEN_BOX, CURVE_PUBLIC) == b"hello"
    sealed = ours.seal(b"again", PEER_CURVE_PUBLIC)
    assert sealed.startswith(b"xkv1") and sealed != ours.seal(b"again", PEER_CURVE_PUBLIC)
    assert peer.open(sealed, CURVE_PUBLIC) == b"again"


def test_xkey_refuses_what_it_cannot_open() -> None:
    ours = jwt.XKey(CURVE_SEED)
    third = jwt.XKey(jwt.encode_seed(jwt.PREFIX_CURVE, bytes(range(2, 34))))
    with pytest.raises(jwt.JwtError, match="does not open"):
        third.open(GOLDEN_BOX, CURVE_PUBLIC)  # sealed for another key
    with pytest.raises(jwt.JwtError, match="xkv1"):
        ours.open(b"plain JWT", PEER_CURVE_PUBLIC)
    with pytest.raises(jwt.JwtError, match="does not open"):
        ours.open(GOLDEN_BOX, USER_PUBLIC)  # not a curve key


# -- the authorization request and the answers -----------------------------------------


def test_request_is_read_and_checked() -> None:
    token = jwt.encode(request_claims(), jwt.Signer(SERVER_SEED), iat=1_800_000_000)
    req = jwt.decode_auth_request(token, issuer=ISSUER, now=1_800_000_001)
    assert req == jwt.AuthRequest(
        server_id=SERVER_PUBLIC,
        server_name="n1",
        user_nkey=USER_PUBLIC,
        client_id=16,
        client_name="gw",
        client_host="127.0.0.1",
        verified_chains=(("LEAF", "CA"),),
        expires_at=1_800_000_006.0,
    )
    # Signed by an account key, not a server's: not a request from the server.
    forged = jwt.encode(request_claims(), jwt.Signer(ACCOUNT_SEED), iat=1_800_000_000)
    with pytest.raises(jwt.JwtError):
        jwt.decode_auth_request(forged, issuer=ISSUER, now=1_800_000_001)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"aud": "something-else"}, "not addressed"),
        ({"sub": "AOTHERISSUER"}, "another issuer"),
        ({"nats": {**request_claims()["nats"], "type": "user"}}, "not an authorization request"),
        ({"nats": {**request_claims()["nats"], "user_nkey": "nope"}}, "user_nkey"),
        (
            {"nats": {**request_claims()["nats"], "server_id": {"id": "NOTTHESIGNER"}}},
            "server it names",
        ),
    ],
)
def test_request_field_checks(change: dict[str, Any], match: str) -> None:
    claims = {**request_claims(), **change, "iss": SERVER_PUBLIC}
    with pytest.raises(jwt.JwtError, match=match):
        jwt.read_auth_request(claims, issuer=ISSUER)


def test_request_without_verified_chain_has_none() -> None:
    claims = {**request_claims(client_tls={"certs": ["UNVERIFIED"]}), "iss": SERVER_PUBLIC}
    assert jwt.read_auth_request(claims, issuer=ISSUER).verified_chains == ()


def _request() -> jwt.AuthRequest:
    return jwt.read_auth_request({**request_claims(), "iss": SERVER_PUBLIC}, issuer=ISSUER)


def test_user_claims() -> None:
    spec = jwt.UserSpec("gw:t:g", ("a.b",), ("_INBOX.g.>",), expires_at=1_900_000_000)
    assert jwt.user_claims(USER_PUBLIC, spec) == {
        "sub": USER_PUBLIC,
        "aud": "$G",
        "name": "gw:t:g",
        "exp": 1_900_000_000,
        "nats": {
            "pub": {"allow": ["a.b"]},
            "sub": {"allow": ["_INBOX.g.>"]},
            "subs": -1,
            "data": -1,
            "payload": -1,
            "type": "user",
            "version": 2,
        },
    }
    quiet = jwt.UserSpec("svc:x", (), ("telemetry.data.>",), allow_responses=True)
    claims = jwt.user_claims(USER_PUBLIC, quiet, account="APP")
    assert claims["nats"]["pub"] == {"deny": [">"]}  # an empty allow list means "all"
    assert claims["nats"]["resp"] == {"max": 1, "ttl": 0}
    assert claims["aud"] == "APP" and "exp" not in claims


def test_answers_admit_or_refuse() -> None:
    issuer = jwt.Signer(ACCOUNT_SEED)
    spec = jwt.UserSpec("gw:t:g", ("a.b",), ("_INBOX.g.>",), expires_at=1_900_000_000)
    admit = jwt.decode(
        jwt.encode_answer(_request(), issuer, iat=1_800_000_000, user=spec),
        issuer_prefix=jwt.PREFIX_ACCOUNT,
        now=1_800_000_000,
    )
    assert admit["sub"] == USER_PUBLIC and admit["aud"] == SERVER_PUBLIC
    assert admit["nats"]["type"] == "authorization_response" and admit["nats"]["version"] == 2
    user = jwt.decode(admit["nats"]["jwt"], issuer_prefix=jwt.PREFIX_ACCOUNT, now=1_800_000_000)
    assert user["iss"] == ISSUER and user["sub"] == USER_PUBLIC and user["name"] == "gw:t:g"
    refuse = _claims_of(jwt.encode_answer(_request(), issuer, iat=1, error="unknown gateway"))
    assert refuse["nats"] == {
        "type": "authorization_response",
        "version": 2,
        "error": "unknown gateway",
    }
    with pytest.raises(ValueError, match="either"):
        jwt.response_claims(_request())
    with pytest.raises(ValueError, match="either"):
        jwt.response_claims(_request(), user_jwt="x", error="y")
