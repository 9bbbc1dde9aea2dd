"""Each service's migration to an outbox of unsent rows only: sent rows go, unsent stay."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text

ROOT = Path(__file__).resolve().parents[3]
SERVICES = {  # service: (revision before, the outbox revision)
    "intake": ("b4d6e8f0a2c4", "5e1c7a9b3d20"),
    "triage": ("7c1d2e3f4a5b", "6f2d8b0c4e31"),
    "mediation": ("f2a4c6e8b0d1", "7a3e9c1d5f42"),
    "followup": ("f2b8d4a6c1e3", "8b4f0d2e6a53"),
}


def _config(service: str, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "services" / service / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_sent_rows_are_deleted_and_unsent_rows_kept(service: str, tmp_path: Path) -> None:
    before, outbox_revision = SERVICES[service]
    url = f"sqlite:///{tmp_path / 'svc.db'}"
    cfg = _config(service, url)
    command.upgrade(cfg, before)
    engine = create_engine(url)
    with engine.begin() as conn:
        for event_id, published in (("sent", "2026-12-01 10:00:00"), ("unsent", None)):
            conn.execute(
                text(
                    "INSERT INTO outbox (event_id, topic, key, value, created_at, published_at)"
                    " VALUES (:e, 't', 'k', x'7b7d', '2026-12-01 09:00:00', :p)"
                ),
                {"e": event_id, "p": published},
            )
    command.upgrade(cfg, outbox_revision)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT event_id, value FROM outbox")).all() == [("unsent", b"{}")]
        columns = {c["name"] for c in inspect(conn).get_columns("outbox")}
        indexes = {i["name"] for i in inspect(conn).get_indexes("outbox")}
    assert "published_at" not in columns and "ix_outbox_unpublished" not in indexes
    command.downgrade(cfg, before)  # and back: the column and its index return, empty
    with engine.connect() as conn:
        assert conn.execute(text("SELECT event_id, published_at FROM outbox")).all() == [
            ("unsent", None)
        ]
        assert "ix_outbox_unpublished" in {i["name"] for i in inspect(conn).get_indexes("outbox")}
    engine.dispose()
