-- Partner users (controlplane/team): the people who log into the partner portal, their role
-- (seed 003 "Account Settings & Team": Partner Admin, Partner User) and their invitation.
-- Login, passwords and sessions are the portal's; we keep who may act and in which role.

CREATE TABLE partner_users (
    id                     text PRIMARY KEY,
    partner_id             text NOT NULL REFERENCES partners (id),
    email                  text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    name                   text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    role                   text NOT NULL CHECK (role IN ('PARTNER_ADMIN', 'PARTNER_USER')),
    status                 text NOT NULL CHECK (status IN ('INVITED', 'ACTIVE', 'REMOVED')),
    -- SHA-256 of the latest invitation token (256 random bits, so a fast hash is enough). Kept
    -- after acceptance or removal, so a used link is told apart from an unknown one; a resend
    -- replaces it, and the earlier link is unknown from then on.
    invitation_token_hash  bytea UNIQUE,
    invited_by             text,
    invited_at             timestamptz,
    invitation_expires_at  timestamptz,
    accepted_at            timestamptz,
    removed_at             timestamptz,
    last_seen_at           timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
-- One live user per address and partner; a removed user's address may be invited again.
CREATE UNIQUE INDEX partner_users_email ON partner_users (partner_id, lower(email)) WHERE status <> 'REMOVED';
CREATE INDEX partner_users_partner_created ON partner_users (partner_id, created_at, id);

-- The acting user of every audit entry (validated against partner_users from now on; older
-- rows keep the unvalidated value the portal sent). No foreign key: audit rows outlive users.
ALTER TABLE audit_events RENAME COLUMN user_id TO acting_user_id;
-- A refused attempt (403 before the handler ran) is audited too, with the problem's code.
ALTER TABLE audit_events ADD COLUMN outcome text NOT NULL DEFAULT 'succeeded'
    CHECK (outcome IN ('succeeded', 'refused'));
ALTER TABLE audit_events ADD COLUMN refused_code text;
CREATE INDEX audit_events_acting_user ON audit_events (partner_id, acting_user_id, created_at)
    WHERE acting_user_id IS NOT NULL;
