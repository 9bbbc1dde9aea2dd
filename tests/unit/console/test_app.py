"""The console app against fake services (httpx.MockTransport): sessions, form tokens, ETags,
and that it never asks the unscoped reads about a case the caller cannot see."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest

from services.console.main import create_app
from services.console.settings import ConsoleSettings
from services.followup.warnings.api import warning_public
from services.followup.warnings.repository import WarningRow
from services.triage.api import ReviewCreate, ReviewList, ReviewPublic
from shared.auth import (
    AUDIENCES,
    DEV_JWT_PRIVATE_KEY,
    StaffPrincipal,
    issue_token,
    new_signing_keys,
)

Handler = Callable[[httpx.Request], httpx.Response]
TOKEN = issue_token(
    DEV_JWT_PRIVATE_KEY,
    AUDIENCES,
    StaffPrincipal("med-people-grid-day", "mediator", channel="people", tier="grid"),
)


class FakeServices:
    """Answers like the four services; records every request."""

    def __init__(self) -> None:
        self.seen: list[httpx.Request] = []
        self.routes: dict[str, Handler] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        handler = self.routes.get(f"{request.url.host}:{request.url.port}{request.url.path}")
        if handler is not None:
            return handler(request)
        return httpx.Response(404, json={"detail": "Not Found"})


@pytest.fixture
def fake() -> FakeServices:
    f = FakeServices()
    f.routes["127.0.0.1:8004/v1/stats"] = lambda r: httpx.Response(
        200, json={"total": 0}, headers={"ETag": '"s1"'}
    )
    f.routes["127.0.0.1:8004/v1/cases"] = lambda r: httpx.Response(
        200, json={"items": [], "count": 0, "has_more": False, "next_cursor": None}
    )
    return f


@pytest.fixture
async def client(fake: FakeServices, tmp_path: object) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ConsoleSettings(), transport=httpx.MockTransport(fake))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://console.test"
        ) as c,
    ):
        yield c


async def csrf(c: httpx.AsyncClient) -> str:
    page = await c.get("/login")
    m = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert m
    return m.group(1)


COORDINATOR = issue_token(
    DEV_JWT_PRIVATE_KEY,
    AUDIENCES,
    StaffPrincipal("coordinator-grid", "coordinator", tier="grid", grid_codes=("522731001001",)),
)


async def sign_in(c: httpx.AsyncClient, bearer: str = TOKEN) -> str:
    token = await csrf(c)
    r = await c.post("/login", data={"csrf_token": token, "token": bearer})
    assert r.status_code == 303
    assert r.headers["location"] == ("/my" if bearer == TOKEN else "/overview")
    return token


async def test_the_token_is_kept_in_an_httponly_samesite_strict_cookie(
    client: httpx.AsyncClient,
) -> None:
    token = await csrf(client)
    r = await client.post("/login", data={"csrf_token": token, "token": f"Bearer {TOKEN}"})
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("fq_console=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert TOKEN not in (await client.get("/my")).text


async def test_a_bad_token_or_a_missing_form_token_is_refused(client: httpx.AsyncClient) -> None:
    token = await csrf(client)
    r = await client.post("/login", data={"csrf_token": token, "token": "not-a-jwt"})
    assert r.status_code == 401 and "令牌无效" in r.text
    r = await client.post("/login", data={"token": TOKEN})
    assert r.status_code == 403
    r = await client.post(
        "/login",
        data={"csrf_token": token, "token": TOKEN},
        headers={"Origin": "http://evil.example"},
    )
    assert r.status_code == 403
    assert (await client.get("/my")).status_code == 303  # still signed out


async def test_a_case_the_caller_cannot_see_is_never_asked_of_triage(
    client: httpx.AsyncClient, fake: FakeServices
) -> None:
    await sign_in(client)
    r = await client.get("/cases/foreign-case")
    assert r.status_code == 404 and "不在您的职责范围内" in r.text
    asked = {(q.url.port, q.url.path) for q in fake.seen}
    assert (8002, "/v1/triage/cases/foreign-case/decisions") not in asked
    assert all(q.headers["authorization"] == f"Bearer {TOKEN}" for q in fake.seen)


async def test_polling_answers_204_while_the_ledger_etag_holds(
    client: httpx.AsyncClient, fake: FakeServices
) -> None:
    def cases(request: httpx.Request) -> httpx.Response:
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304)
        return httpx.Response(
            200,
            json={"items": [], "count": 0, "has_more": False, "next_cursor": None},
            headers={"ETag": '"v1"'},
        )

    fake.routes["127.0.0.1:8004/v1/cases"] = cases
    await sign_in(client)
    page = await client.get("/cases")
    assert 'hx-get="/cases/rows?' in page.text and "etag=%22v1%22" in page.text
    assert (await client.get("/cases/rows", params={"etag": '"v1"'})).status_code == 204
    fresh = await client.get("/cases/rows", params={"etag": '"v0"'})
    assert fresh.status_code == 200 and 'id="case-rows"' in fresh.text


async def test_a_refusal_shows_the_services_reason(
    client: httpx.AsyncClient, fake: FakeServices
) -> None:
    fake.routes["127.0.0.1:8003/v1/cases/c1/accept"] = lambda r: httpx.Response(
        409,
        json={
            "detail": {
                "detail": "only an assigned case can be signed for (签收)",
                "action": "accept",
                "status": "accepted",
            }
        },
    )
    fake.routes["127.0.0.1:8003/v1/mediation/cases/c1"] = lambda r: httpx.Response(
        200, json={"case_id": "c1", "status": "accepted", "allowed_actions": ["note"]}
    )
    token = await sign_in(client)
    r = await client.post("/cases/c1/act/accept", data={"csrf_token": token})
    assert r.status_code == 409
    assert "only an assigned case can be signed for (签收)" in r.text


async def test_a_bad_parameter_is_a_readable_page_not_a_stack_trace(
    client: httpx.AsyncClient,
) -> None:
    await sign_in(client)
    r = await client.get("/overview", params={"days": "abc"})
    assert r.status_code == 422 and "参数有误：days" in r.text


async def test_the_list_passes_filters_and_pages_with_the_ledger_cursor(
    client: httpx.AsyncClient, fake: FakeServices
) -> None:
    asked: list[dict[str, str]] = []

    def cases(request: httpx.Request) -> httpx.Response:
        asked.append(dict(request.url.params))
        more = "cursor" not in request.url.params
        return httpx.Response(
            200,
            json={
                "items": [{"case_id": "c" * 32, "status": "assigned", "channel": "people"}],
                "count": 1,
                "has_more": more,
                "next_cursor": "CUR1" if more else None,
            },
        )

    fake.routes["127.0.0.1:8004/v1/cases"] = cases
    await sign_in(client)
    first = await client.get("/cases", params={"status": "assigned", "since": "2026-11-01"})
    assert asked[-1] == {
        "status": "assigned",
        "since": "2026-11-01T00:00:00+08:00",
        "order": "desc",
        "limit": "50",
    }
    m = re.search(r'href="(/cases\?[^"]*cursor=CUR1[^"]*)" rel="next"', first.text)
    assert m and "status=assigned" in m.group(1)
    second = await client.get(m.group(1).replace("&amp;", "&"))
    assert asked[-1]["cursor"] == "CUR1" and asked[-1]["status"] == "assigned"
    assert 'rel="next"' not in second.text
    assert "hx-get" not in second.text.split('id="case-rows"')[1].split(">")[0]  # no polling
    assert "已派单" in second.text


def real_warning(warning_id: str, case_id: str) -> dict[str, Any]:
    """A warning exactly as followup's own `warning_public` shapes it."""
    now = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    row = WarningRow(
        warning_id=warning_id,
        kind="repeat_party",
        key="repeat_party:abc",
        subject="abc",
        status="open",
        tier="grid",
        area_code="522731001001",
        case_ids=[case_id],
        facts={"party": "abc", "cases_in_window": 3, "window_days": 90, "threshold": 3},
        raised_at=now,
        updated_at=now,
    )
    return json.loads(json.dumps(warning_public(row)))


def real_review(case_id: str) -> dict[str, Any]:
    """The review queue exactly as triage's `ReviewList` model serialises it."""
    now = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    item = ReviewPublic(
        case_id=case_id,
        source="grid",
        source_ref="G-1",
        text="网格员：两家为排水沟争执，他家门后放着一把柴刀。",
        attempt=1,
        review_cues=["提到凶器（柴刀）但无人持械"],
        dispute_type="neighbour",
        severity="medium",
        channel="people",
        tier="grid",
        grid_code="522731001001",
        created_at=now,
        confirm_due=now + timedelta(minutes=15),
        overdue=False,
    )
    return ReviewList(reviews=[item]).model_dump(mode="json")


COUNTY = issue_token(
    DEV_JWT_PRIVATE_KEY,
    AUDIENCES,
    StaffPrincipal("coordinator-county", "coordinator", tier="county"),
)


async def test_overview_reads_the_real_shapes_and_acknowledges_a_warning_with_a_note(
    client: httpx.AsyncClient, fake: FakeServices
) -> None:
    cid = "c" * 32
    asked: dict[str, dict[str, str]] = {}
    acks: list[tuple[str, bytes]] = []

    def answer(body: dict[str, Any]) -> Handler:
        def handle(r: httpx.Request) -> httpx.Response:
            asked[r.url.path] = dict(r.url.params)
            return httpx.Response(200, json=body)

        return handle

    fake.routes["127.0.0.1:8004/v1/warnings"] = answer(
        {"items": [real_warning("w1", cid)], "count": 1, "has_more": False, "next_cursor": None}
    )
    fake.routes["127.0.0.1:8004/v1/warnings/w1/acknowledge"] = lambda r: (
        acks.append((r.url.path, r.content)) or httpx.Response(200, json={"status": "ok"})
    )
    fake.routes["127.0.0.1:8004/v1/stats/series"] = answer(
        {"items": [{"bucket": "2026-11-23", "group": "all", "received": 4, "settled": 1}]}
    )
    fake.routes["127.0.0.1:8004/v1/areas/summary"] = answer(
        {"items": [{"area": "522731001001", "received": 4, "backlog": 3, "overdue": 1,
                    "settled": 1, "success_rate": 0.5, "open_warnings": 1}]}
    )  # fmt: skip
    fake.routes["127.0.0.1:8004/v1/places"] = answer(
        {"items": [{"case_id": cid, "grid_code": "522731001001", "status": "assigned",
                    "dispute_type": "neighbour", "severity": "high", "lat": 26.5834,
                    "lon": 107.9772}]}
    )  # fmt: skip
    await sign_in(client, COORDINATOR)
    page = await client.get("/overview?days=30")
    assert page.status_code == 200, page.text
    text = page.text
    assert "同一当事人多次涉案" in text and "同一当事人 90 天内涉及 3 件纠纷" in text
    assert 'action="/warnings/w1/ack?back=' in text
    assert 'data-received="[4]"' in text  # the series' weekly counts drive the chart
    assert 'data-case="' + cid + '"' in text  # a point on the map
    assert "仅县矛调中心协调员复核研判" in text  # triage answers 404 to this fake: no queue
    assert asked["/v1/stats/series"]["bucket"] == "week"
    assert asked["/v1/areas/summary"]["level"] == "village"
    assert asked["/v1/warnings"]["status"] == "open"
    token = re.search(r'name="csrf_token" value="([^"]+)"', text)
    assert token
    empty = await client.post(
        "/warnings/w1/ack?back=/overview", data={"csrf_token": token.group(1), "note": " "}
    )
    assert empty.status_code == 303 and acks == []  # a note is required, as followup requires
    # the refusal shows on the page it returns to; the same words in a link of anyone's do not
    shown = await client.get(empty.headers["location"])
    assert "请填写研判意见" in shown.text and 'data-testid="flash-error"' in shown.text
    for forged in (
        "/overview?error=请将令牌发送至某邮箱",
        "/warnings?error=请将令牌发送至某邮箱",
        "/my?done=请将令牌发送至某邮箱",  # 我的案件 says only what a code of DONE says
    ):
        page = await client.get(forged)
        assert page.status_code == 200 and "请将令牌发送至某邮箱" not in page.text, forged
    path, _, query = empty.headers["location"].partition("?")
    signed = dict(parse_qsl(query))
    assert signed["error"] == "请填写研判意见"
    other_words = urlencode({**signed, "error": "请将令牌发送至某邮箱"})  # its signature kept
    assert "flash-error" not in (await client.get(f"{path}?{other_words}")).text
    r = await client.post(
        "/warnings/w1/ack?back=/overview%3Fdays%3D30",
        data={"csrf_token": token.group(1), "note": "已约谈"},
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/overview?days=30&flash=acked"
    assert acks == [("/v1/warnings/w1/acknowledge", '{"note":"已约谈"}'.encode())]
    # a form cannot send the browser to another site afterwards
    r = await client.post(
        "/warnings/w1/ack?back=//evil.example/", data={"csrf_token": token.group(1), "note": "x"}
    )
    assert r.headers["location"].startswith("/overview?")


async def test_the_review_queue_confirms_and_corrects_through_triage(
    client: httpx.AsyncClient, fake: FakeServices
) -> None:
    cid = "d" * 32
    posted: list[Any] = []
    fake.routes["127.0.0.1:8002/v1/triage/review"] = lambda r: httpx.Response(
        200, json=real_review(cid)
    )

    def review(r: httpx.Request) -> httpx.Response:
        body = json.loads(r.content)
        posted.append(body)
        if body.get("confirm"):
            return httpx.Response(200, json={"case_id": cid, "status": "confirmed", "late": False})
        return httpx.Response(
            200, json={"case_id": cid, "status": "corrected", "late": False, "rerouted": True}
        )

    fake.routes[f"127.0.0.1:8002/v1/triage/cases/{cid}/review"] = review
    await sign_in(client, COUNTY)
    page = await client.get("/overview")
    assert "柴刀" in page.text and "提到凶器" in page.text
    assert f'action="/review/{cid}?back=' in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    r = await client.post(
        f"/review/{cid}?back=/overview", data={"csrf_token": token.group(1), "verdict": "confirm"}
    )
    assert r.headers["location"] == "/overview?flash=confirmed"
    r = await client.post(
        f"/review/{cid}?back=/overview",
        data={
            "csrf_token": token.group(1),
            "verdict": "correct",
            "dispute_type": "",
            "severity": "critical",
            "note": "回访核实：对方持刀",
        },
    )
    assert r.headers["location"] == "/overview?flash=rerouted"
    assert posted == [
        {"confirm": True, "note": ""},
        {"dispute_type": None, "severity": "critical", "note": "回访核实：对方持刀"},
    ]
    # the body the console sends is one triage's own model accepts
    for body in posted:
        ReviewCreate.model_validate(body)
    shown = await client.get("/overview?flash=rerouted")
    assert "研判已更正，案件已重新分派" in shown.text


async def test_the_export_is_followups_series_xlsx_passed_through(
    client: httpx.AsyncClient, fake: FakeServices
) -> None:
    asked: list[dict[str, str]] = []

    def series(r: httpx.Request) -> httpx.Response:
        asked.append(dict(r.url.params))
        return httpx.Response(
            200,
            content=b"PK-xlsx-bytes",
            headers={"content-type": "application/vnd.openxmlformats-officedocument"},
        )

    fake.routes["127.0.0.1:8004/v1/stats/series"] = series
    await sign_in(client, COORDINATOR)
    r = await client.get("/overview/export.xlsx?days=7&bucket=month&group_by=area")
    assert r.status_code == 200 and r.content == b"PK-xlsx-bytes"
    assert "attachment" in r.headers["content-disposition"]
    assert asked[0]["format"] == "xlsx" and asked[0]["group_by"] == "area"
    assert asked[0]["bucket"] == "month" and asked[0]["from"] <= asked[0]["to"]


async def test_demo_sign_in_and_demo_reports_exist_only_in_dev_mode(tmp_path: Path) -> None:
    creds = tmp_path / "demo-credentials.json"
    creds.write_text(
        json.dumps(
            {
                "integrators": {"grid": {"api_key": "fq_demo"}},
                "staff": [{"staff_id": "med-people-grid-day", "role": "mediator", "token": TOKEN}],
            }
        ),
        encoding="utf-8",
    )
    fake = FakeServices()
    fake.routes["127.0.0.1:8004/v1/cases"] = lambda r: httpx.Response(200, json={"items": []})
    filed: list[httpx.Request] = []
    fake.routes["127.0.0.1:8001/v1/reports"] = lambda r: (
        filed.append(r) or httpx.Response(202, json={"case_id": "c" * 32, "merged": False})
    )
    dev = create_app(ConsoleSettings(demo_credentials=creds), transport=httpx.MockTransport(fake))
    async with (
        dev.router.lifespan_context(dev),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=dev), base_url="http://c") as c,
    ):
        token = await csrf(c)
        assert 'data-staff="med-people-grid-day"' in (await c.get("/login")).text
        r = await c.post(
            "/login/demo", data={"csrf_token": token, "staff_id": "med-people-grid-day"}
        )
        assert r.status_code == 303
        r = await c.post(
            "/demo/report", data={"csrf_token": token, "text": "邻里纠纷", "phone": ""}
        )
        assert r.status_code == 200 and 'data-case="' + "c" * 32 in r.text
        assert filed[0].headers["x-api-key"] == "fq_demo"
        assert json.loads(filed[0].content)["source"] == "grid"

    private, public = new_signing_keys()
    prod_settings = ConsoleSettings(
        dev_mode=False,
        jwt_public_key=public,
        pii_key="p" * 32,
        csrf_secret="c" * 40,
        demo_credentials=creds,
    )
    prod = create_app(prod_settings, transport=httpx.MockTransport(fake))
    prod_token = issue_token(private, AUDIENCES, StaffPrincipal("med-1", "mediator"))
    async with (
        prod.router.lifespan_context(prod),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=prod), base_url="http://c") as c,
    ):
        token = await csrf(c)
        assert "data-staff=" not in (await c.get("/login")).text
        r = await c.post(
            "/login/demo", data={"csrf_token": token, "staff_id": "med-people-grid-day"}
        )
        assert r.status_code == 404
        r = await c.post("/login", data={"csrf_token": token, "token": prod_token})
        assert r.status_code == 303
        assert (await c.get("/demo/report")).status_code == 404
        assert "演示上报" not in (await c.get("/cases")).text


async def test_the_warnings_page_passes_followups_filters_and_pages_with_its_cursor(
    client: httpx.AsyncClient, fake: FakeServices
) -> None:
    asked: list[dict[str, str]] = []

    def warnings(r: httpx.Request) -> httpx.Response:
        asked.append(dict(r.url.params))
        more = "cursor" not in r.url.params
        return httpx.Response(
            200,
            json={
                "items": [real_warning("w1" if more else "w2", "e" * 32)],
                "count": 1,
                "has_more": more,
                "next_cursor": "eyJ3IjogN30" if more else None,
            },
        )

    fake.routes["127.0.0.1:8004/v1/warnings"] = warnings
    await sign_in(client, COORDINATOR)
    first = await client.get("/warnings?status=open&kind=repeat_party&tier=grid&area=522731")
    assert first.status_code == 200
    assert asked[0] == {
        "status": "open",
        "kind": "repeat_party",
        "tier": "grid",
        "area": "522731",
        "limit": "50",
    }
    assert 'data-warning="w1"' in first.text
    nxt = re.search(r'href="(/warnings\?[^"]+)" rel="next"', first.text)
    assert nxt and "cursor=eyJ3IjogN30" in nxt.group(1)
    second = await client.get(nxt.group(1).replace("&amp;", "&"))
    assert asked[1]["cursor"] == "eyJ3IjogN30" and asked[1]["kind"] == "repeat_party"
    assert 'data-warning="w2"' in second.text and 'rel="next"' not in second.text
