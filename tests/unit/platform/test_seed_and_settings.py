"""`--seed FILE` (idempotent, all-or-nothing) and both stand-ins' settings."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from notip.config import ConfigError
from notip.pki import PkiPaths, init_pki
from notip.platform.management import settings as mgmt_settings
from notip.platform.management.core import Management
from notip.platform.management.keys import KeySealer
from notip.platform.management.seed import SeedError, apply_seed, parse_seed
from notip.platform.management.store import Store
from notip.platform.provisioning import settings as prov_settings

TENANT = str(uuid.uuid4())
GW_ID = str(uuid.uuid4())


async def _noop_publish(subject: str, body: bytes, *, msg_id: str) -> None:
    raise AssertionError("the seed publishes nothing")


@pytest.fixture
def mgmt(tmp_path: Path) -> Iterator[Management]:
    store = Store(tmp_path / "mgmt.db")
    yield Management(store, KeySealer(None), _noop_publish)
    store.close()


def _write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / f"seed-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(doc))
    return path


SEED = {
    "gateways": [
        {"factory_id": "F-1", "factory_key": "k1", "tenant_id": TENANT, "model": "m", "id": GW_ID},
        {"factory_id": "F-2", "factory_key": "k2", "tenant_id": TENANT, "model": "m"},
    ],
    "alert_configs": [
        {"tenant_id": TENANT, "timeout_ms": 30000},
        {"tenant_id": TENANT, "gateway_id": GW_ID, "timeout_ms": 5000},
    ],
}


async def test_seed_loads_and_is_idempotent(mgmt: Management, tmp_path: Path) -> None:
    path = _write(tmp_path, SEED)
    first = await apply_seed(mgmt, path)
    assert first == {"gateways_created": 2, "gateways_total": 2, "alert_configs": 2}
    second = await apply_seed(mgmt, path)
    assert second["gateways_created"] == 0
    gateways = mgmt.store.list_gateways(TENANT)
    assert sorted(g.factory_id for g in gateways) == ["F-1", "F-2"]
    assert mgmt.store.get_gateway(GW_ID) is not None
    assert await mgmt.alert_configs_list() == [
        {"tenant_id": TENANT, "gateway_id": None, "timeout_ms": 30000},
        {"tenant_id": TENANT, "gateway_id": GW_ID, "timeout_ms": 5000},
    ]
    validate = await mgmt.factory_validate({"factory_id": "F-1", "factory_key": "k1"})
    assert validate == {"gateway_id": GW_ID, "tenant_id": TENANT}


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ([], "JSON object"),
        ({"gateways": {}}, "gateways must be a list"),
        ({"tenants": []}, "unknown key"),
        (
            {"gateways": [{"factory_id": "F", "factory_key": "k", "tenant_id": "t", "model": "m"}]},
            r"gateways\[0\]: tenant_id",
        ),
        (
            {
                "gateways": [
                    {"factory_id": "F", "factory_key": "k", "tenant_id": TENANT, "model": "m"},
                    {"factory_id": "F", "factory_key": "k", "tenant_id": TENANT, "model": "m"},
                ]
            },
            "appears twice",
        ),
        (
            {"alert_configs": [{"tenant_id": TENANT, "timeout_ms": -5}]},
            r"alert_configs\[0\]: timeout_ms",
        ),
    ],
)
def test_seed_validation_names_the_entry(doc: Any, match: str) -> None:
    with pytest.raises(SeedError, match=match):
        parse_seed(doc)


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"alert_configs": [{"tenant_id": str(uuid.uuid4()), "timeout_ms": 5}]}, "unknown tenant"),
        (
            {
                "gateways": SEED["gateways"],
                "alert_configs": [
                    {"tenant_id": TENANT, "gateway_id": str(uuid.uuid4()), "timeout_ms": 5}
                ],
            },
            "unknown gateway",
        ),
    ],
)
async def test_seed_problems_write_nothing(
    mgmt: Management, tmp_path: Path, doc: Any, match: str
) -> None:
    with pytest.raises(SeedError, match=match):
        await apply_seed(mgmt, _write(tmp_path, doc))
    assert mgmt.store.list_gateways() == []
    assert await mgmt.alert_configs_list() == []


async def test_seed_conflicting_with_the_store(mgmt: Management, tmp_path: Path) -> None:
    await apply_seed(mgmt, _write(tmp_path, SEED))
    other = {
        "gateways": [
            {"factory_id": "F-1", "factory_key": "k", "tenant_id": str(uuid.uuid4()), "model": "m"}
        ]
    }
    with pytest.raises(SeedError, match="another tenant or id"):
        await apply_seed(mgmt, _write(tmp_path, other))


def test_seed_file_errors(tmp_path: Path) -> None:
    from notip.platform.management.seed import load_seed_file

    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(SeedError, match="not valid JSON"):
        load_seed_file(bad)
    with pytest.raises(SeedError, match="cannot read"):
        load_seed_file(tmp_path / "missing.json")


# -- settings ----------------------------------------------------------------------------


class Recording(dict[str, str]):
    """A mapping that remembers every name looked up."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    root = tmp_path_factory.mktemp("pki")
    init_pki(root)
    return PkiPaths(root)


def _nats_env(p: PkiPaths, service: str) -> dict[str, str]:
    return {
        "NATS_URL": "tls://127.0.0.1:4222",
        "NATS_TLS_CA": str(p.ca_cert),
        "NATS_TLS_CERT": str(p.cert(service)),
        "NATS_TLS_KEY": str(p.key(service)),
    }


def test_mgmt_settings_defaults_and_env_vars(pki_dir: PkiPaths) -> None:
    env = Recording(_nats_env(pki_dir, "management-api"))
    s = mgmt_settings.Settings.from_env(env)
    assert (s.db_path, s.http_addr, s.key_file) == (Path("/data/mgmt.db"), ":8080", None)
    assert s.command_timeout_s == 75.0
    assert env.read == mgmt_settings.ENV_VARS


def test_mgmt_settings_problems_name_the_variable(pki_dir: PkiPaths, tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(os.urandom(16))
    env = {
        **_nats_env(pki_dir, "management-api"),
        "MGMT_KEY_FILE": str(short),
        "HTTP_ADDR": "eighty",
    }
    del env["NATS_URL"]
    with pytest.raises(ConfigError) as err:
        mgmt_settings.Settings.from_env(env)
    text = str(err.value)
    assert "NATS_URL is required" in text and "MGMT_KEY_FILE" in text and "HTTP_ADDR" in text
    good = tmp_path / "good.key"
    good.write_bytes(os.urandom(32))
    env = {**_nats_env(pki_dir, "management-api"), "MGMT_KEY_FILE": str(good)}
    assert mgmt_settings.Settings.from_env(env).key_file == good


def _prov_env(p: PkiPaths) -> dict[str, str]:
    return {
        **_nats_env(p, "provisioning"),
        "CA_CERTS_PATH": str(p.root),
        "CA_KEY_PATH": str(p.ca_key),
    }


def test_provisioning_settings_defaults_and_env_vars(pki_dir: PkiPaths) -> None:
    env = Recording(_prov_env(pki_dir))
    s = prov_settings.Settings.from_env(env)
    assert (s.cert_ttl_days, s.http_addr, s.ca_cert_path) == (90, ":3000", pki_dir.ca_cert)
    assert env.read == prov_settings.ENV_VARS


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"CERT_TTL_DAYS": "0"}, "CERT_TTL_DAYS"),
        ({"CERT_TTL_DAYS": "ninety"}, "CERT_TTL_DAYS"),
        ({"CA_CERTS_PATH": "/nonexistent"}, "CA_CERTS_PATH"),
        ({"CA_KEY_PATH": "/nonexistent"}, "CA_KEY_PATH"),
        ({"CA_KEY_PATH": "{cert}"}, "CA_KEY_PATH"),
        ({"CA_KEY_PATH": "{other_key}"}, "does not belong to the CA"),
    ],
)
def test_provisioning_settings_problems(
    pki_dir: PkiPaths, change: dict[str, str], name: str
) -> None:
    env = _prov_env(pki_dir)
    for k, v in change.items():
        env[k] = v.format(cert=pki_dir.ca_cert, other_key=pki_dir.key("simulator"))
    with pytest.raises(ConfigError, match=name):
        prov_settings.Settings.from_env(env)
