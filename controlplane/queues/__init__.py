"""queues capability."""
