"""Call records: rating, ledger, usage, reconciliation and their RPC."""
