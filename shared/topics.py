"""Topic names: one place, with an optional prefix so tests get fresh topics."""

from __future__ import annotations

from dataclasses import dataclass

from shared.contracts import Source

SOURCES: tuple[str, ...] = tuple(Source)


@dataclass(frozen=True)
class Topics:
    """The topics of the system; `prefix` isolates test runs on a shared broker."""

    prefix: str = ""

    @property
    def reports(self) -> str:
        """intake → triage: report.received, report.repeated."""
        return f"{self.prefix}reports.received"

    @property
    def triaged(self) -> str:
        """triage → mediation: case.triaged."""
        return f"{self.prefix}cases.triaged"

    @property
    def mediation(self) -> str:
        """mediation → triage/followup: case.returned, case.agreed, supervision.raised."""
        return f"{self.prefix}cases.mediation"

    @property
    def followup(self) -> str:
        """followup → mediation: case.reopened, case.closed."""
        return f"{self.prefix}cases.followup"

    @property
    def trail(self) -> str:
        """every service → ledger and source feedback: trail.appended."""
        return f"{self.prefix}cases.trail"

    @property
    def staff(self) -> str:
        """mediation → every service: staff.changed (deactivated or moved: tokens revoked)."""
        return f"{self.prefix}staff.changed"

    @property
    def warnings(self) -> str:
        """followup → dashboards: warning.raised, warning.cleared (风险研判)."""
        return f"{self.prefix}cases.warnings"

    def source(self, source: str) -> str:
        """Native records published by a source system (110, 12345, grid)."""
        return f"{self.prefix}source.{source}.reports"

    def feedback(self, source: str) -> str:
        """Status back to a source system, keyed by its source_ref."""
        return f"{self.prefix}feedback.{source}"

    @staticmethod
    def dlq(topic: str) -> str:
        """Dead-letter topic of a topic."""
        return f"{topic}.dlq"

    def all_internal(self) -> list[str]:
        """Every topic the services exchange events on."""
        return [
            self.reports,
            self.triaged,
            self.mediation,
            self.followup,
            self.trail,
            self.staff,
            self.warnings,
        ]
