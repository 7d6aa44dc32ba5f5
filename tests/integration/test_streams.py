from __future__ import annotations

from nats.js import api

from notip import bridge, natsio


async def test_init_streams_twice_is_idempotent(nc: natsio.NATS) -> None:
    # The session fixture already ran it once: a second and third run change nothing.
    assert set((await natsio.init_streams(nc)).values()) == {"unchanged"}
    assert set((await natsio.init_streams(nc)).values()) == {"unchanged"}

    async def infos() -> list[api.StreamInfo]:
        js = nc.jetstream()
        return [await js.stream_info(spec.name) for spec in natsio.STREAMS]

    got = {i.config.name: i.config for i in await bridge.call(infos)}
    expected = {
        "TELEMETRY": (["telemetry.data.>"], 30 * 86400),
        "COMMANDS": (["command.gw.>"], 75),
        "COMMAND_ACKS": (["command.ack.>"], 300),
        "ALERTS": (["alert.>"], 0),
        "DECOMMISSION": (["gateway.decommissioned.>"], 86400),
        "AUDIT_LOG": (["log.audit.>"], 90 * 86400),
    }
    assert set(got) == set(expected)
    for name, (subjects, max_age) in expected.items():
        cfg = got[name]
        assert cfg.subjects == subjects, name
        assert round(cfg.max_age or 0) == max_age, name
        assert api.StorageType(cfg.storage) is api.StorageType.FILE, name
        assert api.RetentionPolicy(cfg.retention) is api.RetentionPolicy.LIMITS, name
        assert api.DiscardPolicy(cfg.discard) is api.DiscardPolicy.OLD, name
        assert cfg.num_replicas == 1, name

    names = await bridge.call(nc.jetstream().streams_info)
    assert sorted(str(s.config.name) for s in names) == sorted(expected)


async def test_init_streams_repairs_a_drifted_stream(nc: natsio.NATS) -> None:
    js = nc.jetstream()
    spec = next(s for s in natsio.STREAMS if s.name == "COMMAND_ACKS")
    drifted = spec.config()
    drifted.max_age = 600.0
    await bridge.call(js.update_stream, drifted)
    outcome = await natsio.init_streams(nc)
    assert outcome["COMMAND_ACKS"] == "updated"
    assert (await bridge.call(js.stream_info, "COMMAND_ACKS")).config.max_age == 300
