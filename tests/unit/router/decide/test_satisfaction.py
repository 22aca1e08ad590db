"""The pure satisfaction decision: ask once, never after a crisis unless the policy says so."""

from __future__ import annotations

import pytest

from router.decide import satisfaction
from router.decide.policy import load_policy


@pytest.mark.parametrize(
    ("asked", "rated", "tags", "after_crisis", "ask"),
    [
        (False, False, [], False, True),
        (True, False, [], False, False),  # reopened and resolved again: asked already
        (False, True, [], False, False),
        (False, False, ["crisis", "self_harm"], False, False),
        (False, False, ["urgent_medical", "stroke"], False, False),
        (False, False, ["crisis"], True, True),
        (True, False, ["crisis"], True, False),
        (False, False, ["billing"], False, True),
    ],
)
def test_should_ask(
    asked: bool, rated: bool, tags: list[str], after_crisis: bool, ask: bool
) -> None:
    got = satisfaction.should_ask(
        asked_before=asked, rated=rated, tags=tags, ask_after_crisis=after_crisis
    )
    assert got is ask


@pytest.mark.parametrize(
    ("raw", "valid"),
    [(1, 1), (5, 5), (0, None), (6, None), ("4", None), (True, None), (4.0, None), (None, None)],
)
def test_valid_score(raw: object, valid: int | None) -> None:
    assert satisfaction.valid_score(raw) == valid


def test_the_default_policy_does_not_ask_after_a_crisis() -> None:
    assert load_policy(None).satisfaction.ask_after_crisis is False
