"""What a database step can fail with and be tried again after: the server's errors, the
driver's (a connection closed or in a bad state) and the network's."""

from __future__ import annotations

import asyncpg

DB_ERRORS: tuple[type[Exception], ...] = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
