"""The body of every service's Alembic env.py: run on the connection handed in."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import MetaData, create_engine


def run_env(target_metadata: MetaData) -> None:
    """Run migrations online on config.attributes['connection'] (or a URL for autogenerate)."""
    config = context.config
    connection: Any = config.attributes.get("connection")
    if connection is None:
        url = config.get_main_option("sqlalchemy.url") or "sqlite:///:memory:"
        with create_engine(url).connect() as conn:
            _run(conn, target_metadata)
            conn.commit()
        return
    _run(connection, target_metadata)


def _run(connection: Any, target_metadata: MetaData) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
