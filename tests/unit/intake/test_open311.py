"""Open311 GeoReport v2 (JSON): services, create a request with an api_key, read its status."""

from __future__ import annotations

from services.intake.domain import DISPUTE_TYPES
from tests.unit.intake.conftest import Intake

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_services_are_our_dispute_types(intake: Intake) -> None:
    r = await intake.client.get("/open311/v2/services.json")
    assert r.status_code == 200
    services = r.json()
    assert [s["service_code"] for s in services] == list(DISPUTE_TYPES)
    labour = next(s for s in services if s["service_code"] == "labour")
    assert labour["service_name"] == "劳动争议" and labour["type"] == "realtime"


async def test_create_and_read_a_request(intake: Intake) -> None:
    r = await intake.client.post(
        "/open311/v2/requests.json",
        data={
            "api_key": intake.keys["12345"],
            "service_code": "neighbour",
            "description": "楼上装修噪音扰民，多次沟通无果。",
            "address_string": "南溪县城关镇幸福路1号",
            "lat": "27.2",
            "long": "107.1",
            "first_name": "小红",
            "last_name": "李",
            "phone": "13912348888",
            "jurisdiction_id": "522731",
        },
    )
    assert r.status_code == 200, r.text
    [created] = r.json()
    rid = created["service_request_id"]
    assert "13912348888" not in r.text
    await intake.settle()
    assert (await intake.client.get(f"/open311/v2/requests/{rid}.json")).status_code == 401
    mine = {"X-API-Key": intake.keys["12345"]}
    theirs = {"X-API-Key": intake.keys["grid"]}
    assert (
        await intake.client.get(f"/open311/v2/requests/{rid}.json", headers=theirs)
    ).status_code == 404  # another integrator's request does not exist for it
    keyed_url = f"/open311/v2/requests/{rid}.json?api_key={intake.keys['12345']}"
    assert (await intake.client.get(keyed_url)).status_code == 401  # never in the URL
    g = await intake.client.get(f"/open311/v2/requests/{rid}.json", headers=mine)
    assert g.status_code == 200
    [req] = g.json()
    assert req["status"] == "open" and req["service_code"] == "neighbour"
    assert req["status_notes"] == "已受理"
    assert "13912348888" not in g.text and "幸福路" not in g.text
    [env] = intake.events(intake.topics.reports, "report.received")
    assert env.payload["source"] == "12345" and env.payload["category"] == "邻里"
    assert env.payload["source_ref"].startswith("open311-")
    await intake.publish_trail(
        env.case_id,
        "received",
        "triaged",
        details={"dispute_type": "neighbour", "channel": "people"},
    )
    await intake.publish_trail(env.case_id, "follow_up", "closed", actor="system:followup")
    await intake.settle()
    [req] = (await intake.client.get(f"/open311/v2/requests/{rid}.json", headers=mine)).json()
    assert req["status"] == "closed" and req["agency_responsible"] == "人民调解"


async def test_key_source_decides_and_source_ref_is_idempotent(intake: Intake) -> None:
    form = {
        "api_key": intake.keys["grid"],
        "service_code": "land",
        "description": "宅基地边界纠纷",
        "source_ref": "CRM-77",
    }
    a = await intake.client.post("/open311/v2/requests.json", data=form)
    b = await intake.client.post("/open311/v2/requests.json", data=form)
    assert a.json()[0]["service_request_id"] == b.json()[0]["service_request_id"]
    status = await intake.client.get(
        "/v1/reports/grid/CRM-77", headers={"X-API-Key": intake.keys["grid"]}
    )
    assert status.status_code == 200


async def test_open311_errors(intake: Intake) -> None:
    url = "/open311/v2/requests.json"
    r = await intake.client.post(url, data={"service_code": "labour", "description": "x"})
    assert r.status_code == 401 and r.json()[0]["code"] == 401
    key = intake.keys["12345"]
    r = await intake.client.post(
        url, data={"api_key": key, "service_code": "parking", "description": "x"}
    )
    assert r.status_code == 422
    assert r.json() == [
        {"code": 422, "description": "service_code: unknown service; see services.json"}
    ]
    r = await intake.client.post(
        url, data={"api_key": key, "service_code": "labour", "description": "x" * 2001}
    )
    assert r.status_code == 422
    assert r.json()[0]["description"] == "description: longer than 2000 characters"
    r = await intake.client.post(url, data={"api_key": key, "service_code": "labour"})
    assert r.status_code == 200  # description is optional in GeoReport v2
    r = await intake.client.post(
        url, data={"api_key": key, "service_code": "labour", "description": "x", "lat": "north"}
    )
    assert r.status_code == 422 and r.json()[0]["description"] == "lat: not a number"
    r = await intake.client.post(url, json={"api_key": key, "service_code": "labour"})
    assert r.status_code == 415
    assert r.json()[0]["description"].startswith("Content-Type:")
    r = await intake.client.post(
        url,
        content=b"api_key=" + key.encode() + b"&service_code=labour&description=a%00b",
        headers=FORM,
    )
    assert r.status_code == 422 and "NUL" in r.json()[0]["description"]
    r = await intake.client.get("/open311/v2/requests/nope.json", headers={"X-API-Key": key})
    assert r.status_code == 404 and r.json()[0]["code"] == 404


async def test_a_path_no_route_matches_under_the_open311_root_is_a_georeport_404(
    intake: Intake,
) -> None:
    key = intake.keys["12345"]
    # a line break in the path: not even the catch-all route's path converter matches it
    for path in ("/open311/v2/requests.%0Ajson", "/open311/v2/requests.xml"):
        r = await intake.client.post(
            path, data={"service_code": "labour"}, headers={"X-API-Key": key}
        )
        assert r.status_code == 404, path
        assert r.json() == [{"code": 404, "description": r.json()[0]["description"]}], path
        assert r.json()[0]["description"].startswith("path:"), path
    r = await intake.client.get("/v1/no-such-route")  # outside the root: the API's own body
    assert r.status_code == 404 and r.json()["errors"] == [
        {"field": "path", "reason": "no such route"}
    ]


async def test_the_edges_early_answers_under_the_open311_root_are_georeport_lists(
    intake: Intake,
) -> None:
    """A NUL in the path or query and an oversized body are refused before any route runs;
    under the Open311 root the CRM still reads GeoReport's error list, not the API's body."""
    key = {"X-API-Key": intake.keys["12345"]}
    r = await intake.client.get("/open311/v2/services.json", params={"jurisdiction_id": "52\x0027"})
    assert r.status_code == 422, r.text
    assert r.json() == [{"code": 422, "description": "query: contains a NUL character"}]
    r = await intake.client.get("/open311/v2/requests/a%00b.json", headers=key)
    assert r.status_code == 422, r.text
    assert r.json() == [{"code": 422, "description": "path: contains a NUL character"}]
    big = {"service_code": "labour", "description": "漏水", "padding": "x" * (300 * 1024)}
    r = await intake.client.post("/open311/v2/requests.json", data=big, headers=key)
    assert r.status_code == 413, r.text
    assert [e["code"] for e in r.json()] == [413]
    r = await intake.client.get("/v1/reports/%00", headers=key)  # outside: the API's body
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "path"
