"""One error vocabulary (shared/errors.py), mapped to HTTP once (shared/web.py).

Every case-keyed route of the four services answers a case outside the caller's scope exactly
as it answers a case that does not exist: the same status and byte-identical bodies, and the
404 body is the same on all four services. Every other refusal has the same shape (ErrorBody).
"""

from __future__ import annotations

import json

from shared.auth import StaffPrincipal
from shared.errors import ErrorBody, NotFound
from tests.unit.security.conftest import Running
from tests.unit.security.test_scope_matrix import CASE_ROUTES, PRINCIPALS, classify

CASE_404 = json.dumps(NotFound("case", "case_id").body(), separators=(",", ":")).encode()


async def test_a_hidden_case_and_a_missing_case_answer_byte_identical_bodies(
    running: Running,
) -> None:
    r = running
    checked, wrong, not_found = 0, [], 0
    for who in ("coordinator of the tier, here", "mediator assigned to A", "viewer here"):
        p, _, sight_b = PRINCIPALS[who]
        assert sight_b == 0, who  # case B is outside their scope
        h = r.bearer(p)
        for method, path in classify(r):
            body, _need = CASE_ROUTES[(r.name, method, path)]
            answers = []
            for case_id in (r.case_b, "no-such-case-0000"):
                res = await r.client.request(
                    method, path.format(case_id=case_id), headers=h, json=body
                )
                await r.settle()
                answers.append((res.status_code, res.content))
            (hidden_status, hidden), (missing_status, missing) = answers
            checked += 1
            if hidden_status != missing_status or hidden != missing:
                wrong.append((who, method, path, answers))
            elif hidden_status == 404 and hidden != CASE_404:
                wrong.append((who, method, path, "404 body", hidden))
            elif hidden_status == 404:
                not_found += 1
            elif hidden_status >= 400:
                ErrorBody.model_validate_json(hidden)
    assert not_found and not wrong, "\n".join(map(str, wrong))


async def test_every_refusal_has_the_one_error_shape(running: Running) -> None:
    r = running
    nobody = await r.client.get("/v1/admin/audit")  # no token
    viewer = StaffPrincipal("v-here", "viewer", grid_codes=("522731",))
    forbidden = await r.client.get("/v1/admin/audit", headers=r.bearer(viewer))
    bad_query = await r.client.get(
        "/v1/admin/audit", headers=r.bearer(StaffPrincipal("root", "admin")), params={"limit": 0}
    )
    no_route = await r.client.get("/v1/no/such/route")
    assert [x.status_code for x in (nobody, forbidden, bad_query, no_route)] == [401, 403, 422, 404]
    assert nobody.headers["www-authenticate"] == "Bearer"
    for res in (nobody, forbidden, bad_query, no_route):
        ErrorBody.model_validate_json(res.content)
        assert set(res.json()) == {"detail", "errors"}, res.text
    assert bad_query.json()["errors"] == [
        {"field": "limit", "reason": "Input should be greater than or equal to 1"}
    ]
    assert no_route.json() == {
        "detail": "not found",
        "errors": [{"field": "path", "reason": "no such route"}],
    }
