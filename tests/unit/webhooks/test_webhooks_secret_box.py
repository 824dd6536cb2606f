"""Secrets at rest: they decrypt with the key and the row they were sealed for, only."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from controlplane.secret_box import SecretBox


def test_round_trip_and_no_plaintext_in_the_ciphertext() -> None:
    box = SecretBox("key material")
    sealed = box.seal("we_1", "whsec_abc")
    assert b"whsec_abc" not in sealed
    assert box.open("we_1", sealed) == "whsec_abc"
    assert box.seal("we_1", "whsec_abc") != sealed  # fresh nonce every time


def test_wrong_key_or_wrong_endpoint_fails() -> None:
    sealed = SecretBox("key material").seal("we_1", "whsec_abc")
    with pytest.raises(InvalidTag):
        SecretBox("other key").open("we_1", sealed)
    with pytest.raises(InvalidTag):
        SecretBox("key material").open("we_2", sealed)


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError):
        SecretBox("")
