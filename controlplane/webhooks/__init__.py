"""Signed, retried webhooks: endpoints, the delivery worker, the deliveries debugger.

Events come from the outbox (``controlplane.events``); see docs/webhooks.md for the
wire format, the retry schedule and the ordering guarantee.
"""
