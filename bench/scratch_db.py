"""A throwaway migrated database for one bench run (not a bench itself: run_all runs bench_*.py).

Import it after the bench has put the repository root on ``sys.path``, as with ``verdict``.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from controlplane.db.database import create_database, migrate_dsn
from controlplane.db.embedded import EmbeddedPostgres


@asynccontextmanager
async def scratch_database(prefix: str) -> AsyncIterator[str]:
    """The DSN of a freshly migrated database on an embedded PostgreSQL in a temporary folder
    (``prefix`` names the folder); the server is stopped and the folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg")
        server.start()
        try:
            name = f"bench_{secrets.token_hex(4)}"
            await create_database(server.dsn(), name)
            await migrate_dsn(server.dsn(name))
            yield server.dsn(name)
        finally:
            server.stop()
