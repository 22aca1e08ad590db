"""Which automatic acknowledgements an inbound message gets."""

from __future__ import annotations

from typing import Literal

Ack = Literal["emergency", "crisis", "wait"]


def acknowledgements(*, new: bool, crisis: bool, urgent_medical: bool) -> tuple[Ack, ...]:
    """Urgent medical: "call the emergency number now", never a wait estimate. A crisis:
    the safe crisis message. Otherwise a new conversation hears how long it will wait.
    (Each is sent at most once per conversation; the sender checks.)"""
    acks: list[Ack] = []
    if urgent_medical:
        acks.append("emergency")
    if crisis:
        acks.append("crisis")
    elif new and not urgent_medical:
        acks.append("wait")
    return tuple(acks)
