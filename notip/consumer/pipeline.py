"""The ingest pipeline: fetch scope → K writer tasks (docs/design.md#nursery-trees, docs/consumer.md#guarantees).

```
fetcher ──(batch, rendezvous channel)──▶ writer × INGEST_WRITERS
  pull up to INGEST_BATCH_SIZE or what       validate (sans-io) → TERM rejects
  arrived within INGEST_FLUSH_MS             → one INSERT … unnest … ON CONFLICT DO NOTHING
                                             → ack burst + flush → liveness
```

Guarantees:
- ack after commit, never before; a redelivered message hits the unique index;
- a message refused by validation or, alone, by the database is terminated and
  counted; its batch-mates are written (a data error splits the batch in halves until
  the offending rows are isolated);
- the database unreachable: the writer keeps its batch, retries with capped backoff
  and tells JetStream the batch is still in progress (+WPI) so it is not redelivered
  meanwhile; the fetcher stops pulling because every writer is busy; readiness is
  false. Nothing is lost, nothing spins, delivery counts do not grow;
- shutdown (cancellation): the fetcher stops; every writer finishes its batch (write
  and ack) inside a shielded scope bounded by SHUTDOWN_TIMEOUT_MS; what was fetched
  but not written is NAKed so that it is redelivered at once (to another instance or
  the next run). A write cut by the bound is NAKed too: at worst it is redelivered
  and skipped as a duplicate.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from notip import contracts
from notip.backoff import Backoff
from notip.consumer.ingest import Reject, Validated, ack_meta, latest_sightings, validate_batch
from notip.consumer.liveness import Key
from notip.consumer.metrics import ConsumerMetrics
from notip.consumer.store import DbUnavailable, RowsRejected, Store
from notip.jetstream.pull import BatchPuller, settle

log = logging.getLogger("notip.consumer.ingest")

Committed = Callable[[Mapping[Key, float]], Awaitable[None]]
Rebind = Callable[[], Awaitable[None]]

RETRY_BASE_S = 0.1
RETRY_CAP_S = 5.0
NAK_TIMEOUT_S = 3.0


class Pipeline:
    def __init__(
        self,
        *,
        nc: NATS,
        store: Store,
        puller: BatchPuller,
        metrics: ConsumerMetrics,
        writers: int,
        ack_wait_s: float,
        shutdown_timeout_s: float,
        committed: Committed | None = None,
        rebind: Rebind | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.nc = nc
        self.store = store
        self.puller = puller
        self.metrics = metrics
        self.writers = writers
        self.ack_wait_s = ack_wait_s
        self.shutdown_timeout_s = shutdown_timeout_s
        self.committed = committed
        self.rebind = rebind
        self.clock = clock
        self._inflight: set[trio.CancelScope] = set()
        self._deadline = math.inf
        self._leftover: list[Msg] = []
        self._nak_later: list[str] = []
        self.batches_done = 0

    # -- tasks -------------------------------------------------------------------------

    async def run(self) -> None:
        send, recv = trio.open_memory_channel[list[Msg]](0)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._shutdown_watch)
                nursery.start_soon(self._fetch, send)
                for _ in range(self.writers):
                    nursery.start_soon(self._writer, recv.clone())
        finally:
            # Shutdown (or a crash): stop deliveries, then hand back (NAK) what was
            # fetched but not written, so it is redelivered at once elsewhere/later.
            with trio.CancelScope(shield=True), trio.move_on_after(NAK_TIMEOUT_S * 2):
                await self.puller.drain()
                leftover = [m.reply for m in self._leftover + self.puller.take_buffered()]
                while True:
                    try:
                        leftover.extend(m.reply for m in recv.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                        break
                recv.close()
                leftover += self._nak_later
                if leftover:
                    await settle(self.nc, nak=leftover, flush_timeout=NAK_TIMEOUT_S)
                    log.info("unwritten messages handed back (NAK)", extra={"count": len(leftover)})

    async def _shutdown_watch(self) -> None:
        try:
            await trio.sleep_forever()
        finally:
            self._deadline = trio.current_time() + self.shutdown_timeout_s
            for scope in self._inflight:
                scope.deadline = min(scope.deadline, self._deadline)

    async def _fetch(self, send: trio.MemorySendChannel[list[Msg]]) -> None:
        puller = self.puller
        m = self.metrics
        async with send:
            while True:
                if puller.unbound and self.rebind is not None:
                    await self.rebind()
                batch = await puller.next_batch()
                if not batch:
                    continue
                m.messages_received.inc(len(batch))
                m.batch_size.observe(len(batch))
                meta = ack_meta(batch[-1].reply)
                if meta is not None:
                    m.consumer_lag.set(meta.pending)
                try:
                    await send.send(batch)
                except BaseException:
                    self._leftover.extend(batch)
                    raise

    async def _writer(self, recv: trio.MemoryReceiveChannel[list[Msg]]) -> None:
        async with recv:
            async for batch in recv:
                with trio.CancelScope(shield=True, deadline=self._deadline) as scope:
                    self._inflight.add(scope)
                    try:
                        await self.process(batch)
                    finally:
                        self._inflight.discard(scope)
                if scope.cancelled_caught:
                    log.warning(
                        "batch cut by the shutdown bound; handed back", extra={"size": len(batch)}
                    )

    # -- one batch -----------------------------------------------------------------------

    async def process(self, batch: list[Msg]) -> None:
        m = self.metrics
        v = validate_batch(batch, self.clock())
        if v.redelivered:
            m.redelivered.inc(v.redelivered)
        if v.rejects:
            self._rejected(v.rejects)
            await settle(self.nc, term=[r.reply for r in v.rejects], flush_timeout=0)
        done: list[tuple[int, int]] = []  # committed index ranges of v.rows
        refused: list[int] = []
        try:
            inserted = await self._write_all(v, done, refused)
        except BaseException:
            # Cut by the shutdown bound (or a bug): ack what is committed now; the rest
            # is NAKed by `run` once deliveries have stopped. Shielded and short: the
            # scope above us is cancelled.
            done_idx = {i for lo, hi in done for i in range(lo, hi)}
            self._nak_later.extend(
                r for i, r in enumerate(v.replies) if i not in done_idx and i not in refused
            )
            with trio.CancelScope(shield=True), trio.move_on_after(NAK_TIMEOUT_S):
                await settle(
                    self.nc,
                    ack=[v.replies[i] for i in sorted(done_idx)],
                    term=[v.replies[i] for i in refused],
                    flush_timeout=NAK_TIMEOUT_S,
                )
            raise
        if len(done) == 1 and done[0] == (0, len(v.rows)):
            replies = v.replies
            indices: Any = None
        else:
            indices = sorted(i for lo, hi in done for i in range(lo, hi))
            replies = [v.replies[i] for i in indices]
        await settle(self.nc, ack=replies, term=[v.replies[i] for i in refused])
        written = len(replies)
        m.messages_written.inc(written)
        m.rows_inserted.inc(inserted)
        if written > inserted:
            m.duplicates_skipped.inc(written - inserted)
        self.batches_done += 1
        if self.committed is not None and written:
            await self.committed(latest_sightings(v.rows, v.stored, indices))

    def _rejected(self, rejects: list[Reject]) -> None:
        m = self.metrics
        m.parsing_errors.inc(len(rejects))
        for r in rejects:
            m.poison.labels(reason=r.reason).inc()
            log.warning(
                "message rejected: %s",
                r.detail,
                extra={"reason": r.reason, "stream_seq": r.stream_seq, "subject": r.subject[:200]},
            )

    async def _write_all(
        self, v: Validated, done: list[tuple[int, int]], refused: list[int]
    ) -> int:
        """Write every row; isolate rows the database refuses. Returns rows inserted."""
        rows = v.rows
        inserted = 0
        todo = [(0, len(rows))] if rows else []
        while todo:
            lo, hi = todo.pop()
            part = rows if (lo, hi) == (0, len(rows)) else rows[lo:hi]
            try:
                inserted += await self._write_retrying(part, v.replies)
            except RowsRejected as exc:
                if hi - lo == 1:
                    refused.append(lo)
                    self._rejected(
                        [
                            Reject(
                                v.replies[lo],
                                contracts.telemetry_subject(rows[lo][1], rows[lo][2]),
                                "db_rejected",
                                str(exc)[:300],
                                v.seqs[lo],
                            )
                        ]
                    )
                    continue
                mid = (lo + hi) // 2
                todo.append((mid, hi))
                todo.append((lo, mid))
                continue
            done.append((lo, hi))
        return inserted

    async def _write_retrying(self, rows: Any, held: list[str]) -> int:
        m = self.metrics
        # Not `backoff.retry`: between attempts the held messages' ack deadline is
        # extended, and the log line is rate-limited by the delay.
        backoff = Backoff(RETRY_BASE_S, RETRY_CAP_S)
        progress_at = trio.current_time()
        while True:
            t0 = time.perf_counter()
            try:
                n = await self.store.write(rows)
            except DbUnavailable as exc:
                m.write_errors.inc()
                m.database_up.set(0)
                delay = next(backoff)
                failures = backoff.failures
                if failures == 1 or delay >= RETRY_CAP_S:
                    log.warning(
                        "database unavailable; batch kept, retrying: %s",
                        exc,
                        extra={"rows": len(rows), "retry_in_s": delay, "failures": failures},
                    )
                await trio.sleep(delay)
                if trio.current_time() - progress_at > self.ack_wait_s / 3:
                    # Still ours: do not let JetStream redeliver it meanwhile.
                    await settle(self.nc, progress=held, flush_timeout=0)
                    progress_at = trio.current_time()
                continue
            except RowsRejected:
                m.write_errors.inc()
                raise
            m.write_duration.observe(time.perf_counter() - t0)
            if backoff.failures:
                log.info("database back; batch written", extra={"failures": backoff.failures})
                m.database_up.set(1)
            return n
