"""The pure routing decision: crisis first, ordered rules, defaults, never moves down."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from router.decide.policy import Policy, load_policy, parse_policy
from router.decide.rules import (
    ContactSnapshot,
    ConversationSnapshot,
    MessageSnapshot,
    RoutingDecision,
    route,
)

NOW = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)  # a Tuesday


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def _route(
    policy: Policy,
    *texts: str,
    conv: ConversationSnapshot | None = None,
    contact: Mapping[str, Any] | None = None,
    messages: Sequence[MessageSnapshot] | None = None,
    now: datetime = NOW,
) -> RoutingDecision:
    msgs = list(messages) if messages is not None else [MessageSnapshot(text=t) for t in texts]
    return route(
        conv or ConversationSnapshot(channel="app"),
        msgs,
        ContactSnapshot(attributes=contact or {}),
        now,
        policy,
    )


@pytest.mark.parametrize(
    ("text", "category", "reason_fragment"),
    [
        ("no quiero seguir viviendo", "self_harm", "crisis lexicon (es, self_harm)"),
        ("не хочу больше жить", "self_harm", "crisis lexicon (ru, self_harm)"),
        ("I want to end it all", "self_harm", "crisis lexicon (en, self_harm): 'end it all'"),
        ("he hits me", "abuse", "crisis lexicon (en, abuse): regex"),
        ("мне страшно, муж бьёт", "abuse", "crisis lexicon (ru, abuse)"),
        ("I took all my pills", "overdose", "crisis lexicon (en, overdose)"),
        ("te voy a matar", "violence", "crisis lexicon (es, violence)"),
    ],
)
def test_crisis(policy: Policy, text: str, category: str, reason_fragment: str) -> None:
    d = _route(policy, text)
    assert d.crisis
    assert (d.queue, d.priority) == ("second_line", "urgent")
    assert d.tags[:1] == ("crisis",)
    assert category in d.tags
    assert any(reason_fragment in r for r in d.reasons), d.reasons
    assert d.changed


@pytest.mark.parametrize(
    "text",
    [
        "me muero de risa",
        "убил весь вечер на отчёт",
        "this traffic is killing me",
        "I could kill for a coffee",
        "hit me up when the doctor is free",
    ],
)
def test_hyperbole_is_not_crisis(policy: Policy, text: str) -> None:
    d = _route(policy, text)
    assert not d.crisis
    assert d.queue == "first_line"


@pytest.mark.parametrize(
    ("text", "queue", "priority", "tags", "reason"),
    [
        (
            "¿Puedo tomar la medicación con comida?",
            "second_line",
            "normal",
            ("clinical",),
            "rule 'clinical' matched prefix 'medicac*' (es) → second_line",
        ),
        (
            "сколько дней пить лекарства?",
            "second_line",
            "normal",
            ("clinical",),
            "rule 'clinical' matched stem 'лекарств' (ru) → second_line",
        ),
        # Chest pain is a cardiac red flag: urgent, with the emergency number (issue 12).
        (
            "I have chest pain",
            "second_line",
            "urgent",
            ("urgent_medical", "cardiac", "clinical", "acute"),
            "warning sign (urgent_medical, cardiac): 'chest pain'",
        ),
        (
            "Quiero cambiar mi cita del jueves",
            "first_line",
            "normal",
            ("booking",),
            "rule 'booking' matched",
        ),
        ("Is there parking at the clinic?", "first_line", "normal", (), "default → first_line"),
        # Clinical wins the queue (safety first); the admin rule still adds its tag.
        (
            "refund for the antibiotics I was prescribed?",
            "second_line",
            "normal",
            ("clinical", "billing"),
            "rule 'billing' matched prefix 'refund*' (en) → tags billing",
        ),
    ],
)
def test_rules(
    policy: Policy, text: str, queue: str, priority: str, tags: tuple[str, ...], reason: str
) -> None:
    d = _route(policy, text)
    assert (d.queue, d.priority, d.tags, d.crisis) == (queue, priority, tags, False)
    assert any(reason in r for r in d.reasons), d.reasons


def test_only_inbound_messages_are_evaluated(policy: Policy) -> None:
    msgs = [
        MessageSnapshot("Patient mentioned suicidal thoughts last year", direction="note"),
        MessageSnapshot("If you ever want to kill yourself, call 112", direction="out"),
        MessageSnapshot("thanks, see you thursday"),
    ]
    d = _route(policy, messages=msgs)
    assert not d.crisis
    assert d.queue == "first_line"


def test_no_inbound_keeps_conversation(policy: Policy) -> None:
    conv = ConversationSnapshot(channel="app", queue="second_line", priority="high", tags=("x",))
    d = _route(policy, conv=conv, messages=[MessageSnapshot("note", direction="note")])
    assert (d.queue, d.priority, d.tags, d.changed) == ("second_line", "high", ("x",), False)
    assert "no inbound message: nothing to route" in d.reasons


def test_crisis_split_over_messages(policy: Policy) -> None:
    # People type in bursts: the phrase may straddle two messages of one batch.
    d = _route(policy, "I don't want", "to live anymore")
    assert d.crisis


@pytest.mark.parametrize(
    ("conv", "text", "queue", "priority", "changed", "reason"),
    [
        (
            ConversationSnapshot(channel="app", queue="second_line", priority="normal"),
            "ok, and can I reschedule to Friday?",
            "second_line",
            "normal",
            False,
            "kept second_line: never moves down",
        ),
        (
            ConversationSnapshot(channel="app", queue="first_line", priority="urgent"),
            "can I reschedule to Friday?",
            "first_line",
            "urgent",
            False,
            "kept priority urgent: priority never decreases",
        ),
        (
            ConversationSnapshot(channel="app", queue="first_line", priority="normal"),
            "my fever is 39.5 now",
            "second_line",
            "high",
            True,
            "rule 'clinical-acute'",
        ),
        (
            ConversationSnapshot(channel="app", queue="second_line", priority="high"),
            "no quiero vivir mas",
            "second_line",
            "urgent",
            True,
            "crisis → second_line, urgent",
        ),
        # A queue the policy does not know was chosen by a human: kept, except for a crisis.
        (
            ConversationSnapshot(channel="app", queue="legal", priority="normal"),
            "what's my invoice number?",
            "legal",
            "normal",
            False,
            "kept legal: not in the policy",
        ),
        (
            ConversationSnapshot(channel="app", queue="legal", priority="normal"),
            "I want to kill myself",
            "second_line",
            "urgent",
            True,
            "crisis → second_line, urgent",
        ),
    ],
)
def test_never_moves_down(
    policy: Policy,
    conv: ConversationSnapshot,
    text: str,
    queue: str,
    priority: str,
    changed: bool,
    reason: str,
) -> None:
    d = _route(policy, text, conv=conv)
    assert (d.queue, d.priority, d.changed) == (queue, priority, changed)
    assert any(reason in r for r in d.reasons), d.reasons


def test_tags_accumulate(policy: Policy) -> None:
    conv = ConversationSnapshot(channel="app", queue="first_line", priority="normal", tags=("vip",))
    d = _route(policy, "I was charged twice", conv=conv)
    assert d.tags == ("vip", "billing")


@pytest.mark.parametrize(
    ("status", "priority", "tags"),
    [
        ("missed", "high", ("callback",)),
        ("voicemail", "high", ("callback",)),
        ("busy", "high", ("callback",)),
        ("answered", "normal", ("call",)),
    ],
)
def test_call_status(policy: Policy, status: str, priority: str, tags: tuple[str, ...]) -> None:
    msg = MessageSnapshot("", channel="calls", kind="call", call_status=status)
    d = _route(policy, messages=[msg], conv=ConversationSnapshot(channel="calls"))
    assert (d.queue, d.priority, d.tags) == ("first_line", priority, tags)


def test_voicemail_transcript_goes_through_crisis_lexicon(policy: Policy) -> None:
    msg = MessageSnapshot(
        "hola, mi marido me pega, llamenme por favor",
        channel="calls",
        kind="call",
        call_status="voicemail",
    )
    d = _route(policy, messages=[msg], conv=ConversationSnapshot(channel="calls"))
    assert d.crisis
    assert (d.queue, d.priority) == ("second_line", "urgent")
    assert {"crisis", "abuse", "callback"} <= set(d.tags)


@pytest.mark.parametrize(
    ("attributes", "priority", "tags"),
    [
        ({"vip": True}, "high", ("booking", "vip")),
        ({"vip": 1}, "normal", ("booking",)),  # 1 is not true: attributes compare strictly
        ({"vip": False, "plan": "premium"}, "normal", ("booking", "premium")),
        ({}, "normal", ("booking",)),
    ],
)
def test_contact_attributes(
    policy: Policy, attributes: dict[str, Any], priority: str, tags: tuple[str, ...]
) -> None:
    d = _route(policy, "I need to reschedule my appointment", contact=attributes)
    assert (d.queue, d.priority, d.tags) == ("first_line", priority, tags)


@pytest.mark.parametrize(
    ("conv_language", "text", "expected"),
    [
        (None, "Hola, quiero cancelar mi cita de mañana", "es"),
        (None, "Здравствуйте, хочу перенести запись", "ru"),
        (None, "Hello, I need to cancel my appointment", "en"),
        (None, "ok", None),
        ("es", "Hello, I need to cancel my appointment", "es"),  # the conversation's wins
    ],
)
def test_language(policy: Policy, conv_language: str | None, text: str, expected: str) -> None:
    d = _route(policy, text, conv=ConversationSnapshot(channel="app", language=conv_language))
    assert d.language == expected
    assert any(r.startswith("language detected") for r in d.reasons) is (
        conv_language is None and expected is not None
    )


# -- a custom policy exercising the other conditions ---------------------------------------------

_SLA = "\n".join(
    f'[sla.{q}.{p}]\nfirst_response = "1h"\nnext_response = "1h"\nresolution = "1d"'
    for q in ("desk", "billing", "clinic")
    for p in ("low", "normal", "high", "urgent")
)
_CUSTOM = f"""
default_queue = "desk"

[[queues]]
name = "desk"
title = "Desk"
tier = 1
languages = ["en"]

[[queues]]
name = "billing"
title = "Billing"
tier = 1
languages = ["en"]

[[queues]]
name = "clinic"
title = "Clinic"
tier = 2
languages = ["en"]

[calendars.office]
timezone = "Europe/Madrid"
weekly = {{ mon = ["09:00-18:00"], tue = ["09:00-18:00"] }}
holidays = [2025-03-11]

{_SLA}

[crisis]
queue = "clinic"
[crisis.lexicon.self_harm]
en = ["kill myself"]

[[rules]]
name = "after-hours"
tags = ["after_hours"]
[rules.match]
outside_hours = "office"

[[rules]]
name = "telegram-ru"
priority = "high"
tags = ["tg_ru"]
[rules.match]
channels = ["telegram"]
languages = ["ru"]

[[rules]]
name = "billing"
queue = "billing"
[rules.match.keywords]
en = ["invoice"]

[messages.en]
greeting = "hi"
ack = "wait {{wait}}"
ack_surge = "wait {{wait}} {{links}}"
crisis_ack = "call 112"
"""


@pytest.fixture(scope="module")
def custom() -> Policy:
    return parse_policy(_CUSTOM, "custom.toml")


@pytest.mark.parametrize(
    ("now", "after_hours"),
    [
        (datetime(2025, 3, 4, 10, 0, tzinfo=UTC), False),  # Tue 11:00 Madrid
        (datetime(2025, 3, 4, 17, 30, tzinfo=UTC), True),  # Tue 18:30 Madrid
        (datetime(2025, 3, 4, 7, 59, tzinfo=UTC), True),  # Tue 08:59 Madrid
        (datetime(2025, 3, 5, 10, 0, tzinfo=UTC), True),  # Wednesday: closed
        (datetime(2025, 3, 11, 10, 0, tzinfo=UTC), True),  # holiday
    ],
)
def test_hours_condition(custom: Policy, now: datetime, after_hours: bool) -> None:
    d = _route(custom, "hello there", now=now)
    assert ("after_hours" in d.tags) is after_hours


@pytest.mark.parametrize(
    ("channel", "text", "matched"),
    [
        ("telegram", "Здравствуйте, у меня вопрос", True),
        ("webchat", "Здравствуйте, у меня вопрос", False),
        ("telegram", "Hello, I have a question", False),
    ],
)
def test_channel_and_language_conditions(
    custom: Policy, channel: str, text: str, matched: bool
) -> None:
    d = _route(
        custom,
        messages=[MessageSnapshot(text, channel=channel)],
        conv=ConversationSnapshot(channel=channel),
    )
    assert ("tg_ru" in d.tags) is matched
    assert d.priority == ("high" if matched else "normal")


def test_no_lateral_move_within_a_tier(custom: Policy) -> None:
    # An agent moved the conversation to billing; a new unrelated message must not bounce it.
    conv = ConversationSnapshot(channel="app", queue="billing", priority="normal")
    d = _route(custom, "thanks!", conv=conv)
    assert (d.queue, d.changed) == ("billing", False)
    assert "kept billing: no move within the same tier" in d.reasons
    conv = ConversationSnapshot(channel="app", queue="desk", priority="normal")
    d = _route(custom, "where is my invoice", conv=conv)
    assert (d.queue, d.changed) == ("desk", False)


def test_custom_crisis_queue(custom: Policy) -> None:
    d = _route(custom, "I want to kill myself")
    assert (d.queue, d.priority, d.crisis) == ("clinic", "urgent", True)


def test_naive_now_rejected(custom: Policy) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _route(custom, "hello", now=datetime(2025, 3, 4, 10, 0))  # noqa: DTZ001


# -- idioms: a figure of speech is not a crisis word, everything else in the message still is --


@pytest.mark.parametrize(
    "text",
    [
        "me quiero morir de la vergüenza, le escribí a la doctora equivocada",
        "this survey is literally suicide, 60 questions",
        "моя бухгалтер меня убьёт, если я опять потеряю квитанцию",
        "my landlord is going to kill me if the rent is late again, can I pay friday",
        "застрелите меня, снова перепутала время приёма",
        "i'd rather die than queue on the phone again lol, is there an email",
        "nearly had a heart attack when I saw the invoice, is it right?",
    ],
)
def test_idiom_is_not_a_crisis(policy: Policy, text: str) -> None:
    d = _route(policy, text)
    assert not d.crisis, d.reasons
    assert not d.urgent_medical, d.reasons


@pytest.mark.parametrize(
    "text",
    [
        "nearly had a heart attack when I saw the invoice, is it right?",
        "casi me da un infarto cuando vi la factura, está bien?",
        "чуть инфаркт не случился, когда увидела счёт за приём",
    ],
)
def test_idiom_words_are_not_health_words(policy: Policy, text: str) -> None:
    # The rules' keywords ("heart attack", "infarto") read the text without its idioms.
    assert _route(policy, text).queue == "first_line"


@pytest.mark.parametrize(
    "text",
    [
        # The idiom is taken out; what is left is still a crisis.
        "me muero de vergüenza por escribir esto, pero de verdad quiero morir",
        "this wait is suicide lol. honestly though i want to kill myself",
        "i'd rather die than live like this any longer",
    ],
)
def test_crisis_next_to_an_idiom_is_kept(policy: Policy, text: str) -> None:
    assert _route(policy, text).crisis


def test_idiom_reason_says_what_was_not_counted(policy: Policy) -> None:
    d = _route(policy, "este formulario es un suicidio")
    assert not d.crisis
    assert any("only inside an idiom" in r for r in d.reasons), d.reasons


# -- the front desk: a request about a health item, not a health question ----------------------


@pytest.mark.parametrize(
    "text",
    [
        "the link to my prescription won't open on my phone",
        "cuánto cuesta la receta electrónica?",
        "как скачать направление из приложения?",
    ],
)
def test_request_about_a_health_item_stays_at_the_front_desk(policy: Policy, text: str) -> None:
    d = _route(policy, text)
    assert d.queue == "first_line", d.reasons
    assert any("a request, not a health question" in r for r in d.reasons), d.reasons


@pytest.mark.parametrize(
    "text",
    [
        "the link to my prescription won't open, and the tablets make me dizzy",
        "no me llega la receta y me siento peor cada día",
        "результаты анализов в приложении, ферритин 6 — что это значит?",
    ],
)
def test_a_symptom_or_a_worry_keeps_it_with_the_clinicians(policy: Policy, text: str) -> None:
    assert _route(policy, text).queue == "second_line"


def test_front_desk_never_takes_a_crisis(policy: Policy) -> None:
    d = _route(
        policy, "how much is a repeat prescription? i have been saving my pills to take them all"
    )
    assert d.crisis
    assert d.queue == "second_line"


# -- blind set 5: warning signs modelled as concepts (paraphrases written for these tests, not
# taken from the CSVs; each fails on the code before this round) ------------------------------


@pytest.mark.parametrize(
    ("category", "text"),
    [
        ("burden_hopelessness", "i wish i hadnt survived the accident"),
        ("burden_hopelessness", "ojala no hubiera sobrevivido al accidente"),
        ("burden_hopelessness", "лучше бы я тогда умерла, а не выжила"),
        ("burden_hopelessness", "i should have died in that crash, everyone would be better off"),
        ("burden_hopelessness", "no debi sobrevivir a la operacion"),
        ("burden_hopelessness", "зря я выжила тогда"),
        ("child_abuse", "im 11 and my coach gives me presents and asks for photos with no clothes"),
        ("child_abuse", "мне 11, тренер дарит подарки и просит фото без одежды"),
        ("child_abuse", "im 12, my uncle buys me presents and wants photos with no clothes"),
        (
            "domestic_violence",
            "my cheek is bruised, i told everyone i walked into a door but it was him",
        ),
        ("domestic_violence", "he came home drunk and threw a glass at me, it hit my head"),
        ("domestic_violence", "llego borracho y me lanzo un vaso, me dio en la cabeza"),
        ("domestic_violence", "пришёл пьяный и бросил в меня стакан, всё крушит"),
        ("domestic_violence", "he grabs my arm until it hurts whenever i talk to my sister"),
        ("domestic_violence", "me agarra del brazo hasta que me duele cuando hablo con mi hermana"),
        ("domestic_violence", "he wont let me go to work or see my friends anymore"),
        ("domestic_violence", "no me deja trabajar ni ver a mis amigas"),
        ("domestic_violence", "муж не даёт мне работать и видеться с подругами"),
        ("domestic_violence", "my ex is at my door right now trying to break it down"),
        ("domestic_violence", "mi ex esta en mi puerta intentando tirar la puerta abajo"),
        ("domestic_violence", "бывший ломится в дверь, грозит выбить дверь"),
        (
            "domestic_violence",
            "i have injuries from my boyfriend and i dont want letters sent home",
        ),
        ("domestic_violence", "i said i fell down the stairs but it was him"),
        ("domestic_violence", "he throws things at me and smashes things when he drinks"),
        ("domestic_violence", "rompe todo cuando bebe y me lanza cosas"),
        ("domestic_violence", "когда пьёт, громит квартиру и кидается в меня посудой"),
        ("domestic_violence", "he reads my location and my calls and screams at me if im late"),
        ("domestic_violence", "me revisa la ubicacion y mis llamadas y me grita si tardo"),
        ("domestic_violence", "проверяет мою геолокацию и звонки и орёт на меня"),
        ("domestic_violence", "he says im crazy and that nobody will believe me"),
        ("domestic_violence", "dice que estoy loca y que nadie me va a creer"),
        ("domestic_violence", "si voy a la policia me va a pegar, me lo dijo"),
        ("domestic_violence", "сказал, что изобьёт, если я пойду в полицию"),
        ("domestic_violence", "he hid my passport and keys so i cant leave"),
        ("domestic_violence", "me escondio el pasaporte y las llaves para que no pueda irme"),
        ("domestic_violence", "спрятал паспорт и ключи, чтобы я не уехала"),
        ("domestic_violence", "me escondi en el coche, me va a pegar si vuelvo"),
        ("domestic_violence", "me encerro en la habitacion y se llevo el movil"),
        ("domestic_violence", "запер меня в спальне и забрал телефон"),
        (
            "domestic_violence",
            "the bruises are from falling in the shower, thats what i tell everyone",
        ),
        ("farewell", "cancel everything for me please, have a good life all of you"),
        ("farewell", "cancelen todas mis citas, que tengan buena vida"),
        ("farewell", "отмените всё, пожалуйста. живите счастливо"),
        ("farewell", "deleted my accounts, returned the things i borrowed, said sorry to everyone"),
        ("farewell", "borre mis cuentas, devolvi lo prestado y pedi perdon a todos"),
        ("farewell", "le dejo todo a mi hermana, el perro y las contraseñas"),
        (
            "farewell",
            "deleting my profiles and apologising to people i hurt, you were always kind to me",
        ),
        ("farewell", "estoy borrando mis perfiles y pidiendo perdon a la gente"),
        ("farewell", "le dejo todo a mi amiga, el gato y las claves del banco"),
        ("farewell", "я ей всё оставляю, кота и пароли"),
        ("farewell", "someone please take my fish, i wont need the tank anymore"),
        ("farewell", "took my daughter to her dads for good, told her mummy is going far away"),
        (
            "farewell",
            "he llevado a mi hijo con su abuela para siempre, le dije que mama se va a ir "
            "muy lejos",
        ),
        ("farewell", "отвезла дочку к маме насовсем, сказала, что мама уедет далеко"),
        (
            "farewell",
            "sent my brother my passwords and asked him to look after my things, he doesnt get why",
        ),
        (
            "farewell",
            "le mande a mi hermano las contraseñas y le pedi que cuide a mi perro, no "
            "entiende por que",
        ),
        ("farewell", "thank you for everything. please tell him none of this is his fault"),
        ("farewell", "спасибо за всё. передайте ему, что он ни в чём не виноват"),
        ("farewell", "put everything in her name now. thanks for putting up with me for so long"),
        ("infant_harm", "i cover her mouth so she stops crying, longer every time"),
        ("infant_harm", "le tapo la boca para que deje de llorar, cada vez mas tiempo"),
        ("infant_harm", "закрываю ей рот, чтобы замолчала, всё дольше"),
        ("overdose", "22 таблетки трамадола и бутылка водки час назад"),
        ("overdose", "maybe 14 diazepam and some whisky, an hour ago"),
        ("overdose", "unas 15 pastillas de tramadol y unas cervezas, hace media hora"),
        ("overdose", "штук 15 феназепама и пиво, где-то полчаса назад"),
        ("plan_means", "been reading about how to do it painlessly and ive got what i need"),
        ("plan_means", "im standing on the other side of the railing on the bridge"),
        ("plan_means", "estoy al otro lado de la barandilla del puente"),
        ("plan_means", "the bath is running and the razor is on the edge of the tub"),
        ("plan_means", "набрала ванну, лезвие рядом"),
        ("plan_means", "я решила, что это будет в воскресенье"),
        ("plan_means", "estuve mirando como hacerlo sin que duela, tengo de sobra"),
        ("plan_means", "climbed over the railing of the car park, just sitting here"),
        ("plan_means", "me pase al otro lado de la baranda del viaducto"),
        ("plan_means", "the blade is next to the bath, water is running"),
        ("plan_means", "tengo la cuchilla junto a la banera, ya esta llena"),
        ("plan_means", "os escribo por ultima vez, voy al puente"),
        ("plan_means", "пишу в последний раз, еду на мост"),
        ("plan_means", "theres a gun in the house and i cant stop thinking about it"),
        ("plan_means", "hay una escopeta en casa y no puedo dejar de pensar en eso"),
        ("plan_means", "дома есть ружьё, и я не могу перестать думать об этом"),
        ("plan_means", "i know how, where and when. i just need to find the courage"),
        ("plan_means", "ya se como, donde y cuando, solo me falta reunir el valor"),
        ("plan_means", "я знаю как где и когда, осталось набраться смелости"),
        ("plan_means", "bought paracetamol in different places so nobody would notice"),
        ("plan_means", "compre pastillas en sitios distintos para que nadie sospeche"),
        ("plan_means", "купил таблетки понемногу, чтобы никто не заподозрил"),
        ("plan_means", "been saving my prescriptions, i counted and i know its enough"),
        ("plan_means", "sunday night, thats when im doing it"),
        ("self_harm", "прижгла руку горячей ложкой, я это заслужила"),
        ("suicidal_ideation", "is wanting to kill yourself normal? asking for myself"),
        ("suicidal_ideation", "what do you do if someone wants to kill yourself, asking for me"),
        ("violence_threat", "monday its over for them, i have a list"),
        ("violence_threat", "el viernes se acaba todo para ellos, tengo una lista"),
        ("violence_threat", "в пятницу им всем конец, у меня список"),
        ("violence_threat", "tomorrow im sorting out the ones who bully me, i've got a knife"),
        ("violence_threat", "mañana me voy a cargar a los que me acosan"),
        ("violence_threat", "завтра разберусь с теми кто меня травит"),
        ("violence_threat", "voy a quemar el coche de mi ex esta noche"),
        ("violence_threat", "im going to teach her a lesson, i know when she leaves alone"),
        ("violence_threat", "le voy a dar una leccion, ya se cuando sale sola"),
    ],
)
def test_new_crisis_signs(policy: Policy, category: str, text: str) -> None:
    d = _route(policy, text)
    assert d.crisis, d.reasons
    assert any(f"warning sign (crisis, {category})" in r for r in d.reasons), d.reasons


@pytest.mark.parametrize(
    ("category", "text"),
    [
        ("bleeding", "my dad vomited something like coffee grounds and is very pale"),
        ("bleeding", "mi padre vomito algo como posos de cafe"),
        ("bleeding", "папу вырвало чем-то тёмным, как кофейная гуща"),
        ("bleeding", "threw up black stuff, looks like coffee grounds"),
        ("bleeding", "vomite algo negro como posos de cafe"),
        ("breathing", "my inhaler is not helping at all and i cant finish a sentence"),
        ("breathing", "the ventolin does nothing, i cant finish a sentence"),
        ("breathing", "сальбутамол не действует"),
        ("seizure", "she went rigid and was twitching, now she has bitten her tongue"),
        ("seizure", "вся напряглась и дёргалась, прикусила язык"),
        ("stroke", "внезапно жуткая головная боль, такой никогда не было, и рвота"),
        ("stroke", "my right arm has gone numb and weak"),
        ("stroke", "el brazo derecho se me ha quedado dormido y sin fuerza"),
        ("stroke", "онемела левая рука, не могу её поднять"),
        ("stroke", "worst headache ever, came on all at once, and my vision is blurry"),
        ("stroke", "головная боль такой никогда не было, и рвота"),
    ],
)
def test_new_urgent_medical_signs(policy: Policy, category: str, text: str) -> None:
    d = _route(policy, text)
    assert d.urgent_medical, d.reasons
    assert any(f"warning sign (urgent_medical, {category})" in r for r in d.reasons), d.reasons


@pytest.mark.parametrize(
    "text",
    [
        "el examen de ayer me mato, puedo cambiar la cita?",
        "killed myself revising for the exam, can we move my session",
        "me mate a estudiar toda la semana, puedo pasar la sesion al lunes",
        "убилась на работе за неделю, можно сессию перенести",
        "my daughter will kill me if i forget her dentist appointment",
        "mi madre me va a matar si llego tarde a la cita",
        "im going to strangle my brother lol he took my slot",
        "voy a matar a mi hermano jaja me quito la cita",
        "mato a alguien con la contrasena de la app",
        "la app me saca de quicio, me tiro por la ventana",
        "эта анкета сводит с ума, хоть в окно прыгай",
        "провалиться сквозь землю хочу, перепутала день приёма",
        "my team lost the final, i wanted to die. anyway can i book thursday",
        "perdimos la final, queria morirme. bueno, hay cita el jueves?",
        "i want to die, i just realised i sent the form to the wrong clinic",
        "me quiero morir, me acabo de dar cuenta de que mande el correo a otra clinica",
        "the kids think im hopeless at video games",
        "my sister is going to die of envy when she sees my new glasses",
        "mi hermana se va a morir de envidia cuando vea mis gafas",
        "killed myself working all week, can my session be on saturday",
        "убился на тренировке, можно перенести на вечер",
        "my mum is going to kill me if i forget again, can you text me a reminder",
        "дочь меня убьёт, если я опоздаю на приём",
        "gonna strangle my brother haha he booked the wrong day",
        "about to kill someone over this queue",
        "el formulario me tiene harta, me voy a tirar por la ventana",
        "me quiero morir, me acabo de dar cuenta de que llegue un dia antes",
        "perdimos el partido y queria morirme, bueno, me confirmas la cita?",
        "the kids think im hopeless at maths",
    ],
)
def test_new_idioms_are_not_a_crisis(policy: Policy, text: str) -> None:
    # "the exam killed me", "killed myself studying", "kill the whole afternoon", "my mum will
    # kill me if I forget", a threat with "lol", exasperation at a form, a lost match: hyperbole.
    d = _route(policy, text)
    assert not d.crisis, d.reasons
    assert not d.urgent_medical, d.reasons


def test_learned_layer_does_not_judge_an_idiom(policy: Policy) -> None:
    # The character n-gram model took this for a threat; the idiom says it is a joke.
    d = _route(policy, "im going to strangle my brother lol he took my slot")
    assert not d.crisis, d.reasons
    assert not any("learned model" in r and "crisis" in r for r in d.reasons), d.reasons


@pytest.mark.parametrize(
    "text",
    [
        "the insurance didnt cover my scan, why was i charged?",
        "me llego un cargo por la ecografia, el seguro no lo cubrio?",
        "does anyone there speak spanish? its for my grandmother",
        "hay alguien que hable ruso? es para mi abuela",
        "the insurance didnt cover the ultrasound and i got a bill",
    ],
)
def test_new_front_desk_requests(policy: Policy, text: str) -> None:
    d = _route(policy, text)
    assert d.queue == "first_line", d.reasons


# -- blind set 7: crisis said inside admin requests, relatives' red flags, harmless idioms
# (paraphrases written for these tests, not taken from the CSVs; each fails before this round)


@pytest.mark.parametrize(
    ("category", "text"),
    [
        (
            "domestic_violence",
            "if my husband finds out about this payment i'm dead, can i pay cash",
        ),
        ("domestic_violence", "если муж узнает про этот платёж, мне крышка"),
        ("domestic_violence", "move my session please, i can't show up with this black eye"),
        ("domestic_violence", "перенесите, пожалуйста, не могу прийти с синяком на пол-лица"),
        ("violence_threat", "tell the receptionist she'd better watch out on her way out tonight"),
        ("violence_threat", "передайте администратору, пусть поберегется после работы"),
        ("violence_threat", "i keep imagining i plough into the people at the bus stop"),
        (
            "farewell",
            "my colleague will take over my clients from friday, no need to call me after that",
        ),
        ("farewell", "коллега возьмёт мою группу, звонить больше не надо"),
        (
            "farewell",
            "please remove me from your mailing list, by the next session it won't matter",
        ),
        (
            "farewell",
            "just tell dr lee she did everything she could, i don't want her to feel guilty",
        ),
        (
            "farewell",
            "whats the emergency contact form? someone must collect my cat, key is under the mat",
        ),
        ("suicidal_ideation", "anulen lo del jueves, no creo que llegue al jueves"),
        ("suicidal_ideation", "i just lie here waiting for it all to end"),
        ("suicidal_ideation", "лежу и жду, когда всё это закончится"),
        ("burden_hopelessness", "why bother with more appointments, nothing ever changes"),
        ("burden_hopelessness", "я сломана и ничего уже не поможет"),
        ("plan_means", "which floor is the top one in your building? dont ask me why"),
        ("plan_means", "a que hora pasa el tren por la estacion? no es para viajar"),
        ("plan_means", "the footbridge near my house has no railing on one side"),
        ("self_harm", "i punch the wall when i hate myself, should i tell my therapist"),
        ("self_harm", "я бьюсь головой о стену, когда злюсь на себя"),
        ("self_harm", "i skip meals on purpose because i dont deserve food"),
        ("self_harm", "can someone stitch my arm, no questions asked? it's not the first time"),
        ("child_abuse", "im 10 and my stepmum says no dinner as a punishment again"),
        ("suicidal_ideation", "i honestly wouldnt care if i didnt wake up in the morning"),
        ("suicidal_ideation", "me da lo mismo no despertar manana"),
        ("burden_hopelessness", "para que sirve tanta terapia si nada funciona"),
        (
            "burden_hopelessness",
            "i give up on these sessions, nothing works and nothing will change",
        ),
        ("plan_means", "found dozens of my dad's sleeping pills hidden under his mattress"),
        ("overdose", "is 30 ibuprofen too many? already had them"),
        ("overdose", "how many sleeping pills is too many? ive had 12 already"),
        ("child_abuse", "tengo 10 y como castigo no me dejan comer"),
    ],
)
def test_blind7_crisis_signs(policy: Policy, category: str, text: str) -> None:
    d = _route(policy, text)
    assert d.crisis, d.reasons
    assert any(f"warning sign (crisis, {category})" in r for r in d.reasons), d.reasons


@pytest.mark.parametrize(
    ("category", "text"),
    [
        ("cardiac", "it feels like a heavy weight sitting right on the middle of my chest"),
        ("bleeding", "my stool is black and tarry since this morning"),
        ("breathing", "he can only say two or three words before he has to stop"),
        ("breathing", "me atragante con una espina, no puedo tragar"),
        ("unconscious", "my diabetic husband is very drowsy and not making sense"),
        ("unconscious", "папа диабетик, сахар упал, очень заторможенный"),
        ("unconscious", "i cant get a response out of my mum, she is on the sofa"),
        ("bleeding", "папа на антикоагулянтах, упал, рассек голову"),
        ("seizure", "se le fueron los ojos para arriba y se quedo tieso"),
    ],
)
def test_blind7_urgent_medical_signs(policy: Policy, category: str, text: str) -> None:
    d = _route(policy, text)
    assert d.urgent_medical, d.reasons
    assert any(f"warning sign (urgent_medical, {category})" in r for r in d.reasons), d.reasons


@pytest.mark.parametrize(
    "text",
    [
        "mi suegra me va a matar de un disgusto, puedo cambiar la cita?",
        "spent all morning banging my head against the wall with this login",
        "me estoy dando cabezazos contra la pared con el formulario",
        "con esta espera me pego un tiro jajaja",
        "i'll shoot you a text when i'm in the car park",
        "врач просто бомба, спасибо за приём",
        "i could strangle this printer, send it by email please",
    ],
)
def test_blind7_idioms_are_not_a_crisis(policy: Policy, text: str) -> None:
    d = _route(policy, text)
    assert not d.crisis, d.reasons
    assert not d.urgent_medical, d.reasons
