"""Collection: the partner's Stripe mode, tenants' cards, charging tenant invoices, payments,
refunds as numbered credit notes (docs/collection.md)."""
