"""Golden keys and a request as nats-server 2.15 sends it, shared by the callout tests."""

from __future__ import annotations

from typing import Any

RAW = bytes(range(32))
ACCOUNT_SEED = b"SAAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4HYMHI"
ACCOUNT_PUBLIC = "AAB2CB576PHBBPQ5ODORRZ2LYCMWPZGWGCN2KDK7DXOIMZASKUY3QPZV"
USER_SEED = b"SUAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H776Y"
USER_PUBLIC = "UAB2CB576PHBBPQ5ODORRZ2LYCMWPZGWGCN2KDK7DXOIMZASKUY3RLKK"
SERVER_SEED = b"SNAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H2D5U"
SERVER_PUBLIC = "NAB2CB576PHBBPQ5ODORRZ2LYCMWPZGWGCN2KDK7DXOIMZASKUY3RSWB"
CURVE_SEED = b"SXAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H74KM"
CURVE_PUBLIC = "XCHUBRNNW2HSKYSK4WZBJ2TWPJXMSTMCTU6XWXQ22G5G6PRBHAUF76G7"
PEER_CURVE_PUBLIC = "XAD2G7F4CQQJHSFXKXOBWEHINS2CMN2K2FVKQU7NBPP4BMVYNUOHZWPX"

GOLDEN_TOKEN = (
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ."
    "eyJzdWIiOiJ4IiwibmF0cyI6eyJ0eXBlIjoidXNlciIsInZlcnNpb24iOjJ9LCJpc3MiOiJBQUIyQ0I1NzZQSEJC"
    "UFE1T0RPUlJaMkxZQ01XUFpHV0dDTjJLREs3RFhPSU1aQVNLVVkzUVBaViIsImlhdCI6MTgwMDAwMDAwMCwianRp"
    "IjoiUEtRRVZWWENMTUEzM0E3WVVKNVdGRDc1NEROQ1o2NUxJUUI1UUtGUkVLQ0NZSzZRVE42QSJ9."
    "1-HGW0qFeVjPP3Bbfx8Bocm3qHIvLkjSNxxLs3p0jT-cZ13gR574CDLiwHKjHQUdTHKPb5mKqFoeElMQek0gCg"
)
GOLDEN_BOX = bytes.fromhex("786b7631" + "00" * 24 + "13f625bb48bb8d16223286d15d8171e272e68953f2")


ISSUER = ACCOUNT_PUBLIC


def request_claims(**nats: Any) -> dict[str, Any]:
    """An authorization request as nats-server 2.15 sends it (trimmed)."""
    base: dict[str, Any] = {
        "server_id": {"name": "n1", "host": "127.0.0.1", "id": SERVER_PUBLIC, "version": "2.15.1"},
        "user_nkey": USER_PUBLIC,
        "client_info": {"host": "127.0.0.1", "id": 16, "name": "gw", "kind": "Client"},
        "connect_opts": {"name": "gw", "lang": "python3", "version": "2.16.0", "protocol": 1},
        "client_tls": {"version": "1.3", "verified_chains": [["LEAF", "CA"]]},
        "type": "authorization_request",
        "version": 2,
    }
    return {
        "aud": "nats-authorization-request",
        "sub": ISSUER,
        "exp": 1_800_000_006,
        "nats": {**base, **nats},
    }
