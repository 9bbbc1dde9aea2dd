"""The counters' upsert on SQLite: whole groups of rows per statement, in order, none lost."""

from __future__ import annotations

from services.followup.reporting.repository import PER_STATEMENT, UPSERT, UPSERT_MANY, statements


def _rows(n: int) -> list[tuple[int, ...]]:
    return [tuple(range(i * 19, (i + 1) * 19)) for i in range(n)]


def test_whole_groups_go_as_multi_row_statements_and_the_rest_one_by_one() -> None:
    rows = _rows(2 * PER_STATEMENT + 23)
    [(many, groups), (one, rest)] = statements("sqlite", rows)
    assert (many, one) == (UPSERT_MANY, UPSERT["sqlite"])
    assert UPSERT_MANY.count("?") == 19 * PER_STATEMENT
    flat = [v for r in rows for v in r]
    assert [list(g) for g in groups] == [
        flat[: 19 * PER_STATEMENT],
        flat[19 * PER_STATEMENT : 38 * PER_STATEMENT],
    ]
    assert rest == rows[2 * PER_STATEMENT :]


def test_few_rows_and_postgresql_keep_one_row_per_execution() -> None:
    few = _rows(PER_STATEMENT - 1)
    assert statements("sqlite", few) == [(UPSERT["sqlite"], few)]
    many = _rows(3 * PER_STATEMENT)
    assert statements("postgresql", many) == [(UPSERT["postgresql"], many)]
    [(sql, groups)] = statements("sqlite", many)
    assert sql == UPSERT_MANY and len(groups) == 3
