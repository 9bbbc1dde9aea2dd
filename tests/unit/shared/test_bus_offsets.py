"""Deferred offset commits: kept offsets reach Kafka by interval, on idle, on revoke, on stop."""

from __future__ import annotations

from typing import Any

import pytest

from shared.bus import _Offsets, _revoke_listener


class FakeConsumer:
    def __init__(self, fail: int = 0, owned: set[Any] | None = None) -> None:
        self.commits: list[dict[Any, int]] = []
        self.fail = fail
        self.owned = owned if owned is not None else {"a", "b"}

    def assignment(self) -> set[Any]:
        return self.owned

    async def commit(self, offsets: dict[Any, int]) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("coordinator moved")
        self.commits.append(dict(offsets))


async def test_offsets_kept_within_the_interval_wait_then_go_in_one_commit() -> None:
    c = FakeConsumer()
    o = _Offsets(c, interval_s=60)
    await o.kept({"a": 5})
    await o.kept({"a": 9, "b": 2})
    assert c.commits == []
    assert 0 < o.wait_ms(2000) <= 2000  # the idle fetch still ends in time for the commit
    await o.flush()
    assert c.commits == [{"a": 9, "b": 2}]
    assert o.pending == {} and o.wait_ms(2000) == 2000


async def test_a_batch_after_the_interval_commits_everything_pending() -> None:
    c = FakeConsumer()
    o = _Offsets(c, interval_s=0.05)
    await o.kept({"a": 1})
    o.at -= 1  # the interval has passed since the last commit
    await o.kept({"b": 3})
    assert c.commits == [{"a": 1, "b": 3}]


async def test_zero_interval_commits_after_every_batch() -> None:
    c = FakeConsumer()
    o = _Offsets(c, interval_s=0)
    await o.kept({"a": 1})
    await o.kept({"a": 2})
    assert c.commits == [{"a": 1}, {"a": 2}]


async def test_revoked_partitions_are_committed_before_they_go_and_others_wait() -> None:
    c = FakeConsumer()
    o = _Offsets(c, interval_s=60)
    await o.kept({"a": 4, "b": 7})
    await _revoke_listener(o).on_partitions_revoked({"a"})
    assert c.commits == [{"a": 4}]
    assert o.pending == {"b": 7}


async def test_a_revoked_partition_whose_commit_failed_is_not_kept_pending() -> None:
    c = FakeConsumer(fail=1)
    o = _Offsets(c, interval_s=60)
    await o.kept({"a": 4, "b": 7})
    await _revoke_listener(o).on_partitions_revoked({"a"})  # the commit failed: a is gone
    c.owned = {"b"}
    await o.flush()
    assert c.commits == [{"b": 7}]


async def test_a_failed_commit_keeps_only_partitions_still_assigned() -> None:
    c = FakeConsumer(fail=1, owned={"b"})
    o = _Offsets(c, interval_s=60)
    await o.kept({"a": 4, "b": 7})
    with pytest.raises(RuntimeError):
        await o.flush()
    assert o.pending == {"b": 7}


async def test_a_failed_commit_keeps_its_offsets_unless_newer_ones_came() -> None:
    c = FakeConsumer(fail=1)
    o = _Offsets(c, interval_s=60)
    await o.kept({"a": 4, "b": 7})
    with pytest.raises(RuntimeError):
        await o.flush()
    assert o.pending == {"a": 4, "b": 7}
    await o.kept({"a": 6})
    await o.flush()
    assert c.commits == [{"a": 6, "b": 7}]
