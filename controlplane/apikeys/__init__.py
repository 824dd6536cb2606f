"""Partner API keys: scoped, rate-limited credentials for partners' own integrations."""
