"""The five channels of DOMAIN.md §3. None is connected to an outside system yet: each one
keeps the seam (on_assigned, on_agreement, on_transfer) where that connection will go."""

from __future__ import annotations

import logging

from services.mediation.channels.base import AgreementView, CaseView, MediationChannel

log = logging.getLogger("fengqiao.mediation.channels")


class LocalChannel(MediationChannel):
    """A channel whose work happens entirely in this service (no outside system yet)."""

    async def on_assigned(self, case: CaseView) -> None:
        """Nothing to tell an outside system yet."""
        log.info("case assigned", extra={"case_id": case.case_id, "channel": self.code})

    async def on_agreement(self, case: CaseView, agreement: AgreementView) -> None:
        """Nothing to tell an outside system yet."""
        log.info("agreement reached", extra={"case_id": case.case_id, "channel": self.code})

    async def on_transfer(self, case: CaseView, target: str) -> None:
        """Nothing to tell an outside system yet."""
        log.info(
            "case transferred",
            extra={"case_id": case.case_id, "channel": self.code, "target": target},
        )


class PoliceChannel(LocalChannel):
    """公调对接: mediators stationed in police stations."""

    code, name = "police", "公调对接"
    document_title = "治安调解协议书"
    transfer_targets = ("litigation",)


class CourtChannel(LocalChannel):
    """诉调对接: court pre-litigation mediation, then litigation."""

    code, name = "court", "诉调对接"
    document_title = "诉前调解协议书"
    transfer_targets = ("litigation",)


class LabourChannel(LocalChannel):
    """劳动争议调解仲裁: labour dispute mediation, then arbitration."""

    code, name = "labour", "劳动争议调解仲裁"
    document_title = "劳动争议调解协议书"
    transfer_targets = ("arbitration", "litigation")


class MedicalChannel(LocalChannel):
    """医调委: the medical dispute people's mediation committee."""

    code, name = "medical", "医调委"
    document_title = "医疗纠纷人民调解协议书"
    transfer_targets = ("litigation",)


class PeopleChannel(LocalChannel):
    """人民调解: village, community and town people's mediation committees."""

    code, name = "people", "人民调解"
    document_title = "人民调解协议书"
    transfer_targets = ("litigation",)
