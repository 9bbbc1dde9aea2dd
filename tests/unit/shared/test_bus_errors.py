"""A failed batch's warning names the database error's SQLSTATE and constraint, never values."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from shared.bus import db_error_detail


class DriverError(Exception):
    sqlstate = "23505"
    constraint_name = "uq_counters_key"


def test_sqlstate_and_constraint_are_found_through_the_wrapping_error() -> None:
    driver = DriverError("duplicate key value (phone)=(13912345678)")
    try:
        try:
            raise driver
        except DriverError as cause:
            raise IntegrityError("INSERT ...", {"phone": "13912345678"}, cause) from cause
    except IntegrityError as exc:
        detail = db_error_detail(exc)
    assert detail == {"sqlstate": "23505", "constraint": "uq_counters_key"}
    assert "139" not in repr(detail)


def test_an_error_without_database_detail_gives_nothing() -> None:
    assert db_error_detail(ValueError("bad")) == {}
