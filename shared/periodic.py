"""Background work at an interval: a loop that outlives its own failures, and its stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any


async def every(
    interval_s: float,
    work: Callable[[], Awaitable[Any]],
    log: logging.Logger,
    failed: str,
    first_after_s: float = 0.0,
) -> None:
    """Run `work` every `interval_s` (the first time after `first_after_s`) until cancelled;
    a failure is logged as `failed` with its error type (never its text) and the loop goes on."""
    await asyncio.sleep(first_after_s)
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error(failed, extra={"error": type(exc).__name__})
        await asyncio.sleep(interval_s)


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait for it to end (None: nothing to do)."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
