"""Payments: the partner's cards at the provider (Stripe first) and the one way to charge them."""
