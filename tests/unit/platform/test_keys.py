"""Factory-key hashing and AES keys at rest."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from notip.platform.management import keys


def test_factory_key_hash_is_salted_scrypt_with_its_parameters() -> None:
    a = keys.hash_factory_key("s3cret-factory-key")
    b = keys.hash_factory_key("s3cret-factory-key")
    assert a != b  # salted
    scheme, n, r, p, salt, digest = a.split("$")
    assert (scheme, int(n), int(r), int(p)) == (
        "scrypt",
        keys.SCRYPT_N,
        keys.SCRYPT_R,
        keys.SCRYPT_P,
    )
    assert len(base64.b64decode(salt)) == keys.SALT_BYTES
    assert len(base64.b64decode(digest)) == keys.SCRYPT_DKLEN
    assert "s3cret" not in a
    assert keys.verify_factory_key("s3cret-factory-key", a)
    assert keys.verify_factory_key("s3cret-factory-key", b)
    assert not keys.verify_factory_key("s3cret-factory-kez", a)
    assert not keys.verify_factory_key("", a)


@pytest.mark.parametrize(
    "stored",
    ["", "plain", "bcrypt$1$2$3$4$5", "scrypt$16384$8$1$!!!$AAAA", "scrypt$x$8$1$AAAA$AAAA"],
)
def test_malformed_hash_never_verifies(stored: str) -> None:
    assert not keys.verify_factory_key("anything", stored)


def test_hash_parameters_are_read_from_the_stored_string() -> None:
    cheap = keys.hash_factory_key("k", n=2**10, r=8, p=1)
    assert cheap.startswith("scrypt$1024$8$1$")
    assert keys.verify_factory_key("k", cheap)


def test_sealer_without_master_key_stores_plain_base64() -> None:
    sealer = keys.KeySealer(None)
    key = os.urandom(32)
    stored = sealer.seal("gw-1", key)
    assert stored == "plain:" + base64.b64encode(key).decode()
    assert sealer.open("gw-1", stored) == key
    assert not sealer.encrypts


def test_sealer_encrypts_and_binds_to_the_gateway() -> None:
    sealer = keys.KeySealer(os.urandom(32))
    key = os.urandom(32)
    stored = sealer.seal("gw-1", key)
    assert stored.startswith("aesgcm1:")
    assert base64.b64encode(key).decode() not in stored
    assert sealer.seal("gw-1", key) != stored  # fresh nonce
    assert sealer.open("gw-1", stored) == key
    with pytest.raises(keys.KeyFileError):
        sealer.open("gw-2", stored)  # copied to another row: does not open
    with pytest.raises(keys.KeyFileError):
        keys.KeySealer(os.urandom(32)).open("gw-1", stored)  # another master key
    with pytest.raises(keys.KeyFileError, match="MGMT_KEY_FILE is needed"):
        keys.KeySealer(None).open("gw-1", stored)


def test_load_master_key_formats(tmp_path: Path) -> None:
    key = os.urandom(32)
    raw, hexed, b64, bad = (tmp_path / n for n in ("raw", "hex", "b64", "bad"))
    raw.write_bytes(key)
    hexed.write_text(key.hex() + "\n")
    b64.write_text(base64.b64encode(key).decode() + "\n")
    bad.write_text("too short")
    assert keys.load_master_key(raw) == key
    assert keys.load_master_key(hexed) == key
    assert keys.load_master_key(b64) == key
    with pytest.raises(keys.KeyFileError, match="32-byte"):
        keys.load_master_key(bad)
    with pytest.raises(keys.KeyFileError, match="cannot read"):
        keys.load_master_key(tmp_path / "missing")
