"""Shared pieces of the benchmarks: the same local nats-server and PostgreSQL helpers
the tests use (fsync on), process CPU/RSS readings from /proc, medians, the host
calibration and the figure table."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import trio

from notip import natsio
from notip.localservers import NatsServer, PostgresServer
from notip.pki import PkiPaths, init_pki

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Stack:
    root: Path
    pki: PkiPaths
    nats: NatsServer
    pg: PostgresServer
    #: A second nats-server without TLS or authorization (`stack(plain_nats=True)`),
    #: for the drain benchmark's plain-TCP variants.
    plain_nats: NatsServer | None = None

    def tls(self, service: str) -> natsio.TlsFiles:
        return natsio.TlsFiles(self.pki.ca_cert, self.pki.cert(service), self.pki.key(service))

    def password_file(self) -> Path:
        path = self.root / "db-password"
        path.write_text(self.pg.password + "\n")
        return path


@contextmanager
def stack(fsync: bool = True, plain_nats: bool = False) -> Iterator[Stack]:
    """nats-server (mTLS) and PostgreSQL (TLS on; plain connections are accepted too,
    `DB_SSL_MODE=disable`), and with `plain_nats` a second nats-server on plain TCP."""
    root = Path(tempfile.mkdtemp(prefix="notip-bench-"))
    os.chmod(root, 0o755)
    try:
        init_pki(root / "pki")
        pki = PkiPaths(root / "pki")
        (root / "pg").mkdir()
        os.chmod(root / "pg", 0o755)
        with (
            NatsServer(root / "nats", pki.root) as nats,
            NatsServer(root / "nats-plain", pki.root, plain=True)
            if plain_nats
            else nullcontext() as plain,
            PostgresServer(
                root / "pg" / "data",
                tls_cert=pki.postgres_server_cert,
                tls_key=pki.postgres_server_key,
                fsync=fsync,
                # Each row's commit time, for the latency benchmark.
                settings={"track_commit_timestamp": "on", "max_wal_size": "2GB"},
            ) as pg,
        ):
            yield Stack(root, pki, nats, pg, plain)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- /proc readings ----------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as fh:
        data = fh.read()
    # The command name may contain spaces: split after the closing parenthesis.
    return data[data.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    try:
        fields = _stat(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(_stat(int(entry))[1]) == pid:
                    out.append(int(entry))
            except (OSError, IndexError):
                continue
    return out


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process, its reaped children (cutime/cstime) and its live children
    (PostgreSQL's backends)."""
    try:
        fields = _stat(pid)
    except OSError:
        return 0.0
    own = sum(int(x) for x in fields[11:15]) / CLK_TCK
    return own + sum(cpu_seconds(c) for c in children(pid))


def runqueue_wait_seconds(pid: int) -> float:
    """Time the process's threads spent runnable but waiting for a CPU (the second
    field of /proc/<pid>/task/<tid>/schedstat), summed: on a shared machine it tells
    a process that was starved of CPU from one that was slow on its own. 0 when
    the kernel keeps no scheduler statistics."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                total += int(fh.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def _status_mb(pid: int, key: str) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def peak_rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmHWM:")


def rss_mb(pid: int) -> float:
    """Resident set size now."""
    return _status_mb(pid, "VmRSS:")


# -- host calibration ------------------------------------------------------------------

CALIBRATION_RUNS = 5


def calibration_loop(n: int = 480_000) -> int:
    """A fixed, deterministic pure-Python workload (dict, str and int work, no I/O,
    no allocation that depends on the host): its CPU time says how fast this host
    runs the interpreter, so figures from different hosts can be put side by side
    (divide by the calibration time). Never change it: that would break comparisons
    with earlier results."""
    table: dict[str, int] = {}
    acc = 0
    for i in range(n):
        key = "k" + str(i % 997)
        table[key] = table.get(key, 0) + (i * 7 + 3) % 1009
        acc ^= len(key) * table[key]
    return acc + len(table)


def calibrate(runs: int = CALIBRATION_RUNS) -> tuple[float, list[float]]:
    """CPU seconds of `calibration_loop` (median of `runs`, and each run). CPU time, not
    wall time, so that other processes on a shared machine matter less."""
    times = []
    for _ in range(runs):
        t0 = time.process_time()
        calibration_loop()
        times.append(time.process_time() - t0)
    return statistics.median(times), times


# -- Prometheus scrapes ----------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


async def scrape(url: str) -> list[Sample]:
    """Every sample of a /metrics page (text format)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.get(url)
        r.raise_for_status()
    return [
        Sample(s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    ]


def sample_sum(samples: list[Sample], name: str, **labels: str) -> float:
    """Sum of a series over all label sets matching `labels`."""
    return sum(
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


# -- figures -------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Figure:
    bench: str
    name: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None
    runs: list[float] = field(default_factory=list)


def print_table(figures: list[Figure]) -> None:
    rows = [("benchmark", "figure", "median", "unit", "target", "met")]
    for f in figures:
        met = "" if f.met is None else ("yes" if f.met else "NO")
        rows.append((f.bench, f.name, f"{f.value:,.2f}", f.unit, f.target, met))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def write_json(figures: list[Figure], path: Path, meta: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "figures": [asdict(f) for f in figures]}, indent=2))


# -- child processes -------------------------------------------------------------------


class Child:
    """A benchmark process: started with `trio.lowlevel.open_process`, stopped with
    SIGTERM (then SIGKILL) when the block ends."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str] | None = None,
        stdout: bool = False,
        log: Path | None = None,
    ) -> None:
        self.argv = argv
        self.env = {**os.environ, **(env or {})}
        self.stdout = stdout
        self.log = log  # stderr (and stdout unless captured) go there, else nowhere
        self.proc: trio.Process | None = None

    async def __aenter__(self) -> trio.Process:
        import subprocess

        log_file = None
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            log_file = open(self.log, "ab")  # noqa: SIM115, ASYNC230  # the child keeps its own copy
        sink = log_file if log_file is not None else subprocess.DEVNULL
        try:
            self.proc = await trio.lowlevel.open_process(
                self.argv,
                env=self.env,
                stdout=subprocess.PIPE if self.stdout else sink,
                stderr=sink,
            )
        finally:
            if log_file is not None:
                log_file.close()
        return self.proc

    async def __aexit__(self, *exc: object) -> None:
        import signal

        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with trio.CancelScope(shield=True):
            proc.send_signal(signal.SIGTERM)
            with trio.move_on_after(20):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def read_json_line(proc: trio.Process) -> dict[str, object]:
    """The last line a child printed on stdout, as JSON (children print one result)."""
    assert proc.stdout is not None
    data = b""
    async for chunk in proc.stdout:
        data += chunk
    await proc.wait()
    result = json.loads(data.strip().splitlines()[-1])
    if not isinstance(result, dict):
        raise ValueError(f"child printed {result!r}, not a JSON object")
    return result


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]
