"""The database-derived gauges read real rows (SQLite here, PostgreSQL in the second test)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.main import MIGRATIONS, webhook_counts
from services.intake.repository import TABLES, WebhookDelivery
from services.triage.repository import TABLES as TRIAGE_TABLES
from shared import db, metrics
from shared.db import CausalGate, Delivery, Tx, make_engine, migrate
from shared.events import Envelope, new_event_id, utcnow
from tests.causal import note_entry
from tests.conftest import REPO


def gauge(name: str, service: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"service": service})


async def _check(url: str, service: str) -> None:
    engine = make_engine(url)
    try:
        await migrate(engine, MIGRATIONS)
        sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        await metrics.sample_outbox(service, sessions, TABLES.outbox)
        assert gauge("fengqiao_outbox_backlog_rows", service) == 0
        assert gauge("fengqiao_outbox_oldest_unsent_age_seconds", service) == 0
        now = utcnow()
        async with sessions() as s, s.begin():
            for i, age in enumerate((90, 30, 5)):
                s.add(
                    TABLES.outbox(
                        event_id=f"e{i}",
                        topic="t",
                        key="k",
                        value=b"{}",
                        created_at=now - timedelta(seconds=age),
                    )
                )
            for attempts in (0, 2):
                s.add(
                    WebhookDelivery(
                        integrator_id="i",
                        case_id="c",
                        body=b"{}",
                        attempts=attempts,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
            s.add(
                WebhookDelivery(
                    integrator_id="i",
                    case_id="c",
                    body=b"{}",
                    attempts=1,
                    next_attempt_at=now,
                    created_at=now,
                    delivered_at=now,
                )
            )
        await metrics.sample_outbox(service, sessions, TABLES.outbox)
        assert gauge("fengqiao_outbox_backlog_rows", service) == 3
        age = gauge("fengqiao_outbox_oldest_unsent_age_seconds", service)
        assert age is not None and 90 <= age < 120  # the oldest row's age
        assert await webhook_counts(sessions) == (2, 1)
    finally:
        await engine.dispose()


async def test_outbox_and_webhook_gauges_on_sqlite(tmp_path: Path) -> None:
    await _check(f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}", "sampler-sqlite")


async def test_outbox_and_webhook_gauges_on_postgres(pg_url: str) -> None:
    await _check(pg_url, "sampler-pg")


async def test_http_series_use_route_templates_and_bounded_labels() -> None:
    import httpx
    from fastapi import FastAPI

    app = FastAPI()
    metrics.install(app, "labels-test", [])

    @app.get("/v1/cases/{case_id}")
    async def case(case_id: str) -> dict[str, str]:
        return {"case_id": case_id}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for cid in ("C-1", "C-2"):
            r = await client.get(f"/v1/cases/{cid}", headers={"X-Correlation-ID": "abc-1"})
            assert r.status_code == 200 and r.headers["x-correlation-id"] == "abc-1"
        assert (await client.get("/no/such/path/13800001111")).status_code == 404
        assert (await client.request("BREW", "/v1/cases/C-3")).status_code == 405
        bad = await client.get("/v1/cases/C-4", headers={"X-Correlation-ID": "a b<script>"})
        assert bad.headers["x-correlation-id"] != "a b<script>"  # not echoed: made up instead
        body = (await client.get("/metrics")).text

    def count(**labels: str) -> float | None:
        return REGISTRY.get_sample_value(
            "fengqiao_http_requests_total", {"service": "labels-test", **labels}
        )

    assert count(method="GET", route="/v1/cases/{case_id}", status="200") == 3
    assert count(method="GET", route="unmatched", status="404") == 1
    assert count(method="OTHER", route="/v1/cases/{case_id}", status="405") == 1
    assert "13800001111" not in body and "C-1" not in body


async def _check_parked(url: str, service: str, monkeypatch: Any) -> None:
    """A trail entry parked before its cause shows in the gauges until the cause comes."""
    engine = make_engine(url)
    try:
        await migrate(engine, REPO / "services" / "triage" / "migrations")
        sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        delivery = Delivery(sessions, TRIAGE_TABLES, "triage", "t.trail")
        gate = CausalGate(delivery, "triage.scope")
        labels = {"service": service, "consumer": "triage.scope"}

        def parked() -> tuple[float | None, float | None]:
            return (
                REGISTRY.get_sample_value("fengqiao_trail_parked_entries", labels),
                REGISTRY.get_sample_value("fengqiao_trail_parked_oldest_age_seconds", labels),
            )

        await metrics.sample_parked(service, sessions, TRIAGE_TABLES.parked, delivery.gated)
        assert parked() == (0, 0)  # a gated consumer's series exist before anything waits

        applied: list[str] = []

        async def apply(tx: Tx, env: Envelope, _entry: Any) -> None:
            applied.append(env.event_id)

        cause, effect = new_event_id(), new_event_id()
        now = utcnow()
        monkeypatch.setattr(db, "utcnow", lambda: now - timedelta(seconds=90))
        await gate.handle(*note_entry("c1", effect, [cause], now), apply)  # its cause has not come
        monkeypatch.setattr(db, "utcnow", utcnow)
        await metrics.sample_parked(service, sessions, TRIAGE_TABLES.parked, delivery.gated)
        count, age = parked()
        assert count == 1 and age is not None and 90 <= age < 120
        await gate.handle(*note_entry("c1", cause, [], now), apply)  # the cause comes: both applied
        assert applied == [cause, effect]
        await metrics.sample_parked(service, sessions, TRIAGE_TABLES.parked, delivery.gated)
        assert parked() == (0, 0)
    finally:
        await engine.dispose()


async def test_parked_trail_entry_gauges_on_sqlite(tmp_path: Path, monkeypatch: Any) -> None:
    await _check_parked(
        f"sqlite+aiosqlite:///{tmp_path / 'triage.db'}", "parked-sqlite", monkeypatch
    )


async def test_parked_trail_entry_gauges_on_postgres(pg_url: str, monkeypatch: Any) -> None:
    await _check_parked(pg_url, "parked-pg", monkeypatch)
