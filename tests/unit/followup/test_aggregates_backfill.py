"""The migration that adds the daily aggregates fills them from the cases already projected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from services.followup.main import MIGRATIONS


def _upgrade(url: str, to: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, to)


def test_existing_cases_are_counted_when_the_aggregates_arrive(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    _upgrade(url, "028e119710c0")  # the ledger before the aggregates
    engine = create_engine(url)
    with engine.begin() as conn:
        for i, (status, received) in enumerate(
            [
                ("closed", "2026-11-19 17:00:00.000000"),  # 2026-11-20 01:00 in Shanghai
                ("mediating", "2026-11-20 03:00:00.000000"),
                ("agreed", "2026-11-21 03:00:00.000000"),
            ]
        ):
            conn.execute(
                text(
                    "INSERT INTO ledger_cases (case_id, version, entries, last_hash, status, "
                    "source, tier, first_tier, grid_code, received_at, created_at, overdue, "
                    "sign_for_overdue, mediation_overdue, return_count, escalation_count, "
                    "reopen_count, co_channels, parties) VALUES (:id, :v, 1, 'h', :s, '110', "
                    "'town', 'town', '522731001001', :r, :r, 0, 0, 0, 0, 0, 0, '[]', '[]')"
                ),
                {"id": f"c{i}", "v": i + 1, "s": status, "r": received},
            )
    _upgrade(url, "head")
    with engine.connect() as conn:
        days = conn.execute(
            text(
                "SELECT period, cases FROM stats_counters WHERE span = 'd' AND level = 0 "
                "AND fdim = '' AND gdim = '' ORDER BY period"
            )
        ).all()
        statuses = conn.execute(
            text(
                "SELECT period, gvalue, cases FROM stats_counters WHERE span = 'm' "
                "AND level = 0 AND fdim = '' AND gdim = 'status' ORDER BY gvalue"
            )
        ).all()
        towns = conn.execute(
            text(
                "SELECT area, SUM(cases) FROM stats_counters WHERE span = 'm' AND level = 2 "
                "AND fdim = '' AND gdim = '' GROUP BY area"
            )
        ).all()
    engine.dispose()
    # by the day received in Asia/Shanghai, and per month by status
    assert [(str(d), n) for d, n in days] == [("2026-11-20", 2), ("2026-11-21", 1)]
    assert [(str(d), s, n) for d, s, n in statuses] == [
        ("2026-11-01", "agreed", 1),
        ("2026-11-01", "closed", 1),
        ("2026-11-01", "mediating", 1),
    ]
    assert [tuple(r) for r in towns] == [("522731001", 3)]


def test_the_week_span_migration_recounts_the_counters_by_todays_rules(tmp_path: Path) -> None:
    """e7a4c2b9d613: rows of the old rules (a village level, a filter row of a group dimension)
    go, the week rows come, and the table equals a recount of the cases."""
    import asyncio

    from sqlmodel.ext.asyncio.session import AsyncSession

    from services.followup.reporting import repository as rrepo
    from shared.db import make_engine

    url = f"sqlite:///{tmp_path / 'f.db'}"
    _upgrade(url, "9d3f5b7c1e20")  # month and day rows, levels 0–4
    engine = create_engine(url)
    with engine.begin() as conn:
        for i, grid in enumerate(["522731001001", "522731002", ""]):
            conn.execute(
                text(
                    "INSERT INTO ledger_cases (case_id, version, entries, last_hash, status, "
                    "source, channel, tier, first_tier, grid_code, received_at, created_at, "
                    "overdue, sign_for_overdue, mediation_overdue, return_count, "
                    "escalation_count, reopen_count, co_channels, parties) VALUES (:id, :v, 1, "
                    "'h', 'mediating', '110', 'people', 'town', 'town', :g, :r, :r, 0, 0, 0, 0, "
                    "0, 0, '[]', '[]')"
                ),
                {"id": f"c{i}", "v": i + 1, "g": grid, "r": "2026-11-20 03:00:00.000000"},
            )
        conn.execute(text("DELETE FROM stats_counters"))
        conn.execute(  # a row of the old rules: a village area, and a channel filter alone
            text(
                "INSERT INTO stats_counters VALUES ('d', 'channel', 'people', '', 3, "
                "'522731001001', '2026-11-20', 'town', '', 1, 0, 0, 1, 0, 0, 0, 0, 0, 0)"
            )
        )
    engine.dispose()
    _upgrade(url, "head")

    async def rows() -> tuple[Any, Any]:
        aengine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'f.db'}")
        try:
            async with AsyncSession(aengine) as s:
                return await rrepo.all_rows(s), await rrepo.recount(s)
        finally:
            await aengine.dispose()

    kept, recounted = asyncio.run(rows())
    assert kept == recounted
    assert {k[2] for k in kept} == {0, 1, 2, 4}  # no village level
    assert {k[0] for k in kept} == {"d", "w", "m"}
    assert not [k for k in kept if k[5] == "channel" and k[7] == ""]
    weeks = [m[0] for k, m in kept.items() if k[0] == "w" and k[2] == 0 and k[5] == k[7] == ""]
    assert sum(weeks) == 3
    assert {str(k[1]) for k in kept if k[0] == "w"} == {"2026-11-16"}  # the Monday


AT = "2026-11-20 03:00:00.000000"


def _downgrade(url: str, to: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    command.downgrade(cfg, to)


def test_rows_of_a_filter_on_an_unknown_value_go_and_come_back(tmp_path: Path) -> None:
    """f2b8d4a6c1e3: the rows of a filter on an unknown value (a case not yet triaged has no
    channel, severity or dispute type) go, and the table equals a recount of the cases; the
    downgrade counts them again, as the revision before kept them."""
    import asyncio

    from sqlmodel.ext.asyncio.session import AsyncSession

    from services.followup.reporting import repository as rrepo
    from services.followup.reporting.domain import (
        KEY_FIELDS,
        MEASURE_FIELDS,
        counter_keys,
        measures_of,
    )
    from services.followup.repository import LedgerCase
    from shared.db import make_engine

    url = f"sqlite:///{tmp_path / 'f.db'}"
    _upgrade(url, "e7a4c2b9d613")
    engine = create_engine(url)
    with engine.begin() as conn:
        for i, (status, channel, grid) in enumerate(
            [
                ("received", None, "522731001001"),  # not triaged: no channel, no severity
                ("mediating", "people", "522731002"),
                ("received", None, ""),
            ]
        ):
            conn.execute(
                text(
                    "INSERT INTO ledger_cases (case_id, version, entries, last_hash, status, "
                    "source, channel, tier, first_tier, grid_code, received_at, created_at, "
                    "overdue, sign_for_overdue, mediation_overdue, return_count, "
                    "escalation_count, reopen_count, co_channels, parties) VALUES (:id, :v, 1, "
                    "'h', :s, '110', :c, NULL, NULL, :g, :r, :r, 0, 0, 0, 0, 0, 0, '[]', '[]')"
                ),
                {"id": f"c{i}", "v": i + 1, "s": status, "c": channel, "g": grid, "r": AT},
            )

    async def rows(write_old: bool = False) -> tuple[Any, Any, Any]:
        """(the table, a recount by today's rules, a recount by the revision before's)"""
        aengine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'f.db'}")
        try:
            async with AsyncSession(aengine) as s:
                old: dict[Any, list[int]] = {}
                for row in (await s.exec(rrepo.select(LedgerCase))).all():
                    p = row.projection()
                    for key in counter_keys(p, unknown_filters=True):
                        sums = old.setdefault(key, [0] * len(MEASURE_FIELDS))
                        for j, v in enumerate(measures_of(p)):
                            sums[j] += v
                if write_old:  # the table as the revision before kept it
                    await s.exec(rrepo.StatCounter.__table__.delete())  # type: ignore[attr-defined]
                    await s.exec(
                        rrepo.StatCounter.__table__.insert(),  # type: ignore[attr-defined,call-overload]
                        params=[
                            dict(zip((*KEY_FIELDS, *MEASURE_FIELDS), (*k, *v), strict=True))
                            for k, v in old.items()
                        ],
                    )
                    await s.commit()
                return (
                    await rrepo.all_rows(s),
                    await rrepo.recount(s),
                    {k: tuple(v) for k, v in old.items()},
                )
        finally:
            await aengine.dispose()

    engine.dispose()
    kept, _, old = asyncio.run(rows(write_old=True))
    assert kept == old
    assert [k for k in kept if k[5] == "channel" and k[6] == ""]  # rows the routes never read

    _upgrade(url, "head")
    kept, recounted, _ = asyncio.run(rows())
    assert kept == recounted
    assert not [k for k in kept if k[5] != "" and k[6] == ""]
    assert [k for k in kept if k[5] == "channel" and k[6] == "people"]  # known values stay
    assert [k for k in kept if k[7] == "channel" and k[8] == ""]  # unknown groups stay
    # what every report reads is unchanged: the rows left are the old rows of a known filter
    assert kept == {k: m for k, m in old.items() if k[5] == "" or k[6] != ""}

    _downgrade(url, "e7a4c2b9d613")
    kept, _, old = asyncio.run(rows())
    assert kept == old


def test_the_counters_have_no_index_but_their_key(tmp_path: Path) -> None:
    """d3a9f1c7b2e4: the (span, period) index went. It doubled the cost of every new counter
    row, and with it SQLite's planner (no ANALYZE in a service) read a year's series through it:
    a series by month of 200,000 cases took 394 ms instead of 10 (bench/README.md)."""
    url = f"sqlite:///{tmp_path / 'f.db'}"

    def indexes() -> list[str]:
        engine = create_engine(url)
        with engine.connect() as conn:
            names = conn.execute(
                text(
                    "SELECT name FROM sqlite_master WHERE type = 'index' "
                    "AND tbl_name = 'stats_counters' AND sql IS NOT NULL"
                )
            )
            out = [n for (n,) in names]
        engine.dispose()
        return out

    _upgrade(url, "head")
    assert indexes() == []
    _downgrade(url, "8b4f0d2e6a53")
    assert indexes() == ["ix_stats_counters_period"]
    _upgrade(url, "head")
    assert indexes() == []
