"""Partner users over real HTTP and PostgreSQL: invitations (mail in the outbox), expiry,
resend, accept, removal, the acting user's role enforced before the handler and named in
every audit entry (refused attempts too), and the setup checklist flipping on real data."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from api_support import PLUGINS, Api, api_for
from inventory_support import buy_did
from mail_support import worker
from smtp_support import smtp_server

from controlplane.brand.plugin import PLUGIN as BRAND
from controlplane.profiles.models import AssignmentBody
from controlplane.profiles.services import ProfileServices
from controlplane.payments import store as payments_store
from controlplane.payments.provider import CardInfo
from controlplane.team import http as team_http

ACT = "X-Acting-User"


@pytest.fixture(scope="module")
async def api(pool: asyncpg.Pool) -> AsyncIterator[Api]:
    async with api_for(pool, plugins=[*PLUGINS, BRAND]) as client:
        yield client


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 4, 14, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(api: Api) -> AsyncIterator[Clock]:
    services = api.app[team_http.services_key]
    clock, real = Clock(), services.clock
    services.clock = clock
    yield clock
    services.clock = real


async def invitation_token(pool: asyncpg.Pool, to: str, nth: int = -1) -> tuple[str, email.message.EmailMessage]:
    rows = await pool.fetch("SELECT * FROM mail_outbox WHERE template = 'invitation' AND to_address = $1"
                            " ORDER BY id", to)
    assert rows, f"no invitation queued for {to}"
    msg = email.message_from_bytes(rows[nth]["message"], policy=email.policy.default)
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    found = re.search(r"token=(inv_[A-Za-z0-9_-]+)", text)
    assert found, text
    return found[1], msg  # type: ignore[return-value]


async def test_an_invitation_is_mailed_and_accepting_it_activates_the_user(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    admin = await api.user(pid, name="Owner")
    # seed 003: "We send invites as your brand"
    brand = {"brand_name": "Acme Voice", "from_email": "hello@acme-voice.example"}
    assert (await api.call("PUT", "/v1/account/brand", partner=pid, json=brand)).status == 200
    r = await api.call("POST", "/v1/team/users", partner=pid, headers={ACT: admin},
                       json={"email": "dana@example.com", "name": "Dana  Ruiz", "role": "PARTNER_USER"})
    assert r.status == 201, r.body
    user = r.body
    assert (user["status"], user["name"], user["email_verified"], user["invitation_expired"]) == \
        ("INVITED", "Dana Ruiz", False, False)
    sent = datetime.fromisoformat(user["invited_at"])
    assert datetime.fromisoformat(user["invitation_expires_at"]) - sent == timedelta(days=7)
    async with smtp_server() as smtp:
        await worker(pool, smtp).run_once()
        received = [m for m in await smtp.wait_for(1) if m.rcpt_tos == ["dana@example.com"]]
    assert len(received) == 1
    mail = received[0]
    assert mail.message["From"] == "Acme Voice <hello@acme-voice.example>"
    assert mail.message["Subject"] == "Owner invited you to the Acme Voice partner dashboard"
    expiry = datetime.fromisoformat(user["invitation_expires_at"])
    assert "as a Partner User" in mail.text() and f"expires on {expiry:%Y-%m-%d %H:%M} UTC" in mail.text()
    found = re.search(r"token=(inv_[A-Za-z0-9_-]+)", mail.text())
    assert found, mail.text()
    token = found[1]
    assert found[0] in mail.html()
    # stored hashed: the token itself is nowhere in the table
    assert await pool.fetchval("SELECT count(*) FROM partner_users WHERE invitation_token_hash IS NOT NULL"
                               " AND encode(invitation_token_hash, 'escape') LIKE '%' || $1 || '%'", token) == 0

    # not active yet: the portal cannot act as them
    refused = await api.call("GET", "/v1/team/users", partner=pid, headers={ACT: user["id"]})
    assert refused.status == 403 and refused.body["code"] == "unknown_acting_user"

    accepted = await api.call("POST", "/v1/team/invitations/accept", json={"token": token})
    assert accepted.status == 200, accepted.body
    assert accepted.body["status"] == "ACTIVE" and accepted.body["email_verified"] is True
    assert (await api.call("GET", "/v1/team/users", partner=pid, headers={ACT: user["id"]})).status == 200
    again = await api.call("POST", "/v1/team/invitations/accept", json={"token": token})
    assert again.status == 409 and again.body["code"] == "invitation_used" and again.body["field"] == "token"
    unknown = await api.call("POST", "/v1/team/invitations/accept", json={"token": "inv_nope"})
    assert unknown.status == 404 and unknown.body["code"] == "invitation_unknown"

    log = (await api.call("GET", "/v1/audit-events", partner=pid,
                          params={"resource_id": user["id"]})).body["items"]
    assert [(e["action"], e["acting_user_id"]) for e in log] == [("invite", admin), ("accept_invitation", None)]


async def test_an_invitation_expires_after_7_days_and_a_resend_renews_it(api: Api, pool: asyncpg.Pool,
                                                                          clock: Clock) -> None:
    pid = await api.partner()
    r = await api.call("POST", "/v1/team/users", partner=pid,
                       json={"email": "late@example.com", "name": "Late", "role": "PARTNER_ADMIN"})
    uid, first_token = r.body["id"], (await invitation_token(pool, "late@example.com"))[0]
    assert r.body["invitation_expires_at"] == "2026-05-11T14:00:00Z"

    clock.now += timedelta(days=7)  # exactly 7 days later: expired
    listed = (await api.call("GET", "/v1/team/users", partner=pid)).body["items"]
    assert [(u["id"], u["invitation_expired"]) for u in listed] == [(uid, True)]
    expired = await api.call("POST", "/v1/team/invitations/accept", json={"token": first_token})
    assert expired.status == 409 and expired.body["code"] == "invitation_expired", expired.body
    assert (await api.call("GET", f"/v1/team/users/{uid}", partner=pid)).body["status"] == "INVITED"

    clock.now += timedelta(days=1)
    resent = await api.call("POST", f"/v1/team/users/{uid}/invitation", partner=pid)
    assert resent.status == 200, resent.body
    assert resent.body["invitation_expires_at"] == "2026-05-19T14:00:00Z" and not resent.body["invitation_expired"]
    second_token = (await invitation_token(pool, "late@example.com"))[0]
    assert second_token != first_token
    assert await pool.fetchval("SELECT count(*) FROM mail_outbox WHERE to_address = 'late@example.com'") == 2
    replaced = await api.call("POST", "/v1/team/invitations/accept", json={"token": first_token})
    assert replaced.status == 404 and replaced.body["code"] == "invitation_unknown"

    clock.now += timedelta(days=6, hours=23)  # still inside the new 7 days
    assert (await api.call("POST", "/v1/team/invitations/accept", json={"token": second_token})).status == 200
    not_pending = await api.call("POST", f"/v1/team/users/{uid}/invitation", partner=pid)
    assert not_pending.status == 409 and not_pending.body["code"] == "not_invited"


async def test_a_partner_user_post_is_refused_before_the_handler_and_audited(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    tid = await api.tenant(pid)
    reader = await api.user(pid, "PARTNER_USER", name="Reader")
    r = await api.call("POST", "/v1/tenants", partner=pid, headers={ACT: reader},
                       json={"name": "Not Allowed", "billing_email": "a@b.co"})
    assert r.status == 403 and r.body["code"] == "read_only_role", r.body
    assert reader in r.body["detail"]
    for method, path, body in (("PATCH", f"/v1/tenants/{tid}", {"name": "Renamed"}),
                               ("DELETE", f"/v1/tenants/{tid}", None),
                               ("POST", "/v1/team/users", {"email": "x@example.com", "name": "X",
                                                           "role": "PARTNER_ADMIN"})):
        refused = await api.call(method, path, partner=pid, headers={ACT: reader}, json=body)
        assert refused.status == 403 and refused.body["code"] == "read_only_role", (method, path)
    assert await pool.fetchval("SELECT count(*) FROM tenants WHERE partner_id = $1", pid) == 1
    assert await pool.fetchval("SELECT name FROM tenants WHERE id = $1", tid) == "Tenant"
    # reading is what the role is for
    assert (await api.call("GET", "/v1/tenants", partner=pid, headers={ACT: reader})).status == 200

    log = (await api.call("GET", "/v1/audit-events", partner=pid, params={"outcome": "refused"})).body["items"]
    assert [(e["action"], e["acting_user_id"], e["refused_code"], e["actor_type"]) for e in log] == [
        ("createTenant", reader, "read_only_role", "service"),
        ("updateTenant", reader, "read_only_role", "service"),
        ("deleteTenant", reader, "read_only_role", "service"),
        ("inviteTeamUser", reader, "read_only_role", "service")]
    assert log[0]["request_id"] == r.headers["X-Request-Id"] and log[1]["resource_id"] == tid
    by_user = await api.call("GET", "/v1/audit-events", partner=pid, params={"acting_user_id": reader})
    assert len(by_user.body["items"]) == 4


async def test_a_partner_admin_post_works_and_its_entry_names_the_user(api: Api) -> None:
    pid = await api.partner()
    admin = await api.user(pid, name="Boss")
    r = await api.call("POST", "/v1/tenants", partner=pid, headers={ACT: admin},
                       json={"name": "Allowed", "billing_email": "a@b.co"})
    assert r.status == 201, r.body
    log = (await api.call("GET", "/v1/audit-events", partner=pid,
                          params={"resource_id": r.body["id"]})).body["items"]
    assert [(e["action"], e["acting_user_id"], e["outcome"], e["refused_code"]) for e in log] == [
        ("create", admin, "succeeded", None)]
    # "Last Login": written off the request path, at most once a minute
    for _ in range(50):
        seen = (await api.call("GET", f"/v1/team/users/{admin}", partner=pid)).body["last_seen_at"]
        if seen is not None:
            break
        await asyncio.sleep(0.05)
    assert seen is not None


async def test_the_acting_user_must_be_an_active_user_of_that_partner(api: Api) -> None:
    pid, other = await api.partner(), await api.partner()
    stranger = await api.user(other, name="Stranger")
    for user, status, code in (("usr_0000000000000000", 403, "unknown_acting_user"),
                               (stranger, 403, "unknown_acting_user"),
                               ("bad user!", 422, None)):
        r = await api.call("GET", "/v1/tenants", partner=pid, headers={ACT: user})
        assert r.status == status and r.body["field"] == ACT, r.body
        assert code is None or r.body["code"] == code
    no_partner = await api.call("GET", "/v1/tenants", headers={ACT: stranger})
    assert no_partner.status == 422 and no_partner.body["field"] == ACT
    key, _ = await api.key(other, ["tenants:read"])
    keyed = await api.call("GET", "/v1/tenants", token=key, headers={ACT: stranger})
    assert keyed.status == 403 and keyed.body["code"] == "acting_user_not_allowed"
    assert (await api.call("GET", "/v1/tenants", token=key)).status == 200
    # the owner path: only the portal acting as itself creates an active user
    owner = await api.call("POST", "/v1/team/users", partner=other, headers={ACT: stranger},
                           json={"email": "o@example.com", "name": "O", "role": "PARTNER_ADMIN", "activate": True})
    assert owner.status == 422 and owner.body["field"] == "activate"


async def test_removal_stops_the_user_and_keeps_their_audit_entries(api: Api) -> None:
    pid = await api.partner()
    first, second = await api.user(pid, name="First"), await api.user(pid, name="Second")
    made = await api.call("POST", "/v1/tenants", partner=pid, headers={ACT: second},
                          json={"name": "By Second", "billing_email": "a@b.co"})
    assert made.status == 201
    assert (await api.call("DELETE", f"/v1/team/users/{second}", partner=pid, headers={ACT: first})).status == 204
    gone = await api.call("GET", "/v1/tenants", partner=pid, headers={ACT: second})
    assert gone.status == 403 and gone.body["code"] == "unknown_acting_user"
    user = (await api.call("GET", f"/v1/team/users/{second}", partner=pid)).body
    assert user["status"] == "REMOVED" and user["removed_at"] is not None
    kept = (await api.call("GET", "/v1/audit-events", partner=pid, params={"acting_user_id": second})).body["items"]
    assert [e["action"] for e in kept] == ["create"] and kept[0]["resource_id"] == made.body["id"]
    removal = (await api.call("GET", "/v1/audit-events", partner=pid,
                              params={"resource_id": second, "action": "remove"})).body["items"]
    assert removal[0]["acting_user_id"] == first
    assert removal[0]["changes"]["status"] == {"before": "ACTIVE", "after": "REMOVED"}
    assert (await api.call("DELETE", f"/v1/team/users/{second}", partner=pid)).status == 204  # idempotent
    last = await api.call("DELETE", f"/v1/team/users/{first}", partner=pid)
    assert last.status == 409 and last.body["code"] == "last_admin"
    # the address is free again once its user is removed
    again = await api.call("POST", "/v1/team/users", partner=pid,
                           json={"email": "second.partner_admin@example.com", "name": "Second", "role": "PARTNER_USER"})
    assert again.status == 201 and again.body["id"] != second
    assert (await api.call("DELETE", "/v1/team/users/usr_nothere", partner=pid)).status == 404


async def test_bad_invitations_name_every_field_and_change_nothing(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    bad = await api.call("POST", "/v1/team/users", partner=pid,
                         json={"email": "not-an-address", "name": "   ", "role": "PARTNER_ADMIN"})
    assert bad.status == 422 and {e["field"] for e in bad.body["errors"]} == {"email", "name"}, bad.body
    role = await api.call("POST", "/v1/team/users", partner=pid,
                          json={"email": "a@example.com", "name": "A", "role": "OWNER"})
    assert role.status == 422 and role.body["field"] == "role"
    assert await pool.fetchval("SELECT count(*) FROM partner_users WHERE partner_id = $1", pid) == 0
    assert await pool.fetchval("SELECT count(*) FROM mail_outbox WHERE partner_id = $1", pid) == 0
    ok = {"email": "Same@Example.com", "name": "A", "role": "PARTNER_ADMIN"}
    assert (await api.call("POST", "/v1/team/users", partner=pid, json=ok)).status == 201
    dup = await api.call("POST", "/v1/team/users", partner=pid, json={**ok, "email": "same@example.com"})
    assert dup.status == 409 and dup.body["code"] == "already_a_user" and dup.body["field"] == "email"
    assert await pool.fetchval("SELECT count(*) FROM mail_outbox WHERE partner_id = $1", pid) == 1


async def test_the_checklist_flips_as_real_data_appears(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()

    async def done() -> dict[str, bool]:
        r = await api.call("GET", "/v1/account/checklist", partner=pid)
        assert r.status == 200, r.body
        assert r.body["done_count"] == sum(s["done"] for s in r.body["steps"]) and r.body["total"] == 6
        return {s["id"]: s["done"] for s in r.body["steps"]}

    assert list((await done()).values()) == [False] * 6
    tid = await api.tenant(pid)
    assert [k for k, v in (await done()).items() if v] == ["create_customer"]
    assert (await api.call("PUT", "/v1/account/brand", partner=pid, json={"primary_color": "#112233"})).status == 200
    assert (await done())["set_up_branding"]
    async with pool.acquire() as conn:
        await payments_store.insert_method(conn, pid, CardInfo("pm_card_visa", "visa", "4242", 12, 2030),
                                           default=True)
    assert (await done())["configure_billing"]
    await buy_did(pool, pid, "+12125550142")
    assert (await done())["first_phone_number"]
    await ProfileServices(pool).assign(pid, tid, AssignmentBody(per_minute_micros=20_000))
    assert (await done())["set_pricing"]
    assert not (await done())["invite_team"]
    await api.call("POST", "/v1/team/users", partner=pid,
                   json={"email": "staff@example.com", "name": "Staff", "role": "PARTNER_USER"})
    r = await api.call("GET", "/v1/account/checklist", partner=pid)
    assert r.body["done_count"] == 6 and r.body["complete"] is True
    missing = await api.call("GET", "/v1/account/checklist", partner="no_such_partner")
    assert missing.status == 404
