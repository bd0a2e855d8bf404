"""A model server on 127.0.0.1 that speaks both engines' predict shapes, for the predict client's tests.

Routes: `/predict` (the vLLM sample; with `"stream": true` it streams), `/generate` and `/generate_stream`
(TGI), `/<ocid>/predict` and `/<ocid>/predictWithResponseStream` (OCI's model deployment paths).
Streams are Server-Sent Events in TGI's generate_stream shape, sent chunk by chunk (chunked encoding).
Scripted faults: `fail_first=[503, 503]` answers those statuses before succeeding; `status=401` always
refuses. With `public_key`, every request must carry a valid OCI signature (else 401 NotAuthenticated).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.oci_signature import verify_signature

TOKENS = ["Hello", " there", ",", " friend", "."]


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    signer: str | None


@dataclass
class FakeEngine:
    tokens: list[str] = field(default_factory=lambda: list(TOKENS))
    public_key: Any = None
    status: int | None = None
    fail_first: deque[int] = field(default_factory=deque)
    delay_s: float = 0.0
    # Set by a test to hold the stream after its first token until the test has seen that token.
    hold_after_first: threading.Event | None = None
    stream_done: threading.Event = field(default_factory=threading.Event)
    received: list[Received] = field(default_factory=list)

    @property
    def completion(self) -> str:
        return "".join(self.tokens)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        engine = self.server.engine
        raw = self.rfile.read(int(self.headers.get("content-length", "0")))
        signer = None
        if engine.public_key is not None:
            signer = verify_signature(
                self.command, self.path, dict(self.headers.items()), raw, engine.public_key
            )
            if signer is None:
                return self._json(
                    401,
                    {
                        "code": "NotAuthenticated",
                        "message": "The required information to complete authentication was not provided.",
                    },
                )
        body = json.loads(raw or b"{}")
        engine.received.append(Received(self.command, self.path, dict(self.headers.items()), body, signer))
        if engine.status is not None:
            return self._json(engine.status, {"code": "Refused", "message": f"scripted {engine.status}"})
        if engine.fail_first:
            status = engine.fail_first.popleft()
            return self._json(status, {"code": "ServiceUnavailable", "message": "Model server unavailable."})
        if engine.delay_s:
            time.sleep(engine.delay_s)
        path = self.path.split("?")[0]
        streaming = path.endswith(("/generate_stream", "/predictWithResponseStream")) or (
            body.get("stream") is True and not path.endswith("/generate")
        )
        if streaming:
            return self._stream(engine)
        if path.endswith(("/predict", "/generate")):
            return self._json(200, {"generated_text": engine.completion})
        return self._json(404, {"code": "NotFound", "message": f"no route {path}"})

    def _json(self, status: int, data: Any) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self, engine: FakeEngine) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for index, text in enumerate(engine.tokens):
            event = {
                "index": index,
                "token": {"id": index, "text": text, "special": False},
                "generated_text": None,
            }
            self._chunk(f"data:{json.dumps(event)}\n\n".encode())
            if index == 0 and engine.hold_after_first is not None:
                engine.hold_after_first.wait(timeout=5)
        end = {"token": {"id": 2, "text": "</s>", "special": True}, "generated_text": engine.completion}
        self._chunk(f"data:{json.dumps(end)}\n\n".encode())
        self._chunk(b"")
        engine.stream_done.set()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    engine: FakeEngine


class RunningEngine:
    """A FakeEngine served on an ephemeral port until `stop()`."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.engine = engine
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def url(self, path: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
