"""moh capability."""
