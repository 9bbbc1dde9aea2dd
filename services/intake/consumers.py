"""Topic → handler wiring of the intake service."""

from __future__ import annotations

from services.intake.adapters import ADAPTERS, NativeRecordError
from services.intake.canonical import CanonicalReport, FieldError, validate_report
from services.intake.handlers import Incoming, IntakeHandlers
from services.intake.settings import IntakeSettings
from shared.bus import Message
from shared.events import utcnow
from shared.runtime import Runtime
from shared.topics import SOURCES


def register(rt: Runtime, h: IntakeHandlers, settings: IntakeSettings) -> None:
    """Subscribe the source topics (native records) and the trail (status feedback)."""
    by_topic = {rt.topics.source(s): s for s in SOURCES}

    def canonical(msg: Message) -> CanonicalReport:
        source = by_topic[msg.topic]
        data = ADAPTERS[source](msg.value)
        try:
            return validate_report(
                data,
                max_text_chars=settings.max_text_chars,
                max_future_skew_s=settings.max_future_skew_s,
                now=utcnow(),
            )
        except FieldError as exc:  # reasons name fields, never values
            raise NativeRecordError(f"{source} record: {exc}") from None

    async def native_record(msg: Message) -> None:
        await h.receive(canonical(msg), via="kafka")

    async def native_batch(msgs: list[Message]) -> None:
        """A partition's records stored together (set-based, one transaction). A record that
        cannot be read, or a reference stored meanwhile, fails the batch: the bus then replays
        its records one at a time, so only a bad one is dead-lettered."""
        items = [Incoming(canonical(m), "kafka") for m in msgs]
        await h.receive_many(items)

    rt.on_messages(list(by_topic), "intake.sources", native_record, native_batch)
    rt.on_events([rt.topics.trail], "intake.feedback", {"trail.appended": h.trail_appended})
