"""`notip mgmt --seed FILE` (docs/contracts.md#management-admin-http): gateways and alert configs loaded at
start-up, idempotently.

```json
{"gateways": [{"factory_id": "…", "factory_key": "…", "tenant_id": "<uuid>",
               "model": "…", "id": "<uuid>"}],
 "alert_configs": [{"tenant_id": "<uuid>", "gateway_id": "<uuid>", "timeout_ms": 60000}]}
```

- A gateway whose `factory_id` exists already is left as it is (a second start with
  the same file changes nothing, and never resets a provisioned gateway). The optional
  `id` fixes the gateway id, so that alert configs can refer to it; without it the id
  is a fresh UUID.
- An alert config without `gateway_id` (or with null) sets the tenant default; with one
  it sets that gateway's override. Both are upserts. A tenant is known once one of its
  gateways exists (in the store or earlier in the file).
- The whole file is checked before anything is written; a problem stops start-up with
  a message naming the entry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from notip.platform.management.core import Management
from notip.platform.validation import (
    BadInput,
    only_fields,
    positive_int,
    text_field,
    uuid_field,
)


class SeedError(ValueError):
    pass


def _entries(doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise SeedError(f"{key} must be a list of objects")
    return value


def parse_seed(doc: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Validate the document; returns (gateways, alert_configs) normalized."""
    if not isinstance(doc, dict):
        raise SeedError("the seed must be a JSON object")
    unknown = set(doc) - {"gateways", "alert_configs"}
    if unknown:
        raise SeedError(f"unknown key(s): {', '.join(sorted(unknown))}")
    gateways: list[dict[str, Any]] = []
    factory_ids: set[str] = set()
    tenants: set[str] = set()
    ids: set[str] = set()
    for i, entry in enumerate(_entries(doc, "gateways")):
        try:
            only_fields(entry, {"factory_id", "factory_key", "tenant_id", "model", "id"})
            gw = {
                "factory_id": text_field(entry.get("factory_id"), "factory_id"),
                "factory_key": text_field(entry.get("factory_key"), "factory_key", max_len=1024),
                "tenant_id": uuid_field(entry.get("tenant_id"), "tenant_id"),
                "model": text_field(entry.get("model"), "model"),
            }
            if entry.get("id") is not None:
                gw["id"] = uuid_field(entry["id"], "id")
        except BadInput as exc:
            raise SeedError(f"gateways[{i}]: {exc}") from None
        if gw["factory_id"] in factory_ids:
            raise SeedError(f"gateways[{i}]: factory_id {gw['factory_id']!r} appears twice")
        if gw.get("id") in ids:
            raise SeedError(f"gateways[{i}]: id {gw['id']} appears twice")
        factory_ids.add(gw["factory_id"])
        tenants.add(gw["tenant_id"])
        if "id" in gw:
            ids.add(gw["id"])
        gateways.append(gw)
    configs: list[dict[str, Any]] = []
    for i, entry in enumerate(_entries(doc, "alert_configs")):
        try:
            only_fields(entry, {"tenant_id", "gateway_id", "timeout_ms"})
            cfg = {
                "tenant_id": uuid_field(entry.get("tenant_id"), "tenant_id"),
                "gateway_id": (
                    uuid_field(entry["gateway_id"], "gateway_id")
                    if entry.get("gateway_id") is not None
                    else None
                ),
                "timeout_ms": positive_int(entry.get("timeout_ms"), "timeout_ms"),
            }
        except BadInput as exc:
            raise SeedError(f"alert_configs[{i}]: {exc}") from None
        configs.append(cfg)
    return gateways, configs


def load_seed_file(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SeedError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise SeedError(f"{path} is not valid JSON: {exc}") from None
    try:
        return parse_seed(doc)
    except SeedError as exc:
        raise SeedError(f"{path}: {exc}") from None


async def apply_seed(mgmt: Management, path: Path) -> dict[str, int]:
    """Load `path` into the store. Returns counts of what it did."""
    gateways, configs = load_seed_file(path)
    store = mgmt.store
    # Check everything against the store before writing anything.
    for i, gw in enumerate(gateways):
        existing = await store.run(store.gateway_by_factory_id, gw["factory_id"])
        if existing is not None:
            if existing.tenant_id != gw["tenant_id"] or gw.get("id", existing.id) != existing.id:
                raise SeedError(
                    f"{path}: gateways[{i}]: factory_id {gw['factory_id']!r} exists with "
                    "another tenant or id"
                )
        elif "id" in gw and await store.run(store.get_gateway, gw["id"]) is not None:
            raise SeedError(f"{path}: gateways[{i}]: id {gw['id']} belongs to another gateway")
    seeded_tenants = {gw["tenant_id"] for gw in gateways}
    seeded_ids = {gw["id"]: gw["tenant_id"] for gw in gateways if "id" in gw}
    for i, cfg in enumerate(configs):
        if cfg["tenant_id"] not in seeded_tenants and not await store.run(
            store.tenant_exists, cfg["tenant_id"]
        ):
            raise SeedError(f"{path}: alert_configs[{i}]: unknown tenant {cfg['tenant_id']}")
        gid = cfg["gateway_id"]
        if gid is not None:
            known = await store.run(store.get_gateway, gid)
            tenant = seeded_ids.get(gid) or (known.tenant_id if known else None)
            if tenant is None:
                raise SeedError(f"{path}: alert_configs[{i}]: unknown gateway {gid}")
            if tenant != cfg["tenant_id"]:
                raise SeedError(f"{path}: alert_configs[{i}]: gateway {gid} is not the tenant's")

    created = 0
    for gw in gateways:
        if await store.run(store.gateway_by_factory_id, gw["factory_id"]) is None:
            await mgmt.create_gateway(dict(gw))
            created += 1
    for cfg in configs:
        if cfg["gateway_id"] is None:
            await store.run(store.set_tenant_timeout, cfg["tenant_id"], cfg["timeout_ms"])
        else:
            await store.run(store.set_gateway_timeout, cfg["gateway_id"], cfg["timeout_ms"])
    return {
        "gateways_created": created,
        "gateways_total": len(gateways),
        "alert_configs": len(configs),
    }
