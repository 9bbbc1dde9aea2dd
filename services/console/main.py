"""The console app: `create_app()` builds it; nothing happens at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.console import auth_pages, case_pages, demo_pages, overview_pages
from services.console.client import Api
from services.console.settings import ConsoleSettings
from services.console.web import HERE, CsrfSeedMiddleware, SignInRequired, make_templates, render
from shared.web import observe


def create_app(
    settings: ConsoleSettings | None = None, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The console: pages, static assets (htmx and Chart.js served from here), health routes."""
    settings = settings or ConsoleSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.api = Api(settings, transport)
        try:
            yield
        finally:
            await app.state.api.close()

    app = FastAPI(
        title="Fengqiao console",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.templates = make_templates(settings)
    app.add_middleware(CsrfSeedMiddleware)
    app.mount("/static", StaticFiles(directory=HERE / "static", check_dir=False), name="static")

    @app.exception_handler(SignInRequired)
    async def _sign_in(_req: Request, _exc: SignInRequired) -> Response:
        return RedirectResponse("/login", 303)

    @app.exception_handler(StarletteHTTPException)
    async def _http(req: Request, exc: StarletteHTTPException) -> Response:
        return render(
            req, "error.html", {"status": exc.status_code, "detail": exc.detail}, exc.status_code
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(req: Request, exc: RequestValidationError) -> Response:
        fields = "；".join(".".join(str(x) for x in e.get("loc", ())[1:]) for e in exc.errors())
        return render(req, "error.html", {"status": 422, "detail": f"参数有误：{fields}"}, 422)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return RedirectResponse("/static/favicon.svg", 301)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """Ready when the vendored assets are in place (`make console-assets`)."""
        vendor = HERE / "static" / "vendor"
        ok = (vendor / "htmx.min.js").exists() and (vendor / "chart.umd.min.js").exists()
        return JSONResponse({"status": "ready" if ok else "assets missing"}, 200 if ok else 503)

    app.include_router(auth_pages.router)
    app.include_router(case_pages.router)
    app.include_router(overview_pages.router)
    app.include_router(demo_pages.router)
    observe(app, settings.service_name)  # /metrics, access log, correlation id, tracing
    return app
