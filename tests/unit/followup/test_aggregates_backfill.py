"""The migration that adds the daily aggregates fills them from the cases already projected."""

from __future__ import annotations

from pathlib import Path

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
                "SELECT period, gvalue, cases FROM stats_counters WHERE span = 'w' "
                "AND level = 0 AND fdim = '' AND gdim = 'status' ORDER BY gvalue"
            )
        ).all()
        towns = conn.execute(
            text(
                "SELECT area, SUM(cases) FROM stats_counters WHERE span = 'w' AND level = 2 "
                "AND fdim = '' AND gdim = '' GROUP BY area"
            )
        ).all()
    engine.dispose()
    # by the day received in Asia/Shanghai, and per week (from its Monday) by status
    assert [(str(d), n) for d, n in days] == [("2026-11-20", 2), ("2026-11-21", 1)]
    assert [(str(d), s, n) for d, s, n in statuses] == [
        ("2026-11-16", "agreed", 1),
        ("2026-11-16", "closed", 1),
        ("2026-11-16", "mediating", 1),
    ]
    assert [tuple(r) for r in towns] == [("522731001", 3)]
