"""The case's place: exact coordinates sealed at rest, coarse ones in clear for maps."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.followup.domain import Scope
from services.followup.ledger import CaseProjection
from services.followup.places.domain import coarse
from services.followup.repository import (
    LEDGER_SCOPE,
    FollowupBase,
    LedgerCase,
    _scope_conditions,
)
from services.followup.warnings.domain import local_day
from shared.contracts import TrailAppended
from shared.db import Tx
from shared.pii import PiiCipher


class CasePlace(FollowupBase, table=True):
    """Where a case happened (from the report's location)."""

    __tablename__ = "case_places"
    __table_args__ = (Index("ix_case_places_day", "day"),)
    case_id: str = Field(primary_key=True, max_length=64)
    day: date  # received day, Asia/Shanghai
    lat_coarse: float
    lon_coarse: float
    exact_sealed: str  # {"lat", "lon"} sealed with the PII key


class PlacesHook:
    """Keeps a case's place from the sealed coordinates of its receive entry."""

    def __init__(self, cipher: PiiCipher) -> None:
        self.cipher = cipher

    async def after_entry(
        self, tx: Tx, ev: TrailAppended, before: CaseProjection | None, after: CaseProjection
    ) -> None:
        """Store (or replace) the place when an entry carries coordinates."""
        if not ev.sealed_location:
            return
        try:
            loc = self.cipher.unseal(ev.sealed_location)
            lat, lon = float(loc["lat"]), float(loc["lon"])
        except Exception:
            return  # not ours to read (another key) or malformed: the case keeps its grid code
        when = after.received_at or after.created_at or ev.at
        # a case new to the ledger has no place: this hook writes one only in the ledger's
        # transaction of an entry of the case, with the case's row (the receive entry, the one
        # that carries the place, is nearly always the case's first: no read, and no flush)
        row: CasePlace | None = None
        if before is not None and tx.batch is not None:  # the batch's places read at once
            with tx.session.no_autoflush:
                row = await tx.get(CasePlace, after.case_id)
        elif before is not None:
            row = await tx.session.get(CasePlace, after.case_id)
        if row is None:
            row = CasePlace(
                case_id=after.case_id,
                day=local_day(when),
                lat_coarse=0.0,
                lon_coarse=0.0,
                exact_sealed="",
            )
        row.lat_coarse, row.lon_coarse = coarse(lat), coarse(lon)
        exact = {"lat": lat, "lon": lon}
        # sealed with our current key and holding just the point: kept as it came (one
        # encryption fewer per case); anything else is sealed afresh
        fresh = (
            ev.sealed_location.startswith(f"{self.cipher.current_id}:")
            and loc == exact
            and all(type(v) is float for v in loc.values())
        )
        row.exact_sealed = ev.sealed_location if fresh else self.cipher.seal(exact)
        tx.session.add(row)


async def places(
    session: AsyncSession, scope: Scope, first: date, last: date, area: str | None, limit: int
) -> list[tuple[CasePlace, LedgerCase]]:
    """Places of the cases received in a period inside a scope (map points)."""
    c = LedgerCase
    conds: list[Any] = _scope_conditions(scope, LEDGER_SCOPE)
    if area:
        conds.append(col(c.grid_code).startswith(area, autoescape=True))
    stmt = (
        select(CasePlace, c)
        .join(c, col(c.case_id) == col(CasePlace.case_id))
        .where(col(CasePlace.day) >= first, col(CasePlace.day) <= last, *conds)
        .order_by(col(CasePlace.day), col(CasePlace.case_id))
        .limit(limit)
    )
    return [(p, lc) for p, lc in (await session.exec(stmt)).all()]
