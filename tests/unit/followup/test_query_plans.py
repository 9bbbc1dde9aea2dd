"""The dashboard queries use the ledger's indexes (SQLite's plan; nothing timed)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from services.followup import repository as repo
from services.followup.domain import CaseFilters, Scope
from shared.auth import StaffPrincipal
from tests.unit.followup.conftest import Ledger


async def plan(ledger: Ledger, stmt: Any) -> str:
    engine = ledger.app.state.runtime.engine
    sql = str(stmt.compile(engine.sync_engine, compile_kwargs={"literal_binds": True}))
    async with engine.connect() as conn:
        rows = (await conn.execute(text("EXPLAIN QUERY PLAN " + sql))).all()
    return " | ".join(str(r[-1]) for r in rows)


ADMIN = StaffPrincipal("a", "admin")


@pytest.mark.parametrize(
    ("filters", "scope", "index"),
    [
        (CaseFilters(), ADMIN, "version"),
        (CaseFilters(status="closed"), ADMIN, "ix_ledger_cases_status_version"),
        (CaseFilters(channel="labour"), ADMIN, "ix_ledger_cases_channel_version"),
        (CaseFilters(tier="town"), ADMIN, "ix_ledger_cases_tier_version"),
        (CaseFilters(severity="high"), ADMIN, "ix_ledger_cases_severity_version"),
        (CaseFilters(dispute_type="land"), ADMIN, "ix_ledger_cases_dispute_type_version"),
        (CaseFilters(source="110"), ADMIN, "ix_ledger_cases_source_version"),
        (CaseFilters(overdue=True), ADMIN, "ix_ledger_cases_overdue_version"),
        # own cases or a co-handler's copy: an OR no single index covers; read in version order
        (
            CaseFilters(),
            StaffPrincipal("m", "mediator", channel="people", organisation="o1"),
            "autoindex_ledger_cases",
        ),
        (
            CaseFilters(),
            StaffPrincipal("c", "coordinator", tier="grid", grid_codes=("5227",)),
            "ix_ledger_cases_tier_version",
        ),
    ],
)
async def test_a_filtered_page_reads_an_index(
    ledger: Ledger, filters: CaseFilters, scope: Scope, index: str
) -> None:
    p = await plan(ledger, repo.list_cases_query(filters, scope, 10, 500, False))
    assert "USING" in p and index in p, p
    assert "TEMP B-TREE" not in p, p  # the index gives the order: no sort


async def test_stats_read_the_covering_index_only(ledger: Ledger) -> None:
    p = await plan(ledger, repo.stats_query(CaseFilters(), ADMIN))
    assert "USING COVERING INDEX ix_ledger_cases_stats" in p, p
