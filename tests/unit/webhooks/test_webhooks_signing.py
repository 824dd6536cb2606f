"""Signing: the header format and a fixed vector anyone can recompute."""

from __future__ import annotations

import hashlib
import hmac

from controlplane.webhooks import signing


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    secret, body = "whsec_test", b'{"id":"evt_1"}'
    expected = hmac.new(b"whsec_test", b'1700000000.{"id":"evt_1"}', hashlib.sha256).hexdigest()
    assert signing.signature(secret, 1700000000, body) == f"v1={expected}"


def test_known_vector() -> None:
    # Recomputable with: printf '0.{}' | openssl dgst -sha256 -hmac whsec_x
    assert signing.signature("whsec_x", 0, b"{}") == (
        "v1=" + hmac.new(b"whsec_x", b"0.{}", hashlib.sha256).hexdigest())


def test_headers_carry_id_timestamp_signature_and_json() -> None:
    headers = signing.headers("whsec_s", "evt_abc", 42, b"{}")
    assert headers["Content-Type"] == "application/json"
    assert headers["Webhook-Id"] == "evt_abc"
    assert headers["Webhook-Timestamp"] == "42"
    assert headers["Webhook-Signature"] == signing.signature("whsec_s", 42, b"{}")


def test_any_change_changes_the_signature() -> None:
    base = signing.signature("whsec_s", 42, b"{}")
    assert signing.signature("whsec_t", 42, b"{}") != base
    assert signing.signature("whsec_s", 43, b"{}") != base
    assert signing.signature("whsec_s", 42, b"{ }") != base


def test_new_secrets_are_prefixed_and_distinct() -> None:
    secrets = {signing.new_secret() for _ in range(100)}
    assert len(secrets) == 100
    assert all(s.startswith("whsec_") and len(s) > 40 for s in secrets)
