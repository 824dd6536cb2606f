"""One renderer for every billing document: a record in, PDF bytes out (docs/documents.md).

Plumbing, not a capability: no routes, no SQL, no I/O. Tenant invoices and credit notes
(controlplane/invoice_delivery) and the partner's subscription invoices (controlplane/account)
build an ``InvoiceDocument`` and call ``render``.
"""
