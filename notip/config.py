"""Reading settings from environment variables (docs/contracts.md#environment-variables).

Every daemon's `settings.py` builds a frozen dataclass through an `Env` reader, which
collects *all* problems and raises one `ConfigError` whose message names each
variable, so a bad deployment is fixed in one round. Each default is written once, as
the dataclass field's default; `from_env` passes it on (`env.int("X", cls.x)`).
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, TypeVar, cast
from urllib.parse import urlsplit

from notip.httpserve import parse_addr
from notip.natsio import TlsFiles

T = TypeVar("T")


class _Missing(enum.Enum):
    """The "no default: required" marker (an enum member so that it has a type)."""

    MISSING = enum.auto()


_MISSING: Final = _Missing.MISSING


class ConfigError(ValueError):
    """One or more settings are missing or invalid; the message names them."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration: " + "; ".join(problems))


class Env:
    def __init__(self, environ: Mapping[builtins.str, str]) -> None:
        self.environ = environ
        self.problems: list[builtins.str] = []

    def _raw(self, name: builtins.str, default: T) -> builtins.str | T:
        value = self.environ.get(name)
        if value is None or value.strip() == "":
            if default is _MISSING:
                self.problems.append(f"{name} is required")
            return default
        return value.strip()

    def parsed(
        self, name: builtins.str, default: T | _Missing, parse: Callable[[builtins.str], T]
    ) -> T:
        """`parse(value)` of the (stripped) variable, or `default` when it is unset or
        empty (no default: "NAME is required"). A ValueError from `parse` is recorded
        as `NAME='value': <its message>` and gives the default."""
        raw = self._raw(name, default)
        if not isinstance(raw, str):
            return self._default(raw)
        try:
            return parse(raw)
        except ValueError as exc:
            self.problems.append(f"{name}={raw!r}: {exc}")
            return self._default(default)

    def _default(self, default: T | _Missing) -> T:
        # A required variable that is missing or invalid has no value to give: the
        # marker stands in for it, and is never used because check() raises (the
        # problem is already recorded).
        return cast(T, default)

    def str(self, name: builtins.str, default: builtins.str | _Missing = _MISSING) -> builtins.str:
        return self.parsed(name, default, lambda s: s)

    def path(
        self, name: builtins.str, default: Path | _Missing = _MISSING, *, must_exist: bool = False
    ) -> Path:
        return self.parsed(name, default, _path_parser(must_exist))

    def optional_path(self, name: builtins.str, *, must_exist: bool = False) -> Path | None:
        parse: Callable[[builtins.str], Path | None] = _path_parser(must_exist)
        return self.parsed(name, None, parse)

    def int(
        self,
        name: builtins.str,
        default: builtins.int | _Missing = _MISSING,
        *,
        min: builtins.int | None = None,
        max: builtins.int | None = None,
    ) -> builtins.int:
        def parse(s: builtins.str) -> builtins.int:
            try:
                v = int(s, 10)
            except ValueError:
                raise ValueError("not an integer") from None
            if min is not None and v < min:
                raise ValueError(f"must be >= {min}")
            if max is not None and v > max:
                raise ValueError(f"must be <= {max}")
            return v

        return self.parsed(name, default, parse)

    def bool(
        self, name: builtins.str, default: builtins.bool | _Missing = _MISSING
    ) -> builtins.bool:
        def parse(s: builtins.str) -> builtins.bool:
            low = s.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")

        return self.parsed(name, default, parse)

    def choice(
        self,
        name: builtins.str,
        choices: tuple[builtins.str, ...],
        default: builtins.str | _Missing = _MISSING,
    ) -> builtins.str:
        def parse(s: builtins.str) -> builtins.str:
            if s not in choices:
                raise ValueError(f"expected one of {', '.join(choices)}")
            return s

        return self.parsed(name, default, parse)

    def addr(self, name: builtins.str, default: builtins.str | _Missing = _MISSING) -> builtins.str:
        def parse(s: builtins.str) -> builtins.str:
            parse_addr(s)
            return s

        return self.parsed(name, default, parse)

    def nats_tls(
        self, ca: builtins.str = "NATS_TLS_CA", *, client_cert_required: builtins.bool = True
    ) -> TlsFiles:
        """The NATS TLS files: the CA certificate from the variable `ca`, the client
        certificate and key from NATS_TLS_CERT/NATS_TLS_KEY — required, or (when not
        `client_cert_required`) optional but set together."""
        ca_path = self.path(ca, must_exist=True)
        if client_cert_required:
            cert: Path | None = self.path("NATS_TLS_CERT", must_exist=True)
            key: Path | None = self.path("NATS_TLS_KEY", must_exist=True)
        else:
            cert = self.optional_path("NATS_TLS_CERT", must_exist=True)
            key = self.optional_path("NATS_TLS_KEY", must_exist=True)
            set_cert = self._raw("NATS_TLS_CERT", None) is not None
            set_key = self._raw("NATS_TLS_KEY", None) is not None
            if set_cert != set_key:
                self.problem("NATS_TLS_CERT and NATS_TLS_KEY must be set together (or neither)")
        return TlsFiles(ca_path, cert, key)

    def nats_url(self, name: builtins.str = "NATS_URL") -> builtins.str:
        """One NATS server or a cluster's nodes, comma-separated (`parse_nats_urls`),
        required; given back normalised (`tls://a:4222,tls://b:4222`), which
        `natsio.connect` hands to nats-py as its server list."""
        return self.parsed(name, _MISSING, lambda s: ",".join(parse_nats_urls(s)))

    def nats_service(self) -> tuple[builtins.str, TlsFiles]:
        """NATS_URL and the service identity NATS_TLS_CA/CERT/KEY (all required)."""
        return self.nats_url(), self.nats_tls()

    def problem(self, message: builtins.str) -> None:
        self.problems.append(message)

    def check(self) -> None:
        """Raise ConfigError when anything was missing or invalid."""
        if self.problems:
            raise ConfigError(self.problems)


#: The URL schemes nats-py connects with over TCP (`tls` insists on TLS; with `nats`
#: the server's INFO decides, and ours always asks for it).
NATS_SCHEMES = ("tls", "nats")


def parse_nats_urls(value: str) -> list[str]:
    """`NATS_URL`: one server URL or several, comma-separated (the nodes of a cluster;
    docs/operations.md#nats-cluster), each `scheme://host[:port]` with a scheme of
    `NATS_SCHEMES`. Raises ValueError naming the first bad entry."""
    urls: list[str] = []
    for i, raw in enumerate(value.split(","), start=1):
        item = raw.strip()
        where = f"entry {i}"
        if not item:
            raise ValueError(f"{where} is empty (a stray comma?)")
        if "://" not in item:
            raise ValueError(f"{where} {item!r} has no scheme (e.g. tls://{item})")
        parts = urlsplit(item)
        if parts.scheme not in NATS_SCHEMES:
            raise ValueError(
                f"{where} {item!r}: scheme {parts.scheme!r} is not one of {', '.join(NATS_SCHEMES)}"
            )
        if not parts.hostname:
            raise ValueError(f"{where} {item!r} has no host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{where} {item!r}: bad port") from None
        if port == 0 or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"{where} {item!r}: expected scheme://host[:port]")
        if item in urls:
            raise ValueError(f"{where} {item!r} is listed twice")
        urls.append(item)
    return urls


def _path_parser(must_exist: bool) -> Callable[[str], Path]:
    def parse(s: str) -> Path:
        p = Path(s)
        if must_exist and not p.exists():
            raise ValueError("file does not exist")
        return p

    return parse
