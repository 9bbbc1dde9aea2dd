"""scripts/pg.sh works from a clone that its server's user cannot enter (issue 14)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import asyncpg

from tests.ops.conftest import PrivatePostgres


async def _select_one(url: str) -> object:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        return await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


def test_pg_script_starts_a_server_from_a_clone_in_a_private_directory(
    private_postgres: PrivatePostgres,
) -> None:
    pg = private_postgres.pg
    clone = private_postgres.script.parent.parent
    assert (clone.parent.stat().st_mode & 0o777) == 0o700
    if os.geteuid() == 0:  # the server runs as postgres: its files must be outside the clone
        assert not Path(pg("dir")).is_relative_to(clone)
    assert pg("status") == "running"
    assert asyncio.run(_select_one(pg("url"))) == 1
    pg("stop")
    status = subprocess.run(
        ["bash", str(private_postgres.script), "status"], env=private_postgres.env
    )
    assert status.returncode == 1
