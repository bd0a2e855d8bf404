"""Fakes for the serving tests: an engine on 127.0.0.1 speaking vLLM's or TGI's HTTP API, and fake
engine programs for the launcher. Every server thread and socket has a timeout; servers stop in teardown,
every connection thread joined, and a test fails on any error of the fake other than a client leaving."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from serving.adapter import Adapter, AdapterConfig
from tests.httpfakes import FakeHttpServer, send_json

SOCKET_TIMEOUT_S = 5.0
GATE_TIMEOUT_S = 5.0
PROJECT_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def chat_completion(pieces: Sequence[str], model: str) -> dict[str, Any]:
    """A whole OpenAI chat completion of `pieces`, as vLLM's and TGI's own servers answer one."""
    message = {"role": "assistant", "content": "".join(pieces)}
    return {
        "id": "chat-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
    }


def chat_chunk_events(pieces: Sequence[str], model: str) -> Iterator[str]:
    """The same answer streamed: a `data:` event per piece, then an empty delta that stops, then [DONE]."""
    deltas = [{"content": piece} for piece in pieces] + [{}]
    for index, delta in enumerate(deltas):
        finish = "stop" if index == len(deltas) - 1 else None
        chunk = {
            "id": "chat-1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"


class FakeEngine:
    """vLLM (`/v1/completions`) or TGI (`/generate`, `/generate_stream`) with scripted behaviour; both also
    answer the OpenAI routes their own servers have (`/v1/chat/completions`, `/v1/models`; TGI's
    `/v1/completions` too), streaming when the body says `"stream": true`.

    mode: "ok" | "error" (answer `error_status` before any output) | "midstream-error" | "truncate".
    `gate`, when given, holds the stream after its first piece until the test sets it.
    """

    def __init__(self, engine: str, *, port: int = 0) -> None:
        self.engine = engine
        self.port = port
        self.ready = True
        self.mode = "ok"
        self.error_status = 500
        self.error_message = "CUDA out of memory"
        self.pieces = ["Hel", "lo", " world"]
        self.gate: threading.Event | None = None
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.chat_headers: list[dict[str, str]] = []  # the headers of each /v1/chat/completions request
        self.errors: list[str] = []  # handler errors other than a client leaving; stop() fails on any
        self._server: FakeHttpServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeEngine:
        engine = self

        class Handler(_EngineHandler):
            fake = engine

        self._server = FakeHttpServer(
            ("127.0.0.1", self.port), Handler, name=f"fake-{self.engine}", errors=self.errors
        ).start()
        self.port = self._server.port
        return self

    def __enter__(self) -> FakeEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving and wait for every connection; an error of the fake's own fails the test here."""
        if self.gate is not None:
            self.gate.set()
        server, self._server = self._server, None
        if server is not None:
            server.stop(SOCKET_TIMEOUT_S)
        if self.errors:
            raise AssertionError(f"the fake {self.engine} engine failed: {self.errors}")

    # what the engine sends -------------------------------------------------------------------------

    def error_body(self) -> dict[str, Any]:
        if self.engine == "tgi":
            return {"error": self.error_message, "error_type": "generation"}
        return {
            "error": {"message": self.error_message, "type": "BadRequestError", "code": self.error_status}
        }

    def non_stream_body(self) -> dict[str, Any]:
        text = "".join(self.pieces)
        if self.engine == "tgi":
            return {"generated_text": text}
        return {"id": "cmpl-1", "object": "text_completion", "choices": [{"index": 0, "text": text}]}

    def stream_events(self) -> Iterator[str]:
        for index, piece in enumerate(self.pieces):
            if self.engine == "tgi":
                last = index == len(self.pieces) - 1
                event = {
                    "index": index + 1,
                    "token": {"id": index, "text": piece, "logprob": -0.1, "special": False},
                    "generated_text": "".join(self.pieces) if last else None,
                    "details": None,
                }
            else:
                event = {
                    "id": "cmpl-1",
                    "object": "text_completion",
                    "choices": [{"index": 0, "text": piece}],
                }
            yield (
                f"data:{json.dumps(event)}\n\n" if self.engine == "tgi" else f"data: {json.dumps(event)}\n\n"
            )
            if index == 0 and self.gate is not None and not self.gate.wait(GATE_TIMEOUT_S):
                return
            if index == 0 and self.mode == "midstream-error":
                yield f"data: {json.dumps(self.error_body())}\n\n"
                if self.engine == "vllm":
                    yield "data: [DONE]\n\n"
                return
            if index == 0 and self.mode == "truncate":
                raise ConnectionAbortedError("the engine died")
        if self.engine == "vllm":
            yield f"data: {json.dumps({'choices': [{'index': 0, 'text': '', 'finish_reason': 'stop'}]})}\n\n"
            yield "data: [DONE]\n\n"


class _EngineHandler(BaseHTTPRequestHandler):
    fake: FakeEngine
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.fake.requests.append((self.path, {}))
        if self.path == "/health":
            self.fake.requests.pop()
            self._json(200 if self.fake.ready else 503, {})
        elif self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": "served", "object": "model"}]})
        else:
            self._json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.fake.requests.append((self.path, body))
        if self.path.split("?", 1)[0] == "/v1/chat/completions":
            self._chat(body)
            return
        routes = {"vllm": ("/v1/completions",), "tgi": ("/generate", "/generate_stream")}[self.fake.engine]
        if self.path not in routes:
            self._json(404, {"detail": "Not Found"})
            return
        if self.fake.mode == "error":
            self._json(self.fake.error_status, self.fake.error_body())
            return
        stream = self.path == "/generate_stream" or body.get("stream") is True
        if not stream:
            self._json(200, self.fake.non_stream_body())
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in self.fake.stream_events():
                data = event.encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
        except ConnectionAbortedError:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(b"0\r\n\r\n")

    def _chat(self, body: dict[str, Any]) -> None:
        """OpenAI chat completions, as vLLM's and TGI's own servers answer them."""
        self.fake.chat_headers.append(dict(self.headers))
        if body.get("stream") is not True:
            self._json(200, chat_completion(self.fake.pieces, "served"))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in chat_chunk_events(self.fake.pieces, "served"):
            data = event.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _json(self, status: int, body: dict[str, Any]) -> None:
        send_json(self, status, body)


FAKE_PROGRAM = """#!{python}
# A stand-in for the engine's program: records what it was given, then behaves as FAKE_ENGINE_MODE says.
# Its signal handlers go in before the record is written: the tests signal as soon as the record exists.
import json, os, signal, sys, time
sys.path.insert(0, {project!r})
record = os.environ["FAKE_ENGINE_RECORD"]
mode = os.environ.get("FAKE_ENGINE_MODE", "exit:0")
engines = []
def stop(signum, frame):
    with open(record + ".signal", "w") as out:
        out.write(str(signum))
    for engine in engines:
        engine.stop()
    sys.exit(0 if mode == "serve" else 7)
if mode in ("wait-signal", "serve"):
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
with open(record + ".tmp", "w") as out:
    json.dump({{"argv": sys.argv, "env": dict(os.environ)}}, out)
os.replace(record + ".tmp", record)
if mode.startswith("exit:"):
    sys.exit(int(mode[5:]))
if mode == "kill-self":
    os.kill(os.getpid(), signal.SIGKILL)
if mode == "serve":
    port = int(sys.argv[sys.argv.index("--port") + 1])
    if "--middleware" in sys.argv:  # vLLM: its own server on PORT, the middleware added as vLLM adds it
        import importlib
        from tests.serving_fakes import AsgiServer, FakeVllmApp
        module, name = sys.argv[sys.argv.index("--middleware") + 1].rsplit(".", 1)
        middleware = getattr(importlib.import_module(module), name)
        served = os.environ["LLMSTACK_SERVED_MODEL"]
        host = sys.argv[sys.argv.index("--host") + 1]
        engines.append(AsgiServer(FakeVllmApp(served=served, middleware=middleware).app, host=host, port=port).start())
    else:
        from tests.serving_fakes import FakeEngine
        engines.append(FakeEngine({engine!r}, port=port).start())
deadline = time.monotonic() + 60  # bounded, and longer than any test waits for it
while time.monotonic() < deadline:
    time.sleep(0.05)
for engine in engines:
    engine.stop()
sys.exit(99)
"""


def write_fake_program(folder: Path, name: str, engine: str) -> Path:
    """An executable called `name` in `folder` that acts as the engine's program."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(FAKE_PROGRAM.format(python=sys.executable, project=str(PROJECT_DIR), engine=engine))
    path.chmod(0o755)
    return path


# -- vLLM's own OpenAI server, as an ASGI app (what the middleware is added to) ----------------------


class FakeVllmApp:
    """A stand-in for vLLM's OpenAI server (FastAPI on uvicorn): `/health`, `/v1/models`,
    `/v1/completions` and `/v1/chat/completions`, streaming as vLLM does (`data: {...}` events, then
    `data: [DONE]`), errors in vLLM's `{"error": {"message", "type", "code"}}` shape. It keeps the scripted
    behaviour in `engine` (a FakeEngine that is never started: pieces, mode, gate, and the requests seen).

    `middleware`: added as vLLM's `build_app` adds a `--middleware` class, `app.add_middleware(cls)`.
    """

    def __init__(self, *, served: str = "served", middleware: Any = None, **options: Any) -> None:
        from starlette.applications import Starlette
        from starlette.routing import Route

        self.engine = FakeEngine("vllm")
        self.served = served
        self.disconnects = 0  # streams whose caller went away before the end
        self.app = Starlette(
            routes=[
                Route("/health", self._health, methods=["GET"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/completions", self._completions, methods=["POST"]),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
            ]
        )
        if middleware is not None:
            self.app.add_middleware(middleware, **options)

    async def _health(self, request: Any) -> Any:
        from starlette.responses import Response

        return Response(status_code=200 if self.engine.ready else 503)

    async def _models(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse({"object": "list", "data": [{"id": self.served, "object": "model"}]})

    async def _body(self, request: Any) -> dict[str, Any] | Any:
        from starlette.responses import JSONResponse

        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            return JSONResponse(
                self._error("Unsupported Media Type: Only 'application/json' is allowed", 400), 400
            )
        body = json.loads(await request.body())
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        self.engine.requests.append((path, body))
        if body.get("model", self.served) != self.served:
            return JSONResponse(self._error(f"The model `{body['model']}` does not exist.", 404), 404)
        return body

    def _error(self, message: str, code: int) -> dict[str, Any]:
        return {"error": {"message": message, "type": "BadRequestError", "param": None, "code": code}}

    async def _completions(self, request: Any) -> Any:
        from starlette.responses import JSONResponse, StreamingResponse

        body = await self._body(request)
        if not isinstance(body, dict):
            return body
        if self.engine.mode == "error":
            return JSONResponse(
                self._error(self.engine.error_message, self.engine.error_status), self.engine.error_status
            )
        if body.get("stream") is not True:
            return JSONResponse(self.engine.non_stream_body())
        return StreamingResponse(self._stream(request), media_type="text/event-stream")

    async def _stream(self, request: Any) -> Any:
        import asyncio

        events = self.engine.stream_events()
        try:
            for event in events:
                yield event
                if self.engine.gate is not None and not self.engine.gate.is_set():
                    await asyncio.to_thread(self.engine.gate.wait, GATE_TIMEOUT_S)
                await asyncio.sleep(0)
        except ConnectionAbortedError:
            raise RuntimeError("the engine died") from None
        except asyncio.CancelledError:
            self.disconnects += 1
            raise

    async def _chat(self, request: Any) -> Any:
        from starlette.responses import JSONResponse, StreamingResponse

        self.engine.chat_headers.append(dict(request.headers))
        body = await self._body(request)
        if not isinstance(body, dict):
            return body
        if body.get("stream") is not True:
            return JSONResponse(chat_completion(self.engine.pieces, self.served))
        return StreamingResponse(
            chat_chunk_events(self.engine.pieces, self.served), media_type="text/event-stream"
        )


class AsgiServer:
    """uvicorn serving an ASGI app on 127.0.0.1 in a thread (how vLLM serves its app, minus the GPU)."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self._socket.listen(128)
        self.port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=int(SOCKET_TIMEOUT_S),
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AsgiServer:
        import time

        self._thread = threading.Thread(
            target=lambda: self._server.run(sockets=[self._socket]), name="asgi-fake", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + SOCKET_TIMEOUT_S
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __enter__(self) -> AsgiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._server.should_exit = True
            thread.join(SOCKET_TIMEOUT_S)
            assert not thread.is_alive(), "the fake vLLM server did not stop"
        self._socket.close()


@contextlib.contextmanager
def running_adapter(engine: str, engine_url: str, served_model: str = "served") -> Iterator[str]:
    """The serving images' adapter in front of an engine on a free loopback port, its access log kept out of
    the test's output; yields its URL, and checks on the way out that no connection outlived it."""
    adapter = Adapter(
        AdapterConfig(
            engine=engine,
            engine_url=engine_url,
            served_model=served_model,
            request_timeout_s=SOCKET_TIMEOUT_S,
        ),
        log=lambda line: None,
    )
    server = adapter.bind("127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        assert server.stop(SOCKET_TIMEOUT_S) == 0
