"""Crisis and urgent medical escalation decisions: pure, no I/O, no clock (``now`` comes in).

A conversation tagged "crisis" or "urgent_medical" must reach a clinician. These functions
decide when the on-call supervisor is paged and who is offered the conversation; `paging`
does the I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from router.decide.assign import URGENT_TAGS, AgentLoad, is_urgent

__all__ = [
    "NO_CLINICIAN",
    "UNANSWERED",
    "Escalation",
    "WatchSnapshot",
    "clinicians",
    "is_urgent",
    "on_arrival",
    "on_due",
    "page_text",
    "watch_due_at",
]

# Page reasons, stored on each page row.
NO_CLINICIAN = "no_clinician_online"
UNANSWERED = "unanswered"


def clinicians(agents: Sequence[AgentLoad], tier: int) -> list[AgentLoad]:
    """Online agents of ``tier`` who are not supervisors: the people a crisis is for."""
    return [a for a in agents if a.presence == "online" and a.tier == tier and not a.supervisor]


def on_arrival(online_clinicians: int, *, page_when_no_clinician: bool) -> str | None:
    """A conversation has just become urgent: the page reason to send now, if any.

    With nobody online to answer there is nothing to wait for: page at once.
    """
    if online_clinicians == 0 and page_when_no_clinician:
        return NO_CLINICIAN
    return None


def watch_due_at(since: datetime, unanswered_after_s: int) -> datetime:
    """When an unanswered urgent conversation escalates."""
    return since + timedelta(seconds=unanswered_after_s)


@dataclass(frozen=True)
class WatchSnapshot:
    """An urgent conversation being watched for a clinician's first reply."""

    due_at: datetime
    state: str  # watching | answered | escalated | closed
    conversation_open: bool
    tags: frozenset[str]


@dataclass(frozen=True)
class Escalation:
    """What to do for a due watch: offer to these agents, page with this reason."""

    offer_to: tuple[int, ...]
    page: str | None


def on_due(
    watch: WatchSnapshot, online: Sequence[AgentLoad], tier: int, now: datetime
) -> Escalation | None:
    """The escalation of a watch whose time has come, or None (not due, answered, closed).

    Due and unanswered: offered to every online clinician (each gets an event addressed to
    them) and the on-call supervisor is paged, whoever holds it.
    """
    if watch.state != "watching" or now < watch.due_at:
        return None
    if not watch.conversation_open or not is_urgent(watch.tags):
        return None
    ids = tuple(sorted(a.id for a in clinicians(online, tier)))
    return Escalation(offer_to=ids, page=UNANSWERED)


def page_text(
    *,
    conversation_id: int,
    tags: Sequence[str],
    reason: str,
    minutes: int,
    online_clinicians: int,
    link: str,
) -> tuple[str, str]:
    """Subject and body of a page. No message text: a page leaves the system by e-mail or
    chat, so it says what, how long and where to look, never what the patient wrote."""
    kinds = sorted(URGENT_TAGS.intersection(tags)) or ["urgent"]
    what = " and ".join(k.replace("_", " ") for k in kinds)
    categories = sorted(set(tags) - URGENT_TAGS - {"clinical", "acute"})
    if reason == NO_CLINICIAN:
        why = "No clinician is online to take it."
    else:
        why = (
            f"No clinician has replied within {minutes} min "
            f"({online_clinicians} clinician(s) online; offered to all of them)."
        )
    subject = f"[Careline page] {what} conversation #{conversation_id} needs a clinician"
    body = "\n".join(
        [
            f"Careline: a {what} conversation (#{conversation_id}) needs a clinician now.",
            why,
            *([f"Categories: {', '.join(categories)}."] if categories else []),
            f"Open it: {link}",
        ]
    )
    return subject, body
