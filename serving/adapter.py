"""OCI's routes in front of the engine: `/health`, `/predict` (alias `/generate`) and streaming.

OCI calls one predict route on the container (`MODEL_DEPLOY_PREDICT_ENDPOINT`, default `/predict`), for
`/predict` and for `/predictWithResponseStream` alike: the body is forwarded unchanged, so a stream is
asked for in the body (`"stream": true`) and the container must then answer `text/event-stream`. TGI's
own `/generate` never streams and vLLM speaks the OpenAI API, so both engines sit behind this adapter:

- request: `{"inputs": str, "parameters": {...}, "stream": bool}`;
- answer: `{"generated_text": str}`, or Server-Sent Events in TGI's `generate_stream` shape: one
  `data: {"token": {"text": ...}, "generated_text": null}` per piece, then a final event whose
  `generated_text` is the whole text;
- errors: a request the engine refuses keeps its 4xx; an engine failure is a 502, an engine that is
  not up (yet) a 503, each with `{"error": message, "error_type": kind}`; mid-stream, the same object
  comes as the last event.

Each request is one access line on stderr (the container's output, which OCI keeps in the deployment's
predict log): client, request line, status, duration, and why it went wrong when it did. A caller that
hangs up is routine, never a traceback; any other failure in a handler is that same one line.

Standard library only: the adapter runs in the engines' images beside their own packages.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

from domain.ids import Engine

PREDICT_ROUTES = ("/predict", "/generate")
STREAM_ROUTE = "/generate_stream"
HEALTH_ROUTE = "/health"

# TGI's generation parameters and what vLLM's completions API calls them.
VLLM_PARAMETERS = {
    "max_new_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "repetition_penalty": "repetition_penalty",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "seed": "seed",
    "stop": "stop",
}
VLLM_FLAGS = ("do_sample", "return_full_text")  # mapped to temperature 0 and echo
# What makes TGI sample: with `do_sample: false` (or temperature 0) they are left out, so greedy means greedy.
TGI_SAMPLING = ("temperature", "top_p", "top_k", "typical_p")
_EXCERPT = 300
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True, kw_only=True)
class AdapterConfig:
    engine: Engine
    engine_url: str  # http://127.0.0.1:<port>
    served_model: str  # the model name vLLM answers to
    request_timeout_s: float = 600.0  # the longest wait for the engine's next bytes
    health_timeout_s: float = 2.0
    idle_timeout_s: float = 120.0  # an idle keep-alive connection is closed after this
    max_body_bytes: int = 10 * 1024 * 1024  # OCI's own payload limit
    max_concurrency: int = 256


class RequestProblem(Exception):
    """An answer other than success: HTTP status, message and TGI-style error type."""

    def __init__(self, status: int, message: str, error_type: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type

    def body(self) -> dict[str, str]:
        return {"error": str(self), "error_type": self.error_type}


def log_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Adapter:
    """The HTTP layer; `engine_alive` tells whether the engine process still runs, `log` takes the access
    and error lines (stderr by default)."""

    def __init__(
        self,
        config: AdapterConfig,
        engine_alive: Callable[[], bool] | None = None,
        log: Callable[[str], None] = log_to_stderr,
    ) -> None:
        self.config = config
        self.engine_alive: Callable[[], bool] = engine_alive or (lambda: True)
        self.log = log
        self.slots = threading.BoundedSemaphore(config.max_concurrency)  # requests in flight
        target = urlsplit(config.engine_url)
        if target.scheme != "http" or not target.hostname or not target.port:
            raise ValueError(f"engine_url must be http://host:port, got {config.engine_url!r}")
        self._host: str = target.hostname
        self._port: int = target.port

    def bind(self, host: str, port: int) -> AdapterServer:
        """A server bound to `host:port`, not yet serving (call `start`, and `stop` when done)."""
        adapter = self

        class Handler(_Handler):
            pass

        Handler.adapter = adapter
        Handler.timeout = self.config.idle_timeout_s
        return AdapterServer((host, port), Handler, log=self.log)

    # -- health -----------------------------------------------------------------------------------

    def health(self) -> tuple[int, dict[str, str]]:
        if not self.engine_alive():
            return 503, {"status": "stopped", "detail": "the engine process has exited"}
        try:
            connection = self._connection(self.config.health_timeout_s)
            try:
                connection.request("GET", HEALTH_ROUTE)
                response = connection.getresponse()
                response.read()
                status = response.status
            finally:
                connection.close()
        except (OSError, http.client.HTTPException) as exc:
            return 503, {
                "status": "loading",
                "detail": f"the engine is not answering yet ({type(exc).__name__})",
            }
        if status == 200:
            return 200, {"status": "ready"}
        return 503, {"status": "loading", "detail": f"the engine's health check answered {status}"}

    # -- predict ----------------------------------------------------------------------------------

    def engine_request(self, body: dict[str, Any], *, stream: bool) -> tuple[str, dict[str, Any]]:
        """The engine's route and body for a predict request (RequestProblem 400 when it is malformed)."""
        inputs = body.get("inputs")
        if not isinstance(inputs, str) or not inputs:
            raise RequestProblem(400, "'inputs' must be a non-empty string (the prompt)", "validation")
        parameters = body.get("parameters", {})
        if parameters is None:
            parameters = {}
        if not isinstance(parameters, dict):
            raise RequestProblem(400, "'parameters' must be an object", "validation")
        if self.config.engine == "tgi":
            return ("/generate_stream" if stream else "/generate"), {
                "inputs": inputs,
                "parameters": tgi_parameters(parameters),
            }
        request: dict[str, Any] = {"model": self.config.served_model, "prompt": inputs, "stream": stream}
        for name, value in parameters.items():
            if name in VLLM_PARAMETERS:
                if value is not None:
                    request[VLLM_PARAMETERS[name]] = value
            elif name == "do_sample":
                continue  # applied below, whatever the order of the keys
            elif name == "return_full_text":
                request["echo"] = bool(value)
            else:
                accepted = ", ".join([*VLLM_PARAMETERS, *VLLM_FLAGS])
                raise RequestProblem(
                    400,
                    f"parameters.{name} is not supported by the vLLM image; accepted: {accepted}",
                    "validation",
                )
        if parameters.get("do_sample") is False:
            request["temperature"] = 0.0
        return "/v1/completions", request

    def open(
        self, route: str, body: dict[str, Any]
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """POST to the engine; a refused or failed answer is a RequestProblem (the connection is closed)."""
        payload = json.dumps(body).encode("utf-8")
        connection = self._connection(self.config.request_timeout_s)
        try:
            connection.request("POST", route, body=payload, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
        except TimeoutError:
            connection.close()
            raise RequestProblem(504, "the engine did not answer in time", "timeout") from None
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise RequestProblem(
                503, f"the engine is not reachable yet ({type(exc).__name__})", "unavailable"
            ) from None
        if response.status >= 400:
            raw = response.read()
            connection.close()
            raise engine_problem(response.status, raw)
        return connection, response

    def generated_text(self, response: http.client.HTTPResponse) -> dict[str, Any]:
        """The non-streaming answer in the contract's shape."""
        try:
            raw = response.read()
        except TimeoutError:
            raise RequestProblem(504, "the engine did not finish in time", "timeout") from None
        except (OSError, http.client.HTTPException) as exc:
            raise RequestProblem(
                502, f"the engine's answer broke off ({type(exc).__name__})", "engine"
            ) from None
        try:
            data = json.loads(raw)
        except ValueError:
            raise RequestProblem(
                502, f"the engine answered with something not JSON: {_excerpt(raw)}", "engine"
            ) from None
        if self.config.engine == "tgi":
            if isinstance(data, dict) and isinstance(data.get("generated_text"), str):
                return data
        else:
            text = _vllm_text(data)
            if text is not None:
                return {"generated_text": text}
        raise RequestProblem(502, f"the engine answered without generated text: {_excerpt(raw)}", "engine")

    def events(self, response: http.client.HTTPResponse) -> Iterator[dict[str, Any] | str]:
        """The stream's events in the contract's shape (comments pass through as strings).

        A stream that breaks on the engine's side ends with an error event, never an exception.
        """
        try:
            if self.config.engine == "tgi":
                yield from _tgi_events(response)
            else:
                yield from _vllm_events(response)
        except TimeoutError:
            yield {"error": "the engine sent nothing for too long", "error_type": "timeout"}
        except (OSError, http.client.HTTPException) as exc:
            yield _engine_error(f"the engine stream broke ({type(exc).__name__})")

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)


def tgi_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters as TGI takes them: the same meaning as on the vLLM image.

    TGI refuses `temperature: 0`, `top_p: 1` and `top_k: 0`, values with one meaning on every engine:
    greedy decoding, no nucleus cut, no top-k cut. And TGI samples whenever any sampling setting is
    present, even with `do_sample: false`. So greedy (temperature 0 or `do_sample: false`) is sent as
    `do_sample: false` alone, and the no-op cuts are left out. Anything else goes through unchanged, and
    TGI's own checks answer for it.
    """
    sent = dict(parameters)
    if _number(sent.get("temperature")) == 0 or sent.get("do_sample") is False:
        for name in TGI_SAMPLING:
            sent.pop(name, None)
        sent["do_sample"] = False
        return sent
    top_p, top_k = _number(sent.get("top_p")), _number(sent.get("top_k"))
    if top_p is not None and top_p >= 1:
        del sent["top_p"]
    if top_k is not None and top_k <= 0:
        del sent["top_k"]
    return sent


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def engine_problem(status: int, raw: bytes) -> RequestProblem:
    """An engine's error answer: its 4xx stays (the request was refused), anything else becomes 502."""
    message = _error_message(raw)
    if 400 <= status < 500 and status != 424:  # TGI answers 424 when generation itself failed
        return RequestProblem(status, message, "overloaded" if status == 429 else "validation")
    return RequestProblem(502, f"the engine failed ({status}): {message}", "engine")


def _error_message(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        return _excerpt(raw) or "no message"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])  # vLLM (newer): {"error": {"message": ...}}
        if isinstance(error, str):
            return error  # TGI: {"error": ..., "error_type": ...}
        if isinstance(data.get("message"), str):
            return str(data["message"])  # vLLM (older): {"object": "error", "message": ...}
        if isinstance(data.get("detail"), str):
            return str(data["detail"])
    return _excerpt(raw)


def _vllm_text(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    text = choices[0].get("text")
    return text if isinstance(text, str) else None


def _sse_data(response: http.client.HTTPResponse) -> Iterator[str]:
    """Each event's data (comments as ':' lines); ends when the engine closes the stream."""
    data: list[str] = []
    while True:
        line = response.readline()
        if not line:
            if data:
                yield "\n".join(data)
            return
        text = line.decode("utf-8", errors="replace").rstrip("\r\n")
        if not text:
            if data:
                yield "\n".join(data)
                data = []
        elif text.startswith(":"):
            yield text
        elif text.startswith("data:"):
            value = text[5:]
            data.append(value[1:] if value.startswith(" ") else value)


def _vllm_events(response: http.client.HTTPResponse) -> Iterator[dict[str, Any] | str]:
    pieces: list[str] = []
    for data in _sse_data(response):
        if data.startswith(":"):
            yield data
            continue
        if data == "[DONE]":
            yield {"token": {"text": "", "special": True}, "generated_text": "".join(pieces)}
            _drain(response)
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            yield _engine_error(f"the engine sent an event that is not JSON: {_excerpt(data.encode())}")
            return
        if isinstance(chunk, dict) and ("error" in chunk or chunk.get("object") == "error"):
            yield _engine_error(f"the engine failed: {_error_message(data.encode())}")
            return
        text = _vllm_text(chunk)
        if text:
            pieces.append(text)
            yield {"token": {"text": text, "special": False}, "generated_text": None}
    yield _engine_error("the engine closed the stream before it finished")


def _tgi_events(response: http.client.HTTPResponse) -> Iterator[dict[str, Any] | str]:
    for data in _sse_data(response):
        if data.startswith(":"):
            yield data
            continue
        try:
            event = json.loads(data)
        except ValueError:
            yield _engine_error(f"the engine sent an event that is not JSON: {_excerpt(data.encode())}")
            return
        if not isinstance(event, dict):
            continue
        yield event
        if isinstance(event.get("generated_text"), str):
            _drain(response)
            return
        if event.get("error"):
            return
    yield _engine_error("the engine closed the stream before it finished")


def _engine_error(message: str) -> dict[str, Any]:
    """The stream's last event when the engine's side fails."""
    return {"error": message, "error_type": "engine"}


def _drain(response: http.client.HTTPResponse) -> None:
    """Read the end of a finished stream, so the engine sees a clean close rather than a reset."""
    with contextlib.suppress(OSError, http.client.HTTPException):
        response.read()


def _excerpt(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


_DISCONNECT_ERRNOS = frozenset(
    {errno.EPIPE, errno.ECONNRESET, errno.ECONNABORTED, errno.ENOTCONN, errno.ESHUTDOWN, errno.EBADF}
)


def is_disconnect(exc: BaseException | None) -> bool:
    """A caller that went away (closed, reset, timed out): routine for a server."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    return isinstance(exc, OSError) and exc.errno in _DISCONNECT_ERRNOS


def _one_line(text: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


class TrackedServer(ThreadingHTTPServer):
    """One thread per connection, each tracked, so that `stop` ends them all and waits for them: no request
    thread outlives the server. Subclasses say what a connection's failure becomes (`handle_error`).
    The tests' loopback fakes run on it too."""

    daemon_threads = True
    block_on_close = False  # stop() joins the threads, with a deadline

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *, name: str) -> None:
        self.name = name
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._connections_lock = threading.Lock()
        self._serving: threading.Thread | None = None
        super().__init__(address, handler)

    def start(self, poll_interval: float = 0.2) -> Self:
        """Serve on a daemon thread."""
        self._serving = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": poll_interval}, name=self.name, daemon=True
        )
        self._serving.start()
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """Stop listening, end every open connection and wait for the threads; returns how many still ran
        after `timeout` (one waiting on an engine that does not answer)."""
        serving, self._serving = self._serving, None
        if serving is not None:
            self.shutdown()
        self.server_close()
        if serving is not None:
            serving.join(timeout)
        with self._connections_lock:
            live = dict(self._connections)
        for sock in live:
            with contextlib.suppress(OSError):  # closed already
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in live.values():
            thread.join(max(deadline - time.monotonic(), 0.0))
        return sum(thread.is_alive() for thread in live.values())

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"{self.name}-connection",
            daemon=True,
        )
        with self._connections_lock:  # registered before it runs: stop() never misses one
            self._connections[request] = thread
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.pop(request, None)


class AdapterServer(TrackedServer):
    """The adapter's server: a connection error is one line, never the standard library's traceback."""

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], log: Callable[[str], None]
    ) -> None:
        self.log = log
        super().__init__(address, handler, name="adapter")

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if exc is None or is_disconnect(exc):
            return
        self.log(
            _one_line(f"adapter: connection from {client_address[0]} failed: {type(exc).__name__}: {exc}")
        )


class _Handler(BaseHTTPRequestHandler):
    adapter: Adapter
    protocol_version = "HTTP/1.1"
    # Headers, body and each streamed chunk are separate writes: with Nagle's algorithm each one after
    # the first waits for the caller's delayed ACK (40 ms on Linux) on a keep-alive connection.
    disable_nagle_algorithm = True
    server_version = "oci-llm-stack-adapter"
    _status: int | None = None
    _note = ""

    def handle_one_request(self) -> None:
        """One request and its access line. A caller that hangs up is routine; any other failure is noted
        on that line, never a traceback."""
        self.raw_requestline = b""
        self.requestline = ""
        self._status, self._note = None, ""
        started = time.monotonic()
        try:
            super().handle_one_request()
        except Exception as exc:
            self.close_connection = True
            self._note = "the caller left" if is_disconnect(exc) else f"failed: {type(exc).__name__}: {exc}"
        if self.requestline:
            self._access_line(time.monotonic() - started)

    def _access_line(self, seconds: float) -> None:
        path = self.path.split("?", 1)[0] if hasattr(self, "path") else ""
        if path == HEALTH_ROUTE and self._status == 200 and not self._note:
            return  # OCI polls /health every few seconds; only changes are worth a line
        status = "-" if self._status is None else str(self._status)
        note = f" {self._note}" if self._note else ""
        self.adapter.log(
            _one_line(f'adapter: {self.client_address[0]} "{self.requestline}" {status} {seconds:.3f}s{note}')
        )

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self._status = int(code) if isinstance(code, int) else None  # the line is written once it is over

    def log_error(self, format: str, *args: Any) -> None:
        if args and isinstance(args[0], TimeoutError):
            self._note = "timed out"  # an idle keep-alive connection has no request line: no access line
        else:
            self._note = format % args  # send_error's "code %d, message %s"

    def log_message(self, format: str, *args: Any) -> None:
        self.adapter.log(_one_line(f"adapter: {format % args}"))

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == HEALTH_ROUTE:
            status, body = self.adapter.health()
            self._json(status, body)
        elif path in (*PREDICT_ROUTES, STREAM_ROUTE):
            self._problem(RequestProblem(405, f"{path} takes POST", "validation"), allow="POST")
        else:
            self._problem(
                RequestProblem(404, f"no route {path}; routes: /health, /predict, /generate", "validation")
            )

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path not in (*PREDICT_ROUTES, STREAM_ROUTE):
            self.close_connection = True  # the body stays unread
            if path == HEALTH_ROUTE:
                self._problem(RequestProblem(405, f"{path} takes GET", "validation"), allow="GET")
            else:
                self._problem(
                    RequestProblem(
                        404, f"no route {path}; routes: /health, /predict, /generate", "validation"
                    )
                )
            return
        if not self.adapter.slots.acquire(blocking=False):
            limit = self.adapter.config.max_concurrency
            self.close_connection = True
            self._problem(
                RequestProblem(429, f"more than {limit} requests at once; retry shortly", "overloaded")
            )
            return
        try:
            self._predict(always_stream=path == STREAM_ROUTE)
        finally:
            self.adapter.slots.release()

    def _predict(self, *, always_stream: bool) -> None:
        try:
            body = self._body()
            stream = always_stream or body.get("stream") is True or self._header_says_stream()
            route, request = self.adapter.engine_request(body, stream=stream)
            connection, response = self.adapter.open(route, request)
        except RequestProblem as problem:
            self._problem(problem)
            return
        try:
            if stream:
                self._stream(response)
                return
            try:
                answer = self.adapter.generated_text(response)
            except RequestProblem as problem:
                self._problem(problem)
                return
            self._json(200, answer)
        finally:
            connection.close()

    def _stream(self, response: http.client.HTTPResponse) -> None:
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in self.adapter.events(response):
                if isinstance(event, str):
                    self._chunk(f"{event}\n\n".encode())
                else:
                    if event.get("error"):
                        self._note = f"the stream ended with an error: {event['error']}"
                    self._chunk(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            # The caller went away; closing the engine connection (in _predict) lets the engine abort.
            self.close_connection = True
            self._note = "the caller left mid-stream"

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _body(self) -> dict[str, Any]:
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self.close_connection = True
            raise RequestProblem(411, "a Content-Length header is required", "validation")
        try:
            length = int(length_header)
        except ValueError:
            self.close_connection = True
            raise RequestProblem(
                400, f"Content-Length {length_header!r} is not a number", "validation"
            ) from None
        if length < 0:
            self.close_connection = True
            raise RequestProblem(
                400, f"Content-Length {length_header!r} is negative; accepted: the body's size", "validation"
            )
        if length > self.adapter.config.max_body_bytes:
            self.close_connection = True
            raise RequestProblem(
                413, f"the body is over {self.adapter.config.max_body_bytes} bytes", "validation"
            )
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            raise RequestProblem(400, "the body is not JSON", "validation") from None
        if not isinstance(body, dict):
            raise RequestProblem(400, "the body must be a JSON object with 'inputs'", "validation")
        return body

    def _header_says_stream(self) -> bool:
        return (self.headers.get("enable-streaming") or "").strip().lower() == "true"

    def _json(self, status: int, body: dict[str, Any], *, allow: str | None = None) -> None:
        data = json.dumps(body).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if allow:
                self.send_header("Allow", allow)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True
            self._note = "the caller left before the answer"

    def _problem(self, problem: RequestProblem, *, allow: str | None = None) -> None:
        if problem.status >= 500:
            self._note = str(problem)  # the engine's side: worth a look in the log; a refusal is the caller's
        self._json(problem.status, problem.body(), allow=allow)
