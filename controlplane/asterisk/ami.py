"""AMI client: panoramisk for login and actions, our own event reader and supervisor.

Why not panoramisk's reconnect: it retries on a fixed integer delay, keeps retrying
after ``close()`` if Asterisk was down at that moment, says nothing when a re-login
is refused, silently drops writes while disconnected (the caller's future never
resolves) and replays queued actions on the next ``FullyBooted`` (an Originate sent
before a restart would be dialled again after it). So ``_Manager`` keeps only the
protocol handling, and ``AmiClient`` owns connecting, login, liveness and backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Self

import structlog
from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from controlplane.asterisk.ami_frames import Framer, headers, is_plain_event
from controlplane.asterisk.ari import backoff_delay
from controlplane.asterisk.events import AmiEvent, FullyBooted, parse_ami_event

AmiCallback = Callable[[AmiEvent], Awaitable[None] | None]
_RECONNECTED = object()


class AmiError(Exception):
    """AMI is unreachable, refused us, or answered an action with an error."""


class AmiNotConnected(AmiError):
    pass


class AmiActionError(AmiError):
    def __init__(self, response: Message) -> None:
        self.response = response
        super().__init__(f"AMI {response.get('Response')}: {response.get('Message')}")


class _Protocol(AMIProtocol):  # type: ignore[misc]  # panoramisk has no type hints
    """panoramisk's protocol with a fast path: plain events skip its ``Message``
    and its pattern dispatch, and go straight to ``on_event`` as dicts."""

    on_event: Callable[[dict[str, Any]], None]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.framer = Framer()

    def data_received(self, data: bytes) -> None:
        for block in self.framer.feed(data):
            if is_plain_event(block) and not block.startswith("Event: Shutdown"):
                self.on_event(headers(block))
                continue
            message = Message.from_line(block)
            if message is not None:
                self.handle_message(message)


class _Manager(Manager):  # type: ignore[misc]  # panoramisk has no type hints
    """panoramisk's Manager minus its reconnect timer, blind pinger and action replay."""

    def __init__(self, on_lost: Callable[[Any], None], **config: Any) -> None:
        super().__init__(**config)
        self._on_lost = on_lost
        del self.callbacks["FullyBooted"]  # send_awaiting_actions: the replay
        self.patterns: list[Any] = [p for p in self.patterns if p[0] != "FullyBooted"]

    def ping(self) -> None:
        """Disabled: AmiClient pings with a timeout and acts on silence."""

    def connection_lost(self, exc: Any) -> None:
        self._connected = False
        self.awaiting_actions.clear()
        self._on_lost(exc)


class AmiClient:
    """One AMI login, kept alive across Asterisk restarts.

    ``connected`` is true from a successful login until the connection drops.
    ``on_reconnect`` is awaited after a *re*-login once Asterisk reports FullyBooted,
    before any later event callback, so the owner resyncs against a complete system.
    Event callbacks run one at a time in arrival order, sync or async.
    """

    def __init__(self, host: str, port: int, username: str, secret: str, *,
                 on_reconnect: Callable[[], Awaitable[None]] | None = None,
                 events: str = "on", connect_timeout: float = 5.0,
                 action_timeout: float = 10.0, ping_interval: float = 10.0,
                 ping_timeout: float = 5.0, backoff_initial: float = 0.2,
                 backoff_max: float = 5.0) -> None:
        self.host, self.port = host, port
        self.on_reconnect = on_reconnect
        self.connect_timeout, self.action_timeout = connect_timeout, action_timeout
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self._login = {"username": username, "secret": secret, "events": events}
        self._subs: defaultdict[str, list[AmiCallback]] = defaultdict(list)
        self._manager: _Manager | None = None
        self._connected = asyncio.Event()
        self._booted = asyncio.Event()
        self._lost = asyncio.Event()
        self._closing = False
        self._reconnect_pending = False
        self._inflight: set[asyncio.Future[Any]] = set()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._log = structlog.get_logger("controlplane.asterisk.ami").bind(
            host=host, port=port)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def fully_booted(self) -> bool:
        """Asterisk said FullyBooted on this connection (all modules loaded)."""
        return self._booted.is_set()

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def wait_fully_booted(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._booted.wait(), timeout)

    def on(self, event_name: str, callback: AmiCallback) -> Callable[[], None]:
        """Subscribe to one event name (case-insensitive) or "*"; returns an unsubscriber.
        Subscriptions live in the client, so they survive reconnects."""
        key = event_name.lower()
        self._subs[key].append(callback)
        return lambda: self._subs[key].remove(callback)

    def on_fully_booted(self, callback: AmiCallback) -> Callable[[], None]:
        return self.on("FullyBooted", callback)

    async def start(self) -> None:
        """Begin connecting in the background (returns at once; see ``wait_connected``).
        Must run inside the loop: panoramisk binds futures to the running loop."""
        if self._manager is not None:
            return
        self._manager = _Manager(self._connection_lost, loop=asyncio.get_running_loop(),
                                 host=self.host, port=self.port, **self._login)
        self._manager.register_event("*", self._on_message)
        self._tasks = [asyncio.create_task(self._supervise(), name="ami-supervisor"),
                       asyncio.create_task(self._deliver(), name="ami-deliver")]

    async def connect(self, timeout: float | None = None) -> None:
        """``start()`` and wait for the first login."""
        await self.start()
        await self.wait_connected(timeout)

    async def action(self, action: Mapping[str, Any], *, timeout: float | None = None,
                     as_list: bool | None = None, check: bool = True) -> Message | list[Message]:
        """Send one action; a list comes back for event-list actions (first item is
        the response), and always with ``as_list``. Raises ``AmiNotConnected`` rather
        than queueing, and ``AmiActionError`` on an error response when ``check``."""
        if not self.connected or self._manager is None:
            raise AmiNotConnected(f"AMI {self.host}:{self.port} is not connected")
        # panoramisk never resolves a forced list whose reply is a lone error (a DBGet of
        # a missing key): it detects the list itself ("EventList: start"), we wrap after.
        future = self._manager.send_action(dict(action), as_list=None if as_list else as_list)
        self._inflight.add(future)
        try:
            result = await asyncio.wait_for(future, timeout or self.action_timeout)
        finally:
            self._inflight.discard(future)
        if as_list and not isinstance(result, list):
            result = [result]
        first = result[0] if isinstance(result, list) else result
        if check and first.get("Response") in ("Error", "Fail", "Failure"):
            raise AmiActionError(first)
        return result

    async def ping(self, timeout: float | None = None) -> bool:
        """True when Asterisk answers a Ping in time; never raises."""
        try:
            await self.action({"Action": "Ping"}, timeout=timeout or self.ping_timeout)
            return True
        except (TimeoutError, AmiError):
            return False

    # ---------------------------------------------------------------- internals

    async def _supervise(self) -> None:
        attempt, ever_connected = 0, False
        while not self._closing:
            attempt += 1
            self._reconnect_pending = ever_connected
            try:
                await self._connect_once()
            except (TimeoutError, OSError, AmiError) as exc:
                delay = backoff_delay(attempt, self.backoff_initial, self.backoff_max)
                log = self._log.error if isinstance(exc, _LoginRefused) else self._log.info
                log("ami.connect_failed", attempt=attempt, retry_in=round(delay, 2),
                    error=str(exc) or type(exc).__name__)
                await asyncio.sleep(delay)  # close() cancels us
                continue
            self._connected.set()
            self._log.info("ami.connected", attempt=attempt, reconnect=ever_connected)
            attempt, ever_connected = 0, True
            reason = await self._watch()
            self._teardown()
            if not self._closing:
                self._log.warning("ami.disconnected", reason=reason)

    async def _connect_once(self) -> None:
        assert self._manager is not None
        loop = asyncio.get_running_loop()
        transport, protocol = await asyncio.wait_for(
            loop.create_connection(_Protocol, self.host, self.port), self.connect_timeout)
        protocol.on_event = self._on_event
        self._lost = asyncio.Event()
        self._booted.clear()
        made: asyncio.Future[Any] = loop.create_future()
        made.set_result((transport, protocol))
        self._manager.connection_made(made)  # wires the protocol and sends Login
        login = self._manager.authenticated_future
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait({login, lost}, timeout=self.connect_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if login not in done:
            self._manager.close()
            raise AmiError("connection lost before login" if self._lost.is_set()
                           else "no answer to Login")
        response = login.result()
        if not response.success:
            self._manager.close()
            raise _LoginRefused(f"login refused: {response.get('Message')}")

    async def _watch(self) -> str:
        """Wait for the connection to drop, pinging on silence: a hung Asterisk keeps
        the TCP socket open, and only an unanswered Ping tells."""
        while not self._closing:
            try:
                await asyncio.wait_for(self._lost.wait(), self.ping_interval)
                return "connection lost"
            except TimeoutError:
                pass
            if not self._closing and not await self.ping():
                return "ping timeout"
        return "closing"

    def _teardown(self) -> None:
        self._connected.clear()
        self._booted.clear()
        if self._manager is not None:
            self._manager.close()
            self._manager.awaiting_actions.clear()
        for future in list(self._inflight):
            if not future.done():
                future.set_exception(AmiNotConnected("AMI connection lost"))
        self._inflight.clear()

    def _connection_lost(self, exc: Any) -> None:
        self._lost.set()

    def _on_message(self, _manager: Manager, message: Message) -> None:
        self._on_event(message)

    def _on_event(self, message: Mapping[str, Any]) -> None:
        # Runs inside data_received: must not raise (an exception there makes
        # asyncio drop the connection) and must not block.
        try:
            event = parse_ami_event(message)
            if isinstance(event, FullyBooted):
                self._booted.set()
                if self._reconnect_pending:
                    self._reconnect_pending = False
                    self._queue.put_nowait(_RECONNECTED)
            self._queue.put_nowait(event)
        except Exception:  # noqa: BLE001 - logged; one bad callback must not stop the stream
            self._log.exception("ami.dispatch_failed")

    async def _deliver(self) -> None:
        while True:
            item = await self._queue.get()
            if item is _RECONNECTED:
                if self.on_reconnect is not None:
                    await self._run("ami.on_reconnect_failed", self.on_reconnect)
                continue
            for callback in (*self._subs.get(item.event.lower(), ()), *self._subs.get("*", ())):
                await self._run("ami.callback_failed", callback, item)

    async def _run(self, what: str, callback: Callable[..., Any], *args: Any) -> None:
        try:
            result = callback(*args)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - logged; one bad callback must not stop the stream
            self._log.exception(what, event=getattr(args[0], "event", None) if args else None)

    async def close(self) -> None:
        """Log off politely if we can, stop every task, close the socket."""
        if self._closing:
            return
        self._closing = True
        if self.connected:
            with contextlib.suppress(TimeoutError, AmiError):
                await self.action({"Action": "Logoff"}, timeout=1.0, check=False)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._teardown()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _LoginRefused(AmiError):
    """Wrong credentials or ACL: retried, but logged as an error."""
