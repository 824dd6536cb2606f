"""Production logging: every line on the stream is one JSON object, library records included."""

from __future__ import annotations

import json
import logging
import sys
import warnings
from collections.abc import Iterator

import pytest
import structlog

from controlplane.config import Config, Mode
from controlplane.logs import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level, hook = list(root.handlers), root.level, sys.excepthook
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    sys.excepthook = hook
    logging.captureWarnings(False)
    structlog.reset_defaults()


def test_production_lines_are_json_libraries_warnings_and_crashes_included(
        capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    configure_logging(Config(mode=Mode.PRODUCTION))
    structlog.get_logger("controlplane.x").info("ours", tenant_id="ten_1")
    logging.getLogger("aiohttp.server").error("Error handling request")
    logging.getLogger("asyncpg.pool").warning("connection %s lost", "c1")
    logging.getLogger("asyncio").info("below the library level: dropped")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("asyncio").exception("Task exception was never retrieved")
        sys.excepthook(*sys.exc_info())  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    lines = capsys.readouterr().err.splitlines()
    records = [json.loads(line) for line in lines]  # raises on any line that is not JSON
    events = [r["event"] for r in records]
    assert events[:3] == ["ours", "Error handling request", "connection c1 lost"]
    assert "below the library level: dropped" not in events
    assert records[0]["tenant_id"] == "ten_1" and records[1]["logger"] == "aiohttp.server"
    assert {r["level"] for r in records} >= {"info", "error", "warning", "critical"}
    crashes = [r for r in records if "exception" in r]
    assert len(crashes) == 2 and all("ValueError: boom" in r["exception"] for r in crashes)
    assert any("deprecated thing" in r["event"] for r in records)


def test_development_keeps_the_console(capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    configure_logging(Config())
    logging.getLogger("aiohttp.server").error("Error handling request")
    err = capsys.readouterr().err
    assert "Error handling request" in err and not err.lstrip().startswith("{")
