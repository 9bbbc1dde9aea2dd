"""A failed batch: tried whole again after a write race; its warning names the SQLSTATE and
constraint of the database error, never its values."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.exc import DBAPIError, IntegrityError

from shared.bus import (
    BATCH_CONFLICT_RETRIES,
    Message,
    _Subscription,
    db_error_detail,
    try_batch,
)


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


class Deadlock(Exception):
    sqlstate = "40P01"


def _sub(batch_handler: Callable[[list[Message]], Awaitable[None]]) -> _Subscription:
    async def one(_m: Message) -> None:
        return None

    return _Subscription(["t"], "g", one, batch_handler)


def _msgs() -> list[Message]:
    return [Message("t", 0, i, b"k", b"v") for i in range(3)]


async def test_a_batch_that_lost_a_write_race_is_tried_whole_again() -> None:
    calls: list[int] = []

    async def handler(msgs: list[Message]) -> None:
        calls.append(len(msgs))
        if len(calls) == 1:
            raise DBAPIError("UPDATE ...", {}, Deadlock("deadlock detected"))

    assert await try_batch(_sub(handler), _msgs()) is True
    assert calls == [3, 3]


async def test_a_batch_that_keeps_losing_goes_one_by_one_after_its_retries() -> None:
    calls: list[int] = []

    async def handler(msgs: list[Message]) -> None:
        calls.append(len(msgs))
        raise DBAPIError("UPDATE ...", {}, Deadlock("deadlock detected"))

    assert await try_batch(_sub(handler), _msgs()) is False
    assert len(calls) == 1 + BATCH_CONFLICT_RETRIES


async def test_any_other_failure_goes_one_by_one_at_once() -> None:
    calls: list[int] = []

    async def handler(msgs: list[Message]) -> None:
        calls.append(len(msgs))
        raise ValueError("poison")

    assert await try_batch(_sub(handler), _msgs()) is False
    assert calls == [3]
