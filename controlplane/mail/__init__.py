"""Email: the outbox (``store.enqueue`` inside your transaction), its worker, the templates
and the notifier that mails partners about their events (docs/mail.md)."""
