"""Prometheus metrics (docs/operations.md).

``families`` holds the process-wide counters and histograms that the call path, the
admission server, the webhook worker and the Asterisk link bump (children bound once,
so a hook costs one locked add); ``live`` holds what is read only when scraped (calls
in progress, connection states, queue depths, pool use); ``listener`` serves them.
Labels never carry tenant or partner ids: their number is bounded by the code.
"""
