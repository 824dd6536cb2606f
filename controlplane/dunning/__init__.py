"""Dunning: unpaid tenant invoices flagged Overdue, the card retried, the tenant suspended and reactivated."""
