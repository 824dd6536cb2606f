"""Schemathesis against the live app on 127.0.0.1 (real PostgreSQL, every plugin the daemon runs):
no 5xx, and every response as the contract says (status documented, content type, body schema,
headers).

In CI every operation runs derandomized (a few examples each, the whole run well under 3
minutes), plus explicit regression cases: NUL, newline and other control characters in each
query parameter, path parameter and JSON string field, each a 422 naming that input.

``CONTROLPLANE_FUZZ_SECONDS=N`` switches the contract test to random (non-derandomized)
generation, round after round over every operation, for N seconds: the long run kept
outside CI (its figures go in docs/api.md):

    CONTROLPLANE_FUZZ_SECONDS=300 .venv/bin/python -m pytest tests/integration/api/test_schemathesis.py \
        -k contract -s -q

The server runs in its own thread and loop, since schemathesis calls synchronously.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_headers_conformance, response_schema_conformance, status_code_conformance)

from controlplane.config import Config, WebhooksConfig
from controlplane.http.app import make_app
from controlplane.http.openapi import openapi_document
from controlplane.http.ratelimit import RateLimiter
from controlplane.plugin_list import PLUGINS
from controlplane.plugins import Context

# Audio uploads (IVR prompts, music on hold, greetings) are raw bodies, sent as bytes like any
# binary body; the server's own checks (a WAV, not too big or long) answer what is sent.
schemathesis.serializer.alias("audio/wav", "application/octet-stream")

TOKEN = "fuzz-portal-token"
PLATFORM_TOKEN = "fuzz-platform-token"
EXAMPLES = 25
FUZZ_SECONDS = float(os.environ.get("CONTROLPLANE_FUZZ_SECONDS") or 0)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
HOSTILE = {"NUL": "a\x00b", "newline": "a\nb", "carriage return": "a\rb", "tab": "a\tb",
           "U+0001": "a\x01b", "U+001B": "a\x1bb", "DEL": "a\x7fb"}
METHODS = ("get", "put", "post", "patch", "delete")


@dataclass
class LiveServer:
    dsn: str
    url: str = ""
    partner: str = ""
    document: dict[str, Any] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _stop: asyncio.Event | None = None
    error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by the fixture instead of a bare timeout
            self.error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=8)
        assert pool is not None
        self.partner = await pool.fetchval(
            "INSERT INTO partners (id, name, tier) VALUES ('ptr_fuzz', 'Fuzz', 'ENTERPRISE') RETURNING id")
        config = Config(webhooks=WebhooksConfig(secret_key="fuzz-key", allow_loopback=True))
        app = make_app(service_token_value=TOKEN, platform_token_value=PLATFORM_TOKEN, probes=[], plugins=PLUGINS,
                       context=Context(config=config, pool=pool), limiter=RateLimiter())
        self.document = app[openapi_document]
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()
        await pool.close()

    def stop(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)

    def operation(self, path: str, method: str) -> dict[str, Any]:
        return self.document["paths"][path][method.lower()]  # type: ignore[no-any-return]

    def headers(self, path: str, method: str) -> dict[str, str]:
        """The credential the operation takes: the platform token for platform operations."""
        platform = self.operation(path, method).get("x-scope") == "platform"
        return {"Authorization": f"Bearer {PLATFORM_TOKEN if platform else TOKEN}"}


@pytest.fixture(scope="module")
def live(database_dsn: str) -> Iterator[LiveServer]:
    server = LiveServer(database_dsn)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert server._ready.wait(30)
    if server.error is not None:
        raise server.error
    yield server
    server.stop()
    thread.join(10)


def _run_operation(live: LiveServer, operation: Any, derandomize: bool, tally: dict[str, int],
                   failures: list[str]) -> None:
    cases = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)
    headers = live.headers(operation.path, operation.method)

    @given(case=cases)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=derandomize,
              suppress_health_check=list(HealthCheck))
    def exercise(case: Any) -> None:
        if case.headers and "X-Partner-Id" in case.headers:
            case.headers["X-Partner-Id"] = live.partner
        tally["cases"] += 1
        try:
            case.call_and_validate(base_url=live.url, headers=headers, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # collect them all, report once
            failures.append(f"{operation.label}: {str(exc)[:600]}")
            raise

    before = len(failures)
    try:
        exercise()
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
        if len(failures) == before:  # not a response check: the operation could not even be exercised
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:600]}")


def test_the_live_api_keeps_its_contract(live: LiveServer) -> None:
    schema = schemathesis.openapi.from_dict(live.document)
    operations = [result.ok() for result in schema.get_all_operations()]
    failures: list[str] = []
    tally = {"cases": 0, "rounds": 0}
    started = time.monotonic()
    while True:
        for operation in operations:
            _run_operation(live, operation, not FUZZ_SECONDS, tally, failures)
        tally["rounds"] += 1
        if time.monotonic() - started >= FUZZ_SECONDS:
            break
    elapsed = time.monotonic() - started
    mode = f"random, {tally['rounds']} rounds" if FUZZ_SECONDS else "derandomized"
    failing = {f.split(":", 1)[0] for f in failures}
    print(f"\nschemathesis ({mode}): {len(operations)} operations, {tally['cases']} cases in {elapsed:.1f} s,"
          f" {len(failing)} failing operations")
    assert len(operations) >= 80  # every plugin's operations are in the run
    assert not failures, "\n\n".join(dict.fromkeys(failures))
    assert FUZZ_SECONDS or elapsed < 180


# ---------------------------------------------------------------- control characters, every input


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _string_fields(document: dict[str, Any], schema: dict[str, Any], prefix: str = "",
                   depth: int = 0) -> Iterator[str]:
    """Dotted paths of the string properties of a JSON body (nested objects two levels deep)."""
    schema = _resolve(document, schema)
    for name, prop in schema.get("properties", {}).items():
        prop = _resolve(document, prop)
        kinds = prop.get("type", "object" if "properties" in prop else None)
        kinds = kinds if isinstance(kinds, list) else [kinds]
        path = f"{prefix}{name}"
        if "string" in kinds or "enum" in prop or "format" in prop:
            yield path
        elif "object" in kinds and depth < 2:
            yield from _string_fields(document, prop, f"{path}.", depth + 1)
        elif "array" in kinds and _resolve(document, prop.get("items", {})).get("type") == "string":
            yield path


def _nested(path: str, value: Any) -> dict[str, Any]:
    head, _, rest = path.partition(".")
    return {head: _nested(rest, value) if rest else value}


def _parameters(live: LiveServer, path: str, method: str) -> list[dict[str, Any]]:
    item = live.document["paths"][path]
    raw = [*item.get("parameters", []), *live.operation(path, method).get("parameters", [])]
    return [_resolve(live.document, p) for p in raw]


def _regression_requests(live: LiveServer) -> Iterator[tuple[str, str, str, str, dict[str, Any]]]:
    """(label, method, input, kind, request kwargs) for every input of every operation."""
    for path, item in live.document["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None or op.get("security") == []:
                continue
            params = _parameters(live, path, method)
            path_values = {p["name"]: "x1" for p in params if p["in"] == "path"}
            headers = {**live.headers(path, method), "X-Partner-Id": live.partner}
            for name, hostile in HOSTILE.items():
                for p in params:
                    if p["in"] == "query":
                        yield (f"{method.upper()} {path} ?{p['name']}={name}", method, p["name"], "query",
                               {"url": path.format(**path_values), "params": {p["name"]: hostile},
                                "headers": headers})
                    elif p["in"] == "path":
                        url = path.format(**{**path_values, p["name"]: hostile})
                        yield (f"{method.upper()} {path} {{{p['name']}}}={name}", method, p["name"], "path",
                               {"url": url, "headers": headers})
                content = op.get("requestBody", {}).get("content", {})
                if "text/csv" in content:  # a bare CR once crashed the inventory parser
                    yield (f"{method.upper()} {path} csv body {name}", method, "", "csv",
                           {"url": path.format(**path_values), "data": f"number,state\n+1501{hostile}5550100,AR\n",
                            "headers": {**headers, "Content-Type": "text/csv"}})
                if "application/json" in content:
                    for dotted in _string_fields(live.document, content["application/json"].get("schema", {})):
                        yield (f"{method.upper()} {path} body.{dotted}={name}", method, dotted, "body",
                               {"url": path.format(**path_values), "json": _nested(dotted, hostile),
                                "headers": headers})


def test_control_characters_in_any_input_are_a_422_naming_it(live: LiveServer) -> None:
    """Regression cases (NUL gave 500 on five routes, and a broken body on the calls export)."""
    schema = schemathesis.openapi.from_dict(live.document)
    failures: list[str] = []
    count = 0
    session = requests.Session()
    for label, method, name, kind, kwargs in _regression_requests(live):
        count += 1
        url = kwargs.pop("url")
        response = session.request(method.upper(), live.url + requests.utils.requote_uri(url)
                                   if kind != "path" else live.url + _quote_path(url), timeout=10, **kwargs)
        status, body = response.status_code, response.text
        # A path value that no route matches is a 404/405 (the route table is the contract's).
        expected = {422} if kind != "path" else {404, 405, 422}
        if status not in expected:
            failures.append(f"{label}: {status} {body[:300]}")
            continue
        if status == 422:
            problem = response.json()
            if kind != "csv" and problem.get("field") != name:
                failures.append(f"{label}: 422 names {problem.get('field')!r}, not {name!r}")
        if not response.headers.get("Content-Type", "").startswith("application/problem+json"):
            failures.append(f"{label}: content type {response.headers.get('Content-Type')}")
    print(f"\ncontrol characters: {count} requests over {len(list(schema.get_all_operations()))} operations,"
          f" {len(failures)} failures")
    assert count > 500
    assert not failures, "\n".join(failures)


def _quote_path(path: str) -> str:
    return requests.utils.quote(path, safe="/:@!$&'()*+,;=-._~")


def test_a_405_names_the_allowed_methods(live: LiveServer) -> None:
    r = requests.request("PATCH", f"{live.url}/v1/calls", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert r.status_code == 405 and r.headers["Content-Type"].startswith("application/problem+json")
    assert set(r.headers["Allow"].replace(" ", "").split(",")) >= {"GET"} and "PATCH" not in r.headers["Allow"]


def test_an_oversized_request_line_is_the_documented_400(live: LiveServer) -> None:
    """Found by the random run: aiohttp's parser answers a request line over 8 KB itself."""
    r = requests.get(f"{live.url}/v1/events", params={"limit": "9" * 9000},
                     headers={"Authorization": f"Bearer {TOKEN}", "X-Partner-Id": live.partner}, timeout=10)
    assert r.status_code == 400 and r.headers["Content-Type"].startswith("text/plain")
    documented = live.document["components"]["responses"]["MalformedMessage"]["content"]
    assert "text/plain" in documented
    assert all(op["responses"]["400"] == {"$ref": "#/components/responses/MalformedMessage"}
               for item in live.document["paths"].values() for m, op in item.items()
               if m in METHODS and op.get("security") != [])
