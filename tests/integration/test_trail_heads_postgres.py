"""The trail heads of concurrent writers on PostgreSQL (see test_trail_heads_concurrency)."""

from __future__ import annotations

from tests.unit.shared.test_trail_heads_concurrency import (
    concurrent_writers_keep_one_chain,
    open_delivery,
)


async def test_an_action_during_a_batch_on_the_same_case_follows_the_batch_postgres(
    pg_url: str,
) -> None:
    engine, delivery = await open_delivery(pg_url)
    try:
        await concurrent_writers_keep_one_chain(delivery)
    finally:
        await engine.dispose()
