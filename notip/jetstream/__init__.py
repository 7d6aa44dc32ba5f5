"""JetStream adapters shared by every daemon (docs/design.md#the-trio-asyncio-bridge), each concept in one module:

- `publish`: JetStream publishes — one awaited publish (optionally with a
  `Nats-Msg-Id`) and the simulator's batched `publish_async`;
- `consumers`: create-or-update of a durable pull consumer, and its lag;
- `pull`: the continuous-credit puller, acks (`settle`) and the control-plane loop.

Connections, the stream bootstrap and request-reply are in `notip.natsio`; the
asyncio→Trio hand-off is `notip.handoff`; subjects and stream names come from
`notip.contracts`.
"""
