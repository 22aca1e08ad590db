"""What an SLA breach does to a conversation: a function of the policy's action and the
conversation's state (the flow in `router.flows.sla` applies it)."""

from __future__ import annotations

from dataclasses import dataclass

from models.vocab import PRIORITIES, Priority
from router.decide.policy import BreachAction


@dataclass(frozen=True)
class BreachOutcome:
    priority: Priority  # unchanged unless the policy raises it
    escalate_to: str | None  # another queue, or None to stay
    alert_supervisor: bool

    def changed(self, priority: str) -> bool:
        """Whether the conversation moves or is re-prioritised (its timers then re-arm)."""
        return self.escalate_to is not None or self.priority != priority


def on_breach(action: BreachAction, *, queue: str, priority: Priority) -> BreachOutcome:
    raised = priority
    if action.raise_priority and priority != PRIORITIES[-1]:
        raised = PRIORITIES[PRIORITIES.index(priority) + 1]
    escalate = action.escalate_to if action.escalate_to and action.escalate_to != queue else None
    return BreachOutcome(
        priority=raised, escalate_to=escalate, alert_supervisor=action.alert_supervisor
    )


def offer_to_next_tier(*, kind: str, assigned: bool, same_queue: bool, tier: int) -> bool:
    """Nobody on the front desk took it in time (first response): any online clinician may
    answer instead."""
    return kind == "first_response" and not assigned and same_queue and tier == 1
