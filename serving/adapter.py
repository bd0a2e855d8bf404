"""What sits on the container's port in front of the engine, and why: OCI sends every path to one port.

OCI's OpenAI routing (`predict_api_specification: openai`) forwards `.../predict/v1/...` and
`.../predictWithResponseStream/v1/...` to the container as `/v1/...`, on the deployment's one server port.
The engines' own OpenAI servers (vLLM's, TGI's) answer those routes; this adapter passes them through
byte for byte, body and stream unchanged, so the OpenAI path is the engine's (measured by
`bench/serving.py`). It does only what the engines cannot, on the same port:

- `POST /predict` (alias `/generate`, and `/generate_stream`) with the `{"inputs", "parameters"}` payload:
  translated to vLLM's `/v1/completions` or TGI's `/generate(_stream)`, answered as `{"generated_text"}` or
  Server-Sent Events in TGI's `generate_stream` shape (one `data: {"token": {"text": ...}, "generated_text":
  null}` per piece, the last event carrying the whole text);
- `POST /predict` with a `route: /v1/...` header (langchain-oci, ADS with `patch_headers=True`, the AQUA
  docs): passed through to that route, unchanged. Neither engine reads the header, and no source says
  OCI's front door maps it for a BYOC image;
- `GET /health`: 200 once the engine answers its own health check, 503 while it loads or after it exited.

Errors of the legacy payload: a request the engine refuses keeps its 4xx; an engine failure is a 502, an
engine that is not up (yet) a 503, each `{"error": message, "error_type": kind}`; mid-stream, the same
object comes as the last event. Bodies may be sized or chunked, up to OCI's 10 MB.

Each request is one access line on stderr (the container's output, which OCI keeps in the deployment's
predict log): client, request line, status, duration, and why it went wrong when it did.

An async server (uvicorn, starlette, httpx) so that many streams share one process: the vLLM image ships
all three (vLLM's own server is FastAPI on uvicorn); the adapter pins none of them.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from domain.ids import Engine
from serving.legacy import (
    HEALTH_ROUTE,
    LEGACY_ROUTES,
    MAX_BODY_BYTES,
    PREDICT_ROUTES,
    ROUTE_HEADER,
    STREAM_ROUTE,
    STREAMING_HEADER,
    RequestProblem,
    SseParser,
    check_body_present,
    check_body_size,
    check_declared_length,
    engine_error,
    engine_problem,
    event_bytes,
    generated_text,
    json_object,
    route_header_target,
    says_stream,
    stream_translator,
)
from serving.legacy import engine_request as legacy_engine_request

__all__ = ["HEALTH_ROUTE", "LEGACY_ROUTES", "PREDICT_ROUTES", "STREAM_ROUTE", "Adapter", "AdapterConfig"]

# Hop-by-hop headers (RFC 9110 7.6.1) and those the proxy sets itself: never copied across.
_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "host",
        "content-length",
        ROUTE_HEADER,
    }
)
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True, kw_only=True)
class AdapterConfig:
    engine: Engine
    engine_url: str  # http://127.0.0.1:<port>
    served_model: str  # the model name vLLM answers to
    request_timeout_s: float = 600.0  # the longest wait for the engine's next bytes
    health_timeout_s: float = 2.0
    idle_timeout_s: float = 120.0  # an idle keep-alive connection is closed after this
    max_body_bytes: int = MAX_BODY_BYTES  # OCI's own payload limit
    max_concurrency: int = 256


def problem_response(problem: RequestProblem) -> JSONResponse:
    return JSONResponse(problem.body(), status_code=problem.status, headers=problem.headers() or None)


def log_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Adapter:
    """The HTTP layer; `engine_alive` tells whether the engine process still runs, `log` takes the access
    and error lines (stderr by default). `app` is the ASGI application; `bind` serves it."""

    def __init__(
        self,
        config: AdapterConfig,
        engine_alive: Callable[[], bool] | None = None,
        log: Callable[[str], None] = log_to_stderr,
    ) -> None:
        self.config = config
        self.engine_alive: Callable[[], bool] = engine_alive or (lambda: True)
        self.log = log
        self.in_flight = 0  # POSTs being answered (one event loop: no lock needed)
        target = httpx.URL(config.engine_url)
        if target.scheme != "http" or not target.host or not target.port:
            raise ValueError(f"engine_url must be http://host:port, got {config.engine_url!r}")
        self._client: httpx.AsyncClient | None = None
        self.app = AccessLog(self._starlette(), self)

    def bind(self, host: str, port: int) -> AdapterServer:
        """A server bound to `host:port`, not yet serving (call `start`, and `stop` when done)."""
        return AdapterServer(self, host, port)

    def _starlette(self) -> Starlette:
        @asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            self._client = httpx.AsyncClient(
                base_url=self.config.engine_url,
                # Headers and body are separate writes: with Nagle's algorithm the body waits for the
                # engine's delayed ACK (40 ms on Linux) on every request of a kept-alive connection.
                transport=httpx.AsyncHTTPTransport(
                    socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
                    limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
                ),
                # a busy engine may take its time to accept a connection: only /health has a short leash
                timeout=httpx.Timeout(
                    self.config.request_timeout_s, connect=min(30.0, self.config.request_timeout_s)
                ),
            )
            try:
                yield
            finally:
                await self._client.aclose()
                self._client = None

        methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
        return Starlette(
            routes=[
                Route(HEALTH_ROUTE, self._health_route, methods=methods),
                *(Route(path, self._legacy_route, methods=methods) for path in LEGACY_ROUTES),
                Route("/{path:path}", self._pass_route, methods=methods),
            ],
            lifespan=lifespan,
            exception_handlers={Exception: _internal_error},
        )

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("the adapter's engine client exists only while the server runs")
        return self._client

    # -- health -----------------------------------------------------------------------------------

    async def health(self) -> tuple[int, dict[str, str]]:
        if not self.engine_alive():
            return 503, {"status": "stopped", "detail": "the engine process has exited"}
        try:
            response = await self.client.get(HEALTH_ROUTE, timeout=self.config.health_timeout_s)
        except httpx.HTTPError as exc:
            return 503, {
                "status": "loading",
                "detail": f"the engine is not answering yet ({type(exc).__name__})",
            }
        if response.status_code == 200:
            return 200, {"status": "ready"}
        return 503, {
            "status": "loading",
            "detail": f"the engine's health check answered {response.status_code}",
        }

    async def _health_route(self, request: Request) -> Response:
        if request.method != "GET":
            return problem_response(
                RequestProblem(405, f"{HEALTH_ROUTE} takes GET", "validation", allow="GET")
            )
        status, body = await self.health()
        return JSONResponse(body, status_code=status)

    # -- the legacy payload and the route header --------------------------------------------------

    async def _legacy_route(self, request: Request) -> Response:
        path = request.url.path
        if request.method != "POST":
            return problem_response(RequestProblem(405, f"{path} takes POST", "validation", allow="POST"))
        try:
            route = route_header_target(request.headers.get(ROUTE_HEADER) or "")
        except RequestProblem as problem:
            return problem_response(problem)
        if route is not None:
            target = route
            return await self._in_slot(request, lambda body: self.pass_through(request, target, body))
        stream_route = path == STREAM_ROUTE
        return await self._in_slot(request, lambda body: self.legacy(request, body, stream_route))

    async def _in_slot(self, request: Request, answer: Callable[[bytes], Any]) -> Response:
        if self.in_flight >= self.config.max_concurrency:
            limit = self.config.max_concurrency
            return problem_response(
                RequestProblem(429, f"more than {limit} requests at once; retry shortly", "overloaded")
            )
        self.in_flight += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.in_flight -= 1

        try:
            body = await read_body(request, self.config.max_body_bytes)
            response: Response = await answer(body)
        except RequestProblem as problem:
            release()
            note(request, str(problem) if problem.status >= 500 else "")
            return problem_response(problem)
        except BaseException:
            release()
            raise
        if isinstance(response, Stream):
            response.on_close = release  # once the stream is over, whatever way it ends
        else:
            release()
        return response

    async def legacy(self, request: Request, raw: bytes, stream_route: bool) -> Response:
        body = json_object(raw)
        stream = (
            stream_route or body.get("stream") is True or says_stream(request.headers.get(STREAMING_HEADER))
        )
        route, payload = self.engine_request(body, stream=stream)
        response = await self.open(route, payload)
        if not stream:
            try:
                return JSONResponse(await self.generated_text(response))
            finally:
                await response.aclose()
        return Stream(
            self._sse(request, response),
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
        )

    def engine_request(self, body: dict[str, Any], *, stream: bool) -> tuple[str, dict[str, Any]]:
        """The engine's route and body for a predict request (RequestProblem 400 when it is malformed)."""
        return legacy_engine_request(
            self.config.engine, body, served_model=self.config.served_model, stream=stream
        )

    async def open(self, route: str, body: dict[str, Any]) -> httpx.Response:
        """POST to the engine, the answer's body still to read; a refusal or failure is a RequestProblem."""
        response = await self._send(self.client.build_request("POST", route, json=body))
        if response.status_code >= 400:
            try:
                raw = await response.aread()
            except httpx.HTTPError:
                raw = b""
            finally:
                await response.aclose()
            raise engine_problem(response.status_code, raw)
        return response

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """Send to the engine, the answer's body still to read; no answer is a RequestProblem (504, 503)."""
        try:
            return await self.client.send(request, stream=True)
        except httpx.TimeoutException:
            raise RequestProblem(504, "the engine did not answer in time", "timeout") from None
        except httpx.HTTPError as exc:
            raise RequestProblem(
                503, f"the engine is not reachable yet ({type(exc).__name__})", "unavailable"
            ) from None

    async def generated_text(self, response: httpx.Response) -> dict[str, Any]:
        """The non-streaming answer in the contract's shape."""
        try:
            raw = await response.aread()
        except httpx.TimeoutException:
            raise RequestProblem(504, "the engine did not finish in time", "timeout") from None
        except httpx.HTTPError as exc:
            raise RequestProblem(
                502, f"the engine's answer broke off ({type(exc).__name__})", "engine"
            ) from None
        return generated_text(self.config.engine, raw)

    async def events(self, response: httpx.Response) -> AsyncIterator[dict[str, Any] | str]:
        """The stream's events in the contract's shape (comments pass through as strings).

        A stream that breaks on the engine's side ends with an error event, never an exception.
        """
        translator = stream_translator(self.config.engine)
        parser = SseParser()
        try:
            async for chunk in response.aiter_bytes():
                for data in parser.feed(chunk):
                    for event in translator.feed(data):
                        yield event
                    if translator.done:
                        return
            for data in parser.close():
                for event in translator.feed(data):
                    yield event
            for event in translator.end():
                yield event
        except httpx.TimeoutException:
            yield {"error": "the engine sent nothing for too long", "error_type": "timeout"}
        except httpx.HTTPError as exc:
            yield engine_error(f"the engine stream broke ({type(exc).__name__})")

    async def _sse(self, request: Request, response: httpx.Response) -> AsyncIterator[bytes]:
        finished = False
        try:
            async for event in self.events(response):
                if not isinstance(event, str) and event.get("error"):
                    note(request, f"the stream ended with an error: {event['error']}")
                yield event_bytes(event)
            finished = not await request.is_disconnected()  # the caller may have left at the very end
        finally:
            await response.aclose()  # the engine sees the close and stops generating
            if not finished:
                note(request, "the caller left mid-stream")

    # -- the OpenAI routes: passed through -------------------------------------------------------

    async def _pass_route(self, request: Request) -> Response:
        path = request.url.path
        if request.method in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.pass_through(request, path, b"")
        return await self._in_slot(request, lambda body: self.pass_through(request, path, body))

    async def pass_through(self, request: Request, route: str, body: bytes) -> Response:
        """The engine's answer at `route`, status, headers and bytes as they come (streams stay streams)."""
        query = request.url.query
        target = route if "?" in route or not query else f"{route}?{query}"
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS]
        response = await self._send(
            self.client.build_request(request.method, target, headers=headers, content=body)
        )
        kept = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_HEADERS}
        if response.status_code >= 500:
            note(request, f"the engine answered {response.status_code}")
        return Stream(self._relay(request, response), status_code=response.status_code, headers=kept)

    async def _relay(self, request: Request, response: httpx.Response) -> AsyncIterator[bytes]:
        finished = False
        try:
            async for chunk in response.aiter_raw():
                yield chunk
            finished = not await request.is_disconnected()
        except httpx.HTTPError as exc:
            note(request, f"the engine's answer broke off ({type(exc).__name__})")
            finished = True
        finally:
            await response.aclose()
            if not finished:
                note(request, "the caller left mid-stream")


async def _internal_error(_request: Request, _exc: Exception) -> Response:
    """A bug in a handler: a 500 in the contract's shape (the access line says what failed)."""
    return problem_response(RequestProblem(500, "the adapter failed on this request", "internal"))


class Stream(StreamingResponse):
    """A streamed answer whose source is closed however it ends (done, engine error, caller gone): the
    engine's connection is released at once, and `on_close` runs (the request's slot)."""

    on_close: Callable[[], None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            closing = getattr(self.body_iterator, "aclose", None)
            if closing is not None:
                await closing()
            if self.on_close is not None:
                self.on_close()


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, sized or chunked, up to `limit` bytes (413 beyond; 411 only when there is none
    and nothing says how long it is)."""
    declared = request.headers.get("content-length")
    check_declared_length(declared, limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            check_body_size(size, limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise RequestProblem(400, "the caller left before the body was sent", "validation") from None
    check_body_present(size, declared, "transfer-encoding" in request.headers)
    return b"".join(chunks)


def note(request: Request, text: str) -> None:
    """Why the request went the way it did, for its access line."""
    if text:
        request.scope.setdefault("state", {})["note"] = text


def _one_line(text: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


class AccessLog:
    """ASGI wrapper: one access line per request once its answer is over, none for a healthy poll; a
    failure in a handler is a 500 and that one line, never a traceback."""

    def __init__(self, app: Any, adapter: Adapter) -> None:
        self.app = app
        self.adapter = adapter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status: list[int] = []
        scope.setdefault("state", {})

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            scope["state"]["note"] = f"failed: {type(exc).__name__}: {exc}"
            if not status:
                failed = problem_response(
                    RequestProblem(500, "the adapter failed on this request", "internal")
                )
                with suppress(OSError):
                    await failed(scope, receive, sending)
        path = scope.get("path", "")
        code = status[0] if status else None
        why = scope["state"].get("note", "")
        if path == HEALTH_ROUTE and code == 200 and not why:
            return  # OCI polls /health every few seconds; only changes are worth a line
        query = scope.get("query_string", b"").decode("latin-1")
        target = f"{path}?{query}" if query else path
        client = (scope.get("client") or ("-", 0))[0]
        line = (
            f'adapter: {client} "{scope["method"]} {target} HTTP/{scope.get("http_version", "1.1")}" '
            f"{'-' if code is None else code} {time.monotonic() - started:.3f}s{f' {why}' if why else ''}"
        )
        self.adapter.log(_one_line(line))


class AdapterServer:
    """uvicorn serving the adapter on a thread of its own (the launcher's main thread waits on the engine).

    The socket is bound at once, so a port in use fails in `bind`; `stop` ends open connections and
    returns how many requests were still running after its deadline (0 or 1: the server thread)."""

    def __init__(self, adapter: Adapter, host: str, port: int) -> None:
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Inherited by each accepted connection (Linux): an answer's headers and body (or its stream's
            # chunks) are separate writes, which Nagle's algorithm would hold for the caller's delayed ACK.
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._socket.bind((host, port))
            self._socket.listen(2048)
        except OSError:
            self._socket.close()
            raise
        self.server_address: tuple[str, int] = self._socket.getsockname()[:2]
        config = uvicorn.Config(
            adapter.app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_keep_alive=adapter.config.idle_timeout_s,  # type: ignore[arg-type]  # float works
            timeout_graceful_shutdown=1,
            server_header=False,
            date_header=False,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def start(self, poll_interval: float = 0.2) -> AdapterServer:
        """Serve on a daemon thread (`poll_interval` is kept for callers of the threaded server)."""
        del poll_interval
        self._thread = threading.Thread(target=self._serve, name="adapter", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def _serve(self) -> None:
        self._server.run(sockets=[self._socket])  # uvicorn's own loop choice: uvloop where installed

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        thread, self._thread = self._thread, None
        if thread is None:
            self._socket.close()
            return 0
        self._server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            self._server.force_exit = True
            thread.join(1.0)
        self._socket.close()
        return int(thread.is_alive())
