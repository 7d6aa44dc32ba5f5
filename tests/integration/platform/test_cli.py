"""`notip mgmt --seed FILE` and `notip provisioning` as real processes with env
settings: start, serve, onboard a seeded gateway end to end, stop on Ctrl-C."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from notip.localservers import NatsServer, free_port
from notip.pki import PkiPaths
from tests.platform_fixtures import gateway_csr


def _env(nats_server: NatsServer, pki: PkiPaths, service: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HTTP_ADDR", "MGMT_KEY_FILE")}
    env.update(
        NATS_URL=nats_server.url,
        NATS_TLS_CA=str(pki.ca_cert),
        NATS_TLS_CERT=str(pki.cert(service)),
        NATS_TLS_KEY=str(pki.key(service)),
        **extra,
    )
    return env


@contextmanager
def running(
    args: list[str], env: dict[str, str], health_url: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `notip ARGS`, wait for its health URL, stop it with SIGINT on exit. Its
    stderr (the JSON logs) goes to `log`."""
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "notip", *args], env=env, stdout=subprocess.DEVNULL, stderr=err
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(health_url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{args} not healthy within 30 s"
            time.sleep(0.1)
        yield proc
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_cli_services_onboard_a_seeded_gateway(
    nats_server: NatsServer, pki: PkiPaths, tmp_path: Path
) -> None:
    tenant, gw_id = str(uuid.uuid4()), str(uuid.uuid4())
    factory_id = f"F-{uuid.uuid4().hex[:10]}"
    seed = tmp_path / "seed.json"
    seed.write_text(
        json.dumps(
            {
                "gateways": [
                    {
                        "factory_id": factory_id,
                        "factory_key": "cli-key",
                        "tenant_id": tenant,
                        "model": "m",
                        "id": gw_id,
                    }
                ],
                "alert_configs": [{"tenant_id": tenant, "timeout_ms": 30000}],
            }
        )
    )
    key_file = tmp_path / "master.key"
    key_file.write_bytes(os.urandom(32))
    mgmt_port, prov_port = free_port(), free_port()
    mgmt_env = _env(
        nats_server,
        pki,
        "management-api",
        MGMT_DB_PATH=str(tmp_path / "mgmt.db"),
        MGMT_KEY_FILE=str(key_file),
        HTTP_ADDR=f"127.0.0.1:{mgmt_port}",
    )
    prov_env = _env(
        nats_server,
        pki,
        "provisioning",
        CA_CERTS_PATH=str(pki.root),
        CA_KEY_PATH=str(pki.ca_key),
        CERT_TTL_DAYS="30",
        HTTP_ADDR=f"127.0.0.1:{prov_port}",
    )
    mgmt_url, prov_url = f"http://127.0.0.1:{mgmt_port}", f"http://127.0.0.1:{prov_port}"
    with (
        running(
            ["mgmt", "--seed", str(seed)], mgmt_env, mgmt_url + "/health", tmp_path / "mgmt.log"
        ) as mgmt_proc,
        running(
            ["provisioning"], prov_env, prov_url + "/health", tmp_path / "prov.log"
        ) as prov_proc,
    ):
        listed = httpx.get(f"{mgmt_url}/admin/gateways", params={"tenant_id": tenant}).json()
        assert [g["id"] for g in listed] == [gw_id]
        _, csr = gateway_csr()
        resp = httpx.post(
            f"{prov_url}/provision/onboard",
            json={
                "credentials": {"factoryId": factory_id, "factoryKey": "cli-key"},
                "csr": csr,
                "sendFrequencyMs": 1000,
            },
            timeout=20,
        )
        assert resp.status_code == 201, resp.text
        keys = httpx.get(f"{mgmt_url}/keys", params={"gateway_id": gw_id}).json()
        assert keys[0]["key_material"] == resp.json()["aesKey"]
    logs = (tmp_path / "mgmt.log").read_text() + (tmp_path / "prov.log").read_text()
    assert (mgmt_proc.returncode, prov_proc.returncode) == (0, 0), logs  # graceful stop
    assert "cli-key" not in logs and resp.json()["aesKey"] not in logs
    # The AES key is sealed at rest (MGMT_KEY_FILE) and the factory key was only ever
    # stored as a hash (now forgotten): neither appears in the database files.
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("mgmt.db*"))
    assert resp.json()["aesKey"].encode() not in stored
    assert base64.b64decode(resp.json()["aesKey"]) not in stored
    assert b"cli-key" not in stored

    # A second start with the same seed file changes nothing and keeps the gateway.
    with running(
        ["mgmt", "--seed", str(seed)], mgmt_env, mgmt_url + "/health", tmp_path / "m2.log"
    ):
        gw = httpx.get(f"{mgmt_url}/gateways/{gw_id}").json()
        assert gw["provisioned"] is True


def test_cli_bad_settings_exit_2_naming_the_variable(
    nats_server: NatsServer, pki: PkiPaths, tmp_path: Path
) -> None:
    env = _env(nats_server, pki, "provisioning", CA_KEY_PATH=str(pki.ca_key), CERT_TTL_DAYS="-3")
    env.pop("CA_CERTS_PATH", None)
    out = subprocess.run(
        [sys.executable, "-m", "notip", "provisioning"], env=env, capture_output=True, timeout=60
    )
    assert out.returncode == 2
    err = out.stderr.decode()
    assert "CA_CERTS_PATH is required" in err and "CERT_TTL_DAYS" in err and "Traceback" not in err

    bad_seed = tmp_path / "bad.json"
    bad_seed.write_text(json.dumps({"gateways": [{"factory_id": "F"}]}))
    env = _env(nats_server, pki, "management-api", MGMT_DB_PATH=str(tmp_path / "m.db"))
    out = subprocess.run(
        [sys.executable, "-m", "notip", "mgmt", "--seed", str(bad_seed)],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "gateways[0]" in out.stderr.decode() and "Traceback" not in out.stderr.decode()
