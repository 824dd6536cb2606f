"""Partners, tenants, extensions and DIDs, and keeping Asterisk in step with them."""
