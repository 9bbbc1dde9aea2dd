"""Early warnings (DOMAIN.md §8) raised and cleared from trail entries, listed and acknowledged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.followup.main import create_app
from services.followup.settings import FollowupSettings
from services.followup.warnings.engine import WarningEngine
from shared.bus import InMemoryBus
from shared.clock import ManualClock
from shared.events import Envelope
from tests.causal import status_entry
from tests.unit.followup.conftest import T0, TOPICS, Ledger

PHONE_HASH = "a" * 64  # a keyed hash as intake computes it; the test needs no real phone
TOWN = "522731-103"
VILLAGE = "522731-103-007"


class Warnings(Ledger):
    """The ledger driver plus the warning engine's scan and the warnings topic."""

    async def scan(self, at: datetime) -> int:
        """Run one scan of the warning engine at a time."""
        engine: WarningEngine = self.app.state.warnings
        n = await engine.scan(self.app.state.runtime.delivery, at)
        await self.settle()
        return n

    def warning_events(self, event_type: str) -> list[Envelope]:
        """warning.raised / warning.cleared published so far."""
        return self.events(TOPICS.warnings, event_type)

    async def entry(
        self,
        case_id: str,
        to: str,
        frm: str | None,
        action: str,
        at: datetime,
        details: dict[str, Any] | None = None,
        party_hashes: list[str] | None = None,
    ) -> None:
        """Publish one trail entry, optionally with party hashes."""
        env, _ = status_entry(case_id, to, frm, action, at, details, party_hashes)
        await self.publish(TOPICS.trail, env)

    async def extend(self, case_id: str, at: datetime, mediation_due: datetime) -> None:
        """The court's extension of an accepted case's mediation deadline."""
        details = {"deadlines": {"mediation_due": mediation_due.isoformat()}}
        await self.entry(case_id, "accepted", "accepted", "extend", at, details)

    async def report(
        self,
        case_id: str,
        at: datetime,
        *,
        hashes: list[str] | None = None,
        grid: str = f"{VILLAGE}-01",
        dispute_type: str = "neighbour",
        severity: str = "low",
        tier: str = "grid",
        channel: str = "people",
        parties: list[dict[str, Any]] | None = None,
        sign_for_hours: int = 24,
        mediation_days: int = 30,
    ) -> None:
        """A case received and triaged (two entries), as intake and triage announce it."""
        await self.entry(
            case_id,
            "received",
            None,
            "receive",
            at,
            {"source": "grid", "source_ref": case_id, "grid_code": grid, "parties": parties or []},
            hashes,
        )
        await self.entry(
            case_id,
            "triaged",
            "received",
            "triage",
            at + timedelta(minutes=1),
            {
                "dispute_type": dispute_type,
                "severity": severity,
                "channel": channel,
                "tier": tier,
                "grid_code": grid,
                "deadlines": {
                    "sign_for_due": (at + timedelta(hours=sign_for_hours)).isoformat(),
                    "mediation_due": (at + timedelta(days=mediation_days)).isoformat(),
                },
            },
        )

    async def warnings(self, role: str = "admin", **params: Any) -> list[dict[str, Any]]:
        """GET /v1/warnings items."""
        who = params.pop("who", {})
        r = await self.get("/v1/warnings", role, who=who, params=params)
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items


@pytest.fixture
async def w(tmp_path: Path, memory_bus: InMemoryBus) -> AsyncIterator[Warnings]:
    clock = ManualClock(T0)
    settings = FollowupSettings(
        bus="memory",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/f.db",
        warn_scan_interval_s=0,
    )
    app = create_app(settings, bus=memory_bus, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://followup") as client:
            yield Warnings(app, memory_bus, clock, client)


def only(items: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [i for i in items if i["kind"] == kind]
    assert len(found) == 1, items
    return found[0]


async def test_repeat_party_third_case_in_90_days_then_cleared_as_the_window_slides(
    w: Warnings,
) -> None:
    await w.report("p1", T0, hashes=[PHONE_HASH])
    await w.report("p2", T0 + timedelta(days=20), hashes=[PHONE_HASH, "b" * 64])
    assert not [i for i in await w.warnings() if i["kind"] == "repeat_party"]
    await w.report("p3", T0 + timedelta(days=40), hashes=[PHONE_HASH], tier="town")
    warning = only(await w.warnings(), "repeat_party")
    assert warning["case_ids"] == ["p1", "p2", "p3"]
    assert warning["tier"] == "town"  # the newest case's tier
    assert warning["facts"]["cases_in_window"] == 3
    assert warning["facts"]["party"] == PHONE_HASH[:12]  # a hash prefix, never a phone
    raised = w.warning_events("warning.raised")
    assert [e.case_id for e in raised if e.payload["kind"] == "repeat_party"] == [PHONE_HASH]

    # 91 days after the first case only two remain in the window
    await w.scan(T0 + timedelta(days=91))
    warning = (await w.warnings(kind="repeat_party"))[0]
    assert warning["status"] == "cleared"
    assert "2 cases" in warning["clear_reason"]
    cleared = [
        e for e in w.warning_events("warning.cleared") if e.payload["kind"] == "repeat_party"
    ]
    assert [e.payload["warning_id"] for e in cleared] == [warning["warning_id"]]


async def test_repeat_after_agreement_goes_to_the_settling_tier_and_clears_when_settled(
    w: Warnings,
) -> None:
    await w.report("a1", T0, hashes=[PHONE_HASH], tier="town", grid=f"{TOWN}-002-01")
    for frm, to, action in (
        ("triaged", "assigned", "assign"),
        ("assigned", "accepted", "accept"),
        ("accepted", "mediating", "note"),
        ("mediating", "agreed", "agree"),
    ):
        await w.entry("a1", to, frm, action, T0 + timedelta(hours=2))
    await w.report("a2", T0 + timedelta(days=10), hashes=[PHONE_HASH], tier="grid")
    warning = only(await w.warnings(), "repeat_after_agreement")
    assert warning["case_ids"] == ["a1", "a2"]
    assert warning["tier"] == "town"
    assert warning["area_code"] == f"{TOWN}-002-01"
    assert warning["facts"]["settled_case"] == "a1"

    await w.entry("a2", "assigned", "triaged", "assign", T0 + timedelta(days=10, hours=1))
    assert only(await w.warnings(), "repeat_after_agreement")["status"] == "open"
    await w.entry("a2", "transferred", "assigned", "transfer", T0 + timedelta(days=11))
    warning = only(await w.warnings(), "repeat_after_agreement")
    assert warning["status"] == "cleared"


async def test_no_repeat_after_agreement_beyond_30_days(w: Warnings) -> None:
    await w.report("old", T0, hashes=[PHONE_HASH])
    await w.entry("old", "agreed", "mediating", "agree", T0 + timedelta(hours=2))
    await w.report("new", T0 + timedelta(days=31), hashes=[PHONE_HASH])
    assert not [i for i in await w.warnings() if i["kind"] == "repeat_after_agreement"]


async def test_rising_area_a_town_doubling_in_a_week(w: Warnings) -> None:
    # a baseline of one case a week for eight weeks in the town (spread over its villages)
    for week in range(8):
        at = T0 - timedelta(weeks=8 - week)
        await w.report(f"base{week}", at, grid=f"{TOWN}-{week:03d}-01")
    for i in range(4):
        await w.report(f"new{i}", T0 + timedelta(days=i), grid=f"{TOWN}-{i:03d}-01")
    assert not [i for i in await w.warnings() if i["kind"] == "rising_area"]
    await w.report("new4", T0 + timedelta(days=5), grid=f"{TOWN}-009-01")
    warning = only(await w.warnings(), "rising_area")
    assert warning["area_code"] == TOWN
    assert warning["tier"] == "county"  # the coordinator above a town
    assert warning["facts"]["recent_cases"] == 5
    assert warning["facts"]["baseline_weekly_mean"] == 1.0
    assert sorted(warning["case_ids"]) == ["new0", "new1", "new2", "new3", "new4"]
    assert [e.case_id for e in w.warning_events("warning.raised")] == [TOWN]

    # a week later the recent window is empty again
    await w.scan(T0 + timedelta(days=13))
    assert only(await w.warnings(), "rising_area")["status"] == "cleared"


async def test_rising_village_goes_to_its_town(w: Warnings) -> None:
    for i in range(5):
        await w.report(f"v{i}", T0 + timedelta(hours=i), grid=f"{VILLAGE}-0{i}")
    items = await w.warnings(kind="rising_area")
    assert {(i["area_code"], i["tier"]) for i in items} == {(TOWN, "county"), (VILLAGE, "town")}


def company(name: str = "黔东南某建筑有限公司") -> dict[str, Any]:
    return {"role": "respondent", "kind": "organisation", "display": name}


def worker(n: int) -> dict[str, Any]:
    return {"role": "applicant", "kind": "person", "display": f"王*{n}"}


async def test_group_risk_three_open_wage_claims_against_one_employer(w: Warnings) -> None:
    for i in range(3):
        await w.report(
            f"wage{i}",
            T0 + timedelta(days=i),
            dispute_type="labour",
            channel="labour",
            tier="town",
            parties=[worker(i), company()],
        )
    warning = only(await w.warnings(), "group_risk")
    assert warning["tier"] == "county"
    assert warning["facts"]["employer"] == "黔东南某建筑有限公司"
    assert warning["facts"]["open_labour_cases"] == 3
    assert warning["case_ids"] == ["wage0", "wage1", "wage2"]
    # another employer's claim changes nothing
    await w.report(
        "other", T0, dispute_type="labour", channel="labour", parties=[company("某餐饮店")]
    )
    assert len(await w.warnings(kind="group_risk")) == 1
    # one claim settled: two open claims remain, below the threshold
    await w.entry("wage1", "agreed", "mediating", "agree", T0 + timedelta(days=3))
    assert only(await w.warnings(), "group_risk")["status"] == "cleared"


async def test_group_risk_ten_parties_in_one_case(w: Warnings) -> None:
    await w.report("crowd", T0, parties=[worker(i) for i in range(10)])
    warning = only(await w.warnings(), "group_risk")
    assert warning["facts"] == {"basis": "parties", "parties": 10}
    assert warning["case_ids"] == ["crowd"]


async def test_escalating_on_severity_rise_reopen_and_second_return(w: Warnings) -> None:
    await w.report("e1", T0, severity="low", tier="grid")
    assert not await w.warnings()
    # a merged report makes triage decide again, higher
    await w.entry(
        "e1", "triaged", "triaged", "retriage", T0 + timedelta(hours=1), {"severity": "high"}
    )
    warning = only(await w.warnings(), "escalating")
    assert warning["facts"]["reason"] == "severity_rose"
    assert warning["tier"] == "town"  # the tier above the case's
    await w.entry("e1", "agreed", "mediating", "agree", T0 + timedelta(hours=2))
    assert only(await w.warnings(), "escalating")["status"] == "cleared"

    await w.report("e2", T0, tier="town")
    await w.entry("e2", "returned", "assigned", "return", T0 + timedelta(hours=1))
    assert not [i for i in await w.warnings() if i["case_ids"] == ["e2"]]
    await w.entry("e2", "assigned", "returned", "assign", T0 + timedelta(hours=2))
    await w.entry("e2", "returned", "assigned", "return", T0 + timedelta(hours=3))
    warning = [i for i in await w.warnings() if i["case_ids"] == ["e2"]][0]
    assert warning["facts"]["reason"] == "returned_twice"
    assert warning["tier"] == "county"


async def test_soon_due_sign_for_and_mediation_from_the_scan(w: Warnings) -> None:
    await w.report("d1", T0, sign_for_hours=24, mediation_days=15)
    assert await w.scan(T0 + timedelta(hours=17)) == 0  # 7 h of 24 left: more than a quarter
    await w.scan(T0 + timedelta(hours=19))
    warning = only(await w.warnings(), "soon_due")
    assert warning["facts"]["deadline"] == "sign_for"
    assert warning["tier"] == "town"
    await w.entry("d1", "assigned", "triaged", "assign", T0 + timedelta(hours=19, minutes=5))
    await w.entry("d1", "accepted", "assigned", "accept", T0 + timedelta(hours=20))
    assert only(await w.warnings(), "soon_due")["status"] == "cleared"

    await w.scan(T0 + timedelta(days=12, hours=1))  # under three days to the mediation deadline
    mediation = [i for i in await w.warnings(kind="soon_due") if i["status"] == "open"]
    assert [m["facts"]["deadline"] for m in mediation] == ["mediation"]
    # the court's extension moves the deadline 30 days on: the warning clears
    await w.extend("d1", T0 + timedelta(days=12, hours=2), T0 + timedelta(days=45))
    mediation = [
        i for i in await w.warnings(kind="soon_due") if i["facts"]["deadline"] == "mediation"
    ]
    assert mediation[0]["status"] == "cleared"
    assert "no longer close" in mediation[0]["clear_reason"]


async def test_a_scan_leaves_a_standing_soon_due_warning_until_its_due_time_moves(
    w: Warnings,
) -> None:
    await w.report("d3", T0, sign_for_hours=24, mediation_days=15)
    await w.entry("d3", "assigned", "triaged", "assign", T0 + timedelta(hours=1))
    await w.entry("d3", "accepted", "assigned", "accept", T0 + timedelta(hours=2))
    assert await w.scan(T0 + timedelta(days=12, hours=1)) == 1
    [raised] = [i for i in await w.warnings(kind="soon_due") if i["status"] == "open"]
    assert raised["facts"]["due_at"] == (T0 + timedelta(days=15)).isoformat()
    # later scans: the same due time, nothing raised, nothing rewritten, nothing published
    published = len(w.warning_events("warning.raised"))
    assert await w.scan(T0 + timedelta(days=12, hours=5)) == 0
    assert await w.scan(T0 + timedelta(days=13)) == 0
    [same] = [i for i in await w.warnings(kind="soon_due") if i["status"] == "open"]
    assert same == raised
    assert len(w.warning_events("warning.raised")) == published
    # an extension of a day keeps it close: the next scan moves the warning to the new due time
    moved = T0 + timedelta(days=16)
    await w.extend("d3", T0 + timedelta(days=13, hours=1), moved)
    await w.scan(T0 + timedelta(days=13, hours=2))
    [after] = [i for i in await w.warnings(kind="soon_due") if i["status"] == "open"]
    assert after["warning_id"] == raised["warning_id"]
    assert after["facts"]["due_at"] == moved.isoformat()


async def test_an_entry_applied_after_the_scan_is_not_judged_before_the_warning(
    w: Warnings,
) -> None:
    # the scan raised a mediation warning at day 12; the ledger then applies an entry written
    # at day 1 (it lagged): judged at day 1 the deadline was far, but the warning is younger
    # than the entry and still holds
    await w.report("d2", T0, sign_for_hours=24, mediation_days=15)
    await w.entry("d2", "assigned", "triaged", "assign", T0 + timedelta(hours=1))
    await w.scan(T0 + timedelta(days=12, hours=1))
    [raised] = [i for i in await w.warnings(kind="soon_due") if i["status"] == "open"]
    assert raised["facts"]["deadline"] == "mediation"
    await w.entry("d2", "accepted", "assigned", "accept", T0 + timedelta(days=1))
    [after] = [i for i in await w.warnings(kind="soon_due") if i["case_ids"] == ["d2"]]
    assert after["status"] == "open"


async def test_acknowledge_by_a_coordinator_in_scope_writes_the_trail_of_each_case(
    w: Warnings,
) -> None:
    for i in range(3):
        await w.report(f"k{i}", T0 + timedelta(days=i), hashes=[PHONE_HASH], tier="town")
    warning = only(await w.warnings(), "repeat_party")
    url = f"/v1/warnings/{warning['warning_id']}/acknowledge"
    town = {"tier": "town", "grid_codes": (TOWN,)}
    other = {"tier": "town", "grid_codes": ("522731-999",)}
    # scope: another town's coordinator neither sees nor acknowledges it
    assert not await w.warnings("coordinator", who=other)
    r = await w.client.post(url, json={"note": "x"}, headers=w.token("coordinator", **other))
    assert r.status_code == 404
    assert len(await w.warnings("coordinator", who=town)) == 1
    r = await w.client.post(url, json={"note": "x"}, headers=w.token("viewer"))
    assert r.status_code == 403
    r = await w.client.post(
        url,
        json={"note": "已约谈当事人，电话13812345678"},
        headers=w.token("coordinator", subject="coord-7", **town),
    )
    assert r.status_code == 200, r.text
    await w.settle()
    assert r.json()["status"] == "acknowledged"
    assert "13812345678" not in r.json()["note"]
    for case_id in ("k0", "k1", "k2"):
        trail = (await w.get(f"/v1/cases/{case_id}/trail")).json()["entries"]
        last = trail[-1]
        assert last["action"] == "acknowledge_warning"
        assert last["actor"] == "user:coord-7"
        assert last["details"]["warning_id"] == warning["warning_id"]
        assert last["from_status"] == last["to_status"] == "triaged"
    r = await w.client.post(url, json={"note": "again"}, headers=w.token("admin"))
    assert r.status_code == 409
    assert (await w.warnings(status="acknowledged"))[0]["acknowledged_by"] == "user:coord-7"
    # besides the trail entries, one warning.acknowledged on cases.warnings, keyed like the
    # warning.raised before it, with the masked note
    [ack] = w.warning_events("warning.acknowledged")
    [raised] = [
        e
        for e in w.warning_events("warning.raised")
        if e.payload["warning_id"] == warning["warning_id"]
    ]
    assert ack.case_id == raised.case_id == PHONE_HASH
    assert ack.payload["warning_id"] == warning["warning_id"]
    assert ack.payload["kind"] == "repeat_party"
    assert ack.payload["case_ids"] == ["k0", "k1", "k2"]
    assert ack.payload["acknowledged_by"] == "user:coord-7"
    assert ack.payload["note"] == (await w.warnings(status="acknowledged"))[0]["note"]
    assert "13812345678" not in ack.payload["note"] and "已约谈当事人" in ack.payload["note"]


async def test_warnings_of_one_case_inside_the_scope(w: Warnings) -> None:
    for i in range(3):
        await w.report(f"k{i}", T0 + timedelta(days=i), hashes=[PHONE_HASH], tier="town")
    await w.report("g0", T0, parties=[worker(j) for j in range(10)], tier="town")
    await w.report("other", T0, tier="town")
    kinds = {i["kind"] for i in await w.warnings(case_id="k1")}
    assert kinds == {"repeat_party"}
    assert {i["kind"] for i in await w.warnings(case_id="g0")} == {"group_risk"}
    assert await w.warnings(case_id="other") == []
    assert await w.warnings(case_id="k1", kind="group_risk") == []
    # a cleared warning still names its case: k0 merged away leaves two cases, it clears
    await w.entry("k0", "merged", "triaged", "merge", T0 + timedelta(days=3))
    [cleared] = await w.warnings(case_id="k2")
    assert cleared["status"] == "cleared" and cleared["kind"] == "repeat_party"
    # scope: the case of another town does not exist for this coordinator (404, not an empty
    # list), nor does a case nobody reported
    town = {"tier": "town", "grid_codes": (TOWN,)}
    other = {"tier": "town", "grid_codes": ("522731-999",)}
    assert [i["kind"] for i in await w.warnings("coordinator", who=town, case_id="k1")] == [
        "repeat_party"
    ]
    r = await w.get("/v1/warnings", "coordinator", who=other, params={"case_id": "k1"})
    assert r.status_code == 404
    assert (await w.get("/v1/warnings", params={"case_id": "nobody"})).status_code == 404


async def test_list_filters_and_cursor_paging(w: Warnings) -> None:
    for i in range(5):
        await w.report(f"c{i}", T0 + timedelta(hours=i), parties=[worker(j) for j in range(10)])
    first = await w.get("/v1/warnings", params={"limit": 2, "kind": "group_risk"})
    body = first.json()
    assert body["count"] == 2 and body["has_more"]
    seen = [i["warning_id"] for i in body["items"]]
    while body["next_cursor"]:
        body = (
            await w.get("/v1/warnings", params={"limit": 2, "cursor": body["next_cursor"]})
        ).json()
        seen += [i["warning_id"] for i in body["items"]]
    everything = await w.warnings()
    assert seen == [i["warning_id"] for i in everything if i["kind"] == "group_risk"]
    assert len(set(seen)) == 5
    assert await w.warnings(area=TOWN, kind="group_risk")
    assert not await w.warnings(area="999")
    assert await w.warnings(tier="county", status="open")
    assert (await w.get("/v1/warnings", params={"cursor": "nope"})).status_code == 422
    assert (await w.get("/v1/warnings", params={"kind": "nope"})).status_code == 422


async def test_a_warning_hides_the_cases_its_reader_may_not_see(w: Warnings) -> None:
    for i in range(5):
        tier = "county" if i == 0 else "grid"
        await w.report(f"h{i}", T0 + timedelta(hours=i), grid=f"{VILLAGE}-0{i}", tier=tier)
    town = {"tier": "town", "grid_codes": (TOWN,)}
    [village] = [
        i
        for i in await w.warnings("coordinator", who=town, kind="rising_area")
        if i["area_code"] == VILLAGE
    ]
    assert sorted(village["case_ids"]) == ["h1", "h2", "h3", "h4"]  # h0 is a county case
    assert village["hidden_cases"] == 1
    full = [i for i in await w.warnings(kind="rising_area") if i["area_code"] == VILLAGE][0]
    assert len(full["case_ids"]) == 5 and full["hidden_cases"] == 0
