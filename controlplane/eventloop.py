"""The event loop the daemon and its standalone workers run on: uvloop when installed.

Why: on two cores the daemon's CPU per call is taken from Asterisk, and most of it is event
loop work (one FastAGI connection accepted, read, written and closed per call; the AMI
stream; the database protocol). uvloop runs those in C on libuv: measured in
docs/performance.md (bench_calls ``--loop asyncio`` vs ``--loop uvloop``).

``CONTROLPLANE_EVENT_LOOP=asyncio`` keeps the standard library's loop (a platform without a
uvloop wheel, or to rule the loop out when chasing a bug). Nothing in the code depends on
which loop runs it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
ENV = "CONTROLPLANE_EVENT_LOOP"


def loop_factory(choice: str | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop to create (None: asyncio's default). ``choice``: "uvloop", "asyncio", or
    "default"/None for the environment's choice, uvloop when it is importable."""
    choice = (choice if choice not in (None, "default") else os.environ.get(ENV, "")) or "uvloop"
    if choice == "asyncio":
        return None
    if choice != "uvloop":
        raise ValueError(f"{ENV}: {choice!r} is neither 'uvloop' nor 'asyncio'")
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run(main: Coroutine[Any, Any, T], choice: str | None = None) -> T:
    """``asyncio.run`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)
