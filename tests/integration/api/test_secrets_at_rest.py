"""Secrets shown once stay out of the idempotency table: replays are sealed at rest (real PostgreSQL)."""

from __future__ import annotations

import asyncpg
from api_support import Api


async def test_idempotency_rows_hold_no_secret_in_clear_and_a_retry_still_gets_it(
        api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    tid = await api.tenant(pid, "Secretive")
    key = await api.call("POST", "/v1/api-keys", partner=pid, headers={"Idempotency-Key": "secret-key"},
                         json={"name": "Shown once", "scopes": ["tenants:read"]})
    hook = await api.call("POST", "/v1/webhook-endpoints", partner=pid, headers={"Idempotency-Key": "secret-hook"},
                          json={"url": "http://127.0.0.1:9/hook", "event_types": ["*"]})
    ext = await api.call("POST", f"/v1/tenants/{tid}/extensions", partner=pid, headers={"Idempotency-Key": "secret-ext"},
                         json={"number": "101", "display_name": "Desk"})
    assert (key.status, hook.status, ext.status) == (201, 201, 201), (key.body, hook.body, ext.body)
    secrets = {"api key": key.body["secrets"]["key"],
               "signing secret": hook.body["secrets"]["signing_secret"],
               "sip password": ext.body["secrets"]["sip_password"]}
    assert secrets["api key"].startswith("sk_live_") and secrets["signing secret"].startswith("whsec_")

    rows = await pool.fetch("SELECT scope, key, status, headers::text AS headers, body FROM idempotency_keys"
                            " WHERE key LIKE 'secret-%'")
    assert len(rows) == 3 and all(r["status"] == 201 and r["body"] for r in rows)
    dump = "\n".join(f"{r['scope']} {r['key']} {r['headers']} {bytes(r['body']).decode('latin-1')}" for r in rows)
    for marker in ("sk_live_", "whsec_", *secrets.values()):
        assert marker not in dump
    # the sealed body is not the clear one compressed or encoded: not even the ids show
    assert key.body["id"] not in dump and hook.body["id"] not in dump

    # The client that lost the first response gets the secret on its retry.
    again = await api.call("POST", "/v1/api-keys", partner=pid, headers={"Idempotency-Key": "secret-key"},
                           json={"name": "Shown once", "scopes": ["tenants:read"]})
    assert again.headers["Idempotent-Replayed"] == "true" and again.body == key.body


async def test_a_replay_sealed_under_another_key_is_refused_not_rerun(api: Api, pool: asyncpg.Pool) -> None:
    pid = await api.partner()
    body = {"name": "Once", "billing_email": "a@b.co"}
    first = await api.call("POST", "/v1/tenants", partner=pid, json=body, headers={"Idempotency-Key": "moved"})
    assert first.status == 201
    # what migration 0010 leaves of a replay stored in clear before it
    await pool.execute("UPDATE idempotency_keys SET body = NULL WHERE key = 'moved'")
    again = await api.call("POST", "/v1/tenants", partner=pid, json=body, headers={"Idempotency-Key": "moved"})
    assert again.status == 409 and again.body["type"].endswith("idempotency_replay_unavailable")
    assert await pool.fetchval("SELECT count(*) FROM tenants WHERE partner_id = $1", pid) == 1
