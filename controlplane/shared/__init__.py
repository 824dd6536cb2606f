"""The small kernel every layer may import: problem types, pagination cursors, the acting caller.

No I/O and no HTTP here: stores and services use these without pulling in aiohttp;
``controlplane.http`` maps them onto requests and responses (the import contract in
pyproject.toml holds the line).
"""
