"""scripts/pg.sh works from a clone that its server's user cannot enter (issue 14)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import REPO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _select_one(url: str) -> object:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        return await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


@pytest.fixture
def private_clone(tmp_path: Path) -> Path:
    """A copy of the scripts inside a 0700 directory, like a clone under /root."""
    private = tmp_path / "priv"
    private.mkdir(mode=0o700)
    clone = private / "fengqiao"
    (clone / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "pg.sh", clone / "scripts" / "pg.sh")
    return clone


def test_pg_script_starts_a_server_from_a_clone_in_a_private_directory(
    private_clone: Path,
) -> None:
    script = private_clone / "scripts" / "pg.sh"
    env = {**os.environ, "PG_PORT": str(_free_port())}
    env.pop("PG_DIR", None)

    def pg(cmd: str) -> str:
        done = subprocess.run(
            ["bash", str(script), cmd], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    base = Path(pg("dir"))
    if os.geteuid() == 0:  # the server runs as postgres: its files must be outside the clone
        assert not base.is_relative_to(private_clone)
    try:
        pg("start")
        assert pg("status") == "running"
        assert asyncio.run(_select_one(pg("url"))) == 1
    finally:
        pg("stop")
        if os.geteuid() == 0:
            shutil.rmtree(base, ignore_errors=True)
    assert subprocess.run(["bash", str(script), "status"], env=env).returncode == 1
