"""A case with no location: one rule (shared.scope.case_area), the same answer in every service.

DOMAIN.md §7: a coordinator sees their tier and below inside their area; "the county centre also
sees cases with no location". An unlocated case lies in no area, so only the county centre (and
staff whose area is the whole county) see it — also once it is assigned to an organisation whose
area is a town's (mediation used to let that town's coordinator in, the other services did not).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Column, MetaData, String, Table, create_engine, insert, select

from services.followup.main import create_app as followup_app
from services.followup.settings import FollowupSettings
from services.mediation.seed import demo_layout
from shared.auth import StaffPrincipal, issue_token
from shared.bus import InMemoryBus
from shared.clock import ManualClock
from shared.scope import CaseScope, ScopeColumns, Sight, case_area, scope_filter, sight
from tests.unit.followup.conftest import TOPICS, Ledger
from tests.unit.mediation.conftest import Svc, clock, seeded, svc  # noqa: F401 - fixtures

TOWN, ELSEWHERE = "522731001", "522799"
N, M, C = Sight.none, Sight.masked, Sight.clear

# principal → its sight of (a town case here, a town case elsewhere, an unlocated town case)
RULE: dict[str, tuple[StaffPrincipal, tuple[Sight, Sight, Sight]]] = {
    "town coordinator here": (
        StaffPrincipal("c-town", "coordinator", tier="town", grid_codes=(TOWN,)),
        (C, N, N),
    ),
    "county centre": (
        StaffPrincipal("c-county", "coordinator", tier="county", grid_codes=("522731",)),
        (C, N, C),
    ),
    "county-wide coordinator (no prefixes)": (
        StaffPrincipal("c-all", "coordinator", tier="county"),
        (C, C, C),
    ),
    "town coordinator, no prefixes": (
        StaffPrincipal("c-town-all", "coordinator", tier="town"),
        (C, C, C),
    ),
    "grid coordinator here": (
        StaffPrincipal("c-grid", "coordinator", tier="grid", grid_codes=(TOWN,)),
        (N, N, N),
    ),
    "viewer here": (StaffPrincipal("v", "viewer", grid_codes=(TOWN,)), (M, N, N)),
    "county viewer (no prefixes)": (StaffPrincipal("v-all", "viewer"), (M, M, M)),
    "mediator of the organisation": (
        StaffPrincipal("m", "mediator", channel="people", organisation="people-town"),
        (M, M, M),
    ),
}
CASES = (
    CaseScope(tier="town", grid_code=f"{TOWN}001", organisation_id="people-town", channel="people"),
    CaseScope(
        tier="town", grid_code=f"{ELSEWHERE}01", organisation_id="people-town", channel="people"
    ),
    CaseScope(tier="town", grid_code=None, organisation_id="people-town", channel="people"),
)


def test_the_rule_and_its_sql_say_the_same() -> None:
    table = Table(
        "cases",
        MetaData(),
        *(Column(n, String) for n in ("id", "tier", "grid_code", "organisation_id", "channel")),
    )
    engine = create_engine("sqlite://")
    table.metadata.create_all(engine)
    rows = [
        {"id": str(i), **{k: getattr(c, k) for k in ("tier", "organisation_id", "channel")}}
        | {"grid_code": c.grid_code}
        for i, c in enumerate(CASES)
    ]
    rows.append({**rows[2], "id": "3", "grid_code": ""})  # "" is unlocated too
    cols = ScopeColumns(
        tier=table.c.tier,
        grid_code=table.c.grid_code,
        organisation_id=table.c.organisation_id,
        channel=table.c.channel,
    )
    with engine.begin() as conn:
        conn.execute(insert(table), rows)
        for who, (p, expected) in RULE.items():
            assert tuple(sight(p, c) for c in CASES) == expected, who
            listed = set(conn.execute(select(table.c.id).where(scope_filter(p, cols))).scalars())
            wanted = {str(i) for i, s in enumerate(expected) if s is not N}
            wanted |= {"3"} if expected[2] is not N else set()
            assert listed == wanted, who
    assert case_area(None) == case_area("") == ""
    assert case_area("522731001") == "522731001"


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    """The follow-up service (the ledger), fed by mediation's trail below."""
    bus = InMemoryBus()
    settings = FollowupSettings(
        bus="memory", database_url=f"sqlite+aiosqlite:///{tmp_path}/f.db", dev_mode=True
    )
    app = followup_app(settings, bus=bus, clock=ManualClock())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://followup") as client:
            yield Ledger(app, bus, app.state.clock, client)
    await bus.stop()


def bearer(settings: Any, p: StaffPrincipal) -> dict[str, str]:
    """A token for p signed as this service's deployment signs."""
    token = issue_token(settings.jwt_private_key, settings.jwt_audience, p)
    return {"Authorization": f"Bearer {token}"}


async def test_an_unlocated_case_is_the_county_centres_in_mediation_and_the_ledger(
    svc: Svc,  # noqa: F811 - the mediation fixture
    ledger: Ledger,
) -> None:
    grids = demo_layout(svc.settings.county_code, svc.settings.county_name)["grids"]
    town = StaffPrincipal("c-town", "coordinator", tier="town", grid_codes=tuple(grids["town"]))
    county = StaffPrincipal(
        "c-county", "coordinator", tier="county", grid_codes=tuple(grids["county"])
    )
    viewer_town = StaffPrincipal("v-town", "viewer", grid_codes=tuple(grids["town"]))
    mediator = StaffPrincipal(
        "med-people-town-day", "mediator", channel="people", organisation="people-town"
    )
    located = await svc.triaged(grid_code=f"{grids['town'][0]}001")
    unlocated = await svc.triaged(grid_code=None)
    case = await svc.case(unlocated)
    # assigned to the town's organisation, whose area is the town coordinator's
    assert (case["organisation_id"], case["status"]) == ("people-town", "assigned")
    # the ledger projects mediation's own trail entries (its topics have no prefix)
    trail = [e for e in svc.events(svc.topics.trail) if e.case_id in (located, unlocated)]
    await ledger.publish(TOPICS.trail, *trail)

    expected = {  # principal → (sees the located case, sees the unlocated one)
        "town coordinator": (town, True, False),
        "county centre": (county, True, True),
        "viewer of the town": (viewer_town, True, False),
        "mediator it is assigned to": (mediator, True, True),
    }
    for who, (p, sees_located, sees_unlocated) in expected.items():
        for case_id, sees in ((located, sees_located), (unlocated, sees_unlocated)):
            med = await svc.client.get(
                f"/v1/mediation/cases/{case_id}", headers=svc.principal_token(p)
            )
            led = await ledger.client.get(
                f"/v1/cases/{case_id}", headers=bearer(ledger.settings, p)
            )
            got = (med.status_code, led.status_code)
            assert got == ((200, 200) if sees else (404, 404)), (who, case_id, got)
        mine = await svc.client.get("/v1/mediation/cases", headers=svc.principal_token(p))
        listed = {c["case_id"] for c in mine.json()["items"]}
        theirs = await ledger.client.get("/v1/cases", headers=bearer(ledger.settings, p))
        assert (
            unlocated in listed,
            unlocated in {c["case_id"] for c in theirs.json()["items"]},
        ) == (
            sees_unlocated,
            sees_unlocated,
        ), who

    # the sign-for deadline passes: the notice (督办) goes where the case can be opened
    svc.clock.advance(timedelta(hours=5))
    raised = {r.case_id for r in await svc.scan()}
    assert raised == {located, unlocated}
    for p, wanted in ((town, {located}), (county, {unlocated})):
        r = await svc.client.get("/v1/supervisions", headers=svc.principal_token(p))
        assert {s["case_id"] for s in r.json()["items"]} == wanted, p.subject
