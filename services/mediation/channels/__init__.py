"""Mediation channels as plugins, looked up by code; the core never branches on a channel."""

from __future__ import annotations

from collections.abc import Iterable

from services.mediation.channels.adapters import (
    CourtChannel,
    LabourChannel,
    MedicalChannel,
    PeopleChannel,
    PoliceChannel,
)
from services.mediation.channels.base import AgreementView, CaseView, MediationChannel

__all__ = [
    "AgreementView",
    "CaseView",
    "ChannelRegistry",
    "MediationChannel",
    "UnknownChannel",
    "default_channels",
]


class UnknownChannel(KeyError):
    """No plugin is registered for a channel code."""


class ChannelRegistry:
    """The channels this deployment knows, keyed by code."""

    def __init__(self, channels: Iterable[MediationChannel] = ()) -> None:
        self._by_code: dict[str, MediationChannel] = {}
        for c in channels:
            self.register(c)

    def register(self, channel: MediationChannel) -> None:
        """Add or replace the plugin of a channel code."""
        if not channel.code:
            raise ValueError("a channel needs a code")
        self._by_code[channel.code] = channel

    def get(self, code: str) -> MediationChannel:
        """The plugin of a code; UnknownChannel when there is none."""
        try:
            return self._by_code[code]
        except KeyError:
            raise UnknownChannel(code) from None

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def codes(self) -> list[str]:
        """Every registered code."""
        return sorted(self._by_code)

    def all(self) -> list[MediationChannel]:
        """Every registered plugin, by code."""
        return [self._by_code[c] for c in self.codes()]


def default_channels() -> ChannelRegistry:
    """The five channels of DOMAIN.md §3."""
    return ChannelRegistry(
        [PoliceChannel(), CourtChannel(), LabourChannel(), MedicalChannel(), PeopleChannel()]
    )
