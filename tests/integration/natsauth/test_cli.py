"""`notip nats-auth` as a real process: settings from the environment, ready on
/readyz, deciding, SIGTERM → graceful stop (exit 0); a bad setting → exit 2."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import trio

from notip import natsio
from notip.localservers import NatsServer, free_port
from notip.pki import PkiPaths
from tests.integration.natsauth.conftest import gateway_files, is_authorization_violation, refusal
from tests.waiting import eventually


def _env(server: NatsServer, pki: PkiPaths, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "CALLOUT_"))}
    env.update(
        NATS_URL=server.url,
        NATS_TLS_CA=str(pki.ca_cert),
        NATS_TLS_CERT=str(pki.cert("nats-auth")),
        NATS_TLS_KEY=str(pki.key("nats-auth")),
        CALLOUT_ISSUER_SEED_FILE=str(pki.callout_issuer_seed),
        CALLOUT_XKEY_SEED_FILE=str(pki.callout_xkey_seed),
        NATS_SYSTEM_SEED_FILE=str(pki.system_user_seed),
        **extra,
    )
    return env


async def test_the_daemon_decides_and_stops_on_sigterm(
    aio_loop: None, callout_nats: NatsServer, pki: PkiPaths, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "nats-auth.log"
    with log.open("wb") as err:
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "notip", "nats-auth"],
            env=_env(callout_nats, pki, METRICS_ADDR=f"127.0.0.1:{port}"),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        async with httpx.AsyncClient(base_url=base, timeout=2) as http:

            async def ready() -> bool:
                assert proc.poll() is None, log.read_text()
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await eventually(ready, timeout=30, what="/readyz 200")
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            # No management is running: an unknown gateway is refused at once, with a
            # decision (not left to the server's timeout).
            files = gateway_files(pki, tmp_path, str(uuid.uuid4()), str(uuid.uuid4()))
            exc = await refusal(callout_nats.url, natsio.tls_context(files))
            assert is_authorization_violation(exc), repr(exc)
            metrics = (await http.get("/metrics")).text
            assert (
                'notip_nats_auth_decisions_total{outcome="refused",reason="management_unavailable"} 1.0'
                in metrics
            )
            assert "notip_nats_auth_decision_seconds_bucket" in metrics
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            assert await proc.wait() == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            await proc.wait()


def test_a_missing_setting_is_a_config_error(callout_nats: NatsServer, pki: PkiPaths) -> None:
    env = _env(callout_nats, pki)
    del env["CALLOUT_ISSUER_SEED_FILE"]
    out = subprocess.run(
        [sys.executable, "-m", "notip", "nats-auth"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert "CALLOUT_ISSUER_SEED_FILE is required" in out.stderr
