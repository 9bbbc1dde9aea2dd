"""Where a case happened: exact coordinates for its mediators, ~100 m for everyone else."""

from __future__ import annotations

from datetime import timedelta

from shared.contracts import REGISTRY, TrailAppended
from tests.unit.followup.conftest import T0, TOPICS, Ledger

LAT, LON = 26.583412, 107.977151


async def received_at_a_place(ledger: Ledger, case_id: str, org: str = "org-people-1") -> None:
    cipher = ledger.app.state.runtime.cipher
    env = REGISTRY.event(
        TrailAppended(
            case_id=case_id,
            at=T0,
            actor="system:intake",
            action="receive",
            to_status="received",
            details={"source": "grid", "grid_code": "522731-103-007-01"},
            sealed_location=cipher.seal({"lat": LAT, "lon": LON}),
        ),
        event_type="trail.appended",
        producer="intake",
        case_id=case_id,
    )
    await ledger.publish(TOPICS.trail, env)
    await ledger.trail(
        case_id,
        "assigned",
        "received",
        action="assign",
        at=T0 + timedelta(hours=1),
        details={
            "channel": "people",
            "tier": "grid",
            "organisation_id": org,
            "mediator_id": "mediator-1",
        },
    )


async def test_place_exact_for_the_case_mediators_coarse_for_viewers(ledger: Ledger) -> None:
    await received_at_a_place(ledger, "pl1")
    mine = {"channel": "people", "organisation": "org-people-1"}
    exact = (await ledger.get("/v1/cases/pl1/place", role="mediator", who=mine)).json()
    assert exact["location"] == {"lat": LAT, "lon": LON, "precision_m": None}
    assert exact["areas"] == {
        "county": "522731",
        "town": "522731-103",
        "village": "522731-103-007",
        "grid": "522731-103-007-01",
    }
    # exact coordinates point at a home: shown in clear, they leave a read-audit row
    [audit] = (await ledger.get("/v1/admin/audit", params={"case_id": "pl1"})).json()["items"]
    assert audit["fields"] == ["location.exact"] and audit["role"] == "mediator"
    viewer = (await ledger.get("/v1/cases/pl1/place", role="viewer")).json()
    assert viewer["location"] == {"lat": 26.583, "lon": 107.977, "precision_m": 100}
    assert len((await ledger.get("/v1/admin/audit")).json()["items"]) == 1  # coarse: none
    other = {"channel": "people", "organisation": "org-people-2"}
    assert (await ledger.get("/v1/cases/pl1/place", role="mediator", who=other)).status_code == 404
    # the trail the ledger keeps carries no coordinates, sealed or not
    trail = (await ledger.get("/v1/cases/pl1/trail")).json()["entries"]
    assert "sealed_location" not in str(trail) and str(LAT) not in str(trail)


async def test_map_points_are_coarse_and_scoped(ledger: Ledger) -> None:
    await received_at_a_place(ledger, "pl1")
    await received_at_a_place(ledger, "pl2", org="org-people-2")
    points = (
        await ledger.get("/v1/places", params={"from": "2026-11-20", "to": "2026-11-20"})
    ).json()
    assert points["precision_m"] == 100
    assert [(p["case_id"], p["lat"], p["lon"]) for p in points["items"]] == [
        ("pl1", 26.583, 107.977),
        ("pl2", 26.583, 107.977),
    ]
    mine = {"channel": "people", "organisation": "org-people-2"}
    scoped = (
        await ledger.get(
            "/v1/places",
            role="mediator",
            who=mine,
            params={"from": "2026-11-20", "to": "2026-11-20"},
        )
    ).json()
    assert [p["case_id"] for p in scoped["items"]] == ["pl2"]
