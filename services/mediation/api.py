"""Mediation HTTP routes: the work list, a case, the actions on it, supervisions."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from sqlmodel.ext.asyncio.session import AsyncSession

from services.mediation.access import Access, access_to
from services.mediation.actions import (
    ActionForbidden,
    CaseActions,
    CaseNotFound,
    InvalidTarget,
    scope_of,
)
from services.mediation.agreement_pdf import render_agreement_pdf
from services.mediation.assignment import Context
from services.mediation.documents import mask_contact, redact_with_contact, render_agreement
from services.mediation.domain import (
    TransitionRefused,
    allowed_actions,
    aware,
    extension_refusal,
)
from services.mediation.repository import (
    MediationCase,
    Organisation,
    StaffMember,
    agreement_of,
    list_cases,
    list_supervisions,
    notes_of,
    trail_of,
)
from services.mediation.schemas import (
    AgreementIn,
    AgreementRecorded,
    AssignIn,
    CaseDetail,
    CaseView,
    ChannelList,
    NoteAdded,
    NoteIn,
    ReasonIn,
    SupervisionList,
    TransferIn,
    WorkList,
)
from shared.audit import audit_clear_read, record_clear_read
from shared.auth import StaffPrincipal
from shared.errors import Forbidden, Invalid, NotFound, OutOfScope
from shared.errors import TransitionRefused as Refused
from shared.web import CurrentStaff

router = APIRouter(prefix="/v1", tags=["mediation"])


def context(request: Request) -> Context:
    """The service context built in the lifespan."""
    ctx: Context = request.app.state.ctx
    return ctx


def case_actions(request: Request) -> CaseActions:
    """The action handlers built in the lifespan."""
    actions: CaseActions = request.app.state.actions
    return actions


Ctx = Annotated[Context, Depends(context)]
Actions = Annotated[CaseActions, Depends(case_actions)]


# --- views ------------------------------------------------------------------------------------


CONTACT_FIELDS = ("contact.reporter", "contact.parties", "contact.address")


def _contact(ctx: Context, case: MediationCase, clear: bool) -> dict[str, Any] | None:
    if not case.sealed_contact:
        return None
    # a key that no longer opens it is an error (PiiKeyError → 503), never "no contact"
    contact = ctx.cipher.unseal(case.sealed_contact)
    return contact if clear else mask_contact(contact)


def _offered(ctx: Context, case: MediationCase, p: StaffPrincipal) -> list[str]:
    """The state machine's actions, plus the court's extension while it may be granted."""
    out = allowed_actions(case.status)
    if p.role in ("mediator", "admin") and extension_refusal(case, ctx.clock.now()) is None:
        out = sorted([*out, "extend"])
    return out


def case_body(
    ctx: Context, case: MediationCase, level: Access, p: StaffPrincipal, readers: list[str]
) -> dict[str, Any]:
    """A case as the caller may see it."""
    clear = level >= Access.read_clear and (p.role != "mediator" or case.mediator_id == p.subject)
    return {
        "case_id": case.case_id,
        "status": case.status,
        "source": case.source,
        "source_ref": case.source_ref,
        "dispute_type": case.dispute_type,
        "severity": case.severity,
        "channel": case.channel,
        "co_channels": case.co_channels,
        "tier": case.tier,
        "first_tier": case.first_tier,
        "rule_id": case.rule_id,
        "grid_code": case.grid_code,
        "organisation_id": case.organisation_id,
        "mediator_id": case.mediator_id,
        "reader_organisations": readers,
        "sign_for_due": aware(case.sign_for_due) if case.sign_for_due else None,
        "mediation_due": aware(case.mediation_due) if case.mediation_due else None,
        "sign_for_overdue": case.sign_for_overdue,
        "mediation_overdue": case.mediation_overdue,
        "return_count": case.return_count,
        "escalations": case.escalations,
        "outcome": case.outcome,
        "transfer_target": case.transfer_target,
        "accepted_at": aware(case.accepted_at) if case.accepted_at else None,
        "extended_at": aware(case.extended_at) if case.extended_at else None,
        "updated_at": aware(case.updated_at),
        "text": case.text,
        "parties": case.parties,
        "contact": _contact(ctx, case, clear),
        "personal_data": "clear" if clear else "masked",
        "read_only": level < Access.act,
        "allowed_actions": _offered(ctx, case, p) if level >= Access.act else [],
    }


async def _load(
    session: AsyncSession, p: StaffPrincipal, case_id: str
) -> tuple[MediationCase, Access, list[str]]:
    """The case and the caller's access to it; 404 when it does not exist for them."""
    case = await session.get(MediationCase, case_id)
    if case is None:
        raise NotFound("case", "case_id")
    scope = await scope_of(session, case)
    level = access_to(p, scope)
    if level is Access.none:
        raise OutOfScope("case", "case_id")
    return case, level, list(scope.reader_organisations)


async def _run(awaitable: Awaitable[Any]) -> Any:
    """Action errors as the shared error vocabulary: 404 / 403 / 409 / 422."""
    try:
        return await awaitable
    except CaseNotFound:
        raise NotFound("case", "case_id") from None
    except ActionForbidden as exc:
        raise Forbidden(str(exc)) from None
    except TransitionRefused as exc:
        raise Refused(exc.action, exc.status, exc.reason) from None
    except InvalidTarget as exc:
        raise Invalid.field(exc.field, exc.reason) from None


async def _case_after(ctx: Context, p: StaffPrincipal, case_id: str) -> dict[str, Any]:
    """The case after an action, as the caller now sees it."""
    async with ctx.delivery.sessions() as session:
        try:
            case, level, readers = await _load(session, p, case_id)
        except NotFound:  # e.g. escalated out of the caller's tier: the action stood
            return {"case_id": case_id, "visible": False}
        body = case_body(ctx, case, level, p, readers)
    if body["personal_data"] == "clear" and body["contact"]:
        await record_clear_read(ctx.delivery, p, [case_id], CONTACT_FIELDS, "case action")
    return body


# --- reads ------------------------------------------------------------------------------------


@router.get("/mediation/cases", response_model=WorkList)
async def work_list(
    request: Request,
    ctx: Ctx,
    staff: CurrentStaff,
    status: Annotated[str | None, Query(max_length=20)] = None,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    after: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """The caller's work list: only cases their role and scope reach, never a foreign one."""
    async with ctx.delivery.sessions() as session:
        rows = await list_cases(
            session, staff, status=status, overdue=overdue, limit=limit, after=after
        )
        items = []
        for case in rows:
            scope = await scope_of(session, case)
            level = access_to(staff, scope)
            if level is Access.none:  # belt and braces: the query already scoped it
                continue
            items.append(case_body(ctx, case, level, staff, list(scope.reader_organisations)))
    shown = [i["case_id"] for i in items if i["personal_data"] == "clear" and i["contact"]]
    await audit_clear_read(request, staff, shown, CONTACT_FIELDS)
    next_after = rows[-1].case_id if len(rows) == limit else None
    return {"items": items, "next_after": next_after}


@router.get("/mediation/cases/{case_id}", response_model=CaseDetail)
async def read_case(
    case_id: str, request: Request, ctx: Ctx, staff: CurrentStaff
) -> dict[str, Any]:
    """One case with its notes, agreement and this service's trail entries."""
    async with ctx.delivery.sessions() as session:
        case, level, readers = await _load(session, staff, case_id)
        body = case_body(ctx, case, level, staff, readers)
        clear = body["personal_data"] == "clear"
        body["notes"] = [
            {
                "id": n.id,
                "author": n.author,
                "at": aware(n.at),
                "text": _private_text(ctx, n.text, clear, case),
            }
            for n in await notes_of(session, case_id)
        ]
        agreement = await agreement_of(session, case_id)
        body["agreement"] = (
            None
            if agreement is None
            else {
                "agreement_id": agreement.id,
                "amount_yuan": agreement.amount_yuan,
                "performance_due": agreement.performance_due,
                "agreed_at": aware(agreement.agreed_at),
                "terms": _private_text(ctx, agreement.terms, clear, case),
            }
        )
        body["trail"] = [
            {
                "at": aware(t.at),
                "actor": t.actor,
                "actor_role": t.actor_role,
                "action": t.action,
                "from_status": t.from_status,
                "to_status": t.to_status,
                "reason": t.reason,
            }
            for t in await trail_of(session, case_id)
        ]
    if body["personal_data"] == "clear":
        await audit_clear_read(request, staff, [case_id], [*CONTACT_FIELDS, "notes", "terms"])
    return body


def _private_text(ctx: Context, stored: str, clear: bool, case: MediationCase) -> str:
    """Notes and terms are stored encrypted; masked readers get them redacted."""
    text = ctx.cipher.decrypt(stored) or ""  # PiiKeyError when no key opens it (→ 503)
    return text if clear else redact_with_contact(text, _contact(ctx, case, True))


@router.get(
    "/cases/{case_id}/agreement/document",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}, "application/pdf": {}}}},
)
async def agreement_document(
    case_id: str,
    request: Request,
    ctx: Ctx,
    staff: CurrentStaff,
    fmt: Annotated[Literal["text", "pdf"], Query(alias="format")] = "text",
) -> Response:
    """The agreement document (调解协议书) as plain text, or as a PDF with `?format=pdf`."""
    async with ctx.delivery.sessions() as session:
        case, level, readers = await _load(session, staff, case_id)
        agreement = await agreement_of(session, case_id)
        if agreement is None:
            raise NotFound("agreement for this case", "case_id")
        body = case_body(ctx, case, level, staff, readers)
        clear = body["personal_data"] == "clear"
        org = await session.get(Organisation, agreement.organisation_id or "")
        mediator = await session.get(StaffMember, agreement.mediator_id or "")
    if clear:
        await audit_clear_read(request, staff, [case_id], [*CONTACT_FIELDS, "terms"])
    plugin = ctx.channel(agreement.channel)
    title = plugin.document_title if plugin else "调解协议书"
    text = render_agreement(
        title=title,
        case_id=case_id,
        agreement_id=agreement.id,
        organisation=org.name if org else "—",
        mediator=mediator.name if mediator else "—",
        dispute_type=case.dispute_type,
        terms=_private_text(ctx, agreement.terms, clear, case),
        amount_yuan=agreement.amount_yuan,
        performance_due=aware(agreement.performance_due) if agreement.performance_due else None,
        agreed_at=aware(agreement.agreed_at),
        contact=body["contact"] if clear else None,
        parties=case.parties,
        tz=ctx.settings.timezone,
    )
    if fmt == "pdf":
        pdf = render_agreement_pdf(text, title=title, subject=f"{title} {agreement.id}")
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="agreement-{agreement.id}.pdf"'},
        )
    return PlainTextResponse(text, media_type="text/plain; charset=utf-8")


# --- actions ----------------------------------------------------------------------------------


@router.post("/cases/{case_id}/accept", response_model=CaseView)
async def accept(case_id: str, ctx: Ctx, actions: Actions, staff: CurrentStaff) -> dict[str, Any]:
    """签收."""
    await _run(actions.accept(staff, case_id))
    return await _case_after(ctx, staff, case_id)


@router.post("/cases/{case_id}/return", response_model=CaseView)
async def return_case(
    case_id: str, body: ReasonIn, ctx: Ctx, actions: Actions, staff: CurrentStaff
) -> dict[str, Any]:
    """退单: triage routes the case again without this channel."""
    await _run(actions.return_case(staff, case_id, body.reason))
    return await _case_after(ctx, staff, case_id)


@router.post("/cases/{case_id}/notes", status_code=201, response_model=NoteAdded)
async def add_note(
    case_id: str, body: NoteIn, ctx: Ctx, actions: Actions, staff: CurrentStaff
) -> dict[str, Any]:
    """A progress note; the first one starts mediation."""
    note_id = await _run(actions.note(staff, case_id, body.text))
    return {"note_id": note_id, **await _case_after(ctx, staff, case_id)}


@router.post("/cases/{case_id}/agreement", status_code=201, response_model=AgreementRecorded)
async def agreement(
    case_id: str, body: AgreementIn, ctx: Ctx, actions: Actions, staff: CurrentStaff
) -> dict[str, Any]:
    """调解成功: the agreement and its document."""
    agreement_id = await _run(
        actions.agree(staff, case_id, body.terms, body.amount_yuan, body.performance_due)
    )
    return {
        "agreement_id": agreement_id,
        "document_url": f"/v1/cases/{case_id}/agreement/document",
        **await _case_after(ctx, staff, case_id),
    }


@router.post("/cases/{case_id}/failure", response_model=CaseView)
async def failure(
    case_id: str, body: ReasonIn, ctx: Ctx, actions: Actions, staff: CurrentStaff
) -> dict[str, Any]:
    """调解不成."""
    await _run(actions.fail(staff, case_id, body.reason))
    return await _case_after(ctx, staff, case_id)


@router.post("/cases/{case_id}/escalate", response_model=CaseView)
async def escalate(
    case_id: str, body: ReasonIn, ctx: Ctx, actions: Actions, staff: CurrentStaff
) -> dict[str, Any]:
    """Up one tier; the county cannot escalate (409)."""
    await _run(actions.escalate(staff, case_id, body.reason))
    return await _case_after(ctx, staff, case_id)


@router.post("/cases/{case_id}/extension", response_model=CaseView)
@router.post(
    "/cases/{case_id}/extend", include_in_schema=False, response_model=CaseView
)  # the action's own name
async def extension(
    case_id: str, body: ReasonIn, ctx: Ctx, actions: Actions, staff: CurrentStaff
) -> dict[str, Any]:
    """延期: the court channel's one extension of the mediation deadline (+30 days)."""
    due = await _run(actions.extend(staff, case_id, body.reason))
    return {"mediation_due": aware(due), **await _case_after(ctx, staff, case_id)}


@router.post("/cases/{case_id}/transfer", response_model=CaseView)
async def transfer(
    case_id: str, body: TransferIn, ctx: Ctx, actions: Actions, staff: CurrentStaff
) -> dict[str, Any]:
    """To litigation or arbitration; closes the case as transferred."""
    await _run(actions.transfer(staff, case_id, body.target, body.reason))
    return await _case_after(ctx, staff, case_id)


@router.post("/cases/{case_id}/assign", response_model=CaseView)
async def assign_case(
    case_id: str, body: AssignIn, ctx: Ctx, actions: Actions, staff: CurrentStaff
) -> dict[str, Any]:
    """A coordinator assigns or reassigns a case not yet signed for."""
    await _run(
        actions.reassign(staff, case_id, body.organisation_id, body.mediator_id, body.reason)
    )
    return await _case_after(ctx, staff, case_id)


# --- supervision and channels -----------------------------------------------------------------


@router.get("/supervisions", response_model=SupervisionList)
async def supervisions(
    ctx: Ctx, staff: CurrentStaff, limit: Annotated[int, Query(ge=1, le=500)] = 200
) -> dict[str, Any]:
    """Supervision notices (督办) for the caller's tier and area."""
    async with ctx.delivery.sessions() as session:
        rows = await list_supervisions(session, staff, limit)
    return {
        "items": [
            {
                "id": r.id,
                "case_id": r.case_id,
                "kind": r.kind,
                "tier": r.tier,
                "channel": r.channel,
                "organisation_id": r.organisation_id,
                "mediator_id": r.mediator_id,
                "due_at": aware(r.due_at),
                "raised_at": aware(r.raised_at),
            }
            for r in rows
        ]
    }


@router.get("/mediation/channels", response_model=ChannelList)
async def channels(ctx: Ctx, staff: CurrentStaff) -> dict[str, Any]:
    """The channel plugins of this deployment."""
    return {"items": [c.describe() for c in ctx.channels.all()]}
