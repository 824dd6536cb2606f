"""Operator inventory files: malformed CSV is an InventoryError (a 422), never a crash."""

from __future__ import annotations

import pytest

from controlplane.numbers.carrier import InventoryError, parse_inventory


@pytest.mark.parametrize("text", ["number\r\x03w\n", "number,state\n+1501\r5550100,AR\n", "a\rb,c\n"])
def test_a_bare_carriage_return_is_refused_as_bad_csv(text: str) -> None:
    with pytest.raises(InventoryError, match="not valid CSV"):
        list(parse_inventory(text))


def test_a_good_file_still_parses() -> None:
    (row,) = parse_inventory("number,state,city,rate_center\n+15015550100,AR,Little Rock,LTRK\n")
    assert (row.number, row.kind, row.state) == ("+15015550100", "local", "AR")
