#!/usr/bin/env python3
"""Container health probe of the notip image (`HEALTHCHECK CMD ["notip-healthcheck"]`).

One image runs every `notip` command, so the probe first finds out which command this
container runs (the `notip` process in /proc), then asks that daemon's own health
endpoint at the address the daemon itself reads from the environment, with the
defaults of docs/contracts.md#environment-variables:

    consumer      METRICS_ADDR (:9090)  /healthz
    simulator     HTTP_ADDR    (:8090)  /health
    provisioning  HTTP_ADDR    (:3000)  /health
    mgmt          HTTP_ADDR    (:8080)  /health

One-shot commands (`pki init`, `nats conf`, `nats init-streams`, …) serve nothing:
they count as healthy while they run. `notip-healthcheck URL` probes URL instead.

Exit status: 0 healthy, 1 unhealthy (what Docker expects). Standard library only; no
proxy is ever used (the probe talks to its own container).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

# command -> (environment variable holding the address, its default, path)
ENDPOINTS: dict[str, tuple[str, str, str]] = {
    "consumer": ("METRICS_ADDR", ":9090", "/healthz"),
    "simulator": ("HTTP_ADDR", ":8090", "/health"),
    "provisioning": ("HTTP_ADDR", ":3000", "/health"),
    "mgmt": ("HTTP_ADDR", ":8080", "/health"),
    "nats-auth": ("METRICS_ADDR", ":9090", "/healthz"),
}

TIMEOUT_S = 4.0


def url_for_addr(addr: str, path: str) -> str:
    """`:9090` / `0.0.0.0:9090` / `[::]:9090` / `host:9090` → a URL to probe from
    inside the container (wildcard binds are probed on loopback)."""
    host, sep, port = addr.strip().rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected [host]:port, got {addr!r}")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{path}"


def probe_url(command: str | None, environ: Mapping[str, str]) -> str | None:
    """The URL that tells whether `command` is healthy; None for commands that serve
    no health endpoint."""
    if command not in ENDPOINTS:
        return None
    var, default, path = ENDPOINTS[command]
    addr = environ.get(var, "").strip() or default
    return url_for_addr(addr, path)


def command_of(argv: Sequence[str]) -> str | None:
    """`[python, /opt/venv/bin/notip, consumer, …]` or `[python, -m, notip, consumer]`
    → `consumer`; None when argv is not a notip process."""
    for i, arg in enumerate(argv):
        is_script = os.path.basename(arg) == "notip"
        is_module = arg == "notip" and i > 0 and argv[i - 1] == "-m"
        if is_script or is_module:
            rest = [a for a in argv[i + 1 :] if not a.startswith("-")]
            return rest[0] if rest else None
    return None


def find_command(proc: Path = Path("/proc"), *, self_pid: int | None = None) -> str | None:
    """The sub-command of the (lowest-pid) notip process visible in `proc`."""
    me = os.getpid() if self_pid is None else self_pid
    pids = sorted(int(p.name) for p in proc.iterdir() if p.name.isdigit())
    for pid in pids:
        if pid == me:
            continue
        try:
            raw = (proc / str(pid) / "cmdline").read_bytes()
        except OSError:  # the process ended meanwhile, or is not ours to read
            continue
        argv = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
        command = command_of(argv)
        if command is not None:
            return command
    return None


def check(url: str, timeout: float = TIMEOUT_S) -> tuple[bool, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        return False, f"{url}: HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return False, f"{url}: {exc}"
    return 200 <= status < 300, f"{url}: HTTP {status}"


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if environ is None else environ
    if args:
        url: str | None = args[0]
    else:
        command = find_command()
        try:
            url = probe_url(command, env)
        except ValueError as exc:
            print(f"unhealthy: {exc}")
            return 1
        if url is None:
            print(f"healthy: `notip {command or '?'}` serves no health endpoint")
            return 0
    assert url is not None
    ok, detail = check(url)
    print(("healthy: " if ok else "unhealthy: ") + detail)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
