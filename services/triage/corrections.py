"""`fengqiao triage corrections`: coordinators' corrections as labelled examples (JSONL).

Each line has the shape of the labelled samples (`../shared/samples/reports.jsonl`): the report
fields triage read, `expected` labels (what the coordinator decided) and `why` (their note), so
that a deployment grows its own test set: `python -m services.triage.evaluate FILE` reads it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any, TextIO

from sqlmodel.ext.asyncio.session import AsyncSession

from services.triage.repository import TriageCase, TriageReview, corrected_reviews

LABELS = ("dispute_type", "severity", "channel", "tier")


def labelled_example(review: TriageReview, case: TriageCase) -> dict[str, Any]:
    """One resolved review as a labelled report."""
    if review.status == "corrected":
        to = (review.correction or {}).get("to", {})
        expected = {k: to.get(k) for k in LABELS}
    else:
        expected = {
            "dispute_type": review.dispute_type,
            "severity": review.severity,
            "channel": review.channel,
            "tier": review.tier,
        }
    row: dict[str, Any] = {
        "source": case.source,
        "source_ref": case.source_ref,
        "text": case.text,
    }
    if case.category:
        row["category"] = case.category
    row["expected"] = expected
    row["why"] = review.note or ("协调员确认" if review.status == "confirmed" else "协调员更正")
    row["review"] = {
        "status": review.status,
        "cues": list(review.cues or []),
        "by": review.resolved_by,
        "at": review.resolved_at.isoformat() if review.resolved_at else None,
    }
    return row


async def export_corrections(
    session: AsyncSession, out: TextIO, *, with_confirmed: bool = False
) -> int:
    """Write every corrected (and optionally confirmed) review as a JSONL line; return the count."""
    rows = await corrected_reviews(session, with_confirmed=with_confirmed)
    for review, case in rows:
        out.write(json.dumps(labelled_example(review, case), ensure_ascii=False) + "\n")
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    """Export from the triage database named by the settings (or --database-url)."""
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from services.triage.settings import TriageSettings
    from shared.db import make_engine

    parser = argparse.ArgumentParser(prog="fengqiao triage corrections", description=__doc__)
    parser.add_argument("--database-url", default=None, help="default: TRIAGE_DATABASE_URL")
    parser.add_argument(
        "--with-confirmed", action="store_true", help="also export confirmed decisions"
    )
    args = parser.parse_args(argv)
    url = args.database_url or TriageSettings().database_url

    async def run() -> int:
        engine = make_engine(url)
        try:
            sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
            async with sessions() as session:
                return await export_corrections(
                    session, sys.stdout, with_confirmed=args.with_confirmed
                )
        finally:
            await engine.dispose()

    try:
        count = asyncio.run(run())
    except Exception as exc:  # no database, or not migrated yet
        print(f"fengqiao triage corrections: cannot read {url}: {exc}", file=sys.stderr)
        return 2
    print(f"{count} labelled examples", file=sys.stderr)
    return 0
