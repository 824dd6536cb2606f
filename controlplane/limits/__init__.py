"""Per-tenant usage limits: caps, call admission (FastAGI), cut-off, alerts (docs/limits.md)."""
