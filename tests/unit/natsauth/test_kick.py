"""CONNZ and KICK payloads (the shapes nats-server 2.15 answers with)."""

from __future__ import annotations

import json

from notip.natsauth import kick
from notip.natsauth.kick import Connection, ConnzPage


def _connz(server_id: str, conns: list[object], total: int, offset: int = 0) -> bytes:
    return json.dumps(
        {
            "server": {"name": "n", "id": server_id, "ver": "2.15.1"},
            "data": {
                "server_id": server_id,
                "num_connections": len(conns),
                "total": total,
                "offset": offset,
                "limit": 1024,
                "connections": conns,
            },
        }
    ).encode()


def test_connz_request() -> None:
    assert json.loads(kick.connz_request(user="gw:t:g")) == {
        "auth": True,
        "offset": 0,
        "limit": 1024,
        "user": "gw:t:g",
    }
    assert "user" not in json.loads(kick.connz_request(user=None, offset=1024))


def test_parse_connz() -> None:
    page = kick.parse_connz(
        _connz(
            "NSRV",
            [
                {"cid": 7, "authorized_user": "gw:t:g", "name": "x"},
                {"cid": 8},  # no authenticated user: not ours to kick
                {"cid": "9", "authorized_user": "gw:t:h"},
                "junk",
            ],
            total=3,
        )
    )
    assert page == ConnzPage("NSRV", 3, 0, (Connection("NSRV", 7, "gw:t:g"),))
    assert not page.complete  # 3 in all, this page reports one
    empty = kick.parse_connz(_connz("NSRV", [], total=0))
    assert empty == ConnzPage("NSRV", 0, 0, ()) and empty.complete


def test_parse_connz_refuses_errors_and_nonsense() -> None:
    error = {"server": {"id": "N"}, "error": {"code": 403, "description": "forbidden"}}
    for data in (json.dumps(error).encode(), b"nope", b"[]", b'{"server": {}, "data": {}}'):
        assert kick.parse_connz(data) is None, data


def test_kick_payloads() -> None:
    assert json.loads(kick.kick_request(42)) == {"cid": 42}
    assert kick.kick_succeeded(b'{"server": {"id": "N"}, "data": {"kicked": 42}}')
    assert not kick.kick_succeeded(b'{"server": {"id": "N"}, "error": {"code": 404}}')
    assert not kick.kick_succeeded(b"garbage")
