"""The brand settings' checks: every bad field named, good ones normalised."""

from __future__ import annotations

import pytest

from controlplane.brand.validation import (check_brand, check_company, check_notifications, descriptor_problem,
                                           email_problem, normalize_color)


@pytest.mark.parametrize("value", ["ACME PHONES", "HRC TELECOM", "PINEDALE VOIP", "A&B-TEL", "Abcde",
                                   "X" * 22, "24-7 Phones"])
def test_descriptors_the_seed_and_stripe_accept(value: str) -> None:
    assert descriptor_problem(value) is None


@pytest.mark.parametrize(("value", "why"), [
    ("Acme's Phone Co.", "only letters"),            # the seed's own bad example
    ("THIS IS A REALLY LONG NAME", "5 to 22"),       # the seed's other one: 26 characters
    ("ACME", "5 to 22"),                             # Stripe: at least 5
    ("12345", "at least one letter"),                # Stripe: one letter at least
    ("ACME*PHONES", "only letters"), ("ACMÉ PHONES", "only letters"), ("<ACME>", "only letters"),
    (" ACME PHONES", "leading"),
])
def test_descriptors_refused_say_why(value: str, why: str) -> None:
    problem = descriptor_problem(value)
    assert problem is not None and why in problem


@pytest.mark.parametrize(("value", "expected"), [("#1A73E8", "#1a73e8"), ("#abc", "#aabbcc"), ("#000000", "#000000")])
def test_colors_are_normalised(value: str, expected: str) -> None:
    assert normalize_color(value) == expected


@pytest.mark.parametrize("value", ["1a73e8", "#1a73e", "#GGGGGG", "red", "#1a73e8ff", "rgb(0,0,0)", ""])
def test_colors_refused(value: str) -> None:
    assert normalize_color(value) is None


@pytest.mark.parametrize("value", ["billing@acme.example", "first.last+tag@sub.acme.co", "a@b.io"])
def test_emails_accepted(value: str) -> None:
    assert email_problem(value) is None


@pytest.mark.parametrize("value", ["acme.example", "@acme.example", "a@", "a@localhost", "a b@acme.example",
                                   "a@acme..example", "a@-acme.example", ".a@acme.example", "a@acme.123",
                                   "a\r\nBcc: x@y.z@acme.example", "x" * 250 + "@acme.example"])
def test_emails_refused(value: str) -> None:
    assert email_problem(value) is not None


def test_every_bad_brand_field_is_named_and_nothing_is_kept() -> None:
    patch = check_brand({"brand_name": "", "primary_color": "blue", "from_email": "nope",
                         "support_email": 7, "statement_descriptor": "Acme's Phone Co.", "logo_url": "x"})
    assert sorted(e.field for e in patch.errors) == [
        "brand_name", "from_email", "logo_url", "primary_color", "statement_descriptor", "support_email"]


def test_a_partial_brand_patch_keeps_absent_fields_and_resets_nulls() -> None:
    patch = check_brand({"primary_color": "#ABC", "statement_descriptor": None})
    assert patch.errors == []
    assert patch.values == {"primary_color": "#aabbcc", "statement_descriptor": None}


def test_company_fields() -> None:
    assert check_company({"company_name": "  ACME LLC ", "billing_email": "b@acme.example"}).values == {
        "company_name": "ACME LLC", "billing_email": "b@acme.example"}
    bad = check_company({"company_name": 3, "billing_email": "b@"})
    assert sorted(e.field for e in bad.errors) == ["billing_email", "company_name"]


def test_notifications_take_booleans_only() -> None:
    assert check_notifications({"usage_alerts": False}).values == {"usage_alerts": False}
    bad = check_notifications({"usage_alerts": "yes", "monthly_reports": 1, "weekly": True})
    assert sorted(e.field for e in bad.errors) == ["monthly_reports", "usage_alerts", "weekly"]
