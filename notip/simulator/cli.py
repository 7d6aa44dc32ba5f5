"""`notip simulator` (the daemon) and `notip sim …` (its gRPC client).

```
notip sim [--addr HOST:PORT] [--json] gateways list|get|create|bulk|start|stop|delete
notip sim sensors add|list|delete
notip sim anomalies disconnect|network-degradation|outlier
notip sim watch GATEWAY_ID
notip sim health
```
The address defaults to `$SIM_GRPC_ADDR`, else `localhost:50051`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from google.protobuf import json_format

GATEWAY_COLUMNS = (
    ("id", "ID"),
    ("factoryId", "FACTORY"),
    ("model", "MODEL"),
    ("firmwareVersion", "FIRMWARE"),
    ("sendFrequencyMs", "FREQ_MS"),
    ("status", "STATUS"),
    ("desiredState", "DESIRED"),
    ("connected", "CONNECTED"),
    ("tenantId", "TENANT"),
    ("lastError", "ERROR"),
)
SENSOR_COLUMNS = (
    ("id", "ID"),
    ("gatewayId", "GATEWAY"),
    ("type", "TYPE"),
    ("minRange", "MIN"),
    ("maxRange", "MAX"),
    ("algorithm", "ALGORITHM"),
)
BULK_CHUNK = 10


# -- daemon ----------------------------------------------------------------------------


def run_daemon(args: argparse.Namespace) -> int:
    """`notip simulator`, run by `notip.runner` (SIGTERM/SIGINT → graceful stop)."""
    from notip.runner import Main
    from notip.runner import run_daemon as run

    def prepare() -> Main:
        import trio

        from notip.gctuning import tune_gc
        from notip.simulator.service import serve
        from notip.simulator.settings import Settings

        settings = Settings.from_env(os.environ)

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                await nursery.start(serve, settings)
                # The collector's full passes over a large fleet's heap (1,000
                # gateways, their buffers and PubAcks in flight) were the ticks' long
                # pauses: a profile at 1,000 gateways spent 10 % of its samples on one
                # allocation in the PubAck ledger (docs/performance.md).
                tune_gc()

        return main

    return run("simulator", prepare)


# -- output -----------------------------------------------------------------------------


def as_dict(msg: Any) -> dict[str, Any]:
    fields: dict[str, Any] = json_format.MessageToDict(
        msg, always_print_fields_with_no_presence=True
    )
    return fields


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], out: TextIO) -> None:
    cells = [[_cell(row.get(key)) for key, _ in columns] for row in rows]
    headers = [title for _, title in columns]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    print(line, file=out)
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip(), file=out)


def emit(args: argparse.Namespace, data: Any, columns: Sequence[tuple[str, str]] | None) -> None:
    out = sys.stdout
    if args.json or columns is None:
        json.dump(data, out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        table(data if isinstance(data, list) else [data], columns, out)


class Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, one line
    per update otherwise)."""

    def __init__(self, total: int, out: TextIO, width: int = 30) -> None:
        self.total, self.out, self.width = total, out, width
        self.tty = out.isatty()

    def update(self, done: int, failed: int) -> None:
        filled = int(self.width * done / self.total) if self.total else self.width
        bar = "#" * filled + "-" * (self.width - filled)
        text = f"[{bar}] {done}/{self.total} onboarded" + (f", {failed} failed" if failed else "")
        if self.tty:
            self.out.write("\r" + text)
            if done >= self.total:
                self.out.write("\n")
        else:
            self.out.write(text + "\n")
        self.out.flush()


# -- client commands -----------------------------------------------------------------


def _client(args: argparse.Namespace) -> Any:
    from notip.simulator.client import SimulatorClient

    return SimulatorClient(args.addr, timeout=args.timeout)


def gw_list(args: argparse.Namespace, sim: Any) -> int:
    emit(args, [as_dict(g) for g in sim.list_gateways()], GATEWAY_COLUMNS)
    return 0


def gw_get(args: argparse.Namespace, sim: Any) -> int:
    emit(args, as_dict(sim.get_gateway(args.gateway_id)), GATEWAY_COLUMNS)
    return 0


def gw_create(args: argparse.Namespace, sim: Any) -> int:
    gw = sim.create_gateway(
        args.factory_id,
        args.factory_key,
        model=args.model,
        firmware_version=args.firmware_version,
        send_frequency_ms=args.send_frequency_ms,
    )
    emit(args, as_dict(gw), GATEWAY_COLUMNS)
    return 0


def _factory_ids(args: argparse.Namespace) -> list[str]:
    ids = list(args.factory_ids)
    if args.from_file:
        with open(args.from_file, encoding="utf-8") as fh:
            ids += [line.strip() for line in fh if line.strip()]
    return ids


def gw_bulk(args: argparse.Namespace, sim: Any) -> int:
    ids = _factory_ids(args)
    if not ids:
        print("error: no factory ids given", file=sys.stderr)
        return 2
    progress = Progress(len(ids), sys.stderr)
    gateways: list[dict[str, Any]] = []
    errors: list[str] = []
    chunk = max(1, args.chunk)
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        result = sim.bulk_create(
            part,
            args.factory_key,
            model=args.model,
            firmware_version=args.firmware_version,
            send_frequency_ms=args.send_frequency_ms,
        )
        gateways += [as_dict(g) for g in result.gateways]
        errors += list(result.errors)
        progress.update(len(errors), sum(1 for e in errors if e))
    failed = [(fid, err) for fid, err in zip(ids, errors, strict=True) if err]
    if args.json:
        emit(args, {"gateways": gateways, "errors": errors}, None)
    else:
        table(gateways, GATEWAY_COLUMNS, sys.stdout)
        if failed:
            print(file=sys.stdout)
            table(
                [{"factoryId": fid, "error": err} for fid, err in failed],
                (("factoryId", "FACTORY"), ("error", "ERROR")),
                sys.stdout,
            )
    return 1 if failed else 0


def _simple(method: str, message: str) -> Callable[[argparse.Namespace, Any], int]:
    def run(args: argparse.Namespace, sim: Any) -> int:
        getattr(sim, method)(args.gateway_id)
        print(message.format(args.gateway_id))
        return 0

    return run


def sensors_add(args: argparse.Namespace, sim: Any) -> int:
    s = sim.add_sensor(args.gateway_id, args.type, args.min, args.max, args.algorithm)
    emit(args, as_dict(s), SENSOR_COLUMNS)
    return 0


def sensors_list(args: argparse.Namespace, sim: Any) -> int:
    emit(args, [as_dict(s) for s in sim.list_sensors(args.gateway_id)], SENSOR_COLUMNS)
    return 0


def sensors_delete(args: argparse.Namespace, sim: Any) -> int:
    sim.delete_sensor(args.sensor_id)
    print(f"sensor {args.sensor_id} deleted")
    return 0


def anomaly_disconnect(args: argparse.Namespace, sim: Any) -> int:
    sim.disconnect(args.gateway_id, args.duration, buffer_while_offline=args.buffer)
    print(f"gateway {args.gateway_id} disconnected for {args.duration:g}s")
    return 0


def anomaly_degradation(args: argparse.Namespace, sim: Any) -> int:
    sim.network_degradation(args.gateway_id, args.duration, args.packet_loss)
    print(f"network degradation on {args.gateway_id} for {args.duration:g}s")
    return 0


def anomaly_outlier(args: argparse.Namespace, sim: Any) -> int:
    sim.outlier(args.sensor_id, args.value)
    print(f"outlier queued for sensor {args.sensor_id}")
    return 0


def watch(args: argparse.Namespace, sim: Any) -> int:
    for event in sim.watch(args.gateway_id, timeout=args.for_seconds):
        print(json.dumps(as_dict(event), ensure_ascii=False), flush=True)
    return 0


def health(args: argparse.Namespace, sim: Any) -> int:
    print(sim.health())
    return 0


def run_client(args: argparse.Namespace) -> int:
    from notip.simulator.client import SimulatorError

    with _client(args) as sim:
        try:
            return int(args.sim_func(args, sim))
        except SimulatorError as exc:
            print(f"error: {exc.code.name}: {exc.message}", file=sys.stderr)
            return 1


# -- registration ------------------------------------------------------------------------


def _add_create_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--factory-key", required=True)
    p.add_argument("--model", default="")
    p.add_argument("--firmware-version", default="")
    p.add_argument(
        "--send-frequency-ms", type=int, default=0, help="0: the provisioning service's value"
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    daemon = sub.add_parser(
        "simulator", help="run the gateway simulator daemon (settings: docs/simulator.md)"
    )
    daemon.set_defaults(func=run_daemon)

    sim = sub.add_parser("sim", help="control a running simulator over gRPC")
    sim.add_argument(
        "--addr",
        default=os.environ.get("SIM_GRPC_ADDR", "localhost:50051"),
        help="gRPC address (default $SIM_GRPC_ADDR or localhost:50051)",
    )
    sim.add_argument("--json", action="store_true", help="JSON output instead of tables")
    sim.add_argument("--timeout", type=float, default=120.0, help="per-call deadline (s)")
    sim.set_defaults(func=run_client)
    groups = sim.add_subparsers(dest="sim_group", required=True)

    gw = groups.add_parser("gateways", help="gateways").add_subparsers(dest="op", required=True)
    p = gw.add_parser("list")
    p.set_defaults(sim_func=gw_list)
    p = gw.add_parser("get")
    p.add_argument("gateway_id")
    p.set_defaults(sim_func=gw_get)
    p = gw.add_parser("create", help="onboard one gateway")
    p.add_argument("--factory-id", required=True)
    _add_create_options(p)
    p.set_defaults(sim_func=gw_create)
    p = gw.add_parser("bulk", help="onboard many gateways (progress on stderr)")
    p.add_argument("factory_ids", nargs="*", help="factory ids")
    p.add_argument("--from-file", help="file with one factory id per line")
    p.add_argument("--chunk", type=int, default=BULK_CHUNK, help="ids per request")
    _add_create_options(p)
    p.set_defaults(sim_func=gw_bulk)
    for name, method, message in (
        ("start", "start_gateway", "gateway {} started"),
        ("stop", "stop_gateway", "gateway {} stopped"),
        ("delete", "delete_gateway", "gateway {} deleted"),
    ):
        p = gw.add_parser(name)
        p.add_argument("gateway_id")
        p.set_defaults(sim_func=_simple(method, message))

    sensors = groups.add_parser("sensors", help="sensors").add_subparsers(dest="op", required=True)
    p = sensors.add_parser("add")
    p.add_argument("gateway_id")
    p.add_argument("--type", required=True)
    p.add_argument("--min", type=float, required=True)
    p.add_argument("--max", type=float, required=True)
    p.add_argument("--algorithm", default="uniform_random")
    p.set_defaults(sim_func=sensors_add)
    p = sensors.add_parser("list")
    p.add_argument("gateway_id")
    p.set_defaults(sim_func=sensors_list)
    p = sensors.add_parser("delete")
    p.add_argument("sensor_id")
    p.set_defaults(sim_func=sensors_delete)

    anomalies = groups.add_parser("anomalies", help="inject anomalies").add_subparsers(
        dest="op", required=True
    )
    p = anomalies.add_parser("disconnect")
    p.add_argument("gateway_id")
    p.add_argument("--duration", type=float, required=True, help="seconds")
    p.add_argument("--buffer", action="store_true", help="keep readings and replay them")
    p.set_defaults(sim_func=anomaly_disconnect)
    p = anomalies.add_parser("network-degradation")
    p.add_argument("gateway_id")
    p.add_argument("--duration", type=float, required=True, help="seconds")
    p.add_argument("--packet-loss", type=float, default=None, help="0..1, or a percentage")
    p.set_defaults(sim_func=anomaly_degradation)
    p = anomalies.add_parser("outlier")
    p.add_argument("sensor_id")
    p.add_argument("--value", type=float, default=None)
    p.set_defaults(sim_func=anomaly_outlier)

    p = groups.add_parser("watch", help="stream a gateway's events (JSON lines)")
    p.add_argument("gateway_id")
    p.add_argument("--for-seconds", type=float, default=None, help="stop after this long")
    p.set_defaults(sim_func=watch)
    p = groups.add_parser("health", help="check the control plane")
    p.set_defaults(sim_func=health)
