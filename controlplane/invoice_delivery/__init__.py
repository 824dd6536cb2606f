"""Tenant invoice delivery: the PDF of an invoice, its email to the tenant, reminders and the
dispute evidence export (docs/documents.md). The PDF itself is controlplane.documents'."""
