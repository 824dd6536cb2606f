"""Money in the merged OpenAPI document (docs/api.md "Response shapes"): every amount is an
integer named ``*_micros``, and every object that shows one says its ``currency``.

The rule, on every schema reached from a request body or a 2xx response (through $ref,
properties, items and allOf/anyOf/oneOf) and on every JSON example of those:
- an integer property whose name has a money word (price, fee, cost, amount, balance, *_total,
  spend, charge, credit, debit, wallet) ends in ``_micros``;
- in a response, an object with a ``*_micros`` property (of any type: ``spend_micros`` is a
  used/limit figure) has a ``currency`` property beside it (allOf parts count as one object).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from openapi_support import examples, media, merged_document, resolve

# "(?<!su)spend": suspend_after_days (dunning, billing profiles) is days, not money.
_MONEY = re.compile(r"price|fee|cost|amount|balance|_total$|(?<!su)spend|charge|credit|debit|wallet")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return merged_document()


def _properties(document: dict[str, Any], schema: Any, seen: frozenset[int]) -> dict[str, Any]:
    """The properties of one object schema, its allOf parts merged in."""
    schema = resolve(document, schema)
    if not isinstance(schema, dict) or id(schema) in seen:
        return {}
    merged = dict(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        merged.update(_properties(document, part, seen | {id(schema)}))
    return merged


def _objects(document: dict[str, Any], schema: Any, seen: frozenset[int] = frozenset()
             ) -> Iterator[dict[str, Any]]:
    """The merged properties of every object schema under ``schema``."""
    schema = resolve(document, schema)
    if not isinstance(schema, dict) or id(schema) in seen:
        return
    seen = seen | {id(schema)}
    props = _properties(document, schema, frozenset())
    if props:
        yield props
    children = [*props.values(), schema.get("items"), *schema.get("anyOf", []), *schema.get("oneOf", [])]
    for child in children:
        if child is not None:
            yield from _objects(document, child, seen)


def _is_integer(document: dict[str, Any], schema: Any) -> bool:
    kind = resolve(document, schema).get("type") if isinstance(schema, dict) else None
    return kind == "integer" or (isinstance(kind, list) and "integer" in kind)


def _faults(names: dict[str, bool], response: bool) -> list[str]:
    """``names``: property name -> whether it is an integer."""
    faults = [f"{n}: money not named *_micros" for n, integer in names.items()
              if integer and _MONEY.search(n) and not n.endswith("_micros")]
    if response and "currency" not in names:
        faults += [f"{n}: no currency beside it" for n in names if n.endswith("_micros")]
    return faults


def _example_dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _example_dicts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _example_dicts(v)


def test_money_is_named_micros_and_shown_with_its_currency(document: dict[str, Any]) -> None:
    faults: list[str] = []
    for where, response, body in media(document):
        for props in _objects(document, body.get("schema", {})):
            names = {n: _is_integer(document, s) for n, s in props.items()}
            faults += [f"{where} schema: {f}" for f in _faults(names, response)]
        for example in examples(document, body):
            for obj in _example_dicts(example):
                names = {n: isinstance(v, int) and not isinstance(v, bool) for n, v in obj.items()}
                faults += [f"{where} example: {f}" for f in _faults(names, response)]
    assert faults == [], "\n".join(sorted(set(faults)))


def test_the_rule_catches_each_kind_of_fault() -> None:
    assert _faults({"monthly_price": True}, response=False) == ["monthly_price: money not named *_micros"]
    assert _faults({"balance_micros": True}, response=True) == ["balance_micros: no currency beside it"]
    assert _faults({"balance_micros": True}, response=False) == []  # a request body names no currency
    assert _faults({"balance_micros": True, "currency": False}, response=True) == []
    assert _faults({"setup_total": True}, response=False) == ["setup_total: money not named *_micros"]
    assert _faults({"total": True, "calls": True}, response=True) == []  # counts, not money
