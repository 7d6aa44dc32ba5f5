"""`notip nats conf`: the default configuration, and the two opt-in options (service
permissions, auth callout) — rendered, and accepted by nats-server's own check."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from notip import pki
from notip.localservers import find_nats_server
from notip.natsauth import jwt, permissions
from notip.natsconf import AUTH_TIMEOUT_S, CalloutKeys, ClusterSpec, NatsConfig, route_url


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    pki.init_pki(root)
    return root


def _conf(pki_dir: Path, **options: Any) -> NatsConfig:
    return NatsConfig(pki_dir=pki_dir, store_dir=pki_dir / "js", **options)


def _server_accepts(conf: NatsConfig, tmp_path: Path) -> None:
    path = conf.write(tmp_path / "nats.conf")
    out = subprocess.run(
        [find_nats_server(), "-t", "-c", str(path)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_default_maps_every_service_with_no_limits(pki_dir: Path, tmp_path: Path) -> None:
    text = _conf(pki_dir).render()
    for service in pki.SERVICES:
        assert f'{{ user: "CN={service},O=notip" }}' in text
    assert "permissions" not in text and "auth_callout" not in text and "system_account" not in text
    _server_accepts(_conf(pki_dir), tmp_path)


def test_service_permissions(pki_dir: Path, tmp_path: Path) -> None:
    conf = _conf(pki_dir, service_permissions=True)
    text = conf.render()
    assert text.count("permissions: {") == len(pki.SERVICES)
    data_api = text[text.index('"CN=data-api,O=notip"') :]
    assert data_api.index('publish: { deny: [">"] }') < data_api.index("} }")
    mgmt = text[text.index('"CN=management-api,O=notip"') :]
    assert "allow_responses: true" in mgmt[: mgmt.index("} }")]
    assert "auth_callout" not in text
    _server_accepts(conf, tmp_path)


def test_auth_callout(pki_dir: Path, tmp_path: Path) -> None:
    paths = pki.PkiPaths(pki_dir)
    keys = CalloutKeys.from_pki(paths)
    assert keys.issuer == jwt.public_key_of(paths.callout_issuer_seed.read_bytes())
    assert keys.issuer.startswith("A") and keys.system_user.startswith("U")
    assert keys.xkey is not None and keys.xkey.startswith("X")
    conf = _conf(pki_dir, service_permissions=True, auth_callout=keys)
    text = conf.render()
    assert "system_account: SYS" in text
    assert f'nkey: "{keys.system_user}"' in text
    assert f"timeout: {AUTH_TIMEOUT_S}" in text and AUTH_TIMEOUT_S < 2
    assert f'issuer: "{keys.issuer}"' in text and f'xkey: "{keys.xkey}"' in text
    auth_users = re.search(r"auth_users: (\[.*\])", text)
    assert auth_users is not None
    expected = [pki.service_user(s) for s in pki.SERVICES] + [keys.system_user]
    assert auth_users.group(1) == str(expected).replace("'", '"')
    for subject in permissions.SYSTEM_USER.publish:
        assert subject in text
    _server_accepts(conf, tmp_path)
    no_xkey = _conf(pki_dir, auth_callout=CalloutKeys.from_pki(paths, xkey=False)).render()
    assert "xkey" not in no_xkey


def test_cluster_node(pki_dir: Path, tmp_path: Path) -> None:
    """A cluster node: routes over mutual TLS with the route certificate, whose subject
    is the one route user; accepted by nats-server's own check."""
    routes = (route_url("nats-1"), route_url("nats-2"), route_url("nats-3"))
    conf = _conf(
        pki_dir,
        server_name="nats-2",
        cluster=ClusterSpec(routes=routes, port=6222),
        service_permissions=True,
    )
    text = conf.render()
    assert 'server_name: "nats-2"' in text
    block = text[text.index("cluster {") :]
    assert 'name: "notip"' in block and 'listen: "0.0.0.0:6222"' in block
    assert 'routes: ["nats-route://nats-1:6222", "nats-route://nats-2:6222", ' in block
    assert f'cert_file: "{pki_dir / "nats-route.crt"}"' in block
    assert "verify_and_map: true" in block
    assert 'user: "CN=nats-route,O=notip"' in block
    _server_accepts(conf, tmp_path)
    assert "cluster {" not in _conf(pki_dir).render()


def test_cli_cluster_options(pki_dir: Path) -> None:
    from notip.cli import main

    out = pki_dir.parent / "node.conf"
    routes = "nats-route://nats-1:6222,nats-route://nats-2:6222"
    argv = ["nats", "conf", "--pki-dir", str(pki_dir), "--out", str(out)]
    assert main([*argv, "--server-name", "nats-1", "--cluster-routes", routes]) == 0
    text = out.read_text()
    assert 'server_name: "nats-1"' in text and '"nats-route://nats-2:6222"]' in text
    assert main([*argv, "--cluster-routes", "tls://nats-1:6222"]) == 2


def test_route_certificate(pki_dir: Path) -> None:
    """Server and client auth (the nodes dial each other), the names nodes are
    reached by, and the subject the route user maps."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    cert = x509.load_pem_x509_certificate(pki.PkiPaths(pki_dir).nats_route_cert.read_bytes())
    assert cert.subject.rfc4514_string() == "CN=nats-route,O=notip"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(eku)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"nats-1", "nats-2", "nats-3", "localhost"} <= set(
        sans.get_values_for_type(x509.DNSName)
    )
