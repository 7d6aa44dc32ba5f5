"""Per-identity NATS authorization by auth callout (docs/nats-auth.md).

- `jwt`: the nkeys-signed JWTs and xkey boxes of the callout protocol (pure);
- `identity`: verified certificate chain → gateway, service or rejection (pure);
- `permissions`: the one table of what each identity may publish and subscribe;
- `decide`: admit or refuse, with the management status cache (sans-io);
- `responder`: answering the server's authorization requests;
- `mgmt`: asking management about a gateway (get-status, one attempt in a budget);
- `kick`: finding and closing connections through the system account (CONNZ, KICK);
- `enforcer`: decommission events, follow-up kicks and the sweep;
- `settings`, `metrics`, `service`, `cli`: the `notip nats-auth` daemon.
"""
