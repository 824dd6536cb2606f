"""Fixtures of the collection integration tests (the world lives in collection_world.py)."""

from collection_world import localstripe, world  # noqa: F401  (fixtures)
