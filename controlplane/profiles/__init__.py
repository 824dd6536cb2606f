"""Billing profiles: the partner's pricing templates and the tenants' assignments to them."""
