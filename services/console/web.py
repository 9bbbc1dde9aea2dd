"""What every page needs: the signed-in person, form tokens (CSRF), templates and the API."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from services.console import labels
from services.console.client import Api
from services.console.settings import ConsoleSettings
from services.console.views import local, percent
from shared.auth import AuthError, StaffPrincipal, verify_token

SESSION_COOKIE = "fq_console"
SEED_COOKIE = "fq_console_csrf"
HERE = Path(__file__).parent


def settings_of(request: Request) -> ConsoleSettings:
    """The console's settings."""
    s: ConsoleSettings = request.app.state.settings
    return s


def api_of(request: Request) -> Api:
    """The API client built in the lifespan."""
    api: Api = request.app.state.api
    return api


def _signature(settings: ConsoleSettings, purpose: str, value: str) -> str:
    """An HMAC of the console's secret over a value, for one purpose (never valid for another)."""
    key = settings.csrf_secret.encode()
    return hmac.new(key, f"{purpose}:{value}".encode(), "sha256").hexdigest()


def csrf_for(settings: ConsoleSettings, seed: str) -> str:
    """The form token of a browser: an HMAC of its random seed cookie."""
    return _signature(settings, "csrf", seed)


def flash_error_query(settings: ConsoleSettings, text: str) -> dict[str, str]:
    """The query of a redirect that shows `text` (a refusal's reason) as the console's alert:
    signed, so that a link cannot put words in the console's mouth."""
    text = text[:300]
    return {"error": text, "sig": _signature(settings, "flash", text)}


def flash_error(request: Request) -> str | None:
    """The alert a redirect asked for, if the console signed it (else nothing)."""
    text = request.query_params.get("error")
    if not text:
        return None
    expected = flash_error_query(settings_of(request), text)["sig"]
    return text if hmac.compare_digest(request.query_params.get("sig", ""), expected) else None


class CsrfSeedMiddleware(BaseHTTPMiddleware):
    """Gives every browser a random seed cookie (HttpOnly, SameSite=Strict) for its form token."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        """Read or mint the seed; set the cookie when it was minted."""
        seed = request.cookies.get(SEED_COOKIE)
        minted = not seed or len(seed) < 20
        if minted:
            seed = secrets.token_urlsafe(24)
        request.state.csrf_seed = seed
        response = await call_next(request)
        if minted:
            response.set_cookie(
                SEED_COOKIE,
                seed or "",
                httponly=True,
                samesite="strict",
                secure=settings_of(request).secure_cookies,
                path="/",
            )
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; "
            "script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        )
        return response


async def check_csrf(
    request: Request, csrf_token: Annotated[str, Form(max_length=200)] = ""
) -> None:
    """Every form POST: same origin, and the form token of this browser's seed."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, "跨站请求被拒绝")
    expected = csrf_for(settings_of(request), request.state.csrf_seed)
    if not csrf_token or not hmac.compare_digest(csrf_token, expected):
        raise HTTPException(403, "表单已过期，请刷新页面后重试")


Csrf = Annotated[None, Depends(check_csrf)]


@dataclass(frozen=True)
class User:
    """The signed-in person: their token (sent to the services) and what it says about them."""

    token: str
    principal: StaffPrincipal

    @property
    def role(self) -> str:
        """mediator, coordinator, viewer or admin."""
        return self.principal.role

    @property
    def token_key(self) -> str:
        """A short fingerprint of the token (never the token) for per-person caches."""
        return hashlib.sha256(self.token.encode()).hexdigest()[:16]


class SignInRequired(Exception):
    """No valid session: the page redirects to 登录."""


def principal_of_token(settings: ConsoleSettings, token: str) -> StaffPrincipal | None:
    """Who a token says it is, when its signature, audience and expiry hold."""
    try:
        return verify_token(
            settings.jwt_public_key, settings.jwt_audience, token, issuer=settings.jwt_issuer
        )
    except AuthError:
        return None


async def current_user(request: Request) -> User:
    """The person behind the session cookie, else 登录."""
    token = request.cookies.get(SESSION_COOKIE, "")
    principal = principal_of_token(settings_of(request), token) if token else None
    if principal is None:
        raise SignInRequired
    return User(token, principal)


CurrentUser = Annotated[User, Depends(current_user)]
ApiDep = Annotated[Api, Depends(api_of)]
SettingsDep = Annotated[ConsoleSettings, Depends(settings_of)]


def make_templates(settings: ConsoleSettings) -> Jinja2Templates:
    """Jinja2 with the Chinese labels and Beijing-time filters."""
    t = Jinja2Templates(directory=str(HERE / "templates"))
    env = t.env
    env.filters["label"] = lambda code, table: labels.label(table, code)
    env.filters["local"] = lambda value, fmt="%Y-%m-%d %H:%M": local(value, settings.timezone, fmt)
    env.filters["percent"] = percent
    env.filters["actor"] = labels.actor
    env.globals["L"] = labels
    return t


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    status_code: int = 200,
    user: User | None = None,
) -> HTMLResponse:
    """A page, with the form token and the signed-in person in its context."""
    templates: Jinja2Templates = request.app.state.templates
    settings = settings_of(request)
    ctx = {
        "csrf_token": csrf_for(settings, request.state.csrf_seed),
        "user": user,
        "dev_mode": settings.dev_mode,
        "poll_seconds": settings.poll_seconds,
        **context,
    }
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)
