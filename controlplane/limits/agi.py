"""FastAGI admission server: Asterisk asks, before a billable call leaves it.

Why FastAGI: the dialplan blocks on one loopback TCP exchange (the AGI
environment in, two ``SET VARIABLE`` out) handled by the daemon's event loop
against in-memory state: well under a millisecond, no HTTP stack (``CURL()``
would add libcurl and a request parser on both sides) and no Stasis hand-off
(ARI would move the channel out of the dialplan and back). When nothing
answers, ``AGI()`` returns at once with AGISTATUS=FAILURE and the dialplan
applies the fail policy rendered from config (see dialplan_templates/shared.conf.j2).

Script ``admit``: args tenant id, number (the E.164 the trunk receives), call id (linkedid), direction
(out | in). Variables set: CP_ADMIT (ok, or the Q.850 cause to hang up with), CP_REASON,
CP_DIAL_OPTS (``L(ms)``: Asterisk's own cut-off, counted from answer).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable

import structlog

from controlplane.limits.policy import Decision
from controlplane.metrics import families as metrics

log = structlog.get_logger(__name__)
Admit = Callable[[str, str, str, str, bool], Awaitable[Decision]]
CUT_GUARD_MS = 1000  # Asterisk ends the call a second early: a started second is billed


def dial_options(decision: Decision) -> str:
    if decision.limit_s is None:
        return ""
    return f"L({max(decision.limit_s * 1000 - CUT_GUARD_MS, 1000)})"


_CLEAR_TIMEOUT = "TIMEOUT(absolute)=0"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class AgiServer:
    def __init__(self, admit: Admit, host: str = "127.0.0.1", port: int = 4573) -> None:
        self.admit = admit
        self.host = host
        self.port = port
        self.server: asyncio.base_events.Server | None = None
        # Server-side, per request, in seconds (bench): the decision (environment read ->
        # decision made) and the whole exchange (environment read -> last reply read).
        self.latencies: list[float] = []
        self.exchanges: list[float] = []
        # The decision's own CPU (the thread's time): the wall time above, less any wait for
        # a core on a saturated machine.
        self.cpu_latencies: list[float] = []
        self.keep_latencies = False

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]
        log.info("limits.agi_listening", host=self.host, port=self.port)

    async def serve_forever(self) -> None:
        if self.server is None:
            await self.start()
        assert self.server is not None
        async with self.server:
            await self.server.serve_forever()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            env = await _environment(reader)
            started, started_cpu = time.perf_counter(), time.thread_time()
            script = env.get("agi_network_script", "").split("?")[0]
            if script != "admit":
                await _command(reader, writer, f"VERBOSE {_quote('unknown AGI script ' + script)} 1")
                return
            tenant, number, call_id = env.get("agi_arg_1", ""), env.get("agi_arg_2", ""), env.get("agi_arg_3", "")
            inbound = env.get("agi_arg_4", "out") == "in"
            decision = await self.admit(tenant, number, call_id or env.get("agi_uniqueid", ""),
                                        env.get("agi_channel", ""), inbound)
            decided = time.perf_counter() - started
            metrics.admission("admitted" if decision.admit else decision.reason.value, decided)
            if self.keep_latencies:
                self.latencies.append(decided)
                self.cpu_latencies.append(time.thread_time() - started_cpu)
            # One MSet, not a SET VARIABLE each: a round trip less per call on both sides. It
            # also clears the channel's absolute timeout (the dialplan's bound on this
            # exchange: a dialplan step less). CP_ADMIT comes last: a channel that sees it has
            # every other variable.
            if decision.admit:
                answer = f"CP_DIAL_OPTS={dial_options(decision)},{_CLEAR_TIMEOUT},CP_ADMIT=ok"
            else:
                answer = f"CP_REASON={decision.reason.value},{_CLEAR_TIMEOUT},CP_ADMIT={decision.cause}"
            await _last_command(reader, writer, f"EXEC MSet {_quote(answer)}")
            if not decision.admit:
                log.info("limits.refused", tenant_id=tenant, reason=decision.reason.value,
                         detail=decision.detail, cause=decision.cause)
            if self.keep_latencies:
                self.exchanges.append(time.perf_counter() - started)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            metrics.ADMISSION_ERRORS.inc()
            log.exception("limits.agi_failed")  # the channel sees no CP_ADMIT: the fail policy applies
        finally:
            writer.close()


async def _environment(reader: asyncio.StreamReader) -> dict[str, str]:
    env: dict[str, str] = {}
    while True:
        line = (await reader.readline()).decode("utf-8", "replace")
        if not line:
            raise asyncio.IncompleteReadError(b"", None)
        line = line.rstrip("\r\n")
        if not line:
            return env
        key, _, value = line.partition(": ")
        env[key] = value


async def _last_command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, command: str) -> None:
    """Send the script's last command and end it in the same breath (half-close): Asterisk
    runs it, answers and finds the end already there, instead of sleeping until the reply
    was read here and the connection closed. Then read its answer to the end."""
    writer.write(command.encode() + b"\n")
    writer.write_eof()
    reply = (await reader.read(512)).decode("utf-8", "replace")
    if not reply.startswith("200"):
        raise ConnectionError(f"AGI said {reply.strip()!r}")


async def _command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, command: str) -> str:
    writer.write(command.encode() + b"\n")
    await writer.drain()
    reply = (await reader.readline()).decode("utf-8", "replace")
    if not reply.startswith("200"):
        raise ConnectionError(f"AGI said {reply.strip()!r}")
    return reply
