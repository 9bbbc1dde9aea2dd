"""What staff do to a case over REST: one transaction each, each a trail entry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from services.mediation.access import (
    Access,
    CaseScope,
    access_to,
    actor_of,
    assignment_refusal,
    may_perform,
)
from services.mediation.assignment import (
    SYSTEM,
    AfterCommit,
    Context,
    assign,
    case_view,
    run_after_commit,
    trail_details,
)
from services.mediation.channels import AgreementView
from services.mediation.documents import redact_with_contact
from services.mediation.domain import (
    TransitionRefused,
    aware,
    extension_refusal,
    next_status,
    next_tier,
)
from services.mediation.repository import (
    Agreement,
    CaseNote,
    MediationCase,
    Organisation,
    StaffMember,
    reader_orgs,
)
from shared.auth import StaffPrincipal
from shared.contracts import CaseAgreed, CaseReturned
from shared.contracts import CaseStatus as S
from shared.db import Tx
from shared.events import new_id


class CaseNotFound(Exception):
    """No such case, or not one the caller may see (both answer 404)."""


class ActionForbidden(Exception):
    """The caller sees the case but may not do this (403)."""


class InvalidTarget(Exception):
    """A named organisation or mediator does not exist or does not fit (422)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason
        super().__init__(reason)


async def scope_of(session: AsyncSession, case: MediationCase) -> CaseScope:
    """The access facts of a case."""
    readers = await reader_orgs(session, case.case_id)
    return CaseScope(
        tier=case.tier,
        grid_code=case.area_code,
        organisation_id=case.organisation_id,
        channel=case.channel,
        mediator_id=case.mediator_id,
        co_channels=tuple(case.co_channels or ()),
        reader_organisations=tuple(readers),
    )


Work = Callable[[Tx, MediationCase, datetime], Awaitable[list[AfterCommit]]]


class CaseActions:
    """The mediator and coordinator actions of DOMAIN.md §6."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def _act(self, p: StaffPrincipal, case_id: str, permission: str, work: Work) -> None:
        after: list[AfterCommit] = []
        async with self.ctx.delivery.transaction() as tx:
            case = await tx.session.get(MediationCase, case_id)
            if case is None:
                raise CaseNotFound(case_id)
            level = access_to(p, await scope_of(tx.session, case))
            if level is Access.none:
                raise CaseNotFound(case_id)
            if not may_perform(p, permission):
                raise ActionForbidden(f"a {p.role} may not {permission} a case")
            if level < Access.act:
                raise ActionForbidden("this case is read-only for you")
            after = await work(tx, case, self.ctx.clock.now())
        await run_after_commit(after)

    def _redact(self, case: MediationCase, text: str) -> str:
        """Free text leaving the service (trail, events): no phones, IDs or the parties' names."""
        # a contact no key opens stops the action (PiiKeyError): names must not leak unmasked
        contact = self.ctx.cipher.unseal(case.sealed_contact) if case.sealed_contact else None
        return redact_with_contact(text, contact)

    def _move(
        self,
        tx: Tx,
        case: MediationCase,
        p: StaffPrincipal,
        action: str,
        to: str,
        now: datetime,
        reason: str,
        **details: object,
    ) -> None:
        from_status = case.status
        case.status, case.updated_at = to, now
        tx.session.add(case)
        tx.transition(
            case.case_id,
            action=action,
            from_status=from_status,
            to_status=to,
            actor=actor_of(p),
            actor_role=p.role,
            reason=reason,
            details=trail_details(case, **details),
            at=now,
        )

    async def accept(self, p: StaffPrincipal, case_id: str) -> None:
        """签收: the mediator (or one of the queue's organisation) takes the case."""

        async def work(tx: Tx, case: MediationCase, now: datetime) -> list[AfterCommit]:
            to = next_status("accept", case.status)
            if case.mediator_id is None and p.role == "mediator":
                case.mediator_id = p.subject
            case.accepted_at = now
            on_time = case.sign_for_due is None or now <= aware(case.sign_for_due)
            self._move(
                tx,
                case,
                p,
                "accept",
                to,
                now,
                "签收" if on_time else "超时签收",
                signed_on_time=on_time,
            )
            return []

        await self._act(p, case_id, "accept", work)

    async def return_case(self, p: StaffPrincipal, case_id: str, reason: str) -> None:
        """退单: the case is not for this channel; triage routes it again without it."""

        async def work(tx: Tx, case: MediationCase, now: datetime) -> list[AfterCommit]:
            to = next_status("return", case.status)
            case.return_count += 1
            case.excluded_channels = sorted(set(case.excluded_channels) | {case.channel})
            self._move(
                tx,
                case,
                p,
                "return",
                to,
                now,
                f"退单：{self._redact(case, reason)}",
                return_count=case.return_count,
            )
            topics = self.ctx.topics
            tx.emit(
                topics.mediation,
                "case.returned",
                CaseReturned(
                    case_id=case.case_id,
                    channel=case.channel,
                    reason=self._redact(case, reason),
                    return_count=case.return_count,
                    excluded_channels=case.excluded_channels,
                ),
                case.case_id,
            )
            return []

        await self._act(p, case_id, "return", work)

    async def note(self, p: StaffPrincipal, case_id: str, text: str) -> int:
        """A progress note; the first one moves a signed-for case into mediation."""
        note_id: list[int] = []

        async def work(tx: Tx, case: MediationCase, now: datetime) -> list[AfterCommit]:
            to = next_status("note", case.status)
            row = CaseNote(
                case_id=case.case_id,
                author=p.subject,
                text=self.ctx.cipher.encrypt(text) or "",
                at=now,
            )
            tx.session.add(row)
            await tx.session.flush()
            note_id.append(row.id or 0)
            reason = "开始调解" if case.status == S.accepted else "记录调解进展"
            self._move(tx, case, p, "note", to, now, reason, note_id=row.id)
            return []

        await self._act(p, case_id, "note", work)
        return note_id[0]

    async def agree(
        self,
        p: StaffPrincipal,
        case_id: str,
        terms: str,
        amount_yuan: int | None,
        performance_due: datetime | None,
    ) -> str:
        """调解成功: record the agreement and tell follow-up (case.agreed)."""
        agreement_id = new_id()

        async def work(tx: Tx, case: MediationCase, now: datetime) -> list[AfterCommit]:
            to = next_status("agree", case.status)
            tx.session.add(
                Agreement(
                    id=agreement_id,
                    case_id=case.case_id,
                    terms=self.ctx.cipher.encrypt(terms) or "",
                    amount_yuan=amount_yuan,
                    performance_due=performance_due,
                    agreed_at=now,
                    channel=case.channel,
                    tier=case.tier,
                    organisation_id=case.organisation_id,
                    mediator_id=case.mediator_id,
                )
            )
            case.outcome = "agreed"
            on_time = case.mediation_due is None or now <= aware(case.mediation_due)
            self._move(
                tx,
                case,
                p,
                "agree",
                to,
                now,
                "调解达成协议",
                agreement_id=agreement_id,
                amount_yuan=amount_yuan,
                performance_due=performance_due.isoformat() if performance_due else None,
                agreed_on_time=on_time,
                first_tier=case.first_tier,
                escalations=case.escalations,
            )
            topics = self.ctx.topics
            tx.emit(
                topics.mediation,
                "case.agreed",
                CaseAgreed(
                    case_id=case.case_id,
                    agreement_id=agreement_id,
                    terms=self._redact(case, terms),
                    amount_yuan=amount_yuan,
                    performance_due=performance_due,
                    agreed_at=now,
                    channel=case.channel,
                    tier=case.tier,
                    organisation_id=case.organisation_id,
                    mediator_id=case.mediator_id,
                ),
                case.case_id,
            )
            plugin, view = self.ctx.channel(case.channel), case_view(case)
            agreement = AgreementView(agreement_id, terms, amount_yuan, performance_due, now)

            async def tell() -> None:
                if plugin is not None:
                    await plugin.on_agreement(view, agreement)

            return [tell]

        await self._act(p, case_id, "agree", work)
        return agreement_id

    async def fail(self, p: StaffPrincipal, case_id: str, reason: str) -> None:
        """调解不成: mediation failed; the next step is escalation or transfer."""

        async def work(tx: Tx, case: MediationCase, now: datetime) -> list[AfterCommit]:
            to = next_status("fail", case.status)
            self._move(tx, case, p, "fail", to, now, f"调解不成：{self._redact(case, reason)}")
            return []

        await self._act(p, case_id, "fail", work)

    async def escalate(self, p: StaffPrincipal, case_id: str, reason: str) -> None:
        """Up one tier (grid → town → county), assigned there again."""

        async def work(tx: Tx, case: MediationCase, now: datetime) -> list[AfterCommit]:
            to = next_status("escalate", case.status)
            tier = next_tier(case.tier)
            before = case.tier
            case.escalations += 1
            self._move(
                tx,
                case,
                p,
                "escalate",
                to,
                now,
                f"上交{tier}级：{self._redact(case, reason)}",
                from_tier=before,
                to_tier=tier,
            )
            case.tier = tier
            return await assign(
                self.ctx, tx, case, now=now, actor=SYSTEM, reason=f"由{before}级上交"
            )

        await self._act(p, case_id, "escalate", work)

    async def transfer(self, p: StaffPrincipal, case_id: str, target: str, reason: str) -> None:
        """诉讼/仲裁: the case leaves mediation and is closed as transferred."""

        async def work(tx: Tx, case: MediationCase, now: datetime) -> list[AfterCommit]:
            to = next_status("transfer", case.status)
            plugin = self.ctx.channel(case.channel)
            targets = plugin.transfer_targets if plugin else ("litigation",)
            if target not in targets:
                raise TransitionRefused(
                    "transfer",
                    case.status,
                    f"the {case.channel} channel transfers to {' or '.join(targets)}, not {target}",
                )
            case.outcome, case.transfer_target = f"transferred:{target}", target
            self._move(
                tx,
                case,
                p,
                "transfer",
                to,
                now,
                f"转{target}：{self._redact(case, reason)}",
                target=target,
            )
            view = case_view(case)

            async def tell() -> None:
                if plugin is not None:
                    await plugin.on_transfer(view, target)

            return [tell]

        await self._act(p, case_id, "transfer", work)

    async def extend(self, p: StaffPrincipal, case_id: str, reason: str) -> datetime:
        """延期: the court channel extends its mediation deadline once (+30 days by default)."""
        new_due: list[datetime] = []

        async def work(tx: Tx, case: MediationCase, now: datetime) -> list[AfterCommit]:
            refusal = extension_refusal(case, now)
            if refusal is not None:
                raise TransitionRefused("extend", case.status, refusal)
            assert case.mediation_due is not None
            before = aware(case.mediation_due)
            case.mediation_due = before + timedelta(days=self.ctx.settings.court_extension_days)
            case.extended_at = now
            new_due.append(case.mediation_due)
            self._move(
                tx,
                case,
                p,
                "extend",
                case.status,
                now,
                f"延期{self.ctx.settings.court_extension_days}日：{self._redact(case, reason)}",
                previous_mediation_due=before.isoformat(),
                extension_days=self.ctx.settings.court_extension_days,
            )
            return []

        await self._act(p, case_id, "extend", work)
        return new_due[0]

    async def reassign(
        self,
        p: StaffPrincipal,
        case_id: str,
        organisation_id: str,
        mediator_id: str | None,
        reason: str,
    ) -> None:
        """A coordinator assigns a waiting case by hand (e.g. after two returns)."""

        async def work(tx: Tx, case: MediationCase, now: datetime) -> list[AfterCommit]:
            action = "assign" if case.status == S.triaged else "reassign"
            next_status(action, case.status)
            org = await tx.session.get(Organisation, organisation_id)
            if org is None or not org.active or org.kind != "mediation":
                raise InvalidTarget("organisation_id", "no such mediation organisation")
            refusal = assignment_refusal(p, org.tier, org.grid_codes, case.grid_code)
            if refusal is not None:
                raise ActionForbidden(refusal)
            mediator = None
            if mediator_id is not None:
                mediator = await tx.session.get(StaffMember, mediator_id)
                if (
                    mediator is None
                    or mediator.role != "mediator"
                    or not mediator.active
                    or mediator.organisation_id != org.id
                ):
                    raise InvalidTarget("mediator_id", "no such mediator in that organisation")
            return await assign(
                self.ctx,
                tx,
                case,
                now=now,
                action=action,
                actor=actor_of(p),
                actor_role=p.role,
                organisation=org,
                mediator=mediator,
                reason=self._redact(case, reason),
            )

        await self._act(p, case_id, "reassign", work)
