"""SSRF: integrator callback URLs never reach inside the deployment's network."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from services.intake.callbacks import (
    GuardedTransport,
    UnsafeCallback,
    UnsafeCallbackError,
    callback_client,
    check_callback_url,
)
from services.intake.integrators import create_integrator
from services.intake.repository import WebhookDelivery
from shared.auth import StaffPrincipal, issue_token
from tests.unit.intake.conftest import Intake, make_settings, report, start_intake

INTERNAL = [
    "127.0.0.1",
    "10.0.0.5",
    "172.16.3.4",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "::1",
    "fe80::1",
    "fd00::1",
    "::ffff:127.0.0.1",
]


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/cb",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/cb",
        "https://10.1.2.3:8443/cb",
        "https://postgres:5432/",
        "https://localhost/cb",
        "https://kafka.internal/cb",
        "https://user:pw@crm.example.cn/cb",
        "ftp://crm.example.cn/cb",
        "http://]crm.example.cn/cb",  # an unbalanced IPv6 bracket (found by fuzzing: was a 500)
    ],
)
def test_internal_or_odd_callback_urls_are_refused_at_registration(url: str) -> None:
    with pytest.raises(UnsafeCallback):
        check_callback_url(url, dev_mode=True)


def test_plain_http_is_refused_outside_dev_mode() -> None:
    with pytest.raises(UnsafeCallback, match="https"):
        check_callback_url("http://crm.example.cn/cb", dev_mode=False)
    check_callback_url("https://crm.example.cn/cb", dev_mode=False)
    check_callback_url("http://crm.example.cn/cb", dev_mode=True)


async def test_the_admin_api_answers_422_naming_the_field(tmp_path: Path) -> None:
    async for h in start_intake(make_settings(tmp_path)):
        s = h.app.state.settings
        admin = issue_token(s.jwt_private_key, s.jwt_audience, StaffPrincipal("a", "admin"))
        r = await h.client.post(
            "/v1/integrators",
            headers={"Authorization": f"Bearer {admin}"},
            json={"name": "x", "source": "110", "callback_url": "http://169.254.169.254/x"},
        )
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "callback_url"


class Recorder:
    def __init__(self, status: int = 204, headers: dict[str, str] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.status, self.headers = status, headers or {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, headers=self.headers)


@pytest.mark.parametrize("address", INTERNAL)
async def test_a_host_that_resolves_inside_is_refused_at_send_time(address: str) -> None:
    recorder = Recorder()

    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", address]  # one bad address is enough

    client = callback_client(5, httpx.MockTransport(recorder), resolver)
    with pytest.raises(UnsafeCallbackError):
        await client.post("https://crm.example.cn/cb", content=b"{}")
    assert recorder.requests == []
    await client.aclose()


async def test_the_connection_goes_to_the_vetted_address_without_redirects() -> None:
    recorder = Recorder(302, {"Location": "http://169.254.169.254/latest"})

    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    guarded = GuardedTransport(httpx.MockTransport(recorder), resolver, pin=True)
    async with httpx.AsyncClient(
        transport=guarded, follow_redirects=False, trust_env=False
    ) as client:
        r = await client.post("https://crm.example.cn/cb", content=b"{}")
    assert r.status_code == 302 and len(recorder.requests) == 1  # the redirect is not followed
    [sent] = recorder.requests
    assert sent.url.host == "93.184.216.34" and sent.headers["Host"] == "crm.example.cn"
    assert sent.extensions["sni_hostname"] == "crm.example.cn"


def test_no_proxy_is_taken_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://10.0.0.9:3128")
    monkeypatch.setenv("ALL_PROXY", "http://10.0.0.9:3128")
    client = callback_client(5)
    assert client.trust_env is False and not client._mounts
    assert client.follow_redirects is False


@pytest.fixture
async def rebinding(tmp_path: Path) -> AsyncIterator[tuple[Intake, Recorder]]:
    recorder = Recorder()

    async def resolver(host: str, port: int) -> list[str]:
        return ["169.254.169.254"]  # the name was public when registered; now it points inside

    settings = make_settings(tmp_path, webhook_backoff_base_s=600)
    async for h in start_intake(
        settings, webhook_transport=httpx.MockTransport(recorder), webhook_resolver=resolver
    ):
        yield h, recorder


async def test_a_status_callback_to_a_rebound_name_is_never_sent(
    rebinding: tuple[Intake, Recorder],
) -> None:
    h, recorder = rebinding
    await h.app.state.webhooks.stop()  # this test sends by hand, once
    hd = h.app.state.handlers
    integ = await create_integrator(
        hd.delivery.sessions,
        hd.cipher,
        name="CRM",
        source="12345",
        callback_url="https://crm.example.cn/cb",
    )
    assert (await h.post(report("12345", "SSRF-1"), key=integ.api_key)).status_code == 202
    await h.settle()
    assert await h.app.state.webhooks.send_due() == 0
    async with h.app.state.runtime.sessions() as s:
        rows = (await s.exec(select(WebhookDelivery))).all()
    assert rows and rows[0].attempts == 1 and rows[0].delivered_at is None
    assert rows[0].last_status is None and recorder.requests == []
