"""Secrets at rest in the management store.

Factory keys are never stored: only a salted scrypt hash, in a self-describing string
`scrypt$N$r$p$<salt b64>$<hash b64>` so the cost can be raised later without breaking
stored rows. Parameters: N = 2**14, r = 8, p = 1 (16 MiB of memory, roughly 30–80 ms
per hash on a small machine), 16-byte random salt, 32-byte output. That is the
interactive-login cost OWASP lists as a floor for scrypt; it keeps the test suite fast
while making offline guessing of a leaked database expensive. Hashing runs in a
worker thread (`trio.to_thread`), never on the event loop.

Gateway AES keys are stored sealed when `MGMT_KEY_FILE` is given: AES-256-GCM under
that 32-byte key, a fresh 12-byte nonce per key, the gateway id as associated data
(a sealed key copied to another row does not open). Without a key file they are
stored base64-encoded (marked `plain:`), which is what a local stand-in needs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 32
SALT_BYTES = 16
_MAXMEM = 64 * 1024 * 1024

MASTER_KEY_BYTES = 32
NONCE_BYTES = 12


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_factory_key(key: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = os.urandom(SALT_BYTES)
    digest = hashlib.scrypt(
        key.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=SCRYPT_DKLEN
    )
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_factory_key(key: str, stored: str) -> bool:
    """Constant-time comparison against a stored hash; False for anything malformed."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(digest_b64, validate=True)
        digest = hashlib.scrypt(
            key.encode("utf-8"),
            salt=salt,
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(digest, expected)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_factory_key("notip-dummy-factory-key")


def burn_time() -> None:
    """Spend what a verification costs, so that an unknown factory id answers as
    slowly as a wrong key (no timing oracle for which ids exist)."""
    verify_factory_key("x", _dummy_hash())


# -- AES keys at rest -------------------------------------------------------------------


class KeyFileError(ValueError):
    pass


def load_master_key(path: Path) -> bytes:
    """`MGMT_KEY_FILE`: 32 raw bytes, or text holding 64 hex digits or the base64 of
    32 bytes (surrounding whitespace ignored)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file: {exc.strerror or exc}") from None
    if len(data) == MASTER_KEY_BYTES:
        return data
    text = data.strip()
    for decode in (bytes.fromhex, lambda s: base64.b64decode(s, validate=True)):
        try:
            key = decode(text.decode("ascii"))
        except (ValueError, UnicodeDecodeError, binascii.Error):
            continue
        if len(key) == MASTER_KEY_BYTES:
            return key
    raise KeyFileError("must hold a 32-byte key (raw, 64 hex digits, or base64)")


class KeySealer:
    SEALED = "aesgcm1:"
    PLAIN = "plain:"

    def __init__(self, master_key: bytes | None) -> None:
        if master_key is not None and len(master_key) != MASTER_KEY_BYTES:
            raise ValueError("master key must be 32 bytes")
        self._aead = AESGCM(master_key) if master_key is not None else None

    @property
    def encrypts(self) -> bool:
        return self._aead is not None

    def seal(self, gateway_id: str, key: bytes) -> str:
        if self._aead is None:
            return self.PLAIN + _b64(key)
        nonce = os.urandom(NONCE_BYTES)
        return self.SEALED + _b64(nonce + self._aead.encrypt(nonce, key, gateway_id.encode()))

    def open(self, gateway_id: str, stored: str) -> bytes:
        if stored.startswith(self.PLAIN):
            return base64.b64decode(stored[len(self.PLAIN) :], validate=True)
        if stored.startswith(self.SEALED):
            if self._aead is None:
                raise KeyFileError("stored keys are encrypted: MGMT_KEY_FILE is needed")
            blob = base64.b64decode(stored[len(self.SEALED) :], validate=True)
            try:
                return self._aead.decrypt(
                    blob[:NONCE_BYTES], blob[NONCE_BYTES:], gateway_id.encode()
                )
            except InvalidTag:
                raise KeyFileError("stored key does not open with MGMT_KEY_FILE") from None
        raise KeyFileError("unknown stored key format")
