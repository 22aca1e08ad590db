"""The inbound use case after a message is stored: route it (the pure `rules` decide), arm
the timers, acknowledge, assign and page; and the follow-ups to a resolution.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from models import Contact, Conversation, Message
from models.messages import IDENTITY_KIND, CallLog
from models.vocab import SENDER, TEXT_CHANNELS
from router.decide import acks, rules
from router.decide.assign import AgentLoad
from router.flows import assignment, callbacks, paging
from router.flows import sla as timers
from router.flows.contacts import known_identity
from router.flows.outbound import send_crisis_ack, send_urgent_medical_ack, send_wait_ack
from router.repo.events import conv_event, crisis_flagged
from router.repo.queues import queue_by_name, queue_of
from router.runtime import Runtime

MAX_REASONS = 30


async def after_inbound(
    session: AsyncSession,
    rt: Runtime,
    conv: Conversation,
    contact: Contact,
    message: Message,
    *,
    how: str,
    was_pending: bool,
    now: datetime,
) -> None:
    new = how == "new"
    if new:
        await conv_event(session, "conversation.created", conv, data={"channel": conv.channel})
    if message.direction == "out" and not new:
        # An outbound call an agent (or the PBX) logged: part of the timeline and it may close
        # a callback request, but it is not the customer asking for anything.
        await session.flush()  # the message id, for the event
        await conv_event(session, "message.received", conv, data=_received(message))
        await callbacks.on_call_message(session, rt, conv, message, now)
        return
    decision = await route(session, rt, conv, contact, [message], now)  # the message has its id
    # After routing, so the event carries the queue (and tier) the message now belongs to.
    await conv_event(session, "message.received", conv, data=_received(message))
    await timers.on_customer_message(session, rt, conv, now, how=how)
    await callbacks.on_call_message(session, rt, conv, message, now)
    urgent_medical = decision.urgent_medical or "urgent_medical" in (conv.tags or ())
    wanted = acks.acknowledgements(new=new, crisis=decision.crisis, urgent_medical=urgent_medical)
    # The online agents and their loads, read once for both the wait estimate and assignment
    # (nothing between the two changes them).
    loads: list[AgentLoad] | None = None
    assigning = conv.assignee_id is None and conv.status == "open"
    if assigning or ("wait" in wanted and not conv.ack_sent):
        q = await queue_of(session, conv)
        loads = await assignment.agent_loads(session, q.tier) if q is not None else None
    for ack in wanted:
        if ack == "emergency":
            await send_urgent_medical_ack(session, rt, conv, contact, now)
        elif ack == "crisis":
            await send_crisis_ack(session, rt, conv, now)
        else:
            # A new conversation's only inbound message is this one: reply on its channel,
            # to the identity it came from (known to this unit of work: no look-up).
            channel = message.channel if message.channel in TEXT_CHANNELS else None
            await send_wait_ack(
                session,
                rt,
                conv,
                now,
                channel=channel,
                recipient=_sender_identity(session, message) if channel else None,
                loads=loads,
            )
    if conv.assignee_id is None:
        await assignment.try_assign(session, rt, conv, now, loads=loads)
    # After assignment, so "no clinician online" is judged on the same loads.
    await paging.on_urgent(session, rt, conv, now)


def _sender_identity(session: AsyncSession, message: Message) -> str | None:
    """The reachable identity `message` came from, if this unit of work holds it."""
    sender = (message.channel_meta or {}).get(SENDER)
    if not isinstance(sender, str) or message.channel not in IDENTITY_KIND:
        return None
    ident = known_identity(session, IDENTITY_KIND[message.channel], sender)
    return ident.value if ident is not None and not ident.unreachable else None


def _received(message: Message) -> dict[str, Any]:
    return {"message_id": message.id, "channel": message.channel, "kind": message.kind}


async def after_resolved(session: AsyncSession, rt: Runtime, conv: Conversation) -> None:
    """Channel follow-ups to a resolution (the rating request, on the reply channel only):
    each registered channel's hook, in this unit of work."""
    for hooks in rt.hooks:
        await hooks.on_resolved(session, rt, conv)


async def route(
    session: AsyncSession,
    rt: Runtime,
    conv: Conversation,
    contact: Contact,
    new_messages: list[Message],
    now: datetime,
) -> rules.RoutingDecision:
    """Apply the policy to the new inbound messages; only ever moves a conversation up."""
    current = await queue_of(session, conv)
    snapshot = rules.ConversationSnapshot(
        channel=conv.channel,
        queue=current.name if current else None,
        priority=conv.priority if current else None,
        tags=tuple(conv.tags or ()),
        language=conv.language,
        status=conv.status,
    )
    msgs = [
        rules.MessageSnapshot(
            text=m.text,
            direction=m.direction,
            channel=m.channel,
            kind=m.kind,
            call_status=call.status if (call := CallLog.from_meta(m.channel_meta)) else None,
        )
        for m in new_messages
    ]
    decision = rules.route(
        snapshot, msgs, rules.ContactSnapshot(attributes=contact.attributes or {}), now, rt.policy
    )
    if decision.language and not conv.language:
        conv.language = decision.language
    for m in new_messages:
        if m.language is None:
            m.language = decision.language
    if current is None or decision.changed:
        target = await queue_by_name(session, decision.queue)
        moved_tier = current is not None and target.tier > current.tier
        conv.queue_id = target.id
        conv.priority = decision.priority
        conv.tags = list(decision.tags)
        conv.routing_reasons = (list(conv.routing_reasons or []) + list(decision.reasons))[
            -MAX_REASONS:
        ]
        conv.updated_at = now
        await conv_event(
            session,
            "conversation.routed",
            conv,
            data={
                "queue": target.name,
                "priority": decision.priority,
                "reasons": list(decision.reasons),
                "from_queue": current.name if current else None,
            },
        )
        if current is not None:
            await timers.on_queue_change(session, rt, conv, now)
        if moved_tier and conv.assignee_id is not None:
            # A first-line agent cannot read a second-line conversation: tell them why and
            # hand it back.
            await assignment.hand_back_moved(
                session,
                conv,
                now,
                reason=f"escalated by routing: {_why_moved(decision)}",
                to_queue=target.name,
            )
    elif set(decision.tags) != set(conv.tags or ()):
        conv.tags = list(decision.tags)
    if decision.crisis and not await crisis_flagged(session, conv.id):
        await conv_event(
            session,
            "crisis.detected",
            conv,
            data={"alert": "supervisor", "reasons": list(decision.reasons)},
        )
    if conv.id is None or any(m.id is None for m in new_messages):
        await session.flush()  # the ids, for the events and the caller
    # Otherwise (ids reserved for a batch) the writes go out with the batch's next flush:
    # one UPDATE and one INSERT for all its units (a unit's savepoint flushes its own).
    return decision


def _why_moved(decision: rules.RoutingDecision) -> str:
    # A category, never the text that matched: the reason is shown on the agent's screen
    # after they lost access to the conversation.
    if decision.crisis:
        return "crisis"
    if decision.urgent_medical:
        return "urgent medical"
    clinical = [t for t in decision.tags if t in ("clinical", "acute")]
    return " ".join(clinical) or "second-line topic"
