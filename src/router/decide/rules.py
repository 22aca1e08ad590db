"""The routing decision: which queue, priority and tags, and why. Pure: no I/O, no clock.

``route()`` is called by the ingest with snapshots and ``now``; it never reads the database or
the time, so every decision is reproducible from its inputs (and unit-testable as a table).
Order of evaluation, see also the comments of ``default_policy.toml``:

1. language: the conversation's, else detected from the inbound text;
2. crisis lexicon (every language): crisis queue, urgent, tags "crisis" + category;
3. rules in order: first rule naming a queue decides it; highest priority named wins; tags of
   all matching rules accumulate (agents see "clinical" AND "billing" on a mixed message);
4. defaults;
5. never moves down: only to a higher-tier queue, priority never decreases, tags only grow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from models.vocab import PRIORITY_RANK
from router.decide.language import detect_language
from router.decide.learned import default_clinical_model, default_crisis_model, ngram_counts
from router.decide.policy import Policy, Rule
from router.decide.signs import cap_text, without
from router.decide.sla import is_open
from router.decide.textnorm import Hit, PreparedText


@dataclass(frozen=True)
class MessageSnapshot:
    """One message as the router sees it."""

    text: str
    direction: str = "in"  # "in" | "out" | "note"
    channel: str = "app"  # telegram | webchat | email | calls | app
    kind: str = "text"  # "text" | "call"
    call_status: str | None = None  # a call log's status (answered/missed/busy/...)


@dataclass(frozen=True)
class ConversationSnapshot:
    """The conversation before this routing decision."""

    channel: str
    queue: str | None = None  # None for a new conversation
    priority: str | None = None
    tags: tuple[str, ...] = ()
    language: str | None = None
    status: str = "open"


@dataclass(frozen=True)
class ContactSnapshot:
    """The customer; ``attributes`` e.g. {"vip": True, "plan": "premium"}."""

    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RoutingDecision:
    """Where the conversation goes, and every reason for it (stored and shown to agents)."""

    queue: str
    priority: str
    tags: tuple[str, ...]
    reasons: tuple[str, ...]
    language: str | None
    crisis: bool
    changed: bool  # queue or priority differ from the conversation's current ones
    # An urgent medical red flag (stroke, anaphylaxis, ...): second line, urgent, and an
    # acknowledgement that says "call the emergency number now", never a wait estimate.
    urgent_medical: bool = False


def route(
    conv: ConversationSnapshot,
    messages: Sequence[MessageSnapshot],
    contact: ContactSnapshot,
    now: datetime,
    policy: Policy,
) -> RoutingDecision:
    """Decide queue, priority and tags for ``conv`` given its new ``messages`` (newest last).

    Only inbound messages are evaluated: an agent's reply or internal note quoting "suicide"
    must not raise a crisis. ``now`` (tz-aware) is used only by hour-based rules.
    """
    inbound = [m for m in messages if m.direction == "in"]
    # Routing reads a bounded part of the text (the stored message stays whole): every cost
    # below is then bounded whatever a sender writes.
    text = cap_text("\n".join(m.text for m in inbound if m.text))
    reasons: list[str] = []

    language = conv.language
    if language is None and text.strip():
        language = detect_language(text)
        if language is not None:
            reasons.append(f"language detected: {language}")

    if not inbound:
        kept_queue = conv.queue or policy.default_queue
        kept_priority = conv.priority or policy.default_priority
        reasons.append("no inbound message: nothing to route")
        return RoutingDecision(
            queue=kept_queue,
            priority=kept_priority,
            tags=conv.tags,
            reasons=tuple(reasons),
            language=language,
            crisis=False,
            changed=(kept_queue, kept_priority) != (conv.queue, conv.priority),
        )

    prepared = PreparedText(text)
    tags: list[str] = []
    queue: str | None = None
    priority: str | None = None

    # Warning signs (1b below) are found first: their "idiom" group ("me muero de vergüenza",
    # "this form is suicide", "my boss will kill me if ...") says which words are hyperbole.
    sign_hits = policy.signs.find(text) if policy.signs is not None else []
    idioms = [s for s in sign_hits if s.group == "idiom"]
    # What is left of the text without its idioms: a lexicon phrase must still be there.
    outside: PreparedText | None = PreparedText(without(text, idioms)) if idioms else None

    # 1. Crisis lexicon: every category is checked so all of them end up in the tags.
    crisis = False
    for category, matcher in policy.compiled_crisis:
        hit = matcher.find(prepared)
        if hit is None:
            continue
        if outside is not None and matcher.find(outside) is None:
            cues = "', '".join(i.cue for i in idioms)
            reasons.append(
                f"crisis lexicon ({hit.language}, {category}): {_quote(hit)} only inside "
                f"an idiom ('{cues}'): not counted"
            )
            continue
        crisis = True
        tags.append(category)
        reasons.append(f"crisis lexicon ({hit.language}, {category}): {_quote(hit)}")
    # 1b. Warning signs: concepts that combine (router.decide.signs), crisis and urgent medical.
    # A crisis or clinical sign with a word inside an idiom is not counted (its reason says so);
    # an urgent medical one always is.
    urgent_medical = False
    clinical: list[str] = []
    for sign in sign_hits:
        if sign.group in ("idiom", "front_desk"):
            continue  # read by the lexicon above and by 2d below
        if sign.group in ("crisis", "clinical") and any(sign.overlaps(i) for i in idioms):
            reasons.append(f"{sign.reason()} inside an idiom: not counted")
            continue
        if sign.group == "clinical":
            clinical.append(sign.reason())
            continue
        if sign.group == "crisis":
            crisis = True
        else:
            urgent_medical = True
        tags.append(sign.category)
        reasons.append(sign.reason())
    # 1c. The learned layer, only where nothing above saw a crisis (its reason says so).
    # Both learned layers read the same character n-grams: counted once, on first need.
    # Not when the message holds an idiom: its words are hyperbole the signs recognised, and the
    # model, reading spelling, takes them for a crisis ("I'm going to strangle my brother lol");
    # the signs and the lexicon still read every word outside the idiom.
    grams: Counter[str] | None = None
    if not crisis and policy.crisis.learned_model and not idioms:
        model = default_crisis_model()
        grams = ngram_counts(text)
        p = model.probability(grams)
        if p >= model.threshold:
            crisis = True
            tags.append("learned")
            reasons.append(f"learned model (char n-grams): crisis p={p:.2f}")
    if crisis:
        queue, priority = policy.crisis.queue, policy.crisis.priority
        tags[:0] = policy.crisis.tags
        reasons.append(f"crisis → {queue}, {priority}")
    if urgent_medical:
        tags[:0] = policy.urgent_medical.tags
        if not crisis:
            queue = policy.urgent_medical.queue or policy.crisis.queue
            priority = policy.urgent_medical.priority
            reasons.append(f"urgent medical → {queue}, {priority}")

    # 2. Rules: still evaluated under a crisis, for their tags (callback, vip, ...). Their
    # keywords read the text without its idioms ("nearly had a heart attack when I saw the
    # bill" is not a heart attack).
    words = outside if outside is not None else prepared
    front_desk_queue: str | None = None  # the first front-desk queue a rule named
    for index, rule in enumerate(policy.rules):
        why = _rule_match(rule, index, policy, words, inbound, conv, contact, language, now)
        if why is None:
            continue
        effects: list[str] = []
        desk_rule = rule.queue is not None and policy.queue(rule.queue).tier == 1
        if desk_rule and front_desk_queue is None:
            front_desk_queue = rule.queue
        if rule.queue is not None and queue is None:
            queue = rule.queue
            effects.append(rule.queue)
        if rule.priority is not None and (
            priority is None or PRIORITY_RANK[rule.priority] > PRIORITY_RANK[priority]
        ):
            priority = rule.priority
            effects.append(f"priority {rule.priority}")
        tags.extend(rule.tags)
        if rule.tags:
            effects.append("tags " + ", ".join(rule.tags))
        reasons.append(f"rule '{rule.name}' matched {why} → {'; '.join(effects) or 'no change'}")

    # 2b. A health question the rules' keywords missed (a drug name, a symptom, a result):
    # to the clinicians, above whatever front-desk rule matched (safety first).
    if clinical and not crisis and not urgent_medical:
        clinical_queue = policy.clinical.queue or policy.crisis.queue
        tags.extend(policy.clinical.tags)
        if queue is None or policy.queue(queue).tier < policy.queue(clinical_queue).tier:
            queue = clinical_queue
            reasons.extend(clinical)
            reasons.append(f"health question → {queue}")

    # 2c. A message no rule placed: the learned "needs a clinician" layer decides, when sure.
    if queue is None and policy.clinical.learned_model:
        model = default_clinical_model()
        p = model.probability(grams if grams is not None else ngram_counts(text))
        if p >= model.threshold:
            queue = policy.clinical.queue or policy.crisis.queue
            tags.extend(policy.clinical.tags)
            reasons.append(f"learned model (char n-grams): health question p={p:.2f} → {queue}")

    # 2d. A request about a health item ("the e-prescription link won't open", "price of the
    # ADHD assessment"): the front desk, when only health words sent it to the clinicians.
    front = [s for s in sign_hits if s.group == "front_desk"]
    if front and not crisis and not urgent_medical and queue is not None:
        desk = front_desk_queue or policy.default_queue
        if policy.queue(queue).tier > policy.queue(desk).tier:
            queue = desk
            reasons.append(f"{front[0].reason()}: a request, not a health question → {queue}")

    # 3. Defaults.
    if queue is None:
        queue = policy.default_queue
        reasons.append(f"default → {queue}")
    if priority is None:
        priority = policy.default_priority
        reasons.append(f"default priority → {priority}")

    # 4. Never moves down.
    queue = _keep_queue(conv.queue, queue, crisis or urgent_medical, policy, reasons)
    if conv.priority in PRIORITY_RANK and PRIORITY_RANK[conv.priority] > PRIORITY_RANK[priority]:
        reasons.append(f"kept priority {conv.priority}: priority never decreases")
        priority = conv.priority

    return RoutingDecision(
        queue=queue,
        priority=priority,
        tags=_unique((*conv.tags, *tags)),
        reasons=tuple(reasons),
        language=language,
        crisis=crisis,
        changed=(queue, priority) != (conv.queue, conv.priority),
        urgent_medical=urgent_medical,
    )


def _keep_queue(
    current: str | None, decided: str, crisis: bool, policy: Policy, reasons: list[str]
) -> str:
    """Apply "never moves down" to the queue: move only to a strictly higher tier.

    Equal tier also keeps the current queue: after a manual transfer to a sibling queue a
    customer's "thanks!" must not bounce the conversation back to the default queue.
    """
    if current is None or current == decided:
        return decided
    try:
        current_tier = policy.queue(current).tier
    except KeyError:
        # A queue the policy no longer knows (renamed, or created by an admin): a human put the
        # conversation there, so keep it; but a crisis must still reach the crisis queue.
        if crisis:
            return decided
        reasons.append(f"kept {current}: not in the policy, left as a human routed it")
        return current
    decided_tier = policy.queue(decided).tier
    if decided_tier > current_tier:
        return decided
    why = "never moves down" if current_tier > decided_tier else "no move within the same tier"
    reasons.append(f"kept {current}: {why}")
    return current


def _rule_match(
    rule: Rule,
    index: int,
    policy: Policy,
    text: PreparedText,
    inbound: Sequence[MessageSnapshot],
    conv: ConversationSnapshot,
    contact: ContactSnapshot,
    language: str | None,
    now: datetime,
) -> str | None:
    """Why ``rule`` matches (for the reasons), or None. Conditions are ANDed."""
    m = rule.match
    why: list[str] = []
    if m.channels is not None:
        channels = {msg.channel for msg in inbound} or {conv.channel}
        hit_channels = sorted(channels & set(m.channels))
        if not hit_channels:
            return None
        why.append(f"channel {hit_channels[0]}")
    if m.kinds is not None:
        kinds = sorted({msg.kind for msg in inbound} & set(m.kinds))
        if not kinds:
            return None
        why.append(f"kind {kinds[0]}")
    if m.call_status is not None:
        statuses = sorted(
            {str(msg.call_status) for msg in inbound if msg.kind == "call"} & set(m.call_status)
        )
        if not statuses:
            return None
        why.append(f"call status {statuses[0]}")
    if m.languages is not None:
        if language not in m.languages:
            return None
        why.append(f"language {language}")
    for key, expected in m.contact.items():
        if not _same(contact.attributes.get(key), expected):
            return None
        why.append(f"contact {key}={expected!r}")
    if m.within_hours is not None:
        if not is_open(policy.calendars[m.within_hours], now):
            return None
        why.append(f"within {m.within_hours} hours")
    if m.outside_hours is not None:
        if is_open(policy.calendars[m.outside_hours], now):
            return None
        why.append(f"outside {m.outside_hours} hours")
    matcher = policy.compiled_rule(index)
    if not matcher.empty:
        hit = matcher.find(text)
        if hit is None:
            return None
        why.append(f"{_quote(hit)} ({hit.language})")
    return ", ".join(why)


def _same(actual: Any, expected: Any) -> bool:
    # True == 1 in Python; an attribute {"vip": 1} should not satisfy `vip = true` by accident.
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected
    return bool(actual == expected)


def _quote(hit: Hit) -> str:
    if hit.kind == "regex":
        return f"regex on '{hit.detail}'"
    if " " not in hit.detail:
        kind = "prefix" if hit.detail.endswith("*") else "stem"
        return f"{kind} '{hit.detail}'"
    return f"'{hit.source}'"


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
