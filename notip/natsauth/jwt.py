"""The wire format of NATS auth callout (docs/nats-auth.md#the-callout-protocol): nkeys,
xkey boxes and the JWTs of the authorization request, the authorization response and
the user it admits. Pure: no I/O and no clock (times are arguments); the only
randomness is key generation and box nonces, both injectable for tests.

What nats-server (jwt v2) expects, pinned against nats-server 2.15.1:

- a JWT is `base64url(header).base64url(claims).base64url(signature)` without
  padding, header `{"typ":"JWT","alg":"ed25519-nkey"}`, the signature an ed25519
  signature over the ASCII `header.claims` by the key named in `iss`;
- the request is signed by the server's own nkey (`N…`, its `server_id.id`), its `sub`
  is our issuer's public key and its `aud` is `nats-authorization-request`;
- the response is signed by the issuer account key (`A…`, `auth_callout.issuer`),
  `sub` = the request's `user_nkey`, `aud` = the server id, and carries either the
  user JWT or an error; `nats.version: 2` is required in both JWTs (the server refuses
  version 0), `jti` and `iat` are not checked (we still set them as jwt v2 does);
- with `auth_callout.xkey` set, the server seals the request to our curve key
  (`X…`) and names its own one-off key in the `Nats-Server-Xkey` header; a box is
  `b"xkv1" + 24-byte nonce + NaCl box`. We seal the answer back to that key.

Why this is written here rather than taken from a library: the official `nkeys`
package (used below for ed25519 seeds and signing) has no key generation and no curve
(xkey) keys. `nats-jwt` 0.2.2 covers operator/account/user JWTs but marks
authorization requests and responses as not supported, pins `pytz<2025` and pulls in
pycryptodome, dacite and dataclasses-json. `nats-callout` 0.1.1 (a single release by
one author) pins the beta `adaptix==3.0.0b11`, has no xkey support, hard-codes the
user's expiry (one hour) and name (its nkey), and crashed on the first request when
run as its README shows. The protocol is small and every detail above was pinned by
running it against the server, so we own these lines (unit-tested with golden
vectors, and end to end in tests/integration/natsauth).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.public
import nacl.signing
import nkeys

Claims = dict[str, Any]

#: Public-key prefix bytes (the first base32 character of an encoded key).
PREFIX_ACCOUNT: int = nkeys.PREFIX_BYTE_ACCOUNT  # 'A'
PREFIX_USER: int = nkeys.PREFIX_BYTE_USER  # 'U'
PREFIX_SERVER: int = nkeys.PREFIX_BYTE_SERVER  # 'N'
PREFIX_CURVE = 23 << 3  # 'X': not in the nkeys package
_PREFIX_SEED: int = nkeys.PREFIX_BYTE_SEED  # 'S'

HEADER: Mapping[str, str] = {"typ": "JWT", "alg": "ed25519-nkey"}
XKV1 = b"xkv1"
NONCE_BYTES = 24
XKEY_HEADER = "Nats-Server-Xkey"
REQUEST_AUDIENCE = "nats-authorization-request"
REQUEST_TYPE = "authorization_request"
RESPONSE_TYPE = "authorization_response"
JWT_VERSION = 2
#: The global account: where callout users land when auth_callout names no account.
GLOBAL_ACCOUNT = "$G"


class NkeyError(ValueError):
    """A seed or public key that is malformed, corrupt or of the wrong type."""


class JwtError(ValueError):
    """A JWT that is malformed, not signed by the key it names, or expired."""


# -- nkey encoding ---------------------------------------------------------------------


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=")


def _unb32(text: str | bytes) -> bytes:
    data = text.encode("ascii") if isinstance(text, str) else bytes(text)
    try:
        return base64.b32decode(data + b"=" * (-len(data) % 8))
    except (binascii.Error, ValueError) as exc:
        raise NkeyError("not base32") from exc


def _crc(data: bytes) -> bytes:
    crc: int = nkeys.crc16(bytearray(data))
    return crc.to_bytes(2, "little")


def encode_public(prefix: int, raw: bytes) -> str:
    """A 32-byte public key as an nkey string (`A…`, `U…`, `N…`, `X…`)."""
    if len(raw) != 32:
        raise NkeyError("a public key is 32 bytes")
    body = bytes([prefix]) + raw
    return _b32(body + _crc(body))


def decode_public(key: str, prefix: int) -> bytes:
    """The 32 raw bytes of an nkey public key of type `prefix` (checksum verified)."""
    raw = _unb32(key)
    body, crc = raw[:-2], raw[-2:]
    if len(body) != 33 or _crc(body) != crc:
        raise NkeyError("bad public key checksum or length")
    if body[0] != prefix:
        raise NkeyError(f"not a public key of the expected type (got {key[:1]!r})")
    return body[1:]


def encode_seed(prefix: int, raw: bytes) -> bytes:
    """A 32-byte private seed as an nkey seed (`SA…`, `SU…`, `SX…`)."""
    if len(raw) != 32:
        raise NkeyError("a seed is 32 bytes")
    body = bytes([_PREFIX_SEED | prefix >> 5, (31 & prefix) << 3]) + raw
    return _b32(body + _crc(body)).encode("ascii")


def decode_seed(seed: bytes | str) -> tuple[int, bytes]:
    """(type prefix, 32 raw bytes) of an nkey seed; surrounding blanks ignored."""
    text = seed.strip() if isinstance(seed, bytes) else seed.strip().encode("ascii")
    raw = _unb32(text)
    body, crc = raw[:-2], raw[-2:]
    if len(body) != 34 or _crc(body) != crc:
        raise NkeyError("bad seed checksum or length")
    if body[0] & 248 != _PREFIX_SEED:
        raise NkeyError("not a seed")
    prefix = ((body[0] & 7) << 5) | ((body[1] & 248) >> 3)
    return prefix, body[2:]


def new_seed(prefix: int, entropy: Callable[[int], bytes] = os.urandom) -> bytes:
    """A fresh seed of the given type, one line with its newline (the file format)."""
    return encode_seed(prefix, entropy(32)) + b"\n"


# -- signing keys (ed25519) ------------------------------------------------------------


class Signer:
    """An account or user nkey that signs JWTs (the callout issuer)."""

    def __init__(self, seed: bytes | str) -> None:
        prefix, raw = decode_seed(seed)
        if prefix not in (PREFIX_ACCOUNT, PREFIX_USER, PREFIX_SERVER):
            raise NkeyError("not a signing (account, user or server) seed")
        self._key = nacl.signing.SigningKey(raw)
        self.public_key = encode_public(prefix, bytes(self._key.verify_key))

    def sign(self, data: bytes) -> bytes:
        return bytes(self._key.sign(data).signature)


def public_key_of(seed: bytes | str) -> str:
    """The public key (`A…`, `U…`, `N…` or `X…`) of a seed."""
    prefix, raw = decode_seed(seed)
    if prefix == PREFIX_CURVE:
        return encode_public(PREFIX_CURVE, bytes(nacl.public.PrivateKey(raw).public_key))
    return Signer(seed).public_key


def verify(public_key: str, prefix: int, data: bytes, signature: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(decode_public(public_key, prefix)).verify(data, signature)
    except (NkeyError, nacl.exceptions.CryptoError):
        return False
    return True


# -- xkeys (curve25519 boxes) ----------------------------------------------------------


class XKey:
    """Our curve key (`auth_callout.xkey`): opens the server's sealed requests and
    seals the answers to the server's one-off key."""

    def __init__(self, seed: bytes | str) -> None:
        prefix, raw = decode_seed(seed)
        if prefix != PREFIX_CURVE:
            raise NkeyError("not an xkey (curve) seed")
        self._private = nacl.public.PrivateKey(raw)
        self.public_key = encode_public(PREFIX_CURVE, bytes(self._private.public_key))

    def _box(self, peer: str) -> nacl.public.Box:
        return nacl.public.Box(
            self._private, nacl.public.PublicKey(decode_public(peer, PREFIX_CURVE))
        )

    def open(self, data: bytes, sender: str) -> bytes:
        if not data.startswith(XKV1) or len(data) < len(XKV1) + NONCE_BYTES:
            raise JwtError("not an xkv1 box")
        nonce = data[len(XKV1) : len(XKV1) + NONCE_BYTES]
        try:
            return bytes(self._box(sender).decrypt(data[len(XKV1) + NONCE_BYTES :], nonce))
        except (NkeyError, nacl.exceptions.CryptoError) as exc:
            raise JwtError("the box does not open with this key pair") from exc

    def seal(self, data: bytes, recipient: str, nonce: bytes | None = None) -> bytes:
        """`nonce` only for golden tests: a box's nonce must never repeat."""
        nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
        sealed = self._box(recipient).encrypt(data, nonce)
        return XKV1 + nonce + bytes(sealed.ciphertext)


# -- JWTs ------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def encode(claims: Mapping[str, Any], signer: Signer, *, iat: int) -> str:
    """Sign `claims` (plus `iss`, `iat` and `jti`) with `signer`. `jti` is jwt v2's:
    base32 of SHA-512/256 over the claims serialised with an empty `jti`."""
    body: Claims = {**claims, "iss": signer.public_key, "iat": iat, "jti": ""}
    body["jti"] = base64.b32encode(hashlib.new("sha512_256", _dumps(body)).digest()).decode()
    body["jti"] = body["jti"].rstrip("=")
    signing_input = f"{_b64(_dumps(dict(HEADER)))}.{_b64(_dumps(body))}"
    return f"{signing_input}.{_b64(signer.sign(signing_input.encode('ascii')))}"


def decode(token: str, *, issuer_prefix: int, now: float) -> Claims:
    """The claims of a JWT signed by the key in its `iss` (which must be of type
    `issuer_prefix`) and not expired at `now`; JwtError otherwise."""
    try:
        h, p, s = token.split(".")
        header = json.loads(_unb64(h))
        claims = json.loads(_unb64(p))
        signature = _unb64(s)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise JwtError("malformed JWT") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JwtError("malformed JWT")
    if header.get("alg") != HEADER["alg"]:
        raise JwtError(f"unexpected alg {header.get('alg')!r}")
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not verify(
        issuer, issuer_prefix, f"{h}.{p}".encode("ascii"), signature
    ):
        raise JwtError("bad signature or issuer")
    exp = claims.get("exp")
    if isinstance(exp, int | float) and exp < now:
        raise JwtError("expired")
    return claims


# -- the authorization request ---------------------------------------------------------


@dataclass(frozen=True)
class AuthRequest:
    """What we use of an authorization request (docs/nats-auth.md#the-callout-protocol)."""

    #: The server's public key: `iss` of the request, `aud` of our response.
    server_id: str
    server_name: str
    #: The one-off user key the server made for this connection: `sub` of our answers.
    user_nkey: str
    #: The connection id on that server (CONNZ `cid`, KICK).
    client_id: int | None
    client_name: str
    client_host: str
    #: Chains the server verified against its CA, leaf first (PEM). Empty without
    #: `verify` (never fall back to the unverified `certs`).
    verified_chains: tuple[tuple[str, ...], ...]
    #: The server's deadline for our answer (its auth timeout), epoch seconds.
    expires_at: float | None


def _text(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def _chains(tls: Any) -> tuple[tuple[str, ...], ...]:
    if not isinstance(tls, dict):
        return ()
    chains = tls.get("verified_chains")
    if not isinstance(chains, list):
        return ()
    return tuple(
        tuple(pem for pem in chain if isinstance(pem, str))
        for chain in chains
        if isinstance(chain, list)
    )


def read_auth_request(claims: Mapping[str, Any], *, issuer: str) -> AuthRequest:
    """The request's fields, checked: addressed to `issuer` (our account key), signed
    by the server it names, of the right type; JwtError otherwise."""
    nats = claims.get("nats")
    if not isinstance(nats, dict) or nats.get("type") != REQUEST_TYPE:
        raise JwtError("not an authorization request")
    if claims.get("aud") != REQUEST_AUDIENCE:
        raise JwtError("not addressed to an auth callout")
    if claims.get("sub") != issuer:
        raise JwtError("addressed to another issuer")
    server = nats.get("server_id")
    if not isinstance(server, dict) or server.get("id") != claims.get("iss"):
        raise JwtError("not signed by the server it names")
    user_nkey = _text(nats, "user_nkey")
    try:
        decode_public(user_nkey, PREFIX_USER)
    except NkeyError as exc:
        raise JwtError("no valid user_nkey") from exc
    client = nats.get("client_info")
    client = client if isinstance(client, dict) else {}
    cid = client.get("id")
    exp = claims.get("exp")
    return AuthRequest(
        server_id=str(server["id"]),
        server_name=_text(server, "name"),
        user_nkey=user_nkey,
        client_id=cid if isinstance(cid, int) and not isinstance(cid, bool) else None,
        client_name=_text(client, "name"),
        client_host=_text(client, "host"),
        verified_chains=_chains(nats.get("client_tls")),
        expires_at=float(exp) if isinstance(exp, int | float) else None,
    )


def decode_auth_request(token: str, *, issuer: str, now: float) -> AuthRequest:
    """Verify and read an authorization request JWT (signed by the server's nkey)."""
    return read_auth_request(decode(token, issuer_prefix=PREFIX_SERVER, now=now), issuer=issuer)


# -- the answers -----------------------------------------------------------------------


@dataclass(frozen=True)
class UserSpec:
    """The user the callout admits: its name (CONNZ `authorized_user`, server logs),
    what it may publish and subscribe, and when its authorization ends."""

    name: str
    pub_allow: tuple[str, ...]
    sub_allow: tuple[str, ...]
    #: May publish once to the reply subject of each message it receives.
    allow_responses: bool = False
    #: Epoch seconds; the server closes the connection then (None: never).
    expires_at: int | None = None


def user_claims(user_nkey: str, spec: UserSpec, *, account: str = GLOBAL_ACCOUNT) -> Claims:
    """The user JWT's claims (before `encode` adds iss, iat and jti). An identity that
    may publish nothing gets `pub.deny: [">"]`: an empty allow list means "no limit"
    to the server."""
    pub: dict[str, list[str]] = (
        {"allow": list(spec.pub_allow)} if spec.pub_allow else {"deny": [">"]}
    )
    sub: dict[str, list[str]] = (
        {"allow": list(spec.sub_allow)} if spec.sub_allow else {"deny": [">"]}
    )
    nats: Claims = {
        "pub": pub,
        "sub": sub,
        "subs": -1,
        "data": -1,
        "payload": -1,
        "type": "user",
        "version": JWT_VERSION,
    }
    if spec.allow_responses:
        nats["resp"] = {"max": 1, "ttl": 0}
    claims: Claims = {"sub": user_nkey, "aud": account, "name": spec.name, "nats": nats}
    if spec.expires_at is not None:
        claims["exp"] = spec.expires_at
    return claims


def response_claims(
    request: AuthRequest, *, user_jwt: str | None = None, error: str | None = None
) -> Claims:
    """The authorization response: the signed user JWT, or an error the server logs
    (the client only ever sees `Authorization Violation`)."""
    if (user_jwt is None) == (error is None):
        raise ValueError("an answer carries either a user JWT or an error")
    nats: Claims = {"type": RESPONSE_TYPE, "version": JWT_VERSION}
    if user_jwt is not None:
        nats["jwt"] = user_jwt
    else:
        nats["error"] = error
    return {"sub": request.user_nkey, "aud": request.server_id, "nats": nats}


def encode_answer(
    request: AuthRequest,
    issuer: Signer,
    *,
    iat: int,
    user: UserSpec | None = None,
    error: str | None = None,
    account: str = GLOBAL_ACCOUNT,
) -> str:
    """The signed response JWT for `request`: admitting `user`, or refusing with `error`."""
    user_jwt = (
        encode(user_claims(request.user_nkey, user, account=account), issuer, iat=iat)
        if user is not None
        else None
    )
    return encode(response_claims(request, user_jwt=user_jwt, error=error), issuer, iat=iat)
