"""Invitations and the setup checklist, pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane.shared.problems import Problem
from controlplane.team import invitation
from controlplane.team.checklist import STEPS, Facts, checklist


def test_a_token_is_random_and_stored_as_its_sha256_only() -> None:
    a, b = invitation.new_token(), invitation.new_token()
    assert a != b and a.startswith("inv_") and len(a) >= 40
    assert len(invitation.token_hash(a)) == 32 and invitation.token_hash(a) != invitation.token_hash(b)
    assert invitation.plausible_token(a) and not invitation.plausible_token("sk_live_x")
    assert not invitation.plausible_token("inv_" + "x" * 200)


def test_an_invitation_is_valid_for_seven_days_to_the_second() -> None:
    sent = datetime(2026, 5, 4, 14, 0, tzinfo=UTC)
    expires = invitation.expires_at(sent)
    assert expires == datetime(2026, 5, 11, 14, 0, tzinfo=UTC)
    assert not invitation.expired(expires, expires - timedelta(seconds=1))
    assert invitation.expired(expires, expires)
    assert not invitation.expired(None, expires)


def test_the_invitee_is_checked_naming_every_field() -> None:
    assert invitation.invitee("  dana@example.com ", " Dana   Ruiz ") == ("dana@example.com", "Dana Ruiz")
    with pytest.raises(Problem) as caught:
        invitation.invitee("dana@", "")
    assert caught.value.status == 422 and [e.field for e in caught.value.errors] == ["email", "name"]
    with pytest.raises(Problem):
        invitation.invitee("a@b.co", "x" * 101)


def test_the_checklist_counts_the_six_steps_in_the_seeds_order() -> None:
    none = checklist(Facts(False, False, False, False, False, False))
    assert [s.title for s in none.steps] == [
        "Create Your First Customer", "Set Up Your Branding", "Configure Billing",
        "Get Your First Phone Number", "Set Your Pricing", "Invite Team Members"]
    assert (none.done_count, none.total, none.complete) == (0, 6, False)
    some = checklist(Facts(True, False, True, False, False, True))
    assert [s.id for s in some.steps if s.done] == ["create_customer", "configure_billing", "invite_team"]
    assert some.done_count == 3 and not some.complete
    assert checklist(Facts(*[True] * 6)).complete and len(STEPS) == 6


def test_the_invitation_url_must_carry_the_token() -> None:
    from controlplane.config import ConfigError, load_config

    assert "{token}" in load_config(None, environ={}).team.invitation_url
    with pytest.raises(ConfigError, match="team.invitation_url"):
        load_config(None, environ={"CONTROLPLANE_TEAM__INVITATION_URL": "https://portal.example.com/accept"})
