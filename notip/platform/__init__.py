"""Stand-ins for the two NoTIP platform services the daemons talk to.

- `notip.platform.provisioning`: the Provisioning Service (HTTP onboarding: factory
  credentials → signed gateway certificate + AES key).
- `notip.platform.management`: the Management API's NATS side (request-reply
  responders, command and decommission publishers, ack and alert recorders) with a
  small admin HTTP surface for seeding and inspection.

They exist for local runs (`notip dev`) and the test suite; on the wire (docs/contracts.md#nats,
docs/contracts.md#provisioning-http, docs/contracts.md#management-admin-http) they behave like the real services.
"""
