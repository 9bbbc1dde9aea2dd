"""`fengqiao migrate` and the first-admin bootstrap `fengqiao admin create`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from services.cli import SERVICES, main
from shared.auth import DEV_JWT_PUBLIC_KEY, verify_token
from shared.db import make_engine


@pytest.fixture
def databases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    urls = {name: f"sqlite+aiosqlite:///{tmp_path / name}.db" for name in SERVICES}
    for name, url in urls.items():
        monkeypatch.setenv(f"{name.upper()}_DATABASE_URL", url)
    return urls


async def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))
            return {r[0] for r in rows}
    finally:
        await engine.dispose()


def test_migrate_brings_every_service_database_to_the_newest_schema(
    databases: dict[str, str],
) -> None:
    assert main(["migrate"]) == 0
    for name, url in databases.items():
        tables = asyncio.run(_tables(url))
        assert {"alembic_version", "outbox", "inbox", "trail"} <= tables, name
    assert main(["migrate", "triage"]) == 0  # again: nothing to do


def test_migrate_refuses_an_unknown_service(databases: dict[str, str]) -> None:
    with pytest.raises(SystemExit):
        main(["migrate", "billing"])


def test_admin_create_stores_an_admin_and_prints_a_working_token(
    databases: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "mediation"]) == 0
    capsys.readouterr()
    assert main(["admin", "create", "值班管理员", "--id", "ops-admin-1", "--hours", "1"]) == 0
    token = capsys.readouterr().out.strip()
    principal = verify_token(DEV_JWT_PUBLIC_KEY, "fengqiao-mediation", token)
    assert (principal.subject, principal.role) == ("ops-admin-1", "admin")

    async def stored() -> list[tuple[str, str, str]]:
        engine = make_engine(databases["mediation"])
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(text("SELECT id, name, role FROM staff"))
                return [tuple(r) for r in rows]
        finally:
            await engine.dispose()

    assert asyncio.run(stored()) == [("ops-admin-1", "值班管理员", "admin")]
    # again with the same id: the admin exists, a fresh token is printed
    assert main(["admin", "create", "值班管理员", "--id", "ops-admin-1"]) == 0
    assert verify_token(DEV_JWT_PUBLIC_KEY, "fengqiao-mediation", capsys.readouterr().out.strip())


def test_admin_create_without_a_database_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEDIATION_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/none.db")
    assert main(["admin", "create", "Ops"]) == 1
    assert "fengqiao migrate" in capsys.readouterr().err
