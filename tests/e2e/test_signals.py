"""Every long-running `notip` command, as a child process, stops gracefully on SIGTERM
and, separately, on SIGINT: exit 0 within its bound, no traceback, the work in flight
finished (the simulator's command in execution still sends its ack)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from notip.devstack import DEMO_TENANT, DevInfo, DevPaths
from notip.localservers import free_port, free_port_outside_ephemeral
from notip.pki import PkiPaths
from tests.waiting import eventually

# A graceful stop of any daemon is bounded by its clean-up budgets (SHUTDOWN_TIMEOUT_MS
# 10 s, pool close 5 s, NATS drain 10 s, a command in execution): generous
# here, because CI runs on a shared 2-core machine.
STOP_BOUND_S = 60.0
START_BOUND_S = 90.0
SIGNALS = [signal.SIGTERM, signal.SIGINT]


class Child:
    """`python -m notip ARGS` with its stdout and stderr in files."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.out_path = logs / f"{name}.out"
        self.err_path = logs / f"{name}.err"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "notip", *args], env=env, stdout=out, stderr=err
            )

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    async def wait_for(self, what: str, check: Callable[[], bool]) -> None:
        async def ok() -> bool:
            assert self.alive(), (
                f"{self.name} exited ({self.proc.returncode}) before {what}:\n{self.stderr}"
            )
            return check()

        await eventually(ok, timeout=START_BOUND_S, every=0.05)

    async def stop(self, sig: signal.Signals) -> int:
        """Send `sig`, wait (with the bound) for the exit, return the exit code."""
        self.proc.send_signal(sig)

        async def exited() -> bool:
            return self.proc.poll() is not None

        try:
            await eventually(exited, timeout=STOP_BOUND_S, every=0.05)
        except trio.TooSlowError:
            raise AssertionError(
                f"{self.name} still running {STOP_BOUND_S} s after {sig.name}:\n{self.stderr}"
            ) from None
        return self.proc.returncode

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)

    def assert_clean_stop(self, code: int, sig: signal.Signals) -> None:
        err = self.stderr
        assert code == 0, f"{self.name} exited {code} after {sig.name}:\n{err}"
        assert "Traceback" not in err, err
        assert f'"signal received; stopping", "signal": "{sig.name}"' in err, err


@contextmanager
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    try:
        yield started
    finally:
        for c in started:
            c.kill()


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def metric(url: str, name: str) -> float:
    text = httpx.get(url, timeout=2).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def service_env(dev: DevInfo, service: str, **extra: str) -> dict[str, str]:
    pki = PkiPaths(Path(dev.state_dir) / "pki")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "DB_", "HTTP_"))}
    env.update(
        NATS_URL=dev.nats_url,
        NATS_TLS_CA=str(pki.ca_cert),
        NATS_TLS_CERT=str(pki.cert(service)),
        NATS_TLS_KEY=str(pki.key(service)),
        **extra,
    )
    return env


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    return tmp_path


async def hammer(url: str, stop: trio.Event, *, method: str = "GET", json: object = None) -> None:
    """Keep a service busy with requests until `stop` is set (answers do not matter).
    Never cancelled mid-request: a request cut short leaves httpx's body stream to the
    garbage collector."""
    async with httpx.AsyncClient(timeout=5) as client:
        while not stop.is_set():
            with suppress(httpx.HTTPError):
                await client.request(method, url, json=json)
            await trio.lowlevel.checkpoint()


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
async def test_simulator_finishes_the_command_in_flight(
    dev: DevInfo, http: httpx.AsyncClient, logs: Path, sig: signal.Signals
) -> None:
    pki = PkiPaths(Path(dev.state_dir) / "pki")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "HTTP_"))}
    env.update(
        PROVISIONING_URL=dev.provisioning_url,
        NATS_URL=dev.nats_url,
        NATS_CA_CERT_PATH=str(pki.ca_cert),
        NATS_TLS_CERT=str(pki.cert("simulator")),
        NATS_TLS_KEY=str(pki.key("simulator")),
        # As `notip dev` (devstack.py): each gateway on its own certificate, authorized
        # by the dev stack's nats-auth; the simulator's own for its decommission listener.
        GATEWAY_IDENTITY="own",
        SQLITE_PATH=str(logs / "sim.db"),
        HTTP_ADDR=f"127.0.0.1:{port}",
        GRPC_ADDR=f"127.0.0.1:{free_port()}",
        METRICS_ADDR=f"127.0.0.1:{free_port()}",
        # Long enough to signal while the firmware is "installing".
        FIRMWARE_APPLY_MS="5000",
    )
    sim_url = f"http://127.0.0.1:{port}"
    with children() as started:
        sim = Child("simulator", ["simulator"], env, logs)
        started.append(sim)
        await sim.wait_for("healthy", http_ok(f"{sim_url}/openapi.json"))

        factory_id, factory_key = f"sig-{uuid.uuid4().hex[:8]}", "signal-test-key"
        r = await http.post(
            f"{dev.mgmt_url}/admin/gateways",
            json={
                "factory_id": factory_id,
                "factory_key": factory_key,
                "tenant_id": DEMO_TENANT,
                "model": "signal-test",
            },
        )
        assert r.status_code == 201, r.text
        r = await http.post(
            f"{sim_url}/sim/gateways",
            json={"factoryId": factory_id, "factoryKey": factory_key, "sendFrequencyMs": 200},
        )
        assert r.status_code == 201, r.text
        gw = r.json()["id"]
        r = await http.post(
            f"{sim_url}/sim/gateways/{gw}/sensors",
            json={"type": "temperature", "minRange": 0, "maxRange": 10},
        )
        assert r.status_code == 201, r.text
        await sim.wait_for(
            "the gateway publishing",
            lambda: (
                metric(
                    f"http://{env['METRICS_ADDR']}/metrics", "notip_sim_envelopes_published_total"
                )
                > 0
            ),
        )

        r = await http.post(
            f"{dev.mgmt_url}/cmd/{gw}/firmware",
            json={"firmware_version": "9.9.9", "download_url": "https://fw.example/9.9.9.bin"},
        )
        assert r.status_code == 201, r.text
        command_id = r.json()["command_id"]
        await sim.wait_for(
            "the command executing",
            lambda: (
                f'"command executing", "gateway_id": "{gw}", "command_id": "{command_id}"'
                in sim.stderr
            ),
        )
        code = await sim.stop(sig)

    sim.assert_clean_stop(code, sig)
    err = sim.stderr
    assert err.index('"signal received; stopping"') < err.index('"command executed"'), (
        "the signal arrived after the command had finished"
    )

    async def acked() -> bool:
        r = await http.get(f"{dev.mgmt_url}/cmd/{gw}/status/{command_id}")
        return r.status_code == 200 and r.json()["status"] == "ack"

    await eventually(acked, timeout=30)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
async def test_daemons_stop_gracefully_while_busy(
    dev: DevInfo, logs: Path, sig: signal.Signals
) -> None:
    pki = PkiPaths(Path(dev.state_dir) / "pki")
    mgmt_port, prov_port, metrics_port = free_port(), free_port(), free_port()
    mgmt_url = f"http://127.0.0.1:{mgmt_port}"
    prov_url = f"http://127.0.0.1:{prov_port}"
    consumer_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    with children() as started:
        consumer_env = {**os.environ, **dev.consumer_env}
        # The dev stack's durable: the data-consumer identity may pull from no other
        # (docs/nats-auth.md#permissions), so this second instance shares the dev
        # consumer's stream of readings, busy ingesting beside it.
        consumer_env.update(METRICS_ADDR=f"127.0.0.1:{metrics_port}")
        consumer = Child("consumer", ["consumer"], consumer_env, logs)
        mgmt = Child(
            "mgmt",
            ["mgmt"],
            service_env(
                dev,
                "management-api",
                MGMT_DB_PATH=str(logs / "mgmt.db"),
                HTTP_ADDR=f"127.0.0.1:{mgmt_port}",
            ),
            logs,
        )
        provisioning = Child(
            "provisioning",
            ["provisioning"],
            service_env(
                dev,
                "provisioning",
                CA_CERTS_PATH=str(pki.root),
                CA_KEY_PATH=str(pki.ca_key),
                HTTP_ADDR=f"127.0.0.1:{prov_port}",
            ),
            logs,
        )
        tail = Child(
            "tail",
            [
                "tail",
                "--plain",
                "--state-dir",
                str(dev.state_dir),
                "--nats-url",
                dev.nats_url,
                "--mgmt-url",
                dev.mgmt_url,
            ],
            {**os.environ},
            logs,
        )
        started.extend([consumer, mgmt, provisioning, tail])

        await consumer.wait_for(
            "ingesting",
            lambda: (
                http_ok(consumer_metrics)()
                and metric(consumer_metrics, "notip_consumer_messages_received_total") > 0
            ),
        )
        await mgmt.wait_for("healthy", http_ok(f"{mgmt_url}/health"))
        await provisioning.wait_for("healthy", http_ok(f"{prov_url}/health"))
        await tail.wait_for("showing readings", lambda: tail.stdout.count("\n") >= 2)

        codes: dict[str, int] = {}
        done = trio.Event()
        async with trio.open_nursery() as load:
            load.start_soon(hammer, f"{mgmt_url}/admin/gateways?tenant_id={DEMO_TENANT}", done)
            bad_onboarding = {
                "credentials": {"factoryId": "nobody", "factoryKey": "wrong"},
                "csr": "not a csr",
                "sendFrequencyMs": 1000,
            }
            load.start_soon(
                partial(
                    hammer,
                    f"{prov_url}/provision/onboard",
                    done,
                    method="POST",
                    json=bad_onboarding,
                )
            )

            async def stop(child: Child) -> None:
                codes[child.name] = await child.stop(sig)

            async with trio.open_nursery() as stopping:
                for child in started:
                    stopping.start_soon(stop, child)
            done.set()  # the services are gone: each hammer's last request fails fast

    for child in started:
        child.assert_clean_stop(codes[child.name], sig)
    assert '"consumer stopped"' in consumer.stderr


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(cmdline)
    return found


def _server_dirs(state: Path) -> list[str]:
    """Where `notip dev` keeps nats-server's and PostgreSQL's data: both appear on
    their command lines."""
    return [str(state), str(DevPaths(state.resolve()).pg_data)]


@pytest.fixture
async def dev_state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(state, 0o755)
    return state


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
async def test_dev_stops_gracefully_and_leaves_no_server_behind(
    dev_state: Path, logs: Path, sig: signal.Signals
) -> None:
    # Outside the ephemeral range: `notip dev` picks its servers' other ports (NATS
    # monitoring, ...) with bind(0), which could otherwise return one of these before
    # the daemon meant to have it binds it.
    names = (
        "nats",
        "pg",
        "mgmt",
        "provisioning",
        "sim-http",
        "sim-grpc",
        "consumer-metrics",
        "sim-metrics",
        "nats-auth-metrics",
    )
    picked: set[int] = set()
    while len(picked) < len(names):  # distinct: each pick is released before the next
        picked.add(free_port_outside_ephemeral())
    ports = dict(zip(names, sorted(picked), strict=True))
    args = ["dev", "--state-dir", str(dev_state), "--gateways", "1", "--send-frequency-ms", "200"]
    for name, port in ports.items():
        args += [f"--{name}-port", str(port)]
    consumer_metrics = f"http://127.0.0.1:{ports['consumer-metrics']}/metrics"
    with children() as started:
        dev = Child("dev", args, {**os.environ}, logs)
        started.append(dev)
        await dev.wait_for("the banner", lambda: "dev stack is up" in dev.stdout)
        await dev.wait_for(
            "rows written",
            lambda: metric(consumer_metrics, "notip_consumer_rows_inserted_total") > 0,
        )
        code = await dev.stop(sig)
    dev.assert_clean_stop(code, sig)

    async def servers_gone() -> bool:
        return not any(_processes_mentioning(d) for d in _server_dirs(dev_state))

    await eventually(servers_gone, timeout=30)
