"""Two transactions that append to one case's trail at once keep one causal chain, so no
committed entry drops out of the case's heads: on PostgreSQL the second waits for the first's
heads (the row locked); on SQLite the one that commits second finds them moved and is rolled
back (HeadsMoved: a batch is tried again, an HTTP request answers 409)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import registry
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import Delivery, HeadsMoved, delivery_tables, make_engine
from shared.events import Envelope
from shared.topics import Topics


class HeadsBase(SQLModel, registry=registry()):
    pass


HEADS_TABLES = delivery_tables(HeadsBase)


async def open_delivery(url: str) -> tuple[Any, Delivery]:
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(HeadsBase.metadata.create_all)
    sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    return engine, Delivery(sessions, HEADS_TABLES, "heads", Topics("heads.").trail)


async def _entry(d: Delivery, actor: str) -> Envelope:
    async with d.transaction() as tx:
        return tx.transition(
            "case-1",
            action="note",
            from_status="mediating",
            to_status="mediating",
            actor=actor,
        )


def assert_one_chain(chain: list[Envelope]) -> None:
    assert [e.payload["seq"] for e in chain] == list(range(1, len(chain) + 1))
    assert [e.payload["follows"] for e in chain[1:]] == [[e.event_id] for e in chain[:-1]], [
        (e.payload["actor"], e.payload["follows"]) for e in chain
    ]


async def concurrent_writers_keep_one_chain(delivery: Delivery) -> None:
    """PostgreSQL: a consumer batch seals its entry for a case (reading the case's heads) and,
    while the batch is still open, an HTTP action on the same case (its own task, no batch)
    appends an entry too. Unguarded, the action committed at once with the heads the batch had
    read, and the batch's commit then wrote its own heads over the action's: the next entry
    followed the batch's entry only, as if the action's had never been. Now the action waits
    for the batch and follows its entry."""
    first = await _entry(delivery, "system:first")
    async with delivery.batch([]):
        in_batch = await _entry(delivery, "system:consumer")
        action_task = asyncio.create_task(
            _entry(delivery, "user:mediator"), context=contextvars.Context()
        )
        await asyncio.sleep(0.3)  # the action runs while the batch is still open
        assert not action_task.done(), "the action did not wait for the batch's heads"
    action = await action_task
    after = await _entry(delivery, "system:later")
    assert_one_chain([first, in_batch, action, after])


@pytest.fixture
async def delivery(tmp_path: Path) -> AsyncIterator[Delivery]:
    engine, d = await open_delivery(f"sqlite+aiosqlite:///{tmp_path / 'heads.db'}")
    yield d
    await engine.dispose()


async def test_a_batch_whose_case_moved_meanwhile_is_rolled_back_and_done_again_sqlite(
    delivery: Delivery,
) -> None:
    """SQLite: the same race; the action commits while the batch is open (a transaction there
    begins at its first write, after the heads were read), and the batch's commit, finding the
    heads moved, raises HeadsMoved and keeps nothing. Done again (the consumer tries a batch
    that lost such a race again whole), its entry follows the action's."""
    first = await _entry(delivery, "system:first")
    with pytest.raises(HeadsMoved):
        async with delivery.batch([]):
            await _entry(delivery, "system:consumer")
            action = await asyncio.create_task(
                _entry(delivery, "user:mediator"), context=contextvars.Context()
            )
    async with delivery.batch([]):
        again = await _entry(delivery, "system:consumer")
    after = await _entry(delivery, "system:later")
    assert_one_chain([first, action, again, after])
    async with delivery.sessions() as s:
        actors = (await s.exec(select(delivery.tables.trail.actor))).all()
    assert sorted(actors) == sorted(
        ["system:first", "user:mediator", "system:consumer", "system:later"]
    ), actors  # the rolled-back batch's entry was not kept
