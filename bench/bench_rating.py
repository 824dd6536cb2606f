"""Rate deck benchmark: load time and lookup throughput, with a baseline.

Run: .venv/bin/python bench/bench_rating.py
Targets: a 100,000-prefix deck loads (CSV parse + build) in < 2 s, and a
50,000-prefix deck serves >= 200,000 lookups/s in one process. Exits 1 if
a target is missed. The baseline is a bare dict.get of the exact number
over the same numbers, i.e. the floor of any dict-based lookup.
"""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

from cdr_ingest.rates import Rate, RateDeck, Rounding, load_deck_csv  # noqa: E402
from verdict import Verdicts  # noqa: E402

SEED = 20240611
LOAD_TARGET_S = 2.0
LOOKUP_TARGET = 200_000
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def random_prefixes(rng: random.Random, count: int) -> list[str]:
    """Distinct prefixes of length 1..8 shaped like real decks (mostly 4-7 digits)."""
    lengths = [1, 2, 3, 4, 5, 6, 7, 8]
    weights = [1, 2, 6, 20, 30, 25, 12, 4]
    seen: set[str] = set()
    while len(seen) < count:
        n = rng.choices(lengths, weights)[0]
        seen.add(str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(n - 1)))
    return sorted(seen)


def deck_csv(rng: random.Random, prefixes: list[str]) -> str:
    lines = [
        "rate_id,prefix,per_minute,connect_fee,min_seconds,increment_seconds,"
        "rounding,effective_from,effective_to"
    ]
    for i, p in enumerate(prefixes):
        per_minute = f"0.{rng.randint(1, 9999):04d}"
        eff_to = "2030-01-01T00:00:00Z" if i % 10 == 0 else ""
        lines.append(f"r{i},{p},{per_minute},0,60,6,half_up,2024-01-01T00:00:00Z,{eff_to}")
    return "\n".join(lines) + "\n"


def bench_load() -> float:
    rng = random.Random(SEED)
    text = deck_csv(rng, random_prefixes(rng, 100_000))
    t0 = time.perf_counter()
    deck = load_deck_csv(text)
    elapsed = time.perf_counter() - t0
    assert deck.prefix_count == 100_000
    return elapsed


def trie_rate(rates: list[Rate], numbers: list[str], at: datetime, expect: list[Rate | None]) -> float:
    """Lookups/s of a nested-dict trie with the same effective dating: the design we did not pick."""
    root: dict = {}
    for r in rates:
        node = root
        for ch in r.prefix:
            node = node.setdefault(ch, {})
        versions = [*node.get("", ()), (r.effective_from, r.effective_to, r)]
        node[""] = tuple(sorted(versions, key=lambda v: v[0], reverse=True))

    def find(number: str, at: datetime) -> Rate | None:
        node, best = root, None
        for ch in number:
            node = node.get(ch)
            if node is None:
                break
            versions = node.get("")
            if versions is not None:
                for start, end, rate in versions:
                    if start <= at:
                        if end is None or at < end:
                            best = rate
                        break
        return best

    t0 = time.perf_counter()
    got = [find(n, at) for n in numbers]
    elapsed = time.perf_counter() - t0
    assert got == expect, "trie and deck disagree"
    return len(numbers) / elapsed


def bench_lookup() -> tuple[float, float, float, int]:
    rng = random.Random(SEED + 1)
    prefixes = random_prefixes(rng, 50_000)
    rates = [Rate(f"r{i}", p, 10_000, 0, 60, 6, Rounding.HALF_UP, EPOCH) for i, p in enumerate(prefixes)]
    # 1 prefix in 10 has a posted future change, so lookups exercise effective dating.
    future = EPOCH + timedelta(days=200)
    rates += [
        Rate(f"r{i}b", p, 11_000, 0, 60, 6, Rounding.HALF_UP, future) for i, p in enumerate(prefixes[::10])
    ]
    deck = RateDeck(rates)
    # Half the numbers extend a deck prefix (hits), half are random 11-15 digit numbers.
    numbers: list[str] = []
    for i in range(500_000):
        if i % 2 == 0:
            p = rng.choice(prefixes)
            numbers.append(p + "".join(rng.choice("0123456789") for _ in range(11 - min(len(p), 10))))
        else:
            numbers.append("".join(rng.choice("0123456789") for _ in range(rng.randint(11, 15))))
    at = EPOCH + timedelta(days=100)

    find = deck.find
    t0 = time.perf_counter()
    found = [find(n, at) for n in numbers]
    deck_rate = len(numbers) / (time.perf_counter() - t0)
    hits = sum(r is not None for r in found)

    exact = {n: n for n in numbers[::2]}
    get = exact.get
    t0 = time.perf_counter()
    _ = [get(n) for n in numbers]
    base_rate = len(numbers) / (time.perf_counter() - t0)
    return deck_rate, base_rate, trie_rate(rates, numbers, at, found), hits


def main() -> int:
    load_s = bench_load()
    deck_rate, base_rate, trie, hits = bench_lookup()
    print(f"load 100,000-prefix deck from CSV: {load_s:.3f} s (target < {LOAD_TARGET_S:.1f} s)")
    print(
        f"lookups on 50,000-prefix deck:     {deck_rate:,.0f}/s (target >= {LOOKUP_TARGET:,}),"
        f" {hits:,} of 500,000 matched"
    )
    print(
        f"baseline dict.get exact key:       {base_rate:,.0f}/s (deck is {base_rate / deck_rate:.1f}x slower)"
    )
    print(f"for comparison, nested-dict trie:  {trie:,.0f}/s (same answers)")
    verdicts = Verdicts("bench_rating")
    verdicts.below("load of a 100,000-prefix deck from CSV", load_s, LOAD_TARGET_S, "s")
    verdicts.at_least("deck lookups", deck_rate, LOOKUP_TARGET, "/s")
    verdicts.info("baseline dict.get / deck lookups", base_rate / deck_rate, "x")
    return verdicts.finish()


if __name__ == "__main__":
    sys.exit(main())
