"""Asterisk events -> call records -> rating -> ledger."""
