"""Every role × every route of the four services that takes a case id × a case in and out of scope.

The routes come from each app's own route table: a route that takes a case id in its path and
has no row in CASE_ROUTES, one that takes it in a query parameter or a body field (any parameter
named like `case_id`) and has no row in CASE_QUERY_ROUTES, or any other route missing from
OTHER_ROUTES, fails the test, so a new route cannot ship without a rule. Out of scope answers 404
(or 403) and leaks nothing; in scope never answers "no such case"; personal data is in clear
exactly for those DOMAIN.md §7 allows; no list or count holds a case outside the caller's scope.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import APIRoute

from shared.auth import StaffPrincipal
from shared.events import utcnow
from shared.scope import CaseScope, Sight, can_see
from tests.unit.security.conftest import MEDIATOR_A, ORG_A, SCOPE_A, Running

N, M, C = Sight.none, Sight.masked, Sight.clear

# principal → (sight of case A, sight of case B)
PRINCIPALS: dict[str, tuple[StaffPrincipal, Sight, Sight]] = {
    "admin": (StaffPrincipal("root", "admin"), C, C),
    "mediator assigned to A": (
        StaffPrincipal(MEDIATOR_A, "mediator", channel="people", organisation=ORG_A),
        C,
        N,
    ),
    "colleague in A's organisation": (
        StaffPrincipal("med-people-town-night", "mediator", channel="people", organisation=ORG_A),
        M,
        N,
    ),
    "co-handler channel of A": (
        StaffPrincipal("med-police-x", "mediator", channel="police", organisation="police-x"),
        M,
        N,
    ),
    "mediator of another organisation": (
        StaffPrincipal("med-people-y", "mediator", channel="people", organisation="people-y"),
        N,
        N,
    ),
    "coordinator of the tier, here": (
        StaffPrincipal("c-town", "coordinator", tier="town", grid_codes=("522731",)),
        C,
        N,
    ),
    "county centre, here": (
        StaffPrincipal("c-county", "coordinator", tier="county", grid_codes=("522731",)),
        C,
        N,
    ),
    "coordinator of the tier below": (
        StaffPrincipal("c-grid", "coordinator", tier="grid", grid_codes=("522731",)),
        N,
        N,
    ),
    "coordinator of another area": (
        StaffPrincipal("c-far", "coordinator", tier="town", grid_codes=("110105",)),
        N,
        N,
    ),
    "viewer here": (StaffPrincipal("v-here", "viewer", grid_codes=("522731",)), M, N),
    "viewer elsewhere": (StaffPrincipal("v-far", "viewer", grid_codes=("110105",)), N, N),
}

# (service, method, path) → (request body, the sight a caller needs for the route to go through)
CASE_ROUTES: dict[tuple[str, str, str], tuple[dict[str, Any] | None, Sight]] = {
    ("intake", "GET", "/v1/cases/{case_id}/reports"): (None, M),
    ("triage", "GET", "/v1/triage/cases/{case_id}/decisions"): (None, M),
    ("triage", "POST", "/v1/triage/cases/{case_id}/review"): ({"confirm": True}, C),
    ("followup", "GET", "/v1/cases/{case_id}"): (None, M),
    ("followup", "GET", "/v1/cases/{case_id}/trail"): (None, M),
    ("followup", "GET", "/v1/cases/{case_id}/trail/verify"): (None, M),
    ("followup", "GET", "/v1/cases/{case_id}/visits"): (None, M),
    ("followup", "POST", "/v1/cases/{case_id}/visits"): (
        {"method": "phone", "honoured": True, "satisfaction": 4},
        C,
    ),
    ("mediation", "GET", "/v1/mediation/cases/{case_id}"): (None, M),
    ("mediation", "GET", "/v1/cases/{case_id}/agreement/document"): (None, M),
    ("mediation", "POST", "/v1/cases/{case_id}/accept"): (None, M),
    ("mediation", "POST", "/v1/cases/{case_id}/return"): ({"reason": "非本渠道"}, M),
    ("mediation", "POST", "/v1/cases/{case_id}/notes"): ({"text": "进展"}, M),
    ("mediation", "POST", "/v1/cases/{case_id}/agreement"): ({"terms": "和解"}, M),
    ("mediation", "POST", "/v1/cases/{case_id}/failure"): ({"reason": "不成"}, M),
    ("mediation", "POST", "/v1/cases/{case_id}/escalate"): ({"reason": "上交"}, M),
    ("mediation", "POST", "/v1/cases/{case_id}/transfer"): (
        {"target": "litigation", "reason": "诉讼"},
        M,
    ),
    ("mediation", "POST", "/v1/cases/{case_id}/assign"): ({"organisation_id": ORG_A}, M),
    ("mediation", "POST", "/v1/cases/{case_id}/extension"): ({"reason": "延期"}, M),
    ("mediation", "POST", "/v1/cases/{case_id}/extend"): ({"reason": "延期"}, M),
    ("followup", "GET", "/v1/cases/{case_id}/place"): (None, M),
}

# Routes taking a case id in a query parameter: (service, method, path) →
# (the parameter, the other parameters, the sight a caller needs, the roles that may call it at
# all — None: every role; the others answer 403 whatever the case)
CASE_QUERY_ROUTES: dict[
    tuple[str, str, str], tuple[str, dict[str, str], Sight, frozenset[str] | None]
] = {
    ("followup", "GET", "/v1/warnings"): ("case_id", {}, M, None),
    **{
        (service, "GET", "/v1/admin/audit"): ("case_id", {}, M, frozenset({"admin"}))
        for service in ("intake", "triage", "mediation", "followup")
    },
}
# how a parameter or a body field that names a case is spelled
CASE_PARAM = re.compile(r"(^|_)case(_id|_ids|_ref)?$")

# Routes without a case id: lists (checked for foreign cases) and routes that hold no case.
LISTS: dict[tuple[str, str], dict[str, str]] = {
    ("followup", "/v1/cases"): {},
    ("followup", "/v1/stats"): {},
    ("followup", "/v1/visits/due"): {"by": "2027-06-01T00:00:00Z"},
    ("followup", "/v1/warnings"): {},
    ("followup", "/v1/stats/series"): {},
    ("followup", "/v1/areas/summary"): {},
    ("followup", "/v1/places"): {},
    ("mediation", "/v1/mediation/cases"): {},
    ("mediation", "/v1/supervisions"): {},
}
OTHER_ROUTES: set[tuple[str, str, str]] = {
    ("intake", "POST", "/v1/reports"),
    ("intake", "POST", "/v1/reports:batch"),
    ("intake", "GET", "/v1/reports/{source}/{source_ref}"),  # per integrator: test_integrators
    ("intake", "POST", "/v1/integrators"),
    ("intake", "GET", "/open311/v2/services.json"),
    ("intake", "POST", "/open311/v2/requests.json"),
    ("intake", "GET", "/open311/v2/requests/{service_request_id}.json"),  # per integrator
    *(("intake", m, "/open311/v2/{path:path}") for m in ("GET", "POST", "PUT", "PATCH", "DELETE")),
    ("triage", "POST", "/v1/triage/preview"),
    ("triage", "GET", "/v1/triage/rules"),
    # county coordinators and admins only (403 for others), filtered by area:
    # tests/unit/triage_service/test_review_queue.py
    ("triage", "GET", "/v1/triage/review"),
    ("triage", "POST", "/v1/triage/rules/reload"),
    ("mediation", "GET", "/v1/mediation/channels"),
    ("mediation", "GET", "/v1/admin/organisations"),
    ("mediation", "POST", "/v1/admin/organisations"),
    ("mediation", "GET", "/v1/admin/mediators"),
    ("mediation", "POST", "/v1/admin/mediators"),
    ("mediation", "PATCH", "/v1/admin/mediators/{staff_id}"),
    ("mediation", "POST", "/v1/admin/mediators/{staff_id}/token"),
    ("mediation", "POST", "/v1/admin/supervision/scan"),
    # one warning: scoped by its own tier and area, its cases filtered (test_warnings)
    ("followup", "GET", "/v1/warnings/{warning_id}"),
    ("followup", "POST", "/v1/warnings/{warning_id}/acknowledge"),
}
UNCLASSIFIED_OK = ("/healthz", "/readyz", "/metrics", "/docs", "/openapi", "/redoc")


def _walk(routes: list[Any], prefix: str = "") -> list[tuple[str, str, APIRoute]]:
    out = []
    for route in routes:
        if isinstance(route, APIRoute):
            for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
                out.append((method, prefix + route.path, route))
        elif hasattr(route, "original_router"):  # an included router (FastAPI ≥ 0.16x)
            out += _walk(route.original_router.routes, prefix + route.include_context.prefix)
    return out


def routes_of(r: Running) -> list[tuple[str, str]]:
    """(method, path) of every API route the app serves."""
    return [(method, path) for method, path, _ in _walk(list(r.app.routes))]


def case_inputs(route: APIRoute) -> list[str]:
    """The query parameters and body fields of a route that name a case ('query:case_id')."""
    found: list[str] = []

    def walk(dep: Any) -> None:
        found.extend(f"query:{q.name}" for q in dep.query_params if CASE_PARAM.search(q.name))
        for b in dep.body_params:
            model = getattr(b.field_info, "annotation", None)
            for name in getattr(model, "model_fields", {}) or {}:
                if CASE_PARAM.search(name):
                    found.append(f"body:{name}")
            if CASE_PARAM.search(b.name):
                found.append(f"body:{b.name}")
        for sub in dep.dependencies:
            walk(sub)

    walk(route.dependant)
    return found


def classify(r: Running) -> list[tuple[str, str]]:
    """The case-keyed routes of the app; fails on any route without a rule."""
    keyed, missing = [], []
    for method, path, route in _walk(list(r.app.routes)):
        key = (r.name, method, path)
        inputs = case_inputs(route)
        if key in CASE_ROUTES:
            keyed.append((method, path))
        elif "{case_id}" in path:
            missing.append(key)
        if inputs:
            rule = CASE_QUERY_ROUTES.get(key)
            if rule is None or inputs != [f"query:{rule[0]}"]:
                missing.append((*key, *inputs))
            continue
        if key in CASE_ROUTES or "{case_id}" in path:
            continue
        if key in OTHER_ROUTES or (r.name, path) in LISTS:
            continue
        if not path.startswith(UNCLASSIFIED_OK):
            missing.append(key)
    assert not missing, f"routes without a scope rule in this test: {missing}"
    return keyed


def query_keyed(r: Running) -> list[tuple[str, str]]:
    """The app's routes that take a case id in a query parameter (every one has a rule)."""
    classify(r)
    return [(m, p) for m, p in routes_of(r) if (r.name, m, p) in CASE_QUERY_ROUTES]


async def test_every_case_keyed_route_checks_scope(running: Running) -> None:
    r = running
    keyed = classify(r)
    assert keyed, r.name
    wrong: list[tuple[str, str, str, str, int, str]] = []
    # out of scope first: refusals change nothing, so the cases stay as they were seeded
    for who, (p, sight_a, sight_b) in PRINCIPALS.items():
        h = r.bearer(p)
        for method, path in keyed:
            body, _need = CASE_ROUTES[(r.name, method, path)]
            for case_id, sight in ((r.case_a, sight_a), (r.case_b, sight_b)):
                if sight is not N:
                    continue
                res = await r.client.request(
                    method, path.format(case_id=case_id), headers=h, json=body
                )
                await r.settle()
                leaked = case_id in res.text or "13812345678" in res.text
                if res.status_code not in (403, 404) or leaked:
                    wrong.append((who, method, path, case_id, res.status_code, res.text[:200]))
    # in scope: reads go through (state-changing routes are covered per service)
    for who, (p, sight_a, sight_b) in PRINCIPALS.items():
        h = r.bearer(p)
        for method, path in keyed:
            body, need = CASE_ROUTES[(r.name, method, path)]
            if method != "GET":
                continue
            for case_id, sight in ((r.case_a, sight_a), (r.case_b, sight_b)):
                if sight < need:
                    continue
                res = await r.client.get(path.format(case_id=case_id), headers=h)
                if res.status_code == 404 and "no such case" in res.text:
                    wrong.append((who, method, path, case_id, 404, res.text[:200]))
                    continue
                data = res.json() if "json" in res.headers.get("content-type", "") else {}
                shown = data.get("personal_data") if isinstance(data, dict) else None
                expected = "clear" if sight is C else "masked"
                if shown is not None and shown != expected:
                    wrong.append((who, method, path, case_id, res.status_code, f"shown {shown}"))
    assert not wrong, "\n".join(map(str, wrong))


async def warning_naming_a(r: Running) -> CaseScope:
    """Store an open warning naming case A (in A's area, tier and organisation); its scope."""
    from services.followup.warnings.repository import WarningCaseLink, WarningRow, scope_facts

    now = utcnow()
    w = WarningRow(
        warning_id="w-matrix",
        kind="escalating",
        key=f"escalating:{r.case_a}",
        subject=r.case_a,
        active_key=f"escalating:{r.case_a}",
        status="open",
        tier=SCOPE_A["tier"],
        area_code=SCOPE_A["grid_code"],
        channel=SCOPE_A["channel"],
        organisation_id=SCOPE_A["organisation_id"],
        case_ids=[r.case_a],
        facts={"reason": "reopened"},
        raised_at=now,
        updated_at=now,
    )
    async with r.app.state.runtime.sessions() as session, session.begin():
        session.add(w)
        await session.flush()
        assert w.id is not None
        session.add(WarningCaseLink(warning_id=w.id, case_id=r.case_a))
    return scope_facts(w)


async def test_every_route_taking_a_case_id_in_its_query_checks_scope(running: Running) -> None:
    """GET /v1/warnings?case_id= and the audit's ?case_id=: a case out of scope is 404 (or 403)
    and leaks nothing; in scope it answers 200 (the warnings of A list the warning naming A
    to whoever sees both); a role the route refuses answers 403 whatever the case."""
    r = running
    keyed = query_keyed(r)
    assert keyed, r.name  # every service has at least the audit
    warning = await warning_naming_a(r) if r.name == "followup" else None
    wrong: list[tuple[str, str, str, str, int, str]] = []
    for who, (p, sight_a, sight_b) in PRINCIPALS.items():
        h = r.bearer(p)
        for method, path in keyed:
            param, params, need, roles = CASE_QUERY_ROUTES[(r.name, method, path)]
            for case_id, sight in ((r.case_a, sight_a), (r.case_b, sight_b)):
                res = await r.client.request(
                    method, path, headers=h, params={**params, param: case_id}
                )
                allowed = roles is None or p.role in roles
                leaked = "13812345678" in res.text or (sight is N and case_id in res.text)
                if not allowed:
                    ok = res.status_code == 403 and case_id not in res.text
                elif sight is N or sight < need:
                    ok = res.status_code in (403, 404) and not leaked
                else:
                    ok = res.status_code == 200 and not leaked
                if ok and allowed and sight >= need and path == "/v1/warnings":
                    named = [w["case_ids"] for w in res.json()["items"]]
                    listed = case_id == r.case_a and warning is not None and can_see(p, warning)
                    ok = named == ([[r.case_a]] if listed else [])
                if not ok:
                    wrong.append((who, method, path, case_id, res.status_code, res.text[:200]))
    assert not wrong, "\n".join(map(str, wrong))


async def test_no_list_or_count_holds_a_foreign_case(running: Running) -> None:
    r = running
    for (service, path), params in LISTS.items():
        if service != r.name:
            continue
        for who, (p, sight_a, sight_b) in PRINCIPALS.items():
            res = await r.client.get(path, headers=r.bearer(p), params=params)
            assert res.status_code == 200, (who, path, res.text)
            for case_id, sight in ((r.case_a, sight_a), (r.case_b, sight_b)):
                if sight is N:
                    assert case_id not in res.text, (who, path, case_id)
            if path == "/v1/stats":
                visible = sum(s is not N for s in (sight_a, sight_b))
                assert res.json()["total"] == visible, (who, res.json()["total"])
            if path in ("/v1/cases", "/v1/mediation/cases"):
                ids = {c["case_id"] for c in res.json()["items"]}
                assert (r.case_a in ids) == (sight_a is not N), (who, path)


async def test_the_visit_notes_show_only_to_those_who_see_the_case_in_clear(
    running: Running,
) -> None:
    r = running
    if r.name != "followup":
        return
    mediator = PRINCIPALS["mediator assigned to A"][0]
    res = await r.client.post(
        f"/v1/cases/{r.case_a}/visits",
        headers=r.bearer(mediator),
        json={"method": "phone", "honoured": True, "note": "张三丰已付款"},
    )
    assert res.status_code == 201, res.text
    await r.settle()
    for who, (p, sight_a, _b) in PRINCIPALS.items():
        res = await r.client.get(f"/v1/cases/{r.case_a}/visits", headers=r.bearer(p))
        if sight_a is N:
            assert res.status_code == 404, who
            continue
        notes = [v["note"] for v in res.json()["visits"] if v["state"] == "done"]
        assert notes == (["张三丰已付款"] if sight_a is C else [None]), (who, notes)
