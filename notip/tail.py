"""`notip tail`: the client side of the crypto contract.

Subscribes to live telemetry, fetches each gateway's AES key from the management
stand-in (`GET /keys?gateway_id=`), decrypts and shows the latest reading per sensor
as a table that updates in place (or one line per reading with `--plain`, or when
stdout is not a terminal).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio

from notip import bridge, contracts, envelope, natsio
from notip.handoff import Handoff
from notip.pki import PkiPaths
from notip.runner import Main, run_daemon

REDRAW_S = 0.25


@dataclass
class Reading:
    tenant_id: str
    gateway_id: str
    sensor_id: str
    sensor_type: str
    timestamp: str
    value: float | None
    unit: str
    error: str = ""


@dataclass
class TailView:
    """Latest reading per (gateway, sensor), rendered as a fixed-width table. Pure."""

    latest: dict[tuple[str, str], Reading] = field(default_factory=dict)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    errors: int = 0

    def add(self, reading: Reading) -> None:
        key = (reading.gateway_id, reading.sensor_id)
        self.latest[key] = reading
        self.counts[key] = self.counts.get(key, 0) + 1
        if reading.error:
            self.errors += 1

    def render(self) -> str:
        header = ("gateway", "sensor", "type", "value", "unit", "time", "n")
        rows = [header]
        for key in sorted(self.latest):
            r = self.latest[key]
            value = r.error or ("" if r.value is None else f"{r.value:.2f}")
            rows.append(
                (
                    r.gateway_id[:8],
                    r.sensor_id[:8],
                    r.sensor_type,
                    value,
                    r.unit,
                    r.timestamp,
                    str(self.counts[key]),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(row)) for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(
            f"{sum(self.counts.values())} readings, {len(self.latest)} sensors, {self.errors} undecryptable"
        )
        return "\n".join(lines)


def line(reading: Reading) -> str:
    value = reading.error or f"{reading.value} {reading.unit}"
    return f"{reading.timestamp}  {reading.gateway_id}  {reading.sensor_type:<11}  {value}"


class KeyCache:
    """Gateway keys fetched from the management stand-in; refetched once when a
    decryption fails (the key may have been rotated)."""

    def __init__(self, client: httpx.AsyncClient, mgmt_url: str) -> None:
        self.client = client
        self.mgmt_url = mgmt_url.rstrip("/")
        self.keys: dict[str, bytes] = {}

    async def get(self, gateway_id: str, *, refresh: bool = False) -> bytes | None:
        if refresh or gateway_id not in self.keys:
            resp = await self.client.get(f"{self.mgmt_url}/keys", params={"gateway_id": gateway_id})
            if resp.status_code != 200:
                return None
            entries = resp.json()
            if not entries:
                return None
            self.keys[gateway_id] = envelope.unb64(entries[-1]["key_material"])
        return self.keys.get(gateway_id)


async def decrypt(keys: KeyCache, subject: str, data: bytes) -> Reading:
    ids = contracts.parse_telemetry(subject)
    tenant = ids[0] if ids is not None else ""
    obj: dict[str, Any] = json.loads(data)
    base = {
        "tenant_id": tenant,
        "gateway_id": str(obj.get("gatewayId", "")),
        "sensor_id": str(obj.get("sensorId", "")),
        "sensor_type": str(obj.get("sensorType", "")),
        "timestamp": str(obj.get("timestamp", "")),
    }
    for refresh in (False, True):
        key = await keys.get(base["gateway_id"], refresh=refresh)
        if key is None:
            return Reading(**base, value=None, unit="", error="no key")
        try:
            plain = envelope.open_envelope(key, obj)
            return Reading(**base, value=float(plain["value"]), unit=str(plain["unit"]))
        except Exception:  # noqa: BLE001 — whatever is wrong with it, the message is "cannot decrypt"
            continue
    return Reading(**base, value=None, unit="", error="cannot decrypt")


async def tail(
    nats_url: str,
    tls: natsio.TlsFiles,
    mgmt_url: str,
    *,
    gateway: str | None = None,
    count: int | None = None,
    out: Callable[[str], None] = print,
    plain: bool = True,
) -> TailView:
    """Print readings until cancelled, or until `count` readings were shown."""
    # Bounded: a slow terminal drops readings rather than memory.
    readings: Handoff[tuple[str, bytes]] = Handoff(maxlen=10_000)
    subject = contracts.telemetry_gateway_filter(gateway) if gateway else contracts.TELEMETRY_ALL
    view = TailView()
    nc = await natsio.connect(nats_url, natsio.tls_context(tls), name="notip-tail")
    try:

        async def on_msg(msg: Any) -> None:
            readings.put((msg.subject, msg.data))

        sub = await bridge.call(nc.subscribe, subject, cb=on_msg)
        async with httpx.AsyncClient(timeout=10) as client:
            keys = KeyCache(client, mgmt_url)
            last_draw = 0.0
            async for subj, data in readings:
                reading = await decrypt(keys, subj, data)
                view.add(reading)
                if plain:
                    out(line(reading))
                elif trio.current_time() - last_draw >= REDRAW_S:
                    out("\x1b[H\x1b[2J" + view.render())
                    last_draw = trio.current_time()
                if count is not None and sum(view.counts.values()) >= count:
                    break
        await bridge.shielded(sub.unsubscribe)
    finally:
        await natsio.drain(nc)
    return view


def run(args: argparse.Namespace) -> int:
    pki = PkiPaths(Path(args.state_dir) / "pki")
    tls = natsio.TlsFiles(
        Path(args.ca or pki.ca_cert),
        Path(args.cert or pki.cert("data-api")),
        Path(args.key or pki.key("data-api")),
    )
    plain = args.plain or not sys.stdout.isatty()

    def prepare() -> Main:
        return partial(
            tail,
            args.nats_url,
            tls,
            args.mgmt_url,
            gateway=args.gateway,
            count=args.count,
            out=lambda s: print(s, flush=True),
            plain=plain,
        )

    return run_daemon("tail", prepare)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "tail", help="decrypt and show live telemetry (client side of the crypto contract)"
    )
    p.add_argument("--gateway", help="only this gateway id")
    p.add_argument("--state-dir", default=".notip", help="notip dev state (for the PKI)")
    p.add_argument("--nats-url", default="tls://127.0.0.1:4222")
    p.add_argument("--mgmt-url", default="http://127.0.0.1:8080")
    p.add_argument("--ca", help="CA certificate (default: the dev PKI's)")
    p.add_argument("--cert", help="client certificate (default: the dev PKI's data-api)")
    p.add_argument("--key", help="client key (default: the dev PKI's data-api)")
    p.add_argument("--plain", action="store_true", help="one line per reading instead of a table")
    p.add_argument("--count", type=int, help="exit after this many readings")
    p.set_defaults(func=run)
