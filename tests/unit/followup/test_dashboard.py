"""The dashboard API: filters, cursor pages, ETags and stats on a small known ledger."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.unit.followup.conftest import T0, Ledger

LATE_DEADLINES = {
    "sign_for_due": "2026-11-20T01:00:00+00:00",
    "mediation_due": "2026-11-20T02:00:00+00:00",
}


async def populate(ledger: Ledger) -> None:
    """Seven cases whose figures are worked out by hand in test_stats_figures."""
    agreed_at = T0 + timedelta(hours=5)
    # a: agreed on time at the first tier, two honoured visits (3 then 5) → closed
    await ledger.life("a", "agreed")
    await ledger.agree("a", agreed_at)
    await ledger.visit("a", satisfaction=3)
    await ledger.visit("a", satisfaction=5)
    # b: labour/town from 110, agreed after its deadline, one honoured visit (3) → follow_up
    await ledger.life(
        "b",
        "agreed",
        details={
            "channel": "labour",
            "tier": "town",
            "dispute_type": "labour",
            "source": "110",
            "severity": "medium",
            "deadlines": LATE_DEADLINES,
        },
    )
    await ledger.agree("b", agreed_at, channel="labour", tier="town")
    await ledger.visit("b", satisfaction=3)
    # c: court/town, mediation failed
    await ledger.life(
        "c",
        "mediating",
        details={"channel": "court", "tier": "town", "dispute_type": "debt_contract"},
    )
    await ledger.trail("c", "failed", "mediating", action="fail", at=T0 + timedelta(hours=6))
    # d: police/county from 110, failed then transferred to litigation
    await ledger.life(
        "d",
        "mediating",
        details={
            "channel": "police",
            "tier": "county",
            "dispute_type": "public_order",
            "source": "110",
            "severity": "critical",
        },
    )
    await ledger.trail("d", "failed", "mediating", action="fail", at=T0 + timedelta(hours=6))
    await ledger.trail("d", "transferred", "failed", action="transfer", at=T0 + timedelta(hours=7))
    # e: failed at grid, escalated to town, agreed there (not at the first tier), on time
    await ledger.life("e", "mediating")
    for i, (frm, to, det) in enumerate(
        [
            ("mediating", "failed", {}),
            ("failed", "escalated", {"tier": "town"}),
            ("escalated", "assigned", {}),
            ("assigned", "accepted", {}),
            ("accepted", "mediating", {}),
            ("mediating", "agreed", {}),
        ]
    ):
        await ledger.trail("e", to, frm, at=T0 + timedelta(hours=6 + i), details=det)
    # f: assigned and overdue for sign-for (督办)
    await ledger.life("f", "assigned")
    await ledger.trail(
        "f",
        "assigned",
        "assigned",
        action="supervise",
        at=T0 + timedelta(hours=30),
        details={"kind": "sign_for_overdue"},
    )
    # g: a grid report merged into another case
    await ledger.trail("g", "received", details={"source": "grid", "source_ref": "G-7"})
    await ledger.trail("g", "merged", "received", action="merge", at=T0 + timedelta(minutes=5))


async def ids(
    ledger: Ledger, role: str = "admin", who: dict[str, Any] | None = None, **params: Any
) -> list[str]:
    r = await ledger.get("/v1/cases", role=role, who=who or {}, params=params)
    assert r.status_code == 200, r.text
    return sorted(c["case_id"] for c in r.json()["items"])


async def test_stats_figures(ledger: Ledger) -> None:
    await populate(ledger)
    s = (await ledger.get("/v1/stats")).json()
    assert s["total"] == 7
    assert s["by_status"] == {
        "closed": 1,
        "follow_up": 1,
        "failed": 1,
        "transferred": 1,
        "agreed": 1,
        "assigned": 1,
        "merged": 1,
    }
    assert s["by_channel"] == {"people": 3, "labour": 1, "court": 1, "police": 1, "unknown": 1}
    assert s["by_tier"] == {"grid": 2, "town": 3, "county": 1, "unknown": 1}
    assert s["by_dispute_type"] == {
        "neighbour": 3,
        "labour": 1,
        "debt_contract": 1,
        "public_order": 1,
        "unknown": 1,
    }
    assert s["by_source"] == {"12345": 4, "110": 2, "grid": 1}
    assert s["mediation_success"] == {"settled": 3, "unsettled": 2, "rate": 0.6}
    assert s["on_time"] == {"agreed_with_deadline": 3, "on_time": 2, "rate": 0.6667}
    assert s["satisfaction"] == {"mean": 4.0, "responses": 2}
    assert s["settled_at_first_tier"] == {"settled": 3, "at_first_tier": 2, "rate": 0.6667}
    assert (s["backlog"], s["overdue"]) == (4, 1)


async def test_stats_take_filters_and_scope(ledger: Ledger) -> None:
    await populate(ledger)
    town = (await ledger.get("/v1/stats", params={"tier": "town"})).json()
    assert (town["total"], town["by_status"]) == (3, {"follow_up": 1, "failed": 1, "agreed": 1})
    # b is labour's case of org-people-1 (the fixture's default organisation)
    who = {"channel": "labour", "organisation": "org-people-1"}
    labour = (await ledger.get("/v1/stats", role="mediator", who=who)).json()
    assert (labour["total"], labour["by_channel"], labour["backlog"]) == (1, {"labour": 1}, 1)
    empty = (await ledger.get("/v1/stats", role="mediator", who={"channel": "medical"})).json()
    assert empty["total"] == 0 and empty["mediation_success"]["rate"] is None
    assert empty["satisfaction"] == {"mean": None, "responses": 0}


async def test_filters(ledger: Ledger) -> None:
    await populate(ledger)
    assert await ids(ledger) == list("abcdefg")
    assert await ids(ledger, status="follow_up") == ["b"]
    assert await ids(ledger, channel="people") == ["a", "e", "f"]
    assert await ids(ledger, tier="town") == ["b", "c", "e"]
    assert await ids(ledger, severity="critical") == ["d"]
    assert await ids(ledger, dispute_type="debt_contract") == ["c"]
    assert await ids(ledger, source="110") == ["b", "d"]
    assert await ids(ledger, overdue="true") == ["f"]
    assert await ids(ledger, overdue="false", channel="people") == ["a", "e"]
    assert await ids(ledger, since="2026-11-21T00:00:00Z") == ["a", "b", "f"]
    assert await ids(ledger, status="closed", channel="labour") == []
    bad = await ledger.get("/v1/cases", params={"status": "lost", "tier": "planet"})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"status", "tier"}


async def test_cursor_pages_cover_every_case_once_and_then_follow_changes(ledger: Ledger) -> None:
    await populate(ledger)
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    pages = 0
    while True:
        body = (await ledger.get("/v1/cases", params=params)).json()
        pages += 1
        seen += [c["case_id"] for c in body["items"]]
        params["cursor"] = body["next_cursor"]
        if not body["has_more"]:
            break
    assert pages == 4 and sorted(seen) == list("abcdefg") and len(seen) == 7
    # polling from the last cursor: nothing new, then exactly the case that changed
    assert (await ledger.get("/v1/cases", params=params)).json()["items"] == []
    await ledger.trail(
        "c",
        "escalated",
        "failed",
        action="escalate",
        at=T0 + timedelta(days=2),
        details={"tier": "county"},
    )
    changed = (await ledger.get("/v1/cases", params=params)).json()
    assert [(c["case_id"], c["status"]) for c in changed["items"]] == [("c", "escalated")]


async def test_descending_pages(ledger: Ledger) -> None:
    await populate(ledger)
    first = (await ledger.get("/v1/cases", params={"order": "desc", "limit": 4})).json()
    rest = (
        await ledger.get(
            "/v1/cases", params={"order": "desc", "limit": 4, "cursor": first["next_cursor"]}
        )
    ).json()
    versions = [c["version"] for c in first["items"] + rest["items"]]
    assert versions == sorted(versions, reverse=True) and len(versions) == 7
    assert rest["has_more"] is False and rest["next_cursor"] is None
    mixed = await ledger.get("/v1/cases", params={"cursor": first["next_cursor"]})
    assert mixed.status_code == 422 and mixed.json()["errors"][0]["field"] == "cursor"


async def test_bad_cursor_and_limit_are_422(ledger: Ledger) -> None:
    r = await ledger.get("/v1/cases", params={"cursor": "not-a-cursor"})
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"field": "cursor", "reason": "not a cursor returned by this API"}
    ]
    r = await ledger.get("/v1/cases", params={"limit": 501})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "limit"


async def test_etag_answers_304_until_something_changes(ledger: Ledger) -> None:
    await populate(ledger)
    for path in ("/v1/cases", "/v1/cases/a", "/v1/cases/a/trail", "/v1/stats"):
        first = await ledger.get(path)
        etag = first.headers["etag"]
        again = await ledger.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
    etag = (await ledger.get("/v1/cases")).headers["etag"]
    await ledger.trail("a", "closed", "closed", action="note", at=T0 + timedelta(days=3))
    after = await ledger.get("/v1/cases", headers={"If-None-Match": etag})
    assert after.status_code == 200 and after.headers["etag"] != etag
    # another member of staff sees another body, so another tag
    mine = await ledger.get("/v1/cases", role="mediator", who={"channel": "labour"})
    assert mine.headers["etag"] != after.headers["etag"]
