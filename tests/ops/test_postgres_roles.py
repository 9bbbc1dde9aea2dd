"""infra/postgres/init.sh on a real server: one role per service, its own database only, and
the service's migrations run as that role."""

from __future__ import annotations

import asyncio
import os
import subprocess

import asyncpg
import pytest

from services.intake.main import MIGRATIONS as INTAKE_MIGRATIONS
from shared.db import make_engine, migrate
from tests.conftest import REPO
from tests.ops.conftest import PrivatePostgres

SERVICES = ("intake", "triage", "mediation", "followup")


def test_each_service_role_reaches_its_own_database_only(
    private_postgres: PrivatePostgres,
) -> None:
    env = {
        **private_postgres.env,
        "PATH": f"{private_postgres.bindir}:{os.environ['PATH']}",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(private_postgres.port),
        "POSTGRES_USER": "fengqiao",
        **{f"{s.upper()}_DB_PASSWORD": f"pw-{s}" for s in SERVICES},
    }
    done = subprocess.run(
        ["bash", str(REPO / "infra" / "postgres" / "init.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    port = private_postgres.port

    def dsn(role: str, db: str) -> str:
        return f"postgresql://{role}:pw-{role}@127.0.0.1:{port}/{db}"

    async def check() -> None:
        for role in SERVICES:
            conn = await asyncpg.connect(dsn(role, role))
            try:
                await conn.execute("CREATE TABLE probe (id int)")
                owner = await conn.fetchval(
                    "SELECT tableowner FROM pg_tables WHERE tablename='probe'"
                )
                assert owner == role
                assert not await conn.fetchval(
                    "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user"
                )
            finally:
                await conn.close()
            for other in SERVICES:
                if other != role:
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await asyncpg.connect(dsn(role, other))
        # the migrations run as the service's own role
        engine = make_engine(f"postgresql+asyncpg://intake:pw-intake@127.0.0.1:{port}/intake")
        try:
            await migrate(engine, INTAKE_MIGRATIONS)
        finally:
            await engine.dispose()
        conn = await asyncpg.connect(dsn("intake", "intake"))
        try:
            owners = {
                r["tableowner"]
                for r in await conn.fetch(
                    "SELECT tableowner FROM pg_tables WHERE schemaname='public'"
                )
            }
        finally:
            await conn.close()
        assert owners == {"intake"}

    asyncio.run(check())
