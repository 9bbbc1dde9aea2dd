"""A service prunes its inbox unless told to keep it for ever (FENGQIAO_INBOX_RETENTION_DAYS),
and its causal gates know the same retention."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from services.followup.main import MIGRATIONS
from services.followup.repository import TABLES
from services.followup.settings import FollowupSettings
from shared.bus import InMemoryBus
from shared.inbox_retention import InboxPruner
from shared.runtime import Runtime


def _settings(tmp_path: Path, **kw: object) -> FollowupSettings:
    url = f"sqlite+aiosqlite:///{tmp_path / 'f.db'}"
    return FollowupSettings(bus="memory", database_url=url, dev_mode=True, **kw)


async def test_the_runtime_runs_a_pruner_with_the_configured_retention(tmp_path: Path) -> None:
    rt = Runtime(_settings(tmp_path), TABLES, MIGRATIONS, bus=InMemoryBus())
    pruner = rt.inbox_pruner
    assert isinstance(pruner, InboxPruner)
    assert (pruner.retention, pruner.interval_s) == (timedelta(days=30), 3600.0)
    assert rt.delivery.inbox_retention == timedelta(days=30)  # what the causal gate reads
    await rt.start()
    try:
        task = pruner._task
        assert task is not None and not task.done()  # waiting for its first pass
    finally:
        await rt.stop()
    assert pruner._task is None and task.cancelled()


async def test_a_retention_of_zero_keeps_the_inbox_for_ever(tmp_path: Path) -> None:
    rt = Runtime(_settings(tmp_path, inbox_retention_days=0), TABLES, MIGRATIONS, bus=InMemoryBus())
    assert rt.inbox_pruner is None and rt.delivery.inbox_retention is None
    await rt.start()
    await rt.stop()
