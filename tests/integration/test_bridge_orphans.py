"""An error that an asyncio library leaves unretrieved is logged, not raised into the
daemon's nursery (trio-asyncio's default would crash the whole loop)."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest
import trio

from notip import bridge


async def test_an_orphaned_asyncio_error_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with bridge.loop():

        async def orphan() -> None:
            async def fails() -> None:
                raise RuntimeError("library bookkeeping")

            task = asyncio.ensure_future(fails())
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert task.done()
            del task  # never retrieved: asyncio reports it when the task is collected

        with caplog.at_level(logging.ERROR, logger="asyncio"):
            await bridge.call(orphan)
            gc.collect()
            with trio.fail_after(10):
                while "library bookkeeping" not in caplog.text:
                    await trio.sleep(0.01)
        # Still running: the loop's nursery did not get the error.
        assert await bridge.call(asyncio.sleep, 0, "alive") == "alive"
