"""The partner's own account: status and trial, activation, tiers and plan changes, the operator's
price schedule and Enterprise prices, the cycle job and subscription invoices (docs/account.md)."""
