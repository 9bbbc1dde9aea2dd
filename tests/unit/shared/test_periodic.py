"""Background work at an interval: it outlives its failures (logged by type) and stops."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shared.periodic import cancel, every


async def test_a_failing_round_is_logged_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rounds: list[int] = []
    third = asyncio.Event()

    async def work() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 3:
            third.set()
        if len(rounds) == 1:
            raise ValueError("secret 13800138000")  # the text never reaches the log

    log = logging.getLogger("fengqiao.test.periodic")
    with caplog.at_level(logging.ERROR, logger=log.name):
        task = asyncio.create_task(every(0.001, work, log, "round failed"))
        await asyncio.wait_for(third.wait(), 5)
        await cancel(task)
    assert task.cancelled()
    [record] = [r for r in caplog.records if r.name == log.name]
    assert record.getMessage() == "round failed" and record.error == "ValueError"  # type: ignore[attr-defined]
    assert "13800138000" not in caplog.text


async def test_the_first_round_waits_and_cancel_takes_none() -> None:
    rounds: list[int] = []

    async def work() -> None:
        rounds.append(1)

    task = asyncio.create_task(every(60, work, logging.getLogger("t"), "failed", first_after_s=60))
    await asyncio.sleep(0.01)
    assert rounds == []
    await cancel(task)
    await cancel(None)
    assert task.cancelled()
