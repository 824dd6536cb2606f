"""recordings capability."""
