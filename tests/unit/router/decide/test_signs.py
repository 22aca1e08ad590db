"""The warning-sign model (router.decide.signs): concepts that combine, morphology, typos, idioms,
bounded cost. Examples here are written for the mechanism, not copied from the corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.decide.signs import (
    MAX_ROUTING_CHARS,
    MAX_TOKEN_LEN,
    SignError,
    SignModel,
    cap_text,
    default_model,
    load_model,
    tokenize,
)


def categories(text: str, model: SignModel | None = None) -> set[str]:
    return {h.category for h in (model or default_model()).find(text)}


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("i swallowed about 25 of my sleeping tablets", "overdose"),
        ("me he tomado 20 pastillas de diazepam con vino", "overdose"),
        ("наглоталась феназепама, штук 15", "overdose"),
        ("i'm on the roof of my building", "plan_means"),
        ("estoy sentada en el borde del puente", "plan_means"),
        ("стою на мосту и смотрю вниз", "plan_means"),
        ("ive been saving up my pills for weeks", "plan_means"),
        ("i gave away my guitar and all my books this week", "farewell"),
        ("le deje a mi hermana quien cuide al gato cuando ya no este", "farewell"),
        ("написала прощальное письмо маме", "farewell"),
        ("i burn myself with a lighter when it gets bad", "self_harm"),
        ("me quemo los brazos con el mechero", "self_harm"),
        ("im 12 and my stepdad touches me at night", "child_abuse"),
        ("tengo 13 años y mi tio dice que es nuestro secreto", "child_abuse"),
        ("мне 11 лет, отчим трогает меня", "child_abuse"),
        ("i keep having thoughts of smothering my baby", "infant_harm"),
        ("everyone would be better off without me", "burden_hopelessness"),
        ("todos estarian mejor sin mi", "burden_hopelessness"),
        ("i wish i could go to sleep and never wake up", "suicidal_ideation"),
        ("ojala no despertar mañana", "suicidal_ideation"),
        ("хочу уснуть и не проснуться", "suicidal_ideation"),
    ],
)
def test_crisis_signs(text: str, category: str) -> None:
    hits = default_model().find(text)
    assert category in {h.category for h in hits}, [h.reason() for h in hits]
    assert all(h.group == "crisis" for h in hits if h.category == category)


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("my dads face is drooping on one side", "stroke"),
        ("a mi madre se le ha torcido la boca y no puede hablar", "stroke"),
        ("у мужа перекосило лицо", "stroke"),
        ("her throat is swelling after the peanut", "anaphylaxis"),
        ("se le esta hinchando la garganta", "anaphylaxis"),
        ("crushing chest pain going down my left arm", "cardiac"),
        ("the bleeding wont stop, the towel is soaked", "bleeding"),
        ("мой сын задыхается, губы синие", "breathing"),
        ("mi hijo esta convulsionando", "seizure"),
        ("my 5 week old has a fever of 38.4", "infant_fever"),
        ("estoy embarazada de 30 semanas y estoy sangrando", "pregnancy"),
    ],
)
def test_urgent_medical_signs(text: str, category: str) -> None:
    hits = default_model().find(text)
    found = {h.category: h.group for h in hits}
    assert found.get(category) == "urgent_medical", [h.reason() for h in hits]


@pytest.mark.parametrize(
    "text",
    [
        "me muero de risa con vuestro chatbot",
        "убил весь вечер на это приложение",
        "this heat is killing me, is the clinic air conditioned?",
        "dying to see her again at my next session",
        "my boss will kill me if im late, any 8am slot?",
        "nearly had a heart attack when i saw the invoice",
        "se me corta la videollamada",
        "can i take ibuprofen 400 mg twice a day?",
        "i forgot my pill this morning, should i take two tonight?",
        "hit me up when the doctor is free",
    ],
)
def test_idioms_and_ordinary_questions_are_not_crises(text: str) -> None:
    hits = [h for h in default_model().find(text) if h.group == "crisis"]
    assert hits == [], [h.reason() for h in hits]


def test_russian_morphology_matches_inflected_forms() -> None:
    # "выпить" and "упаковка" in the lexicon; the messages have the feminine and masculine past
    # and the accusative: pymorphy3's paradigms, not Snowball stems, make them match.
    assert "overdose" in categories("выпила все таблетки")
    assert "overdose" in categories("выпил всю упаковку снотворного")


def test_one_typo_in_a_long_word_is_tolerated() -> None:
    assert "suicidal_ideation" in categories("feeling really sucidal tonight")
    assert "overdose" in categories("i think i overdossed")


def test_every_hit_keeps_a_readable_reason() -> None:
    (hit,) = [h for h in default_model().find("i took 30 paracetamol") if h.category == "overdose"]
    assert hit.reason() == "warning sign (crisis, overdose): 'took 30 paracetamol'"


def test_text_routing_reads_is_capped_and_tokens_cut() -> None:
    long = "a" * 200_000
    assert len(cap_text(long)) <= MAX_ROUTING_CHARS + 1
    tokens = tokenize(long)
    assert len(tokens) <= 2  # the head and the tail of the cap
    assert all(len(t) == MAX_TOKEN_LEN for t in tokens)
    # The end of a long mail still counts: head and tail are both read.
    mail = "hola " * 5000 + "me tome 30 pastillas"
    assert "overdose" in categories(mail)


def test_a_policy_can_add_a_language(tmp_path: Path) -> None:
    model = load_model(extra={"pt": {"WANT": ["quero"], "DIE": ["morrer"]}})
    assert "suicidal_ideation" in categories("eu quero morrer", model)
    assert "suicidal_ideation" not in categories("eu quero morrer", load_model())


def test_unknown_concept_in_a_sign_is_refused(tmp_path: Path) -> None:
    (tmp_path / "signs.toml").write_text(
        '[[sign]]\ngroup = "crisis"\ncategory = "x"\nall = ["NOPE"]\n', encoding="utf-8"
    )
    (tmp_path / "en.toml").write_text('WANT = ["want"]\n', encoding="utf-8")
    with pytest.raises(SignError, match="NOPE"):
        load_model(tmp_path)
