"""`fengqiao pii rekey`: after a PII key rotation, re-encrypt every stored personal value with
the current key and recompute intake's blind indexes, so the previous keys can be dropped.

Run it with the new key as `*_PII_KEY` and the old ones in `*_PII_PREVIOUS_KEYS` (a JSON list).
A value no configured key opens stops the run with an error (never silently emptied).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import make_engine, migrate
from shared.pii import PiiCipher
from shared.settings import ServiceSettings


def _columns(service: str) -> tuple[ServiceSettings, list[tuple[Any, str]], Any]:
    """The service's settings, its encrypted (table, column) pairs and its migrations."""
    if service == "intake":
        from services.intake import main as m
        from services.intake.repository import IntakeReport, Integrator
        from services.intake.settings import IntakeSettings

        cols: list[tuple[Any, str]] = [
            (IntakeReport, c) for c in ("sealed_enc", "text_enc", "reporter_enc", "parties_enc")
        ]
        cols += [(IntakeReport, "location_enc"), (Integrator, "webhook_secret_enc")]
        return IntakeSettings(), cols, m.MIGRATIONS
    if service == "triage":
        from services.triage import main as t
        from services.triage.repository import TriageCase
        from services.triage.settings import TriageSettings

        return TriageSettings(), [(TriageCase, "sealed_contact")], t.MIGRATIONS
    if service == "mediation":
        from services.mediation import main as md
        from services.mediation.repository import Agreement, CaseNote, MediationCase
        from services.mediation.settings import MediationSettings

        mcols: list[tuple[Any, str]] = [
            (MediationCase, "sealed_contact"),
            (CaseNote, "text"),
            (Agreement, "terms"),
        ]
        return MediationSettings(), mcols, md.MIGRATIONS
    from services.followup import main as f
    from services.followup.repository import Visit
    from services.followup.settings import FollowupSettings

    return FollowupSettings(), [(Visit, "note_sealed")], f.MIGRATIONS


async def rekey_service(service: str) -> dict[str, int]:
    """Re-encrypt one service's personal data with its current key; counts per column."""
    settings, columns, migrations = _columns(service)
    cipher = PiiCipher(settings.pii_key, settings.pii_previous_keys)
    engine = make_engine(settings.database_url)
    counts: dict[str, int] = {}
    try:
        await migrate(engine, migrations)
        sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        async with sessions() as session, session.begin():
            for table, column in columns:
                n = 0
                for row in (await session.exec(select(table))).all():
                    old = getattr(row, column)
                    new = cipher.rotate(old)
                    if new != old:
                        setattr(row, column, new)
                        session.add(row)
                        n += 1
                counts[f"{table.__tablename__}.{column}"] = n
            if service == "intake":
                counts["party_index"] = await rekey_party_index(session, cipher)
    finally:
        await engine.dispose()
    return counts


async def rekey_party_index(session: AsyncSession, cipher: PiiCipher) -> int:
    """Recompute the blind indexes of every report's parties with the current MAC key."""
    from services.intake.repository import IntakeReport, PartyIndex
    from shared.events import utcnow

    n = 0
    for old in (await session.exec(select(PartyIndex))).all():
        await session.delete(old)
    for report in (await session.exec(select(IntakeReport))).all():
        if report.sealed_enc:  # text, reporter, parties and location sealed together
            parties = cipher.unseal(report.sealed_enc).get("parties") or []
        else:
            parties = cipher.unseal(report.parties_enc)["v"] if report.parties_enc else []
        hashes: set[tuple[str, str]] = set()
        for p in parties or []:
            for kind in ("phone", "id_number"):
                h = cipher.blind_index(kind, p.get(kind))
                if h:
                    hashes.add((kind, h))
        for kind, h in sorted(hashes):
            session.add(
                PartyIndex(
                    case_id=report.case_id,
                    report_id=report.report_id,
                    kind=kind,
                    hash=h,
                    created_at=report.received_at or utcnow(),
                )
            )
            n += 1
    return n
