"""The contract every mediation channel implements, so a real court, labour or police system
can be connected later without touching the core."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class CaseView:
    """What a channel is told about a case: no personal data."""

    case_id: str
    channel: str
    tier: str
    dispute_type: str
    severity: str
    status: str
    organisation_id: str | None
    mediator_id: str | None
    source: str
    source_ref: str


@dataclass(frozen=True)
class AgreementView:
    """An agreement as a channel sees it."""

    agreement_id: str
    terms: str
    amount_yuan: int | None
    performance_due: datetime | None
    agreed_at: datetime


class MediationChannel(ABC):
    """One mediation channel (公调对接, 诉调对接, …): its vocabulary and its outside system."""

    code: str = ""
    name: str = ""
    document_title: str = "人民调解协议书"
    transfer_targets: tuple[str, ...] = ("litigation",)

    @abstractmethod
    async def on_assigned(self, case: CaseView) -> None:
        """A case was assigned to an organisation of this channel."""

    @abstractmethod
    async def on_agreement(self, case: CaseView, agreement: AgreementView) -> None:
        """Mediation in this channel reached an agreement."""

    @abstractmethod
    async def on_transfer(self, case: CaseView, target: str) -> None:
        """Mediation failed and the case leaves for litigation or arbitration."""

    def describe(self) -> dict[str, object]:
        """The channel as the API lists it."""
        return {
            "code": self.code,
            "name": self.name,
            "document_title": self.document_title,
            "transfer_targets": list(self.transfer_targets),
        }
