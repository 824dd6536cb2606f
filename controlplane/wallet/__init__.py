"""The partner wallet: a typed, idempotent ledger, top-ups, auto-recharge (docs/wallet.md)."""
