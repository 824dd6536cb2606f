"""The daemon's event loop choice (controlplane/eventloop.py): uvloop unless told otherwise."""

from __future__ import annotations

import asyncio

import pytest

from controlplane import eventloop


async def _name() -> str:
    return eventloop.loop_name(asyncio.get_running_loop())


def test_the_daemon_runs_on_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(eventloop.ENV, raising=False)
    assert eventloop.run(_name()) == "uvloop"


def test_the_environment_can_keep_the_standard_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV, "asyncio")
    assert eventloop.loop_factory() is None
    assert eventloop.run(_name()) == "asyncio"
    assert eventloop.run(_name(), "uvloop") == "uvloop", "an explicit choice wins over the environment"


def test_an_unknown_loop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV, "trio")
    with pytest.raises(ValueError, match="neither"):
        eventloop.loop_factory()
