"""flows capability."""
