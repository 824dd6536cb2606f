"""nodes capability."""
