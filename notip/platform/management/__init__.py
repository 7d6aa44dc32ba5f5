"""The Management API stand-in (NATS side) — `notip mgmt`.

Modules: `settings` (environment), `service` (the nursery tree; start here), `core`
(what each operation does), `store` (SQLite), `keys` (factory-key hashing, AES keys at
rest), `messages` (wire formats, pure), `responders` (request-reply), `consumers`
(durable pulls for acks and alerts), `admin` (HTTP routes of docs/contracts.md#management-admin-http), `seed`.
"""
