"""A channel that records what it was told, for tests and for wiring new channels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.mediation.channels.base import AgreementView, CaseView, MediationChannel


@dataclass
class TestChannel(MediationChannel):
    """Records every call; stands in for any channel code."""

    __test__ = False  # not a pytest class

    code: str = "test"
    name: str = "测试渠道"
    document_title: str = "测试调解协议书"
    transfer_targets: tuple[str, ...] = ("litigation", "arbitration")
    calls: list[tuple[str, str, Any]] = field(default_factory=list)

    async def on_assigned(self, case: CaseView) -> None:
        """Record the assignment."""
        self.calls.append(("assigned", case.case_id, case.organisation_id))

    async def on_agreement(self, case: CaseView, agreement: AgreementView) -> None:
        """Record the agreement."""
        self.calls.append(("agreement", case.case_id, agreement.agreement_id))

    async def on_transfer(self, case: CaseView, target: str) -> None:
        """Record the transfer."""
        self.calls.append(("transfer", case.case_id, target))
