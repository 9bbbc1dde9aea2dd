"""Topic → handler wiring of the intake service."""

from __future__ import annotations

from services.intake.adapters import ADAPTERS, NativeRecordError
from services.intake.canonical import FieldError, validate_report
from services.intake.handlers import IntakeHandlers
from services.intake.settings import IntakeSettings
from shared.bus import Message
from shared.events import utcnow
from shared.runtime import Runtime
from shared.topics import SOURCES


def register(rt: Runtime, h: IntakeHandlers, settings: IntakeSettings) -> None:
    """Subscribe the source topics (native records) and the trail (status feedback)."""
    by_topic = {rt.topics.source(s): s for s in SOURCES}

    async def native_record(msg: Message) -> None:
        source = by_topic[msg.topic]
        data = ADAPTERS[source](msg.value)
        try:
            report = validate_report(
                data,
                max_text_chars=settings.max_text_chars,
                max_future_skew_s=settings.max_future_skew_s,
                now=utcnow(),
            )
        except FieldError as exc:  # reasons name fields, never values
            raise NativeRecordError(f"{source} record: {exc}") from None
        await h.receive(report, via="kafka")

    rt.on_messages(list(by_topic), "intake.sources", native_record)
    rt.on_events([rt.topics.trail], "intake.feedback", {"trail.appended": h.trail_appended})
