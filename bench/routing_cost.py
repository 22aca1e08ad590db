"""Cost of the routing decision per message, and on hostile input.

    python bench/routing_cost.py                  # both splits (the README's figures)
    python bench/routing_cost.py --split tuning   # timing without reading the held-out split

Prints, per message of the labelled corpus (warm caches, as in a running service): the
warning-sign model, the learned layer, and the whole ``route()`` (language detection, policy
lexicon and rules included); then ``route()`` on single words and word floods of 2,000 to
200,000 characters, which must stay milliseconds (routing reads a capped text, tokens are cut).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from routing_eval import NOW, SPLITS, load_samples

from router.decide.language import warm_up
from router.decide.learned import default_crisis_model
from router.decide.policy import load_policy
from router.decide.rules import ContactSnapshot, ConversationSnapshot, MessageSnapshot, route

ROUNDS = 5


def per_call_ms(fn: Callable[[str], object], texts: list[str]) -> float:
    for t in texts:  # warm the caches, as a running service has them
        fn(t)
    start = time.perf_counter()
    for _ in range(ROUNDS):
        for t in texts:
            fn(t)
    return (time.perf_counter() - start) / (ROUNDS * len(texts)) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--split", choices=SPLITS, action="append", help="default: both")
    args = parser.parse_args()
    warm_up()
    policy = load_policy()
    signs = policy.signs
    assert signs is not None
    model = default_crisis_model()
    texts = [s.text for split in args.split or SPLITS for s in load_samples(split)]

    def decide(text: str) -> object:
        return route(
            ConversationSnapshot(channel="app"), [MessageSnapshot(text=text)], ContactSnapshot(),
            NOW, policy,
        )  # fmt: skip

    mean_chars = sum(map(len, texts)) / len(texts)
    print(f"{len(texts)} corpus messages, mean {mean_chars:.0f} characters")
    print("| step | ms per message |\n|---|---:|")
    print(f"| warning signs (router.decide.signs) | {per_call_ms(signs.find, texts):.3f} |")
    print(
        f"| learned layer (router.decide.learned) | {per_call_ms(model.probability, texts):.3f} |"
    )
    print(f"| whole route() | {per_call_ms(decide, texts):.3f} |")
    print()
    print("| hostile input | characters | route() ms |\n|---|---:|---:|")
    for n in (2_000, 20_000, 200_000):
        for name, text in (("one word", "a" * n), ("word flood", "hola " * (n // 5))):
            start = time.perf_counter()
            decide(text)
            print(f"| {name} | {n:,} | {(time.perf_counter() - start) * 1e3:.1f} |")


if __name__ == "__main__":
    main()
