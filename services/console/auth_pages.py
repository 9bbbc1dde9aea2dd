"""登录 and 退出: a staff bearer token kept in an HttpOnly, SameSite=Strict cookie."""

from __future__ import annotations

import json
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from services.console.settings import ConsoleSettings
from services.console.web import (
    SESSION_COOKIE,
    ApiDep,
    Csrf,
    SettingsDep,
    SignInRequired,
    current_user,
    principal_of_token,
    render,
    settings_of,
)
from shared.auth import AUDIENCES, StaffPrincipal, issue_token

router = APIRouter()


def home_of(role: str) -> str:
    """Where a person lands after signing in."""
    return "/my" if role == "mediator" else "/overview"


def demo_staff(request: Request) -> list[dict[str, Any]]:
    """The demo county's staff from `make run`'s credentials file (dev mode only)."""
    settings = settings_of(request)
    if not settings.dev_mode:
        return []
    try:
        data = json.loads(settings.demo_credentials.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    staff = data.get("staff") if isinstance(data, dict) else None
    return [s for s in staff or [] if isinstance(s, dict) and s.get("token")]


@router.get("/")
async def index(request: Request) -> Response:
    """Home: the signed-in person's first screen, else 登录."""
    try:
        user = await current_user(request)
    except SignInRequired:
        return RedirectResponse("/login", 303)
    return RedirectResponse(home_of(user.role), 303)


@router.get("/login")
async def login_page(request: Request) -> Response:
    """Paste a token; in dev mode, pick one of the demo county's staff."""
    return render(request, "login.html", {"staff": demo_staff(request), "error": None})


async def _sign_in(request: Request, api: ApiDep, token: str) -> Response:
    settings = settings_of(request)
    principal = principal_of_token(settings, token)
    error = None
    if principal is None:
        error = "令牌无效或已过期"
    else:
        # the services are the judges: the ledger must accept the token too
        probe = await api.get("followup", "/v1/cases", token, params={"limit": 1})
        if probe.status == 401:
            error = "服务拒绝了该令牌：" + probe.reason()
    if error or principal is None:
        return render(request, "login.html", {"staff": demo_staff(request), "error": error}, 401)
    response = RedirectResponse(home_of(principal.role), 303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
        path="/",
        max_age=12 * 3600,
    )
    return response


@router.post("/login")
async def login(
    request: Request, api: ApiDep, _csrf: Csrf, token: Annotated[str, Form(max_length=4000)] = ""
) -> Response:
    """Sign in with a pasted bearer token."""
    return await _sign_in(request, api, token.strip().removeprefix("Bearer ").strip())


@router.post("/login/demo")
async def login_demo(
    request: Request,
    api: ApiDep,
    settings: SettingsDep,
    _csrf: Csrf,
    staff_id: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Sign in as one of the demo staff (dev mode only)."""
    member = next((s for s in demo_staff(request) if s.get("staff_id") == staff_id), None)
    if not settings.dev_mode or member is None:
        return render(
            request,
            "login.html",
            {"staff": demo_staff(request), "error": "没有这位演示人员"},
            404,
        )
    return await _sign_in(request, api, fresh_demo_token(settings, str(member["token"])))


def fresh_demo_token(settings: ConsoleSettings, token: str) -> str:
    """Dev mode: staff tokens live an hour, so a demo member is signed in with the same claims
    re-signed now (dev key pair; the stored token's signature is still checked)."""
    try:
        key = serialization.load_pem_public_key(settings.jwt_public_key.encode())
        c = jwt.decode(
            token,
            key,  # type: ignore[arg-type]
            algorithms=["EdDSA"],
            options={"verify_exp": False, "verify_aud": False},
        )
        p = StaffPrincipal(
            subject=c["sub"],
            role=c["role"],
            channel=c.get("channel"),
            tier=c.get("tier"),
            organisation=c.get("org"),
            grid_codes=tuple(c.get("grids") or ()),
            version=int(c.get("ver", 0)),
        )
        return issue_token(settings.jwt_private_key, AUDIENCES, p, issuer=settings.jwt_issuer)
    except (jwt.PyJWTError, KeyError, ValueError, TypeError):
        return token  # not ours: signing in fails as it would have


@router.post("/logout")
async def logout(_csrf: Csrf) -> Response:
    """Forget the token."""
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
