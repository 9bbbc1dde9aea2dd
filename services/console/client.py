"""The console's only way to the data: the four services' REST APIs, with the caller's token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import httpx

from services.console.settings import ConsoleSettings

Service = Literal["intake", "triage", "mediation", "followup"]


@dataclass(frozen=True)
class ApiResult:
    """One answer: status, JSON body (or raw bytes), and the ETag when the service sent one."""

    status: int
    body: Any
    etag: str | None = None
    content: bytes = b""
    content_type: str = ""

    @property
    def ok(self) -> bool:
        """2xx."""
        return 200 <= self.status < 300

    def reason(self) -> str:
        """The service's own words for a refusal (409/422/403 bodies), for the person to read."""
        body = self.body
        if isinstance(body, dict):
            detail = body.get("detail")
            if isinstance(detail, dict):  # FastAPI wraps a dict detail once more
                body, detail = detail, detail.get("detail")
            errors = body.get("errors") if isinstance(body, dict) else None
            if errors:
                fields = "; ".join(f"{e.get('field')}: {e.get('reason')}" for e in errors)
                return f"{detail or 'invalid request'}（{fields}）"
            if detail:
                return str(detail)
        return f"HTTP {self.status}"


class Api:
    """An httpx client per console process; every call carries the signed-in person's token."""

    def __init__(
        self, settings: ConsoleSettings, transport: httpx.AsyncBaseTransport | None = None
    ):
        self.bases: dict[str, str] = {
            "intake": settings.intake_url.rstrip("/"),
            "triage": settings.triage_url.rstrip("/"),
            "mediation": settings.mediation_url.rstrip("/"),
            "followup": settings.followup_url.rstrip("/"),
        }
        self.http = httpx.AsyncClient(timeout=settings.timeout_s, transport=transport)

    async def close(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def call(
        self,
        method: str,
        service: Service,
        path: str,
        token: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        etag: str | None = None,
    ) -> ApiResult:
        """One request; a service that cannot be reached answers 503 here, never an exception."""
        headers = {"Authorization": f"Bearer {token}"}
        if etag:
            headers["If-None-Match"] = etag
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        try:
            r = await self.http.request(
                method, self.bases[service] + path, params=clean, json=json, headers=headers
            )
        except httpx.HTTPError:
            return ApiResult(503, {"detail": f"{service} 服务暂时无法访问"})
        ctype = r.headers.get("content-type", "")
        body: Any = None
        if "json" in ctype and r.content:
            try:
                body = r.json()
            except ValueError:
                body = None
        return ApiResult(r.status_code, body, r.headers.get("etag"), r.content, ctype)

    async def post_report(self, api_key: str, report: dict[str, Any]) -> ApiResult:
        """POST /v1/reports to intake as an integrator (the dev-mode 演示上报 form)."""
        try:
            r = await self.http.post(
                self.bases["intake"] + "/v1/reports", json=report, headers={"X-API-Key": api_key}
            )
        except httpx.HTTPError:
            return ApiResult(503, {"detail": "intake 服务暂时无法访问"})
        body = r.json() if "json" in r.headers.get("content-type", "") and r.content else None
        return ApiResult(r.status_code, body)

    async def get(self, service: Service, path: str, token: str, **kw: Any) -> ApiResult:
        """GET."""
        return await self.call("GET", service, path, token, **kw)

    async def post(self, service: Service, path: str, token: str, **kw: Any) -> ApiResult:
        """POST."""
        return await self.call("POST", service, path, token, **kw)
