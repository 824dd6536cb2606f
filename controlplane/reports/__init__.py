"""reports capability."""
