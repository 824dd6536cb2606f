"""structlog set-up: JSON lines in production, a readable console in development.

Context (request id, call id, tenant) is bound with ``structlog.contextvars`` by
whoever owns the request or the call, so every line beneath carries it.
"""

from __future__ import annotations

import logging
import sys

import structlog

from controlplane.config import Config, Mode


def configure_logging(config: Config) -> None:
    fmt = config.logging.format
    if fmt == "auto":
        fmt = "json" if config.mode is Mode.PRODUCTION else "console"
    level = getattr(logging, config.logging.level.upper())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor
    if fmt == "json":
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries that log through the standard library (aiohttp, asyncpg, panoramisk)
    # go to the same stream, at warning and above.
    logging.basicConfig(level=max(level, logging.WARNING), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
