"""The sender decrypts an endpoint's secret once per sealed value: a rotated secret (a new
sealed value) is never served from the cache, and a wrong row still fails."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from controlplane.config import Config
from controlplane.secret_box import SecretBox
from controlplane.webhooks.resolver import system_resolve
from controlplane.webhooks.sender import Sender
from controlplane.webhooks.settings import Settings


class CountingBox(SecretBox):
    opened = 0

    def open(self, endpoint_id: str, sealed: bytes) -> str:
        self.opened += 1
        return super().open(endpoint_id, sealed)


def test_a_secret_is_decrypted_once_and_a_rotation_is_seen_at_once() -> None:
    box = CountingBox("key material")
    sender = Sender(Settings.from_config(Config()), box, system_resolve)
    first = box.seal("we_1", "whsec_old")
    assert [sender._secret("we_1", first) for _ in range(3)] == ["whsec_old"] * 3
    assert box.opened == 1
    rotated = box.seal("we_1", "whsec_new")
    assert sender._secret("we_1", rotated) == "whsec_new"
    with pytest.raises(InvalidTag):  # another endpoint's row: the cache is keyed by both
        sender._secret("we_2", first)
