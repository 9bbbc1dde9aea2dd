"""One writer for the reports sent over HTTP: the requests that arrive while a commit is under
way are stored together in the next one (group commit), set-based (`receive_many`: what is
stored already and the open cases of the parties read once for the group, rows written by one
executemany per table).

Each request is answered only after the transaction holding its report committed. When a
group fails (a report that breaks a constraint, a busy database), nothing of it is kept and
its reports are stored again one by one through `IntakeHandlers.receive`'s own retries, so a
bad report fails alone and its neighbours are answered as if they had come by themselves.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from services.intake.canonical import CanonicalReport
from services.intake.handlers import Incoming, IntakeHandlers, Receipt

log = logging.getLogger(__name__)


@dataclass
class _Waiting:
    incoming: Incoming
    answer: asyncio.Future[Receipt] = field(repr=False)


class ReceiptWriter:
    """Stores the reports of concurrent requests in shared transactions, in arrival order."""

    def __init__(self, handlers: IntakeHandlers, max_group: int = 200) -> None:
        self.handlers, self.max_group = handlers, max_group
        self._waiting: list[_Waiting] = []
        self._task: asyncio.Task[None] | None = None
        # counters for the bench and tests: transactions committed and reports in them
        self.groups = 0
        self.grouped = 0
        self.rolled_back = 0  # groups whose reports were stored again one by one

    async def receive(
        self,
        report: CanonicalReport,
        *,
        via: str,
        integrator_id: str | None = None,
        service_code: str | None = None,
    ) -> Receipt:
        """Store a report (with whatever else is waiting) and return its receipt once committed."""
        answer: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(Incoming(report, via, integrator_id, service_code), answer))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write())
        # a caller that goes away does not cancel the group its report is part of
        return await asyncio.shield(answer)

    async def _write(self) -> None:
        while self._waiting:
            group = self._waiting[: self.max_group]
            del self._waiting[: len(group)]
            if len(group) == 1:  # alone: its own transaction, as before
                await self._store_alone(group)
                continue
            try:
                receipts = await self._store_together(group)
            except Exception as exc:  # the group is rolled back: each report on its own
                self.rolled_back += 1
                log.info(
                    "report group rolled back; storing one by one",
                    extra={"reports": len(group), "error": type(exc).__name__},
                )
                await self._store_alone(group)
                continue
            for w, r in zip(group, receipts, strict=True):
                if not w.answer.done():
                    w.answer.set_result(r)

    async def _store_together(self, group: list[_Waiting]) -> list[Receipt]:
        receipts = await self.handlers.receive_many([w.incoming for w in group])
        self.groups += 1
        self.grouped += len(group)
        return receipts

    async def _store_alone(self, group: list[_Waiting]) -> None:
        for w in group:
            try:
                receipt = await self._receive(w)
            except Exception as exc:
                if not w.answer.done():
                    w.answer.set_exception(exc)
            else:
                if not w.answer.done():
                    w.answer.set_result(receipt)

    async def _receive(self, w: _Waiting) -> Receipt:
        i = w.incoming
        return await self.handlers.receive(
            i.report, via=i.via, integrator_id=i.integrator_id, service_code=i.service_code
        )
