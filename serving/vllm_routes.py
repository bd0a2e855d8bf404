"""OCI's extra routes inside vLLM's own OpenAI server: an ASGI middleware, so nothing of ours sits between.

vLLM's server takes `--middleware <import path>` and adds a class with `app.add_middleware(cls)` (vLLM
`vllm/entrypoints/openai/cli_args.py`, `middleware`; `api_server.py`, `build_app`: "for middleware in
args.middleware: ... if inspect.isclass(imported): app.add_middleware(imported)"). The launcher starts
`vllm serve ... --middleware serving.vllm_routes.OciRoutes` on the deployment's port, and this class then
sees every request before vLLM's routes do:

- `/v1/*`, `/health` and anything else: handed to vLLM as they came (one dict lookup, nothing else);
- `POST /predict` (also `/generate`, `/generate_stream`, `/`) with a `route: /v1/...` header (langchain-oci,
  ADS with `patch_headers=True`): the request goes on to that route, in the same process, the header
  dropped, the body and the answer untouched;
- `POST /predict` or `/generate` with the legacy `{"inputs", "parameters"}` payload (`/generate_stream`
  always streams): a `/v1/completions` call made in-process (vLLM's own route, no socket), its answer
  translated back to `{"generated_text": ...}` or to TGI-style events, by `serving.legacy`, the same
  translation the TGI adapter uses.

The standard library and `serving.legacy` only: it runs in the engine's process, on the image's packages.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from serving.legacy import (
    LEGACY_ROUTES,
    MAX_BODY_BYTES,
    ROUTE_HEADER,
    STREAM_ROUTE,
    STREAMING_HEADER,
    RequestProblem,
    SseParser,
    VllmEvents,
    check_body_present,
    check_body_size,
    check_declared_length,
    engine_error,
    engine_problem,
    engine_request,
    event_bytes,
    generated_text,
    json_object,
    route_header_target,
    says_stream,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# The name vLLM answers to (its first --served-model-name, else the model); the launcher sets it. Without
# it the first model `/v1/models` lists is used.
SERVED_MODEL_ENV = "LLMSTACK_SERVED_MODEL"
# Where the route header is honoured: the legacy routes, and `/` (TGI's compatible route) for callers
# that post there.
ROUTED_PATHS = frozenset({*LEGACY_ROUTES, "/"})
_ROUTE_HEADER = ROUTE_HEADER.encode()
_STREAM_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


class OciRoutes:
    """The ASGI middleware (`app` is vLLM's application below it)."""

    def __init__(
        self, app: App, *, served_model: str | None = None, log: Callable[[str], None] | None = None
    ):
        self.app = app
        self.served_model = served_model or os.environ.get(SERVED_MODEL_ENV) or None
        self.log = log or _stderr

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in ROUTED_PATHS:
            await self.app(scope, receive, send)
            return
        route = _header(scope, _ROUTE_HEADER)
        if route is None and scope["path"] == "/":
            await self.app(scope, receive, send)  # vLLM's own answer for `/` (it has none: 404)
            return
        try:
            if scope["method"] != "POST":
                path = scope["path"]
                raise RequestProblem(405, f"{path} takes POST", "validation", allow="POST")
            target = route_header_target(route or "")
            if target is not None:
                await self.app(_routed(scope, target), receive, send)
                return
            if scope["path"] == "/":
                raise RequestProblem(400, "/ takes a route header such as /v1/chat/completions", "validation")
            await self._legacy(scope, receive, send)
        except RequestProblem as problem:
            if problem.status >= 500:
                self._note(scope, problem.status, str(problem))
            await _send_problem(send, problem)

    # -- the legacy payload ----------------------------------------------------------------------

    async def _legacy(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = json_object(await _read_body(scope, receive, MAX_BODY_BYTES))
        stream = (
            scope["path"] == STREAM_ROUTE
            or body.get("stream") is True
            or says_stream(_header(scope, STREAMING_HEADER.encode()))
        )
        model = self.served_model or await self._first_model(scope)
        route, payload = engine_request("vllm", body, served_model=model, stream=stream)
        inner, inner_receive = _engine_call(scope, receive, route, payload)
        if stream:
            await self._stream(scope, inner, inner_receive, send)
            return
        status, raw = await self._collect(inner, inner_receive)
        if status >= 400:
            raise engine_problem(status, raw)
        await _send_json(send, 200, generated_text("vllm", raw))

    async def _collect(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        """vLLM's whole answer to an in-process call: (status, body); 502 when its route fails."""
        status = 0
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, receive, capture)
        except Exception as exc:
            raise RequestProblem(502, f"the engine failed: {type(exc).__name__}: {exc}", "engine") from None
        if not status:
            raise RequestProblem(502, "the engine gave no answer", "engine")
        return status, b"".join(chunks)

    async def _stream(self, outer: Scope, scope: Scope, receive: Receive, send: Send) -> None:
        """vLLM's completions stream, each piece sent on in TGI's shape as soon as it arrives."""
        translator = VllmEvents()
        parser = SseParser()
        status = 0
        refused: list[bytes] = []
        started = False
        gone = False  # the caller left: its connection refused our bytes

        async def forward(message: Message) -> None:
            nonlocal gone
            try:
                await send(message)
            except BaseException:
                gone = True
                raise

        async def relay(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if status < 400:
                    await forward({"type": "http.response.start", "status": 200, "headers": _STREAM_HEADERS})
                    started = True
                return
            if message["type"] != "http.response.body":
                return
            chunk = message.get("body", b"")
            if status >= 400:
                refused.append(chunk)
                return
            out = b"".join(
                event_bytes(event) for data in parser.feed(chunk) for event in translator.feed(data)
            )
            if out:
                await forward({"type": "http.response.body", "body": out, "more_body": True})

        try:
            await self.app(scope, receive, relay)
            tail = [event for data in parser.close() for event in translator.feed(data)] + translator.end()
        except Exception as exc:
            if gone:
                self._note(outer, 200, "the caller left mid-stream")
                return
            if not started:
                raise RequestProblem(
                    502, f"the engine failed: {type(exc).__name__}: {exc}", "engine"
                ) from None
            tail = (
                [] if translator.done else [engine_error(f"the engine stream broke ({type(exc).__name__})")]
            )
        if not started:
            raise (
                engine_problem(status, b"".join(refused))
                if status
                else RequestProblem(502, "the engine gave no answer", "engine")
            )
        for event in tail:
            if isinstance(event, dict) and event.get("error"):
                self._note(outer, 200, f"the stream ended with an error: {event['error']}")
        await send(
            {"type": "http.response.body", "body": b"".join(map(event_bytes, tail)), "more_body": False}
        )

    async def _first_model(self, outer: Scope) -> str | None:
        """The first model vLLM's `/v1/models` lists (kept), for a server started without the launcher."""
        scope = {
            **outer,
            "method": "GET",
            "path": "/v1/models",
            "raw_path": b"/v1/models",
            "query_string": b"",
        }
        scope["headers"] = [(b"host", (_header(outer, b"host") or "localhost").encode("latin-1"))]

        async def nothing() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        status, raw = await self._collect(scope, nothing)
        try:
            self.served_model = str(json.loads(raw)["data"][0]["id"]) if status == 200 else None
        except (ValueError, LookupError, TypeError):
            self.served_model = None
        return self.served_model

    def _note(self, scope: Scope, status: int, why: str) -> None:
        self.log(f'vllm_routes: "{scope["method"]} {scope["path"]}" {status} {" ".join(why.split())}')


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _routed(scope: Scope, target: str) -> Scope:
    """The request as if it had come to `target`, without the route header."""
    path, _, query = target.partition("?")
    return {
        **scope,
        "path": path,
        "raw_path": path.encode("utf-8"),
        "query_string": query.encode("latin-1") if "?" in target else scope.get("query_string", b""),
        "headers": [(k, v) for k, v in scope["headers"] if k.lower() != _ROUTE_HEADER],
    }


def _engine_call(
    scope: Scope, receive: Receive, route: str, payload: dict[str, Any]
) -> tuple[Scope, Receive]:
    """An in-process POST of `payload` to vLLM's `route`: its scope and its receive (the body once, then the
    caller's own messages, so that vLLM sees the caller leave and stops generating)."""
    data = json.dumps(payload).encode()
    inner = {
        **scope,
        "method": "POST",
        "path": route,
        "raw_path": route.encode(),
        "query_string": b"",
        "headers": [
            (b"host", (_header(scope, b"host") or "localhost").encode("latin-1")),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
        ],
    }
    given = False

    async def inner_receive() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": data, "more_body": False}
        return await receive()

    return inner, inner_receive


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    declared = _header(scope, b"content-length")
    check_declared_length(declared, limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestProblem(400, "the caller left before the body was sent", "validation")
        chunk = message.get("body", b"")
        size += len(chunk)
        check_body_size(size, limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    check_body_present(size, declared, _header(scope, b"transfer-encoding") is not None)
    return b"".join(chunks)


async def _send_json(send: Send, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    data = json.dumps(body).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})


async def _send_problem(send: Send, problem: RequestProblem) -> None:
    await _send_json(send, problem.status, problem.body(), problem.headers())
