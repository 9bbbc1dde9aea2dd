"""Schemathesis fuzzes the case-id routes with real cases in the state each route needs.

test_api_fuzz.py sends random case ids, so every `/v1/cases/{case_id}/...` route answers 404 there
and its handler is never reached. Here each service is served the same way (tests.contract.
test_api_fuzz.Live: uvicorn, memory bus, SQLite file) and fed events on its bus until it holds a
case in the state the route needs: mediation gets `case.triaged` (and the mediator's own actions),
triage gets `report.received`, follow-up gets a case's trail and its agreement, intake gets reports
over HTTP. The route's body and query parameters are generated from its OpenAPI operation
(positive and negative) with the path parameter fixed to that case; a case an example changed is
replaced before the next one. After a success the case is read back as its readers see it (an
agreement's document, notes, visits, decisions), since what was stored is printed there.

The standard is test_api_fuzz.py's: never a 5xx; a 4xx body says what is wrong, and a 422 names
each field and the reason. Never "no such case" either: the case exists and the caller sees it, so
that 404 means the fuzzing missed it.

Stable in CI: derandomized, a few examples per route, SQLite. To hunt, run it with
FENGQIAO_FUZZ_EXAMPLES=300 FENGQIAO_FUZZ_RANDOM=1 (tests/fuzzing.py), and
FENGQIAO_CASE_FUZZ_PG=1 to serve every service from PostgreSQL (scripts/pg.sh), whose columns
refuse what SQLite stores.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import httpx
import pytest
import schemathesis
from hypothesis import assume, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from services.followup.main import create_app as followup_app
from services.followup.settings import FollowupSettings
from services.intake.canonical import CanonicalReport, bad_characters
from services.intake.main import create_app as intake_app
from services.intake.seed import seed_demo as seed_intake
from services.intake.settings import IntakeSettings
from services.mediation.channels.testing import TestChannel
from services.mediation.main import create_app as mediation_app
from services.mediation.seed import seed_demo as seed_mediation
from services.mediation.settings import MediationSettings
from services.triage.main import create_app as triage_app
from services.triage.settings import TriageSettings
from shared.auth import StaffPrincipal, issue_token
from shared.bus import InMemoryBus
from shared.clock import ManualClock
from shared.contracts import Channel, DisputeType, PartyRef, Severity, Tier
from shared.events import new_id
from shared.settings import ServiceSettings
from shared.topics import Topics
from tests.contract.test_api_fuzz import (
    FOLLOWUP,
    INTAKE,
    MEDIATION,
    TRIAGE,
    Live,
    base,
)
from tests.fuzzing import fuzz_settings
from tests.unit.followup.conftest import T0, Ledger
from tests.unit.intake.conftest import report
from tests.unit.mediation.conftest import DAY, Svc
from tests.unit.triage_service.test_review_queue import DOUBTFUL
from tests.unit.triage_service.test_triage_service import TOPICS as TRIAGE_TOPICS
from tests.unit.triage_service.test_triage_service import publish, received

FUZZ = fuzz_settings(6)
T = TypeVar("T")
ON_POSTGRES = os.environ.get("FENGQIAO_CASE_FUZZ_PG") == "1"


def settings_base(request: pytest.FixtureRequest, name: str) -> dict[str, Any]:
    """test_api_fuzz.base: SQLite in a temporary folder, or with FENGQIAO_CASE_FUZZ_PG=1 a fresh
    database on the local PostgreSQL (scripts/pg.sh), where columns have types and limits."""
    tmp = request.getfixturevalue("tmp_path_factory").mktemp(name)
    out = base(tmp, name)
    if ON_POSTGRES:
        import asyncpg

        server: str = request.getfixturevalue("pg_server")
        db = f"fuzz_{name}_{new_id()[:12]}"

        async def create() -> None:
            conn = await asyncpg.connect(server.replace("postgresql+asyncpg", "postgresql"))
            try:
                await conn.execute(f'CREATE DATABASE "{db}"')
            finally:
                await conn.close()

        asyncio.run(create())
        out["database_url"] = server.rsplit("/", 1)[0] + f"/{db}"
    return out


# --- a live service and its event loop --------------------------------------------------------


class Served:
    """A Live service whose bus, relay and helpers run on the server's own event loop."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self.loop = live.server.servers[0].get_loop()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop (the memory bus lives there) and wait for it."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=60)

    @property
    def admin(self) -> dict[str, str]:
        """An admin's Authorization header."""
        return self.live.headers

    def client(self) -> httpx.AsyncClient:
        """An async client of the live server, for helpers running on its loop."""
        return httpx.AsyncClient(base_url=self.live.base_url, timeout=30)


def token(settings_: ServiceSettings, p: StaffPrincipal) -> dict[str, str]:
    """Authorization header of an arbitrary member of staff."""
    jwt = issue_token(settings_.jwt_private_key, settings_.jwt_audience, p)
    return {"Authorization": f"Bearer {jwt}"}


VIEWER = StaffPrincipal(subject="fuzz-viewer", role="viewer")


@dataclass
class Slot:
    """The case a route is fuzzed on; made again once an example has moved it on."""

    make: Callable[[], tuple[str, dict[str, str]]]
    case_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def take(self) -> tuple[str, dict[str, str]]:
        """The case and the headers of whoever acts on it."""
        if self.case_id is None:
            self.case_id, self.headers = self.make()
        return self.case_id, self.headers

    def spent(self) -> None:
        """The example changed the case: the next one gets a new case."""
        self.case_id = None


_strategies: dict[tuple[int, str, str, bool], st.SearchStrategy[Any]] = {}


def requests_of(
    schema: Any, path: str, method: str, negative: bool = True
) -> st.SearchStrategy[Any]:
    """Positive and (where the operation takes a body or a query) negative requests of one
    operation, the case id fixed (the test puts the real one in)."""
    key = (id(schema), path, method, negative)
    if key not in _strategies:
        op = schema[path][method]
        fixed = {"case_id": "fixed"} if "{case_id}" in path else None
        raw = op.definition.raw
        takes_input = "requestBody" in raw or any(
            p.get("in") == "query" for p in raw.get("parameters", [])
        )
        modes = [GenerationMode.POSITIVE]
        if negative and takes_input:
            modes.append(GenerationMode.NEGATIVE)
        _strategies[key] = st.one_of(*(op.as_strategy(m, path_parameters=fixed) for m in modes))
    return _strategies[key]


MISSING_CASE = [{"field": "case_id", "reason": "no such case"}]


def says_what_is_wrong(status: int, body: Any) -> bool:
    """A 4xx body (shared.errors.ErrorBody) says what is wrong: a detail, every error names a
    field and a reason, and a 422 names at least one field."""
    if not isinstance(body, dict) or not body.get("detail"):
        return False
    errors = body.get("errors") or []
    if status == 422 and not errors:
        return False
    return all(isinstance(e, dict) and e.get("field") and e.get("reason") for e in errors)


def send(case: Any, live: Live, case_id: str | None, headers: dict[str, str]) -> httpx.Response:
    """Send one generated request for a real case: no 5xx, a 4xx says what is wrong, and the
    case is never missing."""
    if case_id is not None:
        case.path_parameters = {"case_id": case_id}
    response = case.call(base_url=live.base_url, headers={**(case.headers or {}), **headers})
    case.validate_response(response, checks=[not_a_server_error])
    said = response.content[:2000].decode("utf-8", "replace")
    where = f"{case.method} {case.formatted_path} -> {response.status_code}: {said}"
    if 400 <= response.status_code < 500:
        # every 4xx of the four services is a JSON ErrorBody
        body = json.loads(response.content)
        assert says_what_is_wrong(response.status_code, body), where
        # the case is there and in the caller's sight: only something of it may be missing
        assert response.status_code != 404 or body["errors"] != MISSING_CASE, where
    return httpx.Response(response.status_code, content=response.content)


def read(live: Live, path: str, headers: dict[str, str], **params: str) -> httpx.Response:
    """GET what the case now shows; a 5xx or a 404 fails the test."""
    r = httpx.get(f"{live.base_url}{path}", headers=headers, params=params, timeout=30)
    assert r.status_code < 500 and r.status_code != 404, f"GET {path} {params} -> {r.text}"
    return r


# --- mediation ----------------------------------------------------------------------------------


@dataclass
class Mediation:
    """The mediation service with the demo county, and the unit tests' driver (Svc) on its loop."""

    served: Served
    svc: Svc
    slots: dict[str, Slot] = field(default_factory=dict)

    def headers(self, who: str) -> dict[str, str]:
        """Authorization of a seeded member of staff, or of an admin."""
        return self.svc.token(who)

    def case_in(self, shape: Shape) -> tuple[str, dict[str, str]]:
        """A new case of that shape, and the headers of who calls the route on it."""
        return self.served.run(self._case_in(shape))

    async def _case_in(self, shape: Shape) -> tuple[str, dict[str, str]]:
        svc = self.svc
        now = svc.clock.now()
        routing: dict[str, Any] = {
            "channel": shape.channel,
            "tier": shape.tier,
            "severity": "high",
            "co_channels": list(shape.co_channels),
        }
        if shape.overdue:  # both deadlines missed before anyone signed for it
            routing |= {"sign_for_due": now - timedelta(days=2), "mediation_due": now}
        if not shape.located:
            routing["grid_code"] = None
        if not shape.contact:
            routing["sealed_contact"] = None
        cid = await svc.triaged(**routing)
        assigned = await svc.case(cid)
        assert assigned["status"] == "assigned", assigned
        mediator = assigned["mediator_id"]
        assert mediator, f"the demo county has a {shape.channel} mediator on duty"
        target = svc.ctx.channel(shape.channel)
        transfer = {"target": target.transfer_targets[0] if target else "litigation", "reason": "x"}
        mediating = [("accept", None, 200), ("notes", {"text": "已约双方面谈"}, 201)]
        failed = [*mediating, ("failure", {"reason": "双方分歧较大"}, 200)]
        agreed = [*mediating, ("agreement", {"terms": "李四光赔偿张三丰修缮费"}, 201)]
        steps: dict[str, list[tuple[str, dict[str, Any] | None, int]]] = {
            "assigned": [],
            "accepted": mediating[:1],
            "mediating": mediating,
            "failed": failed,
            "agreed": agreed,
            "returned": [("return", {"reason": "非本渠道"}, 200)],
            "transferred": [*failed, ("transfer", transfer, 200)],
            "closed": agreed,
            "reopened": agreed,
        }
        for action, body, expect in steps[shape.status]:
            await svc.act(cid, action, mediator, body, expect)
        if shape.status == "closed":
            await svc.closed(cid)
        elif shape.status == "reopened":
            await svc.reopened(cid)
        return cid, self.headers(mediator if shape.who == "mediator" else shape.who)

    def read_back(self, case_id: str, actor: dict[str, str]) -> None:
        """The case, and its agreement's document if any, as its mediator, an admin and a viewer
        (in clear, and masked) see them."""
        live = self.served.live
        for headers in (actor, self.headers("admin"), self.headers("viewer-county")):
            r = httpx.get(f"{live.base_url}/v1/mediation/cases/{case_id}", headers=headers)
            assert r.status_code < 500, r.text
            if r.status_code == 200 and r.json()["agreement"] is not None:
                for fmt in ("text", "pdf"):
                    read(live, f"/v1/cases/{case_id}/agreement/document", headers, format=fmt)


@pytest.fixture(scope="module")
def mediation(request: pytest.FixtureRequest) -> Iterator[Mediation]:
    s = MediationSettings(**settings_base(request, "mediation"), scan_interval_s=0)
    staff = {e["staff_id"]: e for e in asyncio.run(seed_mediation(s))}
    bus, clock = InMemoryBus(), ManualClock(DAY)  # the day shift is on duty
    app = mediation_app(s, bus=bus, clock=clock)
    with Live(app, s) as live:
        served = Served(live)
        # the driver publishes the outbox itself (Svc.flush), so nothing is published twice
        served.run(app.state.runtime.relay.stop())
        client = served.client()
        unused = TestChannel(code="people", name="人民调解")  # the real channel plugins serve
        svc = Svc(app, client, bus, clock, s, staff, unused, topics=Topics(""))
        yield Mediation(served, svc)
        served.run(client.aclose())


@dataclass(frozen=True)
class Shape:
    """How a mediation case is made: its routing, how far it got, and who calls the route."""

    status: str
    channel: str = "people"
    who: str = "mediator"  # the case's mediator, or a seeded member of staff ("admin" too)
    tier: str = "town"
    co_channels: tuple[str, ...] = ()
    overdue: bool = False
    located: bool = True
    contact: bool = True


@dataclass(frozen=True)
class Route:
    """A case-id operation, the state its case must be in, and who calls it."""

    path: str
    method: str
    shape: Shape
    consumes: bool = True  # a success moves the case on: the next example needs a new one

    def __str__(self) -> str:
        s = self.shape
        return f"{self.method} {self.path.removeprefix('/v1/')} ({s.status} {s.channel} {s.who})"

    def steer(self, m: Mediation, case: Any, data: st.DataObject) -> None:
        """Make some generated bodies fit what the schema cannot say."""
        if self.path.endswith("/assign"):
            real_assignee(m, case, data)


def real_assignee(m: Mediation, case: Any, data: st.DataObject) -> None:
    """Half the assignments name a real organisation, and one of its mediators or none (random
    names only ever meet "no such organisation")."""
    if not isinstance(case.body, dict) or not data.draw(st.booleans(), label="real assignee"):
        return
    staff = [e for e in m.svc.staff.values() if e["role"] == "mediator"]
    org = data.draw(st.sampled_from(sorted({e["organisation"] for e in staff})))
    mediators = sorted(e["staff_id"] for e in staff if e["organisation"] == org)
    mediator = data.draw(st.none() | st.sampled_from(mediators))
    case.body = {**case.body, "organisation_id": org, "mediator_id": mediator}


CASE = "/v1/cases/{case_id}"
MEDIATION_ROUTES = [
    Route(f"{CASE}/accept", "POST", Shape("assigned")),
    Route(f"{CASE}/return", "POST", Shape("assigned")),
    Route(f"{CASE}/return", "POST", Shape("accepted", "labour", who="admin")),
    Route(f"{CASE}/notes", "POST", Shape("accepted"), consumes=False),
    Route(f"{CASE}/agreement", "POST", Shape("mediating")),
    Route(f"{CASE}/agreement", "POST", Shape("mediating", "court", who="admin")),
    Route(f"{CASE}/failure", "POST", Shape("mediating")),
    Route(f"{CASE}/escalate", "POST", Shape("failed")),
    Route(f"{CASE}/transfer", "POST", Shape("failed", "labour")),
    Route(f"{CASE}/extension", "POST", Shape("mediating", "court")),
    Route(f"{CASE}/assign", "POST", Shape("assigned", who="admin"), consumes=False),
    Route("/v1/mediation/cases/{case_id}", "GET", Shape("agreed"), consumes=False),
    Route(f"{CASE}/agreement/document", "GET", Shape("agreed"), consumes=False),
]


@pytest.mark.parametrize("route", MEDIATION_ROUTES, ids=str)
@given(data=st.data())
@FUZZ
def test_mediation_case_routes_never_answer_5xx(
    route: Route, mediation: Mediation, data: st.DataObject
) -> None:
    slot = mediation.slots.setdefault(str(route), Slot(lambda: mediation.case_in(route.shape)))
    case_id, headers = slot.take()
    case = data.draw(requests_of(MEDIATION, route.path, route.method))
    route.steer(mediation, case, data)
    r = send(case, mediation.served.live, case_id, headers)
    if r.is_success and route.method != "GET":
        mediation.read_back(case_id, headers)
        if route.consumes:
            slot.spent()


STATUSES = ("assigned", "accepted", "mediating", "failed", "agreed", "returned")
STATUSES += ("transferred", "closed", "reopened")
CALLERS = ("mediator", "admin", "coordinator-county", "viewer-county")
CASE_OPERATIONS = sorted({(str(r.path), r.method) for r in MEDIATION_ROUTES})


@st.composite
def shapes(draw: st.DrawFn) -> Shape:
    """Any case the demo county can hold, and anyone who sees it."""
    who = draw(st.sampled_from(CALLERS))
    return Shape(
        status=draw(st.sampled_from(STATUSES)),
        channel=draw(st.sampled_from(sorted(Channel))),
        who=who,
        tier=draw(st.sampled_from(sorted(Tier))),
        co_channels=tuple(draw(st.lists(st.sampled_from(sorted(Channel)), max_size=2))),
        overdue=draw(st.booleans()),
        # a viewer sees the cases inside their area: none without a location (DOMAIN.md §7)
        located=who == "viewer-county" or draw(st.booleans()),
        contact=draw(st.booleans()),
    )


@given(data=st.data())
@FUZZ
def test_mediation_case_routes_in_any_state_never_answer_5xx(
    mediation: Mediation, data: st.DataObject
) -> None:
    """Every case-id operation on a case of any channel, tier and status, called by its mediator,
    an admin, the county's coordinator or viewer: a refusal is a 403 or a 409, never a 5xx."""
    path, method = data.draw(st.sampled_from(CASE_OPERATIONS), label="operation")
    route = Route(path, method, data.draw(shapes(), label="case"))
    slot = mediation.slots.setdefault(
        repr(route.shape), Slot(lambda: mediation.case_in(route.shape))
    )
    case_id, headers = slot.take()
    case = data.draw(requests_of(MEDIATION, route.path, route.method))
    route.steer(mediation, case, data)
    r = send(case, mediation.served.live, case_id, headers)
    if r.is_success and method != "GET":  # it changed the case: read it back, take a new one
        mediation.read_back(case_id, headers)
        slot.spent()


# --- triage -------------------------------------------------------------------------------------


@dataclass
class Triage:
    """The triage service, fed report.received on its bus."""

    served: Served
    bus: InMemoryBus
    settings: TriageSettings
    slots: dict[str, Slot] = field(default_factory=dict)

    def reported(self, text: str, **kw: Any) -> str:
        """A new case from a report of `text`, decided by triage."""
        case_id = new_id()
        self.served.run(publish(self.bus, TRIAGE_TOPICS.reports, received(case_id, text, **kw)))
        return case_id

    def under_review(self) -> tuple[str, dict[str, str]]:
        """A case whose decision waits for the county centre's confirmation."""
        case_id = self.reported(DOUBTFUL, grid_code="520102003")
        queue = httpx.get(
            f"{self.served.live.base_url}/v1/triage/review", headers=self.served.admin
        )
        assert case_id in [r["case_id"] for r in queue.json()["reviews"]], queue.text
        return case_id, self.served.admin


@pytest.fixture(scope="module")
def triage(request: pytest.FixtureRequest) -> Iterator[Triage]:
    s = TriageSettings(**settings_base(request, "triage"))
    bus = InMemoryBus()
    with Live(triage_app(s, bus=bus), s) as live:
        yield Triage(Served(live), bus, s)


def one_verdict(case: Any, data: st.DataObject) -> None:
    """Half the reviews are a verdict the model takes (confirm, or a correction with a note),
    the fuzzed note kept: the schema cannot say "one of the two", so random bodies never pass."""
    if not isinstance(case.body, dict) or not data.draw(st.booleans(), label="one verdict"):
        return
    note = case.body.get("note")
    note = note if isinstance(note, str) and note.strip() else "协调员更正"
    if data.draw(st.booleans(), label="confirm"):
        case.body = {"confirm": True, "note": note}
        return
    dispute_type = data.draw(st.none() | st.sampled_from(list(DisputeType)))
    severity = data.draw(st.sampled_from(list(Severity)))
    case.body = {"dispute_type": dispute_type, "severity": severity, "note": note}


@given(data=st.data())
@FUZZ
def test_triage_review_never_answers_5xx(triage: Triage, data: st.DataObject) -> None:
    slot = triage.slots.setdefault("review", Slot(triage.under_review))
    case_id, headers = slot.take()
    case = data.draw(requests_of(TRIAGE, "/v1/triage/cases/{case_id}/review", "POST"))
    one_verdict(case, data)
    r = send(case, triage.served.live, case_id, headers)
    if r.is_success:
        read(triage.served.live, f"/v1/triage/cases/{case_id}/decisions", headers)
        slot.spent()


@given(data=st.data())
@FUZZ
def test_triage_decisions_of_any_report_never_answer_5xx(
    triage: Triage, data: st.DataObject
) -> None:
    """A report as the preview takes it (odd text, categories, parties) and intake passes it on,
    decided and stored: its decisions read back (GET … /decisions, fuzzed with the real id)."""
    preview = data.draw(requests_of(TRIAGE, "/v1/triage/preview", "POST", negative=False))
    body = preview.body
    assume(not bad_characters(body))  # intake refuses NUL characters and lone surrogates
    parties = [
        PartyRef(role=p.get("role"), display=p.get("name") or "") for p in body.get("parties", [])
    ]
    case_id = triage.reported(
        body["text"],
        source=body["source"],
        category=body.get("category"),
        parties=parties,
        repeat_count=body.get("repeat_count", 1),
    )
    case = data.draw(requests_of(TRIAGE, "/v1/triage/cases/{case_id}/decisions", "GET"))
    send(case, triage.served.live, case_id, triage.served.admin)


# --- follow-up ----------------------------------------------------------------------------------


@dataclass
class Followup:
    """The follow-up service and the unit tests' ledger driver on its loop."""

    served: Served
    ledger: Ledger
    slots: dict[str, Slot] = field(default_factory=dict)

    def in_follow_up(self) -> tuple[str, dict[str, str]]:
        """A new case agreed and in follow-up, its visits scheduled."""
        case_id = new_id()

        async def agreed() -> None:
            await self.ledger.life(case_id, "agreed")
            await self.ledger.agree(case_id, T0 + timedelta(hours=6))

        self.served.run(agreed())
        r = read(self.served.live, f"/v1/cases/{case_id}/visits", self.served.admin)
        assert r.json()["status"] == "follow_up", r.text
        return case_id, self.served.admin

    def read_back(self, case_id: str) -> None:
        """Everything follow-up shows of the case, to an admin and to a viewer."""
        viewer = token(self.ledger.settings, VIEWER)
        for path in ("", "/trail", "/trail/verify", "/visits", "/place"):
            for headers in (self.served.admin, viewer):
                read(self.served.live, f"/v1/cases/{case_id}{path}", headers)
        r = read(self.served.live, f"/v1/cases/{case_id}/trail/verify", self.served.admin)
        assert r.json()["valid"] is True, r.text


@pytest.fixture(scope="module")
def followup(request: pytest.FixtureRequest) -> Iterator[Followup]:
    s = FollowupSettings(**settings_base(request, "followup"))
    bus, clock = InMemoryBus(), ManualClock(T0 + timedelta(days=1))
    app = followup_app(s, bus=bus, clock=clock)
    with Live(app, s) as live:
        served = Served(live)
        client = served.client()
        yield Followup(served, Ledger(app, bus, clock, client))
        served.run(client.aclose())


FOLLOWUP_READS = ["", "/trail", "/trail/verify", "/visits", "/place"]


@given(data=st.data())
@FUZZ
def test_followup_visits_never_answer_5xx(followup: Followup, data: st.DataObject) -> None:
    slot = followup.slots.setdefault("visits", Slot(followup.in_follow_up))
    case_id, headers = slot.take()
    case = data.draw(requests_of(FOLLOWUP, f"{CASE}/visits", "POST"))
    r = send(case, followup.served.live, case_id, headers)
    if r.is_success:
        followup.served.run(followup.ledger.settle())
        followup.read_back(case_id)
        slot.spent()


@pytest.mark.parametrize("path", FOLLOWUP_READS, ids=lambda p: f"GET cases/{{case_id}}{p}")
@given(data=st.data())
@FUZZ
def test_followup_case_reads_never_answer_5xx(
    path: str, followup: Followup, data: st.DataObject
) -> None:
    slot = followup.slots.setdefault("reads", Slot(followup.in_follow_up))
    case_id, headers = slot.take()
    case = data.draw(requests_of(FOLLOWUP, f"{CASE}{path}", "GET"))
    send(case, followup.served.live, case_id, headers)


# --- intake -------------------------------------------------------------------------------------


@dataclass
class Intake:
    """The intake service with one integrator key per source."""

    live: Live
    settings: IntakeSettings
    keys: dict[str, str]

    def case_of(self, body: dict[str, Any]) -> httpx.Response:
        """POST a report with the key of its source."""
        return httpx.post(
            f"{self.live.base_url}/v1/reports",
            json=body,
            headers={"X-API-Key": self.keys.get(str(body.get("source")), self.keys["110"])},
            timeout=30,
        )


@pytest.fixture(scope="module")
def intake(request: pytest.FixtureRequest) -> Iterator[Intake]:
    s = IntakeSettings(
        **settings_base(request, "intake"),
        rate_limit_per_s=10_000.0,
        rate_limit_burst=10_000,
        webhook_poll_s=5,
    )
    keys = {source: k["api_key"] for source, k in asyncio.run(seed_intake(s)).items()}
    with Live(intake_app(s, bus=InMemoryBus(), configure_logs=False), s) as live:
        yield Intake(live, s, keys)


def canonical_reports() -> Any:
    """POST /v1/reports as an OpenAPI operation whose body is the canonical report's own schema
    (intake's published schema only says "an object with source, source_ref and text")."""
    schema = CanonicalReport.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.pop("$defs", {})
    body = {"content": {"application/json": {"schema": schema}}, "required": True}
    return schemathesis.openapi.from_dict(
        {
            "openapi": "3.1.0",
            "info": {"title": "canonical report", "version": "1"},
            "paths": {"/v1/reports": {"post": {"requestBody": body, "responses": {"202": {}}}}},
            "components": {"schemas": components},
        }
    )


REPORTS = canonical_reports()


@given(data=st.data())
@FUZZ
def test_intake_reports_of_any_case_never_answer_5xx(intake: Intake, data: st.DataObject) -> None:
    """A report as integrators may send it, then its case's reports (GET …/reports, fuzzed with
    the real id) in clear for an admin and masked for a viewer."""
    sent = data.draw(requests_of(REPORTS, "/v1/reports", "POST", negative=False))
    r = intake.case_of(sent.body)
    assert r.status_code < 500, r.text
    if not r.is_success:
        r = intake.case_of(report(source="12345", ref=new_id()))
        assert r.is_success, r.text
    case_id = r.json()["case_id"]
    case = data.draw(requests_of(INTAKE, f"{CASE}/reports", "GET"))
    for headers in (intake.live.headers, token(intake.settings, VIEWER)):
        send(case, intake.live, case_id, headers)
