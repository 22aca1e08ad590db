"""Policy file: loading, validation errors with line numbers, lookups and texts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from router.decide.policy import (
    DEFAULT_POLICY_PATH,
    BreachAction,
    Policy,
    PolicyError,
    find_line,
    format_wait,
    load_policy,
    parse_duration,
    parse_policy,
)
from router.decide.sla import SlaTarget


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


@pytest.fixture(scope="module")
def default_source() -> str:
    return DEFAULT_POLICY_PATH.read_text(encoding="utf-8")


def test_default_policy_loads(policy: Policy) -> None:
    assert [q.name for q in policy.queues] == ["first_line", "second_line"]
    assert policy.queue("second_line").tier == 2
    assert policy.reopen_window_s == 7 * 86400
    assert policy.crisis.queue == "second_line"
    assert policy.crisis.priority == "urgent"


def test_load_by_path_equals_default(policy: Policy, tmp_path: Path) -> None:
    copy = tmp_path / "p.toml"
    copy.write_text(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_policy(str(copy)).model_dump() == policy.model_dump()


def test_unknown_queue_raises_key_error(policy: Policy) -> None:
    with pytest.raises(KeyError):
        policy.queue("third_line")
    with pytest.raises(KeyError):
        policy.sla_for("third_line", "normal")
    with pytest.raises(KeyError):
        policy.breach_action("third_line")


@pytest.mark.parametrize(
    ("queue", "priority", "first", "next_", "resolution"),
    [
        ("first_line", "normal", 15 * 60, 30 * 60, 24 * 3600),
        ("first_line", "urgent", 5 * 60, 10 * 60, 4 * 3600),
        ("second_line", "urgent", 5 * 60, 10 * 60, 4 * 3600),
        ("second_line", "normal", 3600, 2 * 3600, 48 * 3600),
    ],
)
def test_sla_for(
    policy: Policy, queue: str, priority: str, first: int, next_: int, resolution: int
) -> None:
    target = policy.sla_for(queue, priority)
    assert isinstance(target, SlaTarget)
    assert (target.first_response_s, target.next_response_s, target.resolution_s) == (
        first,
        next_,
        resolution,
    )


@pytest.mark.parametrize(
    ("queue", "priority", "expected"),
    [
        ("first_line", None, BreachAction(raise_priority=True, alert_supervisor=True)),
        ("first_line", "normal", BreachAction(raise_priority=True, alert_supervisor=True)),
        ("first_line", "low", BreachAction(raise_priority=True, alert_supervisor=False)),
        (
            "first_line",
            "urgent",
            BreachAction(escalate_to="second_line", raise_priority=True, alert_supervisor=True),
        ),
        ("second_line", "urgent", BreachAction(raise_priority=True, alert_supervisor=True)),
    ],
)
def test_breach_action(
    policy: Policy, queue: str, priority: str | None, expected: BreachAction
) -> None:
    assert policy.breach_action(queue, priority) == expected


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("90s", 90), ("15m", 900), ("4h", 14400), ("2d", 172800), ("1w", 604800), (300, 300)],
)
def test_parse_duration(raw: str | int, seconds: int) -> None:
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", ["15", "1h30m", "-5m", "0m", 0, -1, True, 1.5, "soon"])
def test_parse_duration_rejects(raw: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(raw)


# -- invalid files: the message names the key path and the line --------------------------------


def _broken(source: str, old: str, new: str) -> str:
    assert old in source, old
    return source.replace(old, new, 1)


def _line_of(source: str, needle: str, occurrence: int = 1) -> int:
    hits = [n for n, line in enumerate(source.splitlines(), 1) if needle in line]
    return hits[occurrence - 1]


@pytest.mark.parametrize(
    ("old", "new", "key_path", "needle", "occurrence", "problem"),
    [
        (
            'name = "clinical"\nqueue = "second_line"',
            'name = "clinical"\nqueue = "third_line"',
            "rules[1].queue",
            'queue = "third_line"',
            1,
            "unknown queue 'third_line'",
        ),
        (
            '[sla.first_line.normal]\nfirst_response = "15m"',
            '[sla.first_line.normal]\nfirst_response = "15 minutes"',
            "sla.first_line.normal.first_response",
            '"15 minutes"',
            1,
            "bad duration",
        ),
        (
            "[sla.second_line.high]",
            "[sla.second_line.hihg]",
            "sla.second_line",
            "[sla.second_line.low]",
            1,
            "missing ['high'], unknown ['hihg']",
        ),
        (
            'name = "vip"\npriority = "high"',
            'name = "vip"\npriority = "critical"',
            "rules[7].priority",
            'priority = "critical"',
            1,
            "Input should be 'low', 'normal', 'high' or 'urgent'",
        ),
        (
            'name = "vip"\npriority = "high"',
            'name = "vip"\npriorty = "high"',
            "rules[7].priorty",
            'priorty = "high"',
            1,
            "Extra inputs are not permitted",
        ),
        (
            '[breach.first_line.by_priority.urgent]\nescalate_to = "second_line"',
            '[breach.first_line.by_priority.urgent]\nescalate_to = "clinic"',
            "breach.first_line.by_priority.urgent.escalate_to",
            'escalate_to = "clinic"',
            1,
            "unknown queue 'clinic'",
        ),
        (
            "en = ['\\b(fever|temperature|temp)",
            "en = ['\\b((fever",
            "rules[0].match.regex.en[0]",
            "en = ['\\b((fever",
            1,
            "bad pattern",
        ),
        (
            '"suicid*", "kill myself"',
            '"suicid*", "уб", "kill myself"',
            "crisis.lexicon.self_harm.en[1]",
            '"suicid*", "уб"',
            1,
            "too short",
        ),
        (
            'queue = "second_line"\npriority = "urgent"',
            'queue = "icu"\npriority = "urgent"',
            "crisis.queue",
            'queue = "icu"',
            1,
            "unknown queue 'icu'",
        ),
        (
            "tier = 2",
            "tier = 3",
            "queues[1].tier",
            "tier = 3",
            1,
            "Input should be 1 or 2",
        ),
        (
            "ack = \"Thanks for your message. We've",
            "ack = \"Thanks {name}, for your message. We've",
            "messages.en.ack",
            'ack = "Thanks {name}',
            1,
            "unknown placeholder",
        ),
    ],
)
def test_invalid_policy_names_key_and_line(
    default_source: str,
    old: str,
    new: str,
    key_path: str,
    needle: str,
    occurrence: int,
    problem: str,
) -> None:
    source = _broken(default_source, old, new)
    with pytest.raises(PolicyError) as info:
        parse_policy(source, "policy.toml")
    message = str(info.value)
    assert f": {key_path}: " in message
    assert problem in message
    assert f"policy.toml:{_line_of(source, needle, occurrence)}:" in message


def test_toml_syntax_error_has_line(default_source: str) -> None:
    source = _broken(default_source, 'title = "Front desk"', 'title = "Front desk')
    with pytest.raises(PolicyError, match=r"line \d+"):
        parse_policy(source, "policy.toml")


def test_missing_file() -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy("/nonexistent/policy.toml")


def test_sla_required_for_every_queue(default_source: str) -> None:
    source = default_source + '\n[[queues]]\nname = "billing"\ntitle = "Billing"\ntier = 1\n'
    source += 'languages = ["en"]\n'
    with pytest.raises(PolicyError, match="no SLA targets for queue 'billing'"):
        parse_policy(source)


def test_queue_calendar_by_name(default_source: str) -> None:
    source = default_source.replace(
        'title = "Front desk"', 'title = "Front desk"\ncalendar = "office"', 1
    )
    source += (
        '\n[calendars.office]\ntimezone = "Europe/Madrid"\nweekly = { mon = ["09:00-17:00"] }\n'
    )
    cal = parse_policy(source).queue("first_line").calendar
    assert cal is not None
    assert cal.timezone == "Europe/Madrid"
    assert cal.weekly == {"mon": ["09:00-17:00"]}


def test_find_line_best_effort() -> None:
    src = '[[rules]]\nname = "a"\n[[rules]]\nname = "b"\nqueue = "x"\n[sla.q.normal]\nwarn_at = 2\n'
    assert find_line(src, ("rules", 1, "queue")) == 5
    assert find_line(src, ("rules", 0, "name")) == 2
    assert find_line(src, ("sla", "q", "normal", "warn_at")) == 7
    assert find_line(src, ("nowhere",)) is None
    arr = '[x]\na = [\n  "one", "two",\n  "three",\n]\n'
    assert find_line(arr, ("x", "a", 1)) == 3
    assert find_line(arr, ("x", "a", 2)) == 4


# -- texts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "minutes", "expected"),
    [
        ("en", 1, "a couple of minutes"),
        ("en", 7, "7 minutes"),
        ("en", 23, "25 minutes"),
        ("en", 60, "1 hour"),
        ("en", 150, "2 hours"),  # round half to even: an estimate, not a promise
        ("en", 3000, "2 days"),
        ("es", 1, "un par de minutos"),
        ("es", 60, "1 hora"),
        ("es", 1440, "1 día"),
        ("ru", 1, "пару минут"),
        ("ru", 21, "20 минут"),
        ("ru", 3, "3 минуты"),
        ("ru", 5, "5 минут"),
        ("ru", 60, "1 час"),
        ("ru", 180, "3 часа"),
        ("ru", 660, "11 часов"),
        ("ru", 1260, "21 час"),
        ("ru", 2880, "2 дня"),
        ("de", 30, "30 minutes"),  # unsupported language → English units
    ],
)
def test_format_wait(language: str, minutes: int, expected: str) -> None:
    assert format_wait(language, minutes) == expected


@pytest.mark.parametrize(
    ("language", "expected_lang_word"),
    [("es", "aproximadamente"), ("es-MX", "aproximadamente"), ("ru", "примерно"), ("en", "about")],
)
def test_ack_text_language(policy: Policy, language: str, expected_lang_word: str) -> None:
    text = policy.ack_text(language, 15, surge=False)
    assert expected_lang_word in text
    assert "15" in text


@pytest.mark.parametrize("language", [None, "pt", "zz"])
def test_ack_text_falls_back_to_english(policy: Policy, language: str | None) -> None:
    assert policy.ack_text(language, 15, surge=False) == policy.ack_text("en", 15, surge=False)


@pytest.mark.parametrize("language", ["es", "ru", "en"])
def test_surge_ack_lists_self_service_links(policy: Policy, language: str) -> None:
    normal = policy.ack_text(language, 40, surge=False)
    surge = policy.ack_text(language, 40, surge=True)
    assert surge != normal
    for link in policy.self_service:
        assert link.url in surge
        assert link.title[language] in surge
    assert "{" not in surge


@pytest.mark.parametrize(("language", "number"), [("es", "112"), ("ru", "112"), ("en", "911")])
def test_crisis_ack_is_safe(policy: Policy, language: str, number: str) -> None:
    text = policy.crisis_ack_text(language)
    assert number in text
    # A person will reply; the bot never poses as a therapist.
    assert not re.search(r"\b(I am|I'm|soy|я)\b.{0,20}(therapist|terapeuta|терапевт)", text, re.I)


def test_crisis_ack_fallback(policy: Policy) -> None:
    assert policy.crisis_ack_text(None) == policy.crisis_ack_text("en")
    assert policy.greeting_text("ru") != policy.greeting_text("en")


@pytest.mark.parametrize(
    ("region", "language", "number"),
    [
        ("US", "es", "911"),  # the region wins over the language
        ("us", None, "911"),
        ("RU", "en", "103"),
        ("GB", "en", "999"),
        (None, "ru", "103"),  # no region: by language
        (None, "es-MX", "112"),
        ("ZZ", "fr", "112"),  # neither known: the default
        (None, None, "112"),
    ],
)
def test_emergency_number(
    policy: Policy, region: str | None, language: str | None, number: str
) -> None:
    assert policy.emergency_number(region, language) == number


def test_urgent_medical_ack_per_language_with_the_number(policy: Policy) -> None:
    for lang in ("en", "es", "ru"):
        text = policy.urgent_medical_ack_text(lang, "911")
        assert "911" in text
        assert "{" not in text
    assert policy.urgent_medical_ack_text("de", "112") == policy.urgent_medical_ack_text(
        "en", "112"
    )


def test_urgent_medical_ack_placeholders_checked(default_source: str) -> None:
    source = _broken(default_source, "Please call {number} now", "Please call {wait} now")
    with pytest.raises(PolicyError, match="messages.en.urgent_medical_ack: unknown placeholder"):
        parse_policy(source, "policy.toml")


def test_escalation_defaults_page_a_clinician_never_a_supervisor(policy: Policy) -> None:
    esc = policy.escalation
    assert esc.unanswered_after == 300
    assert esc.supervisor_last_resort is False
    assert esc.page_when_no_clinician is True
    assert [(p.channel, p.to) for p in esc.pages] == [("email", "on-call@careline.example")]


def test_public_names_only_by_policy(default_source: str) -> None:
    assert load_policy().public_agent_name("ana@clinic.example") is None
    named = parse_policy(
        default_source.replace(
            '# "ruiz@clinic.example" = "Dr. Ruiz"', '"Ruiz@Clinic.example" = "Dr. Ruiz"'
        )
    )
    assert named.public_agent_name("ruiz@clinic.example") == "Dr. Ruiz"
    assert named.public_agent_name(None) is None


def test_bad_emergency_region_is_refused(default_source: str) -> None:
    source = _broken(default_source, 'regions = { ES = "112"', 'regions = { Spain = "112"')
    with pytest.raises(PolicyError, match="emergency.regions"):
        parse_policy(source, "policy.toml")
