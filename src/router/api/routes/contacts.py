from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request

from models.schemas import ContactRead, IdentityRead, MergeBody
from router.api.deps import AgentDep, IdPath, ManagerDep, RuntimeDep, SessionDep
from router.errors import NotFound
from router.files import AttachmentStore
from router.flows import contacts, privacy
from router.repo import access, audit

api_router = APIRouter(prefix="/api/v1/contacts", tags=["contacts"])


async def _read(session: SessionDep, contact_id: int) -> ContactRead:
    c = await contacts.get_contact(session, contact_id)
    idents = await contacts.identities(session, contact_id)
    return ContactRead(
        id=c.id,
        name=c.name,
        attributes=dict(c.attributes or {}),
        merged_into_id=c.merged_into_id,
        identities=[IdentityRead.model_validate(i) for i in idents],
        created_at=c.created_at,
    )


@api_router.get("/{contact_id}", response_model=ContactRead)
async def get_contact(
    contact_id: IdPath, p: AgentDep, rt: RuntimeDep, session: SessionDep, request: Request
) -> ContactRead:
    """Each read is audited (router.repo.audit)."""
    await access.require_visible_contact(session, p, contact_id)
    audit.record(session, request, p, "contact", now=rt.now(), contact_id=contact_id)
    return await _read(session, contact_id)


@api_router.post("/{contact_id}/merge", response_model=ContactRead)
async def merge(
    contact_id: IdPath, body: MergeBody, p: AgentDep, rt: RuntimeDep, session: SessionDep
) -> ContactRead:
    """Merge `other_contact_id` into this contact (identities and conversations move here)."""
    await access.require_visible_contact(session, p, contact_id)
    await access.require_visible_contact(session, p, body.other_contact_id)
    keep = await contacts.get_contact(session, contact_id)
    other = await contacts.get_contact(session, body.other_contact_id)
    if keep.merged_into_id is not None:
        raise NotFound(f"contact {contact_id} was merged into {keep.merged_into_id}")
    await contacts.merge_contacts(
        session, keep=keep, other=other, now=rt.now(), reason="agent", agent_id=p.agent_id
    )
    return await _read(session, contact_id)


@api_router.get("/{contact_id}/export")
async def export_contact(
    contact_id: IdPath, p: ManagerDep, rt: RuntimeDep, session: SessionDep, request: Request
) -> dict[str, Any]:
    """Everything held about a person (subject access request), as JSON. Audited."""
    exported = await privacy.export(session, contact_id)
    audit.record(session, request, p, "contact.export", now=rt.now(), contact_id=contact_id)
    return exported


@api_router.delete("/{contact_id}")
async def erase_contact(
    contact_id: IdPath,
    p: ManagerDep,
    rt: RuntimeDep,
    session: SessionDep,
    background: BackgroundTasks,
) -> dict[str, Any]:
    """Erase a person's personal data and message texts; an anonymised trail remains."""
    store = AttachmentStore.from_settings(rt.settings)
    summary, files = await privacy.erase(
        session,
        contact_id,
        now=rt.now(),
        agent_id=p.agent_id,
        store=store,
        erasure_key=rt.settings.erasure_hmac_key(),
    )
    # After the commit (background tasks run once the response is sent).
    background.add_task(privacy.delete_files, store, files)
    return {"erased": summary}
