"""A thin asyncio ARI client: REST helpers plus a self-healing events WebSocket.

Why our own: ari-py is dead and ARI is a small surface. The events loop survives
Asterisk restarts by itself (capped exponential backoff with jitter) and tells the
owner through ``on_reconnect`` so the daemon can resync whatever it missed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Self
from urllib.parse import quote

import aiohttp
import msgspec
import structlog

from controlplane.asterisk.events import AriEvent, Channel, parse_ari_event

EventHandler = Callable[[AriEvent], Awaitable[None]]
ParamValue = str | int | float | bool | None


class AriError(Exception):
    """A non-2xx answer from ARI; ``body`` is the decoded JSON (usually {"message": ...})."""

    def __init__(self, status: int, body: Any, method: str = "", path: str = "") -> None:
        self.status, self.body, self.method, self.path = status, body, method, path
        detail = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"ARI {method} {path}: HTTP {status}: {detail}")


def backoff_delay(attempt: int, initial: float, maximum: float) -> float:
    """Equal-jitter exponential backoff: half fixed, half random, so a fleet of
    clients does not hammer a restarting Asterisk in lock-step."""
    ceiling = min(maximum, initial * 2.0 ** max(0, attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _params(params: Mapping[str, ParamValue]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


class AriClient:
    """One ARI application: REST calls and the events WebSocket for ``app``.

    ``base_url`` is Asterisk's HTTP server root (``http://127.0.0.1:8088``).
    """

    def __init__(self, base_url: str, user: str, password: str, app: str, *,
                 session: aiohttp.ClientSession | None = None,
                 subscribe_all: bool = True,
                 on_reconnect: Callable[[], Awaitable[None]] | None = None,
                 backoff_initial: float = 0.2, backoff_max: float = 5.0,
                 request_timeout: float = 10.0, connect_timeout: float = 10.0,
                 heartbeat: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        self.subscribe_all = subscribe_all
        self.on_reconnect = on_reconnect
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.heartbeat, self.connect_timeout = heartbeat, connect_timeout
        # A header rather than aiohttp's (deprecated) auth= or ARI's api_key query
        # parameter, which would put the password into URLs and access logs.
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._session = session
        self._own_session = session is None
        self._connected = asyncio.Event()
        self._stop = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[Any] | None = None
        self._log = structlog.get_logger("controlplane.asterisk.ari").bind(app=app)

    # ------------------------------------------------------------------ REST

    @property
    def connected(self) -> bool:
        """True while the events WebSocket is open (the app is registered)."""
        return self._connected.is_set()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the events WebSocket is open; TimeoutError after ``timeout``."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            if self._stop.is_set():
                raise RuntimeError("AriClient is closed")
            self._session = aiohttp.ClientSession()
        return self._session

    def _url(self, path: str) -> str:
        path = "/" + path.lstrip("/")
        return self.base_url + (path if path.startswith("/ari/") else "/ari" + path)

    async def request(self, method: str, path: str, *, json: Any = None,
                      params: Mapping[str, ParamValue] | None = None) -> bytes:
        """Raw call under ``/ari``; returns the body bytes, raises ``AriError`` on non-2xx."""
        kwargs: dict[str, Any] = {"headers": self._headers, "params": _params(params or {}),
                                  "timeout": self._timeout}
        if json is not None:
            kwargs["data"] = msgspec.json.encode(json)
            kwargs["headers"] = {**self._headers, "Content-Type": "application/json"}
        async with self._http().request(method, self._url(path), **kwargs) as resp:
            body = await resp.read()
            if resp.status >= 300:
                try:
                    detail: Any = msgspec.json.decode(body)
                except msgspec.DecodeError:
                    detail = body.decode("utf-8", "replace")
                raise AriError(resp.status, detail, method, path)
            return body

    async def _json(self, method: str, path: str, json: Any,
                    params: Mapping[str, ParamValue]) -> Any:
        body = await self.request(method, path, json=json, params=params)
        return msgspec.json.decode(body) if body.strip() else None

    async def get(self, path: str, **params: ParamValue) -> Any:
        return await self._json("GET", path, None, params)

    async def post(self, path: str, json: Any = None, **params: ParamValue) -> Any:
        return await self._json("POST", path, json, params)

    async def put(self, path: str, json: Any = None, **params: ParamValue) -> Any:
        return await self._json("PUT", path, json, params)

    async def delete(self, path: str, **params: ParamValue) -> Any:
        return await self._json("DELETE", path, None, params)

    # ------------------------------------------------------- typed conveniences

    async def asterisk_info(self) -> dict[str, Any]:
        info: dict[str, Any] = await self.get("/asterisk/info")
        return info

    async def channels(self) -> list[Channel]:
        return msgspec.json.decode(await self.request("GET", "/channels"), type=list[Channel])

    async def answer(self, channel_id: str) -> None:
        await self.post(f"/channels/{quote(channel_id, safe='')}/answer")

    async def hangup(self, channel_id: str, reason: str | None = "normal",
                     reason_code: int | None = None) -> None:
        """``reason`` is ARI's name (normal, busy, congestion, no_answer, rejected, ...);
        ``reason_code`` a Q.850 cause, which wins when given."""
        await self.delete(f"/channels/{quote(channel_id, safe='')}",
                          reason=None if reason_code is not None else reason,
                          reason_code=reason_code)

    async def set_channel_var(self, channel_id: str, name: str, value: str) -> None:
        await self.post(f"/channels/{quote(channel_id, safe='')}/variable",
                        variable=name, value=value)

    async def get_channel_var(self, channel_id: str, name: str) -> str:
        data = await self.get(f"/channels/{quote(channel_id, safe='')}/variable", variable=name)
        return str(data.get("value", ""))

    async def continue_in_dialplan(self, channel_id: str, context: str | None = None,
                                   exten: str | None = None, priority: int | None = None,
                                   label: str | None = None) -> None:
        """Leave Stasis and resume the dialplan (StasisEnd follows)."""
        await self.post(f"/channels/{quote(channel_id, safe='')}/continue", context=context,
                        extension=exten, priority=priority, label=label)

    async def originate(self, endpoint: str, *, extension: str | None = None,
                        context: str | None = None, priority: int | None = None,
                        app: str | None = None, app_args: str | None = None,
                        caller_id: str | None = None, timeout: int | None = None,
                        channel_id: str | None = None, other_channel_id: str | None = None,
                        originator: str | None = None, formats: str | None = None,
                        variables: Mapping[str, str] | None = None) -> Channel:
        """Create a channel to ``endpoint`` (``PJSIP/100``, ``Local/x@ctx``) that runs
        either the dialplan (extension/context/priority) or a Stasis ``app``."""
        body = await self.request(
            "POST", "/channels", json={"variables": dict(variables)} if variables else None,
            params={"endpoint": endpoint, "extension": extension, "context": context,
                    "priority": priority, "app": app, "appArgs": app_args,
                    "callerId": caller_id, "timeout": timeout, "channelId": channel_id,
                    "otherChannelId": other_channel_id, "originator": originator,
                    "formats": formats})
        return msgspec.json.decode(body, type=Channel)

    # Push configuration: sorcery objects (e.g. res_pjsip endpoint/aor/auth) written
    # through a writable backend (astdb, realtime) without any module reload.

    def _config_path(self, config_class: str, object_type: str, object_id: str) -> str:
        return "/asterisk/config/dynamic/" + "/".join(
            quote(part, safe="") for part in (config_class, object_type, object_id))

    async def config_put(self, config_class: str, object_type: str, object_id: str,
                         fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Create or replace one object; returns every attribute as Asterisk now holds it."""
        data = await self.put(self._config_path(config_class, object_type, object_id),
                              json={"fields": [{"attribute": a, "value": v} for a, v in fields]})
        return [(t["attribute"], t["value"]) for t in data or []]

    async def config_get(self, config_class: str, object_type: str,
                         object_id: str) -> list[tuple[str, str]]:
        """Raises ``AriError`` with status 404 when the object does not exist."""
        data = await self.get(self._config_path(config_class, object_type, object_id))
        return [(t["attribute"], t["value"]) for t in data or []]

    async def config_delete(self, config_class: str, object_type: str, object_id: str) -> None:
        await self.delete(self._config_path(config_class, object_type, object_id))

    # ---------------------------------------------------------------- events

    async def run(self, handler: EventHandler) -> None:
        """Keep the events WebSocket up until ``close()``, awaiting ``handler`` for each
        event in order. A handler error is logged and skipped: one bad event must not
        cost us the stream. After a reconnect, ``on_reconnect`` is awaited before any
        new event is handed over, so the owner resyncs first."""
        if self._task is not None:
            raise RuntimeError("AriClient.run() is already running")
        self._task = asyncio.current_task()
        try:
            await self._run(handler)
        finally:
            self._task = None
            self._connected.clear()
        self._log.info("ari.stopped")

    async def _run(self, handler: EventHandler) -> None:
        attempt, ever_connected = 0, False
        params = {"app": self.app, "subscribeAll": "true" if self.subscribe_all else "false"}
        while not self._stop.is_set():
            attempt += 1
            try:
                ws = await asyncio.wait_for(self._http().ws_connect(
                    self._url("/events"), params=params, headers=self._headers,
                    heartbeat=self.heartbeat, timeout=aiohttp.ClientWSTimeout(ws_close=2.0)),
                    self.connect_timeout)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                delay = backoff_delay(attempt, self.backoff_initial, self.backoff_max)
                status = getattr(exc, "status", None)
                log = self._log.error if status in (401, 403) else self._log.info
                log("ari.connect_failed", attempt=attempt, error=str(exc) or type(exc).__name__,
                    status=status, retry_in=round(delay, 2))
                await self._sleep(delay)
                continue
            if self._stop.is_set():
                await ws.close()
                break
            self._ws = ws
            self._connected.set()
            self._log.info("ari.connected", attempt=attempt, reconnect=ever_connected)
            attempt = 0
            try:
                if ever_connected and self.on_reconnect is not None:
                    await self._call("ari.on_reconnect_failed", self.on_reconnect())
                ever_connected = True
                await self._pump(ws, handler)
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass  # the WebSocket broke mid-read: the same as a disconnect
            finally:
                self._connected.clear()
                self._ws = None
                code, error = ws.close_code, ws.exception()  # before close() overwrites them
                await ws.close()
            if not self._stop.is_set():
                self._log.warning("ari.disconnected", close_code=code,
                                  error=str(error) if error else None)

    async def _pump(self, ws: aiohttp.ClientWebSocketResponse, handler: EventHandler) -> None:
        async for msg in ws:
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                break
            event = parse_ari_event(msg.data)
            if event.type == "ApplicationReplaced":
                # Another client registered our app name: we stay connected but get
                # nothing more. Loud, because two daemons are fighting over Asterisk.
                self._log.error("ari.application_replaced")
            await self._call("ari.handler_failed", handler(event), event_type=event.type)

    async def _call(self, what: str, awaitable: Awaitable[None], **context: Any) -> None:
        try:
            await awaitable
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - logged; one bad callback must not stop the stream
            self._log.exception(what, **context)

    async def _sleep(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)

    async def close(self) -> None:
        """Stop ``run()`` (it returns) and release the HTTP session if we made it."""
        self._stop.set()
        if self._ws is not None:
            await self._ws.close()
        task = self._task
        if task is not None and task is not asyncio.current_task():
            # run() notices the stop flag at once unless it is inside a slow connect
            # attempt or handler; do not let that hold shutdown hostage.
            await asyncio.wait({task}, timeout=3.0)
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
