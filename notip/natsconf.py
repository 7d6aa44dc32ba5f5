"""Generator for `nats-server.conf`: mTLS with `verify_and_map`, the service users of
docs/contracts.md#identities-and-permissions mapped by certificate subject, JetStream, monitoring.

A third, `cluster` (`ClusterSpec`), makes the server one node of a JetStream cluster
(docs/operations.md#nats-cluster): routes with mutual TLS, the route certificate's
subject as the only route user, the same client TLS, users and callout as a single
server. Each node gets its own `server_name` and store directory.

Two options, off by default (docs/nats-auth.md#server-configuration):

- `service_permissions`: each static service user gets its row of the permissions
  table (`notip.natsauth.permissions`) instead of access to every subject;
- `auth_callout` (`CalloutKeys`): every certificate that maps to no static user (a
  gateway's) is handed to `notip nats-auth`, which answers with that identity's
  permissions. Adds the system account with the auth service's nkey user (CONNZ,
  KICK), and sets the authorization timeout to `auth_timeout_s`. Everyone stays in
  the global account, where the streams are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from notip.natsauth import jwt
from notip.natsauth.permissions import SERVICES as SERVICE_PERMISSIONS
from notip.natsauth.permissions import SYSTEM_USER, Permissions
from notip.pki import NATS_ROUTE, SERVICES, PkiPaths, service_user

#: The server's authorization timeout with auth callout: how long a connection has,
#: from accept, to be authenticated, callout answer included; past it the server
#: refuses with `Authorization Violation`. Under 2 s on purpose: the server sends its
#: first PING about 2 s into a connection, and nats-py 2.16 takes that PING for the
#: answer to its CONNECT, so a slower refusal makes `connect()` return "successfully"
#: on a connection that then dies (natsio.connect checks for that, other clients may
#: not). 1.5 s leaves the auth service its 0.75 s get-status budget plus the TLS
#: handshake; a static user's CONNECT needs milliseconds.
AUTH_TIMEOUT_S = 1.5
SYSTEM_ACCOUNT = "SYS"

_q = json.dumps  # JSON strings are valid NATS config strings (quoted, escaped)


@dataclass(frozen=True)
class CalloutKeys:
    """The public keys `auth_callout` and the system account name."""

    #: `auth_callout.issuer`: the account key that signs the auth service's answers.
    issuer: str
    #: The auth service's nkey user in the system account.
    system_user: str
    #: `auth_callout.xkey`: the server seals requests to it (None: sent in the clear).
    xkey: str | None = None

    @classmethod
    def from_pki(cls, paths: PkiPaths, *, xkey: bool = True) -> CalloutKeys:
        """From the seeds `notip pki init` writes (docs/nats-auth.md#keys)."""
        return cls(
            issuer=jwt.public_key_of(paths.callout_issuer_seed.read_bytes()),
            system_user=jwt.public_key_of(paths.system_user_seed.read_bytes()),
            xkey=jwt.public_key_of(paths.callout_xkey_seed.read_bytes()) if xkey else None,
        )


#: The cluster's name (`cluster.name`): every node of one cluster carries the same.
CLUSTER_NAME = "notip"
#: nats-server's default route port.
CLUSTER_PORT = 6222


@dataclass(frozen=True)
class ClusterSpec:
    """This node's `cluster { … }`: where it listens for routes and the routes it
    dials (the other nodes; its own URL may be listed too, nats-server skips it)."""

    routes: tuple[str, ...]
    port: int = CLUSTER_PORT
    host: str = "0.0.0.0"
    name: str = CLUSTER_NAME


def route_url(host: str, port: int = CLUSTER_PORT) -> str:
    return f"nats-route://{host}:{port}"


def parse_routes(value: str) -> tuple[str, ...]:
    """`--cluster-routes`: `nats-route://host[:port]` URLs, comma-separated."""
    routes = tuple(r.strip() for r in value.split(","))
    for r in routes:
        if not r.startswith("nats-route://") or len(r) == len("nats-route://"):
            raise ValueError(f"{r!r}: expected nats-route://host[:port]")
    return routes


def permissions_block(perms: Permissions, indent: str) -> str:
    """A user's `permissions { … }`: allow lists; nothing allowed is `deny: [">"]` (an
    absent or empty list would mean "everything")."""

    def rule(subjects: tuple[str, ...]) -> str:
        return f"{{ allow: {_q(list(subjects))} }}" if subjects else '{ deny: [">"] }'

    lines = [
        f"{indent}  publish: {rule(perms.publish)}",
        f"{indent}  subscribe: {rule(perms.subscribe)}",
    ]
    if perms.allow_responses:
        lines.append(f"{indent}  allow_responses: true")
    return "permissions: {\n" + "\n".join(lines) + f"\n{indent}}}"


@dataclass
class NatsConfig:
    pki_dir: Path
    store_dir: Path
    host: str = "0.0.0.0"
    port: int = 4222
    monitor_port: int = 8222
    server_name: str = "notip-nats"
    users: list[str] = field(default_factory=lambda: [service_user(s) for s in SERVICES])
    max_file_store: str = "10G"
    service_permissions: bool = False
    auth_callout: CalloutKeys | None = None
    auth_timeout_s: float = AUTH_TIMEOUT_S
    cluster: ClusterSpec | None = None

    def _user(self, dn: str) -> str:
        by_dn = {service_user(name): perms for name, perms in SERVICE_PERMISSIONS.items()}
        perms = by_dn.get(dn) if self.service_permissions else None
        if perms is None:
            return f"    {{ user: {_q(dn)} }}"
        return f"    {{ user: {_q(dn)}, {permissions_block(perms, '      ')} }}"

    def _callout(self, users: str) -> str:
        keys = self.auth_callout
        assert keys is not None
        auth_users = [*self.users, keys.system_user]
        xkey = f"\n    xkey: {_q(keys.xkey)}" if keys.xkey else ""
        return f"""# The auth service's user in the system account: CONNZ and KICK on every server.
system_account: {SYSTEM_ACCOUNT}
accounts {{
  {SYSTEM_ACCOUNT} {{
    users: [
      {{ nkey: {_q(keys.system_user)}, {permissions_block(SYSTEM_USER, "        ")} }}
    ]
  }}
}}

# Auth callout: the users above (listed in auth_users) keep their static
# permissions; every other verified certificate (a gateway's) is handed to
# `notip nats-auth` on $SYS.REQ.USER.AUTH, whose signed answer carries that
# identity's permissions. Callout users land in the global account ($G).
authorization {{
  timeout: {self.auth_timeout_s}
  users: [
{users}
  ]
  auth_callout {{
    issuer: {_q(keys.issuer)}
    auth_users: {_q(auth_users)}{xkey}
  }}
}}
"""

    def render(self) -> str:
        pki = PkiPaths(self.pki_dir)
        q = _q
        users = "\n".join(self._user(u) for u in self.users)
        return f"""# Generated by `notip nats conf`. Client certificates are mandatory and are
# mapped to users by their subject (verify_and_map); an unmapped certificate is
# rejected.
server_name: {q(self.server_name)}
host: {q(self.host)}
port: {self.port}
http_port: {self.monitor_port}
max_payload: 1MB

jetstream {{
  store_dir: {q(str(self.store_dir))}
  max_file_store: {self.max_file_store}
}}

tls {{
  cert_file: {q(str(pki.nats_server_cert))}
  key_file: {q(str(pki.nats_server_key))}
  ca_file: {q(str(pki.ca_cert))}
  verify: true
  verify_and_map: true
  timeout: 5
}}
{self._cluster(pki)}
{self._callout(users) if self.auth_callout else self._static(users)}"""

    def _cluster(self, pki: PkiPaths) -> str:
        c = self.cluster
        if c is None:
            return ""
        # verify_and_map + one route user: only the route certificate's subject may
        # open a route (any certificate of the CA, a gateway's included, would
        # otherwise be let in as a cluster node). no_advertise: clients are given every
        # node in NATS_URL; the addresses a node would advertise (container IPs in
        # compose) are not in the server certificate, so clients could not verify them.
        return f"""
# One node of the JetStream cluster {_q(c.name)}: routes with mutual TLS.
cluster {{
  name: {_q(c.name)}
  listen: {_q(f"{c.host}:{c.port}")}
  routes: {_q(list(c.routes))}
  no_advertise: true
  tls {{
    cert_file: {_q(str(pki.nats_route_cert))}
    key_file: {_q(str(pki.nats_route_key))}
    ca_file: {_q(str(pki.ca_cert))}
    verify: true
    verify_and_map: true
    timeout: 5
  }}
  authorization {{
    user: {_q(service_user(NATS_ROUTE))}
  }}
}}
"""

    def _static(self, users: str) -> str:
        return f"""authorization {{
  users: [
{users}
  ]
}}
"""

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render())
        return path
