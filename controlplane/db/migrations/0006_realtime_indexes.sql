-- PJSIP realtime look-ups, as res_config_pgsql sends them.
-- By id (`WHERE id = ...`): the primary keys serve them.
-- An AOR's registrations (`ps_contacts WHERE id LIKE '<aor>^3B@%'`, on every REGISTER,
-- Dial and qualify): a prefix search, which the primary key's btree serves only
-- under the C collation. This index serves it under any collation, so it stays an
-- index scan when every phone is registered.
CREATE INDEX ps_contacts_id_prefix ON ps_contacts (id varchar_pattern_ops);
