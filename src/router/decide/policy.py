"""The routing and SLA policy: pydantic models of the TOML file, its loader and its texts.

``load_policy()`` reads TOML, validates it (unknown keys, durations, regexes, phrase patterns,
cross references between rules, queues and SLA tables) and returns an immutable ``Policy``.
Every error is a ``PolicyError`` naming the file, the line (best effort) and the key path, because
whoever edits the file at 3 a.m. needs to know exactly what to fix.
"""

from __future__ import annotations

import json
import re
import string
import tomllib
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from models.vocab import PRIORITIES, Priority
from router.decide.signs import SignError, SignModel, default_model, load_model
from router.decide.sla import BusinessCalendar, SlaTarget
from router.decide.textnorm import (
    STEM_LANGUAGES,
    PatternError,
    TextMatcher,
    compile_phrase,
    normalise_regex,
)

DEFAULT_POLICY_PATH = Path(__file__).with_name("default_policy.toml")
FALLBACK_LANGUAGE = "en"

_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_NAME_RE = r"^[a-z][a-z0-9_]*$"
_STRING_RE = re.compile(r""""(?:[^"\\]|\\.)*"|'[^']*'""")


class PolicyError(ValueError):
    """The policy file is unreadable or invalid; the message names file, line and key path."""


def parse_duration(value: Any) -> int:
    """Seconds from ``"90s"``, ``"15m"``, ``"4h"``, ``"2d"``, ``"1w"`` or an integer of seconds.

    Compound forms ("1h30m") are rejected on purpose: "90m" is just as clear and leaves no doubt.
    """
    if isinstance(value, bool):  # bool is an int subclass; `true` is never a duration
        raise ValueError("expected a duration like '15m' or integer seconds, got a boolean")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"duration must be positive, got {value}")
        return value
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m is None:
            raise ValueError(f"bad duration {value!r}, expected e.g. '90s', '15m', '4h', '2d'")
        seconds = int(m.group(1)) * _UNIT_S[m.group(2)]
        if seconds <= 0:
            raise ValueError(f"duration must be positive, got {value!r}")
        return seconds
    raise ValueError(f"expected a duration like '15m' or integer seconds, got {value!r}")


Duration = Annotated[int, BeforeValidator(parse_duration)]
Name = Annotated[str, Field(pattern=_NAME_RE)]


class _Model(BaseModel):
    # forbid: a misspelt key ("priorty") must fail loudly, not be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class _RefError(ValueError):
    """A cross-reference error raised inside a validator, carrying its own key path."""

    def __init__(self, loc: tuple[str | int, ...], msg: str) -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg


def _check_languages(v: Mapping[str, Any]) -> None:
    for lang in v:
        if lang not in STEM_LANGUAGES:
            raise ValueError(f"unsupported language {lang!r}, expected one of {STEM_LANGUAGES}")


class QueuePolicy(_Model):
    """A queue: tier 1 is the front desk, tier 2 practising clinicians."""

    name: Name
    title: str
    tier: Literal[1, 2]
    languages: list[str]
    skills: list[str] = []
    # In TOML either an inline table or the name of a [calendars.<name>] table; None = 24/7.
    calendar: BusinessCalendar | None = None


class SlaSpec(_Model):
    """SLA targets of one queue x priority as written in TOML (durations)."""

    first_response: Duration
    next_response: Duration
    resolution: Duration
    warn_at: float = Field(default=0.8, gt=0, lt=1)

    def target(self) -> SlaTarget:
        """The ``SlaTarget`` (seconds) consumed by ``router.decide.sla``."""
        return SlaTarget(
            first_response_s=self.first_response,
            next_response_s=self.next_response,
            resolution_s=self.resolution,
            warn_at=self.warn_at,
        )


class BreachAction(_Model):
    """What to do when an SLA target is breached."""

    escalate_to: str | None = None
    raise_priority: bool = False
    alert_supervisor: bool = True


class BreachPolicy(BreachAction):
    """Per-queue breach action, optionally refined per priority (unset fields are inherited)."""

    by_priority: dict[Priority, BreachAction] = {}

    def resolve(self, priority: str | None) -> BreachAction:
        """The action for ``priority``: the queue's action overlaid with the priority's one."""
        base = BreachAction(
            escalate_to=self.escalate_to,
            raise_priority=self.raise_priority,
            alert_supervisor=self.alert_supervisor,
        )
        override = next((a for p, a in self.by_priority.items() if p == priority), None)
        if override is None:
            return base
        return base.model_copy(update={k: getattr(override, k) for k in override.model_fields_set})


class CrisisPolicy(_Model):
    """Crisis lexicon: phrases/regexes per category and language; any match is a crisis."""

    queue: str = "second_line"
    priority: Priority = "urgent"
    tags: list[str] = ["crisis"]
    alert_supervisor: bool = True
    # category (self_harm, overdose, abuse, violence...) -> language -> phrase patterns
    lexicon: dict[Name, dict[str, list[str]]] = {}
    regex: dict[Name, dict[str, list[str]]] = {}
    # The built-in warning-sign model (router.decide.signs): concepts that combine, es/ru/en.
    # Off only for a policy that wants its own lexicon alone.
    warning_signs: bool = True
    # More words for the model: language -> concept -> terms (router/sign_data/<lang>.toml syntax).
    # A language the model lacks (pt, fr, ...) is added this way.
    concepts: dict[str, dict[str, list[str]]] = {}
    # The learned layer (router.decide.learned): char n-gram logistic regression trained at build
    # time on the tuning corpus; flags a crisis the signs missed when it is confident.
    learned_model: bool = True

    @field_validator("lexicon", "regex")
    @classmethod
    def _langs(cls, v: dict[str, dict[str, list[str]]]) -> dict[str, dict[str, list[str]]]:
        for per_lang in v.values():
            _check_languages(per_lang)
        return v


class UrgentMedicalPolicy(_Model):
    """Urgent medical red flags (stroke, anaphylaxis, ...): where they go. The acknowledgement
    tells the person to call the emergency number now, never a wait."""

    queue: str | None = None  # None: the crisis queue
    priority: Priority = "urgent"
    tags: list[str] = ["urgent_medical"]


class ClinicalSignsPolicy(_Model):
    """Health questions found by the warning-sign model's clinical concepts (medication,
    symptoms, results, mental health): the clinicians' queue, unless a crisis or a red flag
    already decided."""

    queue: str | None = None  # None: the crisis queue
    tags: list[str] = ["clinical"]
    # The learned "needs a clinician" layer (router.decide.learned), for a message no rule placed.
    learned_model: bool = True


class RuleMatch(_Model):
    """Conditions of a rule; all given conditions must hold (AND), lists are alternatives (OR)."""

    channels: list[str] | None = None
    kinds: list[Literal["text", "call"]] | None = None
    languages: list[str] | None = None  # the conversation's (or detected) language
    keywords: dict[str, list[str]] = {}  # language -> phrase patterns (see router.decide.textnorm)
    regex: dict[str, list[str]] = {}  # language -> regexes on normalised text
    contact: dict[str, str | int | float | bool] = {}  # attribute equality
    call_status: list[str] | None = None  # answered | missed | busy | failed | voicemail
    within_hours: str | None = None  # name of a [calendars.<name>] table
    outside_hours: str | None = None

    @field_validator("keywords", "regex")
    @classmethod
    def _langs(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        _check_languages(v)
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> RuleMatch:
        if not self.model_fields_set:
            raise ValueError("a rule needs at least one condition (use the defaults for 'else')")
        return self


class Rule(_Model):
    """One routing rule: conditions, then queue and/or priority and/or tags."""

    name: str
    match: RuleMatch
    queue: str | None = None
    priority: Priority | None = None
    tags: list[str] = []

    @model_validator(mode="after")
    def _has_effect(self) -> Rule:
        if self.queue is None and self.priority is None and not self.tags:
            raise ValueError(f"rule {self.name!r} sets neither queue, priority nor tags")
        return self


class LanguageTexts(_Model):
    """Customer-facing texts in one language. Placeholders: {wait}, {links} and {number}."""

    greeting: str
    ack: str
    ack_surge: str
    crisis_ack: str
    # Sent at once for an urgent medical red flag, instead of any wait estimate; {number} is
    # the emergency number of the person's region (see [emergency]). Unset: the "en" text.
    urgent_medical_ack: str | None = None

    @model_validator(mode="after")
    def _placeholders(self) -> LanguageTexts:
        allowed = {"greeting": set(), "ack": {"wait"}, "ack_surge": {"wait", "links"}}
        allowed["crisis_ack"] = set()
        allowed["urgent_medical_ack"] = {"number"}
        for field_name, ok in allowed.items():
            text = getattr(self, field_name)
            if text is None:
                continue
            try:
                used = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
            except ValueError as exc:
                raise _RefError((field_name,), f"bad template: {exc}") from exc
            if used - ok:
                raise _RefError((field_name,), f"unknown placeholder(s) {sorted(used - ok)}")
        return self


class SelfServiceLink(_Model):
    """A self-service link offered when the queues are busier than usual."""

    url: str
    title: dict[str, str]  # language -> title; "en" required as the fallback

    @field_validator("title")
    @classmethod
    def _has_en(cls, v: dict[str, str]) -> dict[str, str]:
        if FALLBACK_LANGUAGE not in v:
            raise ValueError("title needs an 'en' entry (the fallback language)")
        return v


@lru_cache(maxsize=8)
def _sign_model(extra_json: str) -> SignModel:
    # Keyed by the policy's extra concepts: tests and reloads build many equal policies, and
    # the model (pymorphy3 paradigms) costs about a second to build.
    extra = json.loads(extra_json)
    return load_model(extra=extra) if extra else default_model()


class PageTarget(_Model):
    """Where the on-call supervisor is paged: a configured channel and its recipient."""

    # Any configured channel that carries text to a person: an e-mail address (email, via
    # CARELINE_SMTP_URL) or a Telegram chat id (telegram, via the bot).
    channel: Literal["email", "telegram"]
    to: str = Field(min_length=1, max_length=320)


class EscalationPolicy(_Model):
    """How crisis and urgent medical conversations are made to reach a clinician."""

    # No clinician reply by then: offered to every online clinician, and the on-call paged.
    unanswered_after: Duration = 300
    # Auto-assign to a supervisor when no clinician can take the work (off: supervisors are
    # alerted and paged, never silently made the worker of last resort).
    supervisor_last_resort: bool = False
    # Page at once when a crisis arrives and no clinician is online.
    page_when_no_clinician: bool = True
    pages: list[PageTarget] = []


class SatisfactionPolicy(_Model):
    """The 1–5 rating request sent when a conversation is resolved (once per conversation,
    on the channel it replies on)."""

    # Ask after a crisis or urgent medical conversation too (off: a person in crisis is not
    # asked to rate the help).
    ask_after_crisis: bool = False


class EmergencyNumbers(_Model):
    """Emergency number told to a person with an urgent medical red flag: by region (ISO
    3166 alpha-2, from their phone number or a `country` contact attribute), else by their
    language, else ``default``."""

    default: str = "112"
    regions: dict[str, str] = {}
    languages: dict[str, str] = {}

    @field_validator("regions")
    @classmethod
    def _upper(cls, v: dict[str, str]) -> dict[str, str]:
        for region in v:
            if not re.fullmatch(r"[A-Z]{2}", region):
                raise ValueError(f"region {region!r} is not an ISO 3166 alpha-2 code (e.g. ES)")
        return v


DEFAULT_URGENT_MEDICAL_ACK = (
    "This sounds like it could be a medical emergency. Please call {number} now, or go to the "
    "nearest emergency department. Do not wait for our reply."
)


class _Compiled:
    """Matchers compiled once per policy (phrases stemmed, regexes compiled)."""

    def __init__(
        self,
        crisis: list[tuple[str, TextMatcher]],
        rules: list[TextMatcher],
        signs: SignModel | None,
    ) -> None:
        self.crisis = crisis
        self.rules = rules
        self.signs = signs


class Policy(_Model):
    """The whole routing and SLA policy. Immutable; build with ``load_policy``."""

    version: Literal[1] = 1
    default_queue: str = "first_line"
    default_priority: Priority = "normal"
    reopen_window_s: Duration = Field(
        default=7 * 86400, validation_alias=AliasChoices("reopen_window", "reopen_window_s")
    )
    queues: list[QueuePolicy]
    calendars: dict[Name, BusinessCalendar] = {}
    sla: dict[str, dict[str, SlaSpec]]
    breach: dict[str, BreachPolicy] = {}
    crisis: CrisisPolicy
    urgent_medical: UrgentMedicalPolicy = UrgentMedicalPolicy()
    clinical: ClinicalSignsPolicy = ClinicalSignsPolicy()
    rules: list[Rule] = []
    messages: dict[str, LanguageTexts]
    self_service: list[SelfServiceLink] = []
    escalation: EscalationPolicy = EscalationPolicy()
    emergency: EmergencyNumbers = EmergencyNumbers()
    satisfaction: SatisfactionPolicy = SatisfactionPolicy()
    # What patients see as the author of an agent's reply, by the agent's e-mail. An agent's
    # internal display name ("Lucía (bookings)") is never shown; without an entry here the
    # reply reads as from the team.
    public_names: dict[str, str] = {}

    _compiled: _Compiled = PrivateAttr()
    _sla_targets: dict[tuple[str, str], SlaTarget] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _resolve_calendar_names(cls, data: Any) -> Any:
        # Queues may name a shared [calendars.x] table instead of repeating it inline.
        if not isinstance(data, dict):
            return data
        calendars = data.get("calendars") or {}
        queues = data.get("queues")
        if not isinstance(queues, list):
            return data
        resolved = []
        for i, q in enumerate(queues):
            if isinstance(q, dict) and isinstance(q.get("calendar"), str):
                name = q["calendar"]
                if name not in calendars:
                    raise _RefError(("queues", i, "calendar"), f"unknown calendar {name!r}")
                q = {**q, "calendar": calendars[name]}
            resolved.append(q)
        return {**data, "queues": resolved}

    @model_validator(mode="after")
    def _cross_references(self) -> Policy:
        names = [q.name for q in self.queues]
        known = set(names)
        known_list = ", ".join(names)

        def need_queue(loc: tuple[str | int, ...], name: str | None) -> None:
            if name is not None and name not in known:
                raise _RefError(loc, f"unknown queue {name!r} (known: {known_list})")

        if not names:
            raise _RefError(("queues",), "at least one queue is required")
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise _RefError(("queues",), f"duplicate queue names {sorted(dupes)}")
        need_queue(("default_queue",), self.default_queue)
        need_queue(("crisis", "queue"), self.crisis.queue)
        for q in names:
            if q not in self.sla:
                raise _RefError(("sla",), f"no SLA targets for queue {q!r}")
        for q, per_priority in self.sla.items():
            need_queue(("sla", q), q)
            keys = set(per_priority)
            if keys != set(PRIORITIES):
                missing = [p for p in PRIORITIES if p not in keys]
                extra = sorted(keys - set(PRIORITIES))
                detail = ", ".join(
                    s
                    for s in (
                        f"missing {missing}" if missing else "",
                        f"unknown {extra}" if extra else "",
                    )
                    if s
                )
                raise _RefError(
                    ("sla", q),
                    f"priorities must be exactly low|normal|high|urgent: {detail}",
                )
        for q, bp in self.breach.items():
            need_queue(("breach", q), q)
            need_queue(("breach", q, "escalate_to"), bp.escalate_to)
            for p, action in bp.by_priority.items():
                need_queue(("breach", q, "by_priority", p, "escalate_to"), action.escalate_to)
        for i, rule in enumerate(self.rules):
            need_queue(("rules", i, "queue"), rule.queue)
            for key in ("within_hours", "outside_hours"):
                cal = getattr(rule.match, key)
                if cal is not None and cal not in self.calendars:
                    raise _RefError(("rules", i, "match", key), f"unknown calendar {cal!r}")
        if FALLBACK_LANGUAGE not in self.messages:
            raise _RefError(("messages",), "texts for 'en' (the fallback language) are required")

        crisis = []
        for category in sorted(set(self.crisis.lexicon) | set(self.crisis.regex)):
            crisis.append(
                (
                    category,
                    _compile(
                        ("crisis",),
                        category,
                        self.crisis.lexicon.get(category, {}),
                        self.crisis.regex.get(category, {}),
                    ),
                )
            )
        rules = [
            _compile(("rules", i, "match"), None, r.match.keywords, r.match.regex)
            for i, r in enumerate(self.rules)
        ]
        signs: SignModel | None = None
        if self.crisis.warning_signs:
            try:
                signs = _sign_model(json.dumps(self.crisis.concepts, sort_keys=True))
            except SignError as exc:
                raise _RefError(("crisis", "concepts"), str(exc)) from None
        need_queue(("urgent_medical", "queue"), self.urgent_medical.queue)
        need_queue(("clinical", "queue"), self.clinical.queue)
        self._compiled = _Compiled(crisis, rules, signs)
        self._sla_targets = {
            (q, p): spec.target() for q, per in self.sla.items() for p, spec in per.items()
        }
        return self

    # -- lookups -------------------------------------------------------------------------------

    @property
    def compiled_crisis(self) -> list[tuple[str, TextMatcher]]:
        """(category, matcher) pairs of the crisis lexicon, for ``router.decide.rules``."""
        return self._compiled.crisis

    @property
    def signs(self) -> SignModel | None:
        """The warning-sign model (None when the policy turns it off), for `decide.rules`."""
        return self._compiled.signs

    def compiled_rule(self, index: int) -> TextMatcher:
        """The compiled keyword/regex matcher of ``rules[index]``, for ``router.decide.rules``."""
        return self._compiled.rules[index]

    def queue(self, name: str) -> QueuePolicy:
        """The queue called ``name``; KeyError if the policy has none."""
        for q in self.queues:
            if q.name == name:
                return q
        raise KeyError(name)

    def sla_for(self, queue: str, priority: str) -> SlaTarget:
        """SLA targets of ``queue`` at ``priority``; KeyError on an unknown queue or priority."""
        return self._sla_targets[(queue, priority)]

    def breach_action(self, queue: str, priority: str | None = None) -> BreachAction:
        """What to do on an SLA breach in ``queue`` (refined for ``priority`` when given).

        KeyError on an unknown queue; a known queue without a [breach] table only alerts.
        """
        self.queue(queue)
        bp = self.breach.get(queue)
        if bp is None:
            return BreachAction()
        return bp.resolve(priority)

    # -- customer-facing texts -----------------------------------------------------------------

    def _texts(self, language: str | None) -> tuple[str, LanguageTexts]:
        lang = (language or FALLBACK_LANGUAGE).lower().replace("_", "-").split("-")[0]
        if lang not in self.messages:
            lang = FALLBACK_LANGUAGE
        return lang, self.messages[lang]

    def ack_text(self, language: str | None, wait_minutes: int, surge: bool) -> str:
        """Auto-acknowledgement with the expected wait; the surge variant lists self-service."""
        lang, texts = self._texts(language)
        wait = format_wait(lang, wait_minutes)
        if not surge:
            return texts.ack.format(wait=wait)
        links = "\n".join(
            f"• {link.title.get(lang, link.title[FALLBACK_LANGUAGE])}: {link.url}"
            for link in self.self_service
        )
        return texts.ack_surge.format(wait=wait, links=links).rstrip()

    def crisis_ack_text(self, language: str | None) -> str:
        """Immediate safe acknowledgement for a crisis message."""
        return self._texts(language)[1].crisis_ack

    def urgent_medical_ack_text(self, language: str | None, number: str) -> str:
        """Immediate "call the emergency number now" message for an urgent medical flag."""
        text = self._texts(language)[1].urgent_medical_ack
        if text is None:
            text = self.messages[FALLBACK_LANGUAGE].urgent_medical_ack or DEFAULT_URGENT_MEDICAL_ACK
        return text.format(number=number)

    def emergency_number(self, region: str | None, language: str | None) -> str:
        """The emergency number by region, else by language, else the default."""
        e = self.emergency
        if region and region.upper() in e.regions:
            return e.regions[region.upper()]
        lang = (language or "").lower().replace("_", "-").split("-")[0]
        return e.languages.get(lang, e.default)

    def public_agent_name(self, email: str | None) -> str | None:
        """The name patients may see for an agent, or None (shown as the team)."""
        if not email:
            return None
        names = {k.lower(): v for k, v in self.public_names.items()}
        return names.get(email.lower())

    def greeting_text(self, language: str | None) -> str:
        """Greeting for a new conversation."""
        return self._texts(language)[1].greeting


def _compile(
    loc: tuple[str | int, ...],
    category: str | None,
    phrases: dict[str, list[str]],
    regexes: dict[str, list[str]],
) -> TextMatcher:
    # Compile item by item so an error points at the exact entry of the file.
    phrase_key = "keywords" if category is None else "lexicon"
    cat: tuple[str, ...] = () if category is None else (category,)
    compiled_phrases = []
    compiled_rx = []
    for kind, table in ((phrase_key, phrases), ("regex", regexes)):
        for lang, items in table.items():
            for j, item in enumerate(items):
                try:
                    if kind == "regex":
                        rx = re.compile(normalise_regex(item), re.IGNORECASE)
                        compiled_rx.append((lang, item, rx))
                    else:
                        compiled_phrases.append(compile_phrase(item, lang))
                except (PatternError, re.error) as exc:
                    raise _RefError((*loc, kind, *cat, lang, j), f"bad pattern: {exc}") from exc
    return TextMatcher(tuple(compiled_phrases), tuple(compiled_rx))


# -- wait formatting ---------------------------------------------------------------------------

_UNITS: dict[str, dict[str, tuple[str, ...]]] = {
    # English/Spanish: (singular, plural). Russian: (one, few, many) in the accusative after
    # "через" ("через 1 минуту / 3 минуты / 5 минут").
    "en": {"min": ("minute", "minutes"), "h": ("hour", "hours"), "d": ("day", "days")},
    "es": {"min": ("minuto", "minutos"), "h": ("hora", "horas"), "d": ("día", "días")},
    "ru": {
        "min": ("минуту", "минуты", "минут"),
        "h": ("час", "часа", "часов"),
        "d": ("день", "дня", "дней"),
    },
}
_FEW = {"en": "a couple of minutes", "es": "un par de minutos", "ru": "пару минут"}


def _ru_form(n: int, forms: tuple[str, ...]) -> str:
    if n % 10 == 1 and n % 100 != 11:
        return forms[0]
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return forms[1]
    return forms[2]


def format_wait(language: str, minutes: int) -> str:
    """Human expected wait: "a couple of minutes", "15 minutes", "2 hours", "3 дня".

    Rounded so it reads like a person's estimate, not a countdown: to 5 minutes above 10,
    to whole hours from one hour, to whole days from a day.
    """
    lang = language if language in _UNITS else FALLBACK_LANGUAGE
    if minutes <= 2:
        return _FEW[lang]
    if minutes < 60:
        n, unit = (minutes if minutes <= 10 else min(55, 5 * round(minutes / 5))), "min"
    elif minutes < 24 * 60:
        n, unit = max(1, round(minutes / 60)), "h"
    else:
        n, unit = max(1, round(minutes / (24 * 60))), "d"
    forms = _UNITS[lang][unit]
    word = _ru_form(n, forms) if lang == "ru" else forms[0 if n == 1 else 1]
    return f"{n} {word}"


# -- loading -----------------------------------------------------------------------------------


def load_policy(path: str | Path | None = None) -> Policy:
    """Load and validate a policy file (None: the packaged ``default_policy.toml``).

    Raises ``PolicyError("<file>:<line>: <key.path>: <problem>")``.
    """
    src_path = DEFAULT_POLICY_PATH if path is None else Path(path)
    try:
        source = src_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{src_path}: cannot read policy: {exc}") from exc
    return parse_policy(source, str(src_path))


def parse_policy(source: str, filename: str = "<policy>") -> Policy:
    """Validate policy TOML text; see ``load_policy``."""
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already says "(at line N, column M)".
        raise PolicyError(f"{filename}: TOML syntax error: {exc}") from exc
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_format_errors(exc, source, filename)) from None
    except _RefError as exc:  # raised by a mode="before" validator, outside pydantic's wrapping
        raise PolicyError(_format_one(exc.loc, exc.msg, source, filename)) from None


def _format_errors(exc: ValidationError, source: str, filename: str) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc: tuple[str | int, ...] = tuple(err["loc"])
        msg = err["msg"]
        inner = (err.get("ctx") or {}).get("error")
        if isinstance(inner, _RefError):
            loc = (*loc, *inner.loc)
            msg = inner.msg
        lines.append(_format_one(loc, msg, source, filename))
    return "\n".join(lines)


def _format_one(loc: Sequence[str | int], msg: str, source: str, filename: str) -> str:
    path = _dotted(loc)
    line = find_line(source, loc)
    where = f"{filename}:{line}" if line is not None else filename
    return f"{where}: {path or '<root>'}: {msg}"


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def find_line(source: str, loc: Sequence[str | int]) -> int | None:
    """Best-effort 1-based line of the key path ``loc`` in TOML ``source``.

    tomllib keeps no positions, so walk the path through the text: each key is searched as a
    table header or ``key =`` from the line where its parent was found; an index ``[n]`` after
    an array of tables ``[[name]]`` jumps to its n-th header, after an inline array to its n-th
    item line. Returns the deepest line found (None if not even the first key is found).
    """
    lines = source.splitlines()
    pos = 0
    found: int | None = None
    prefix: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, int):
            prev = ".".join(prefix)
            headers = [
                n
                for n, text in enumerate(lines)
                if re.match(rf"^\s*\[\[\s*{re.escape(prev)}\s*\]\]", text)
            ]
            if headers and part < len(headers):
                pos = found = headers[part]
            elif found is not None and "[" in lines[found]:
                # Inline array, possibly over several lines: count string items line by line.
                seen = 0
                for n in range(found, len(lines)):
                    text = lines[n].split("=", 1)[1] if n == found else lines[n]
                    seen += len(_STRING_RE.findall(text.split("#", 1)[0]))
                    if seen > part:
                        pos = found = n
                        break
                    if "]" in _STRING_RE.sub("", text):
                        break
            continue
        prefix.append(str(part))
        key = re.escape(str(part))
        pattern = re.compile(
            rf"""^\s*(\[\[?\s*([\w."-]+\.)?"?{key}"?\s*[\].]"""  # header ending in the key
            rf"""|([\w."-]+\.)?"?{key}"?\s*[=.])"""  # key = / dotted.key =
            rf"""|[{{,]\s*"?{key}"?\s*="""  # inside an inline table
        )
        for n in range(pos, len(lines)):
            if pattern.search(lines[n]):
                pos = found = n
                break
        else:
            if i == 0:
                return None
            break
    return None if found is None else found + 1
