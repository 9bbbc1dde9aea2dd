"""PostgreSQL restarting while a consumer works: its records wait for it, none is dead-lettered.

The real driver's errors (a refused connection while it is down, a connection closed under a
query, "the database system is starting up") are what `shared.bus.is_unavailable` must know.
"""

from __future__ import annotations

import asyncio
import subprocess

from sqlalchemy import text

from shared.bus import InMemoryBus, Message, OutgoingMessage
from shared.db import make_engine
from tests.conftest import REPO

TOPIC = "t.work"


def pg(command: str) -> None:
    subprocess.run(["bash", str(REPO / "scripts" / "pg.sh"), command], check=True)


async def test_records_handled_while_postgres_restarts_wait_for_it(pg_url: str) -> None:
    engine = make_engine(pg_url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE handled (value text PRIMARY KEY)"))
    bus = InMemoryBus(max_attempts=3)
    started = asyncio.Event()

    async def handle(msg: Message) -> None:
        started.set()
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO handled VALUES (:v)"), {"v": msg.value.decode()})

    bus.subscribe([TOPIC], "g", handle)
    await bus.start()
    try:
        await bus.publish([OutgoingMessage(TOPIC, "c", b"before")])
        await asyncio.wait_for(bus.drain(), 30)
        await asyncio.to_thread(pg, "stop")
        try:
            await bus.publish([OutgoingMessage(TOPIC, "c", f"r{i}".encode()) for i in range(5)])
            await asyncio.sleep(2)  # its records fail meanwhile: away, not poison
        finally:
            await asyncio.to_thread(pg, "start")
        await asyncio.wait_for(bus.drain(), 60)
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT value FROM handled"))).scalars().all()
        assert sorted(rows) == ["before", "r0", "r1", "r2", "r3", "r4"]
        assert bus.log.get(f"{TOPIC}.dlq", []) == []
    finally:
        await bus.stop()
        await engine.dispose()
