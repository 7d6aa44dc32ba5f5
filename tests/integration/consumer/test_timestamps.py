"""Timestamps stored as sent (ingest.row_time): PostgreSQL reads every canonical
spelling the consumer passes through to the very instant it reads from
`datetime.isoformat()`'s rendering, through the store's own cast
(`string_to_array(…)::timestamptz[]`), whatever the session's time zone."""

from __future__ import annotations

import datetime as dt
import random

from notip.consumer import ingest

from .conftest import query


def spellings(n: int, seed: int = 1) -> list[str]:
    """Canonical timestamps: every fraction length 0-6, `Z`, `±00:00` and offsets up to
    PostgreSQL's ±15:59, over several centuries."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        when = dt.datetime(1900, 1, 1) + dt.timedelta(
            seconds=rng.randrange(0, 250 * 365 * 86400), microseconds=rng.randrange(1_000_000)
        )
        digits = i % 7
        fraction = f".{when.microsecond:06d}"[: digits + 1] if digits else ""
        minutes = rng.randrange(-(15 * 60 + 59), 15 * 60 + 60)
        zone = (
            rng.choice(["Z", "+00:00", "-00:00"])
            if i % 3 == 0
            else (f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}")
        )
        out.append(f"{when:%Y-%m-%dT%H:%M:%S}{fraction}{zone}")
    return out


async def test_passed_through_timestamps_are_the_instants_isoformat_gives(
    aio_loop: None, pg_database: str
) -> None:
    sent = spellings(700)
    parsed = [dt.datetime.fromisoformat(ts) for ts in sent]
    kept = [ingest.row_time(ts, when) for ts, when in zip(sent, parsed, strict=True)]
    assert kept == sent  # all canonical: passed through unchanged
    rendered = [when.isoformat() for when in parsed]
    rows = await query(
        pg_database,
        """
        SELECT set_config('TimeZone', 'Asia/Kathmandu', true) AS tz,
               array_agg(a = b ORDER BY i) AS same, array_agg(a ORDER BY i) AS instants
        FROM unnest(string_to_array($1, ',')::timestamptz[],
                    string_to_array($2, ',')::timestamptz[]) WITH ORDINALITY AS t(a, b, i)
        """,
        ",".join(kept),
        ",".join(rendered),
    )
    assert all(rows[0]["same"])
    assert list(rows[0]["instants"]) == parsed  # aware datetimes: equal instants
