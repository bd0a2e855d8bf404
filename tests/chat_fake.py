"""A loopback stand-in for a deployment's predict route, for the chat tests.

It records every request body and answers in the predict contract: JSON `{"generated_text"}`, or, when
the body asks for a stream, Server-Sent Events in TGI's generate_stream shape. The reply can pause after
a few tokens until the test releases it, so a test can see a half-written reply on the page. Leaving
the `with` block stops it, waits for every connection and fails the test on any error of the fake other
than a client hanging up.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.httpfakes import FakeHttpServer

SOCKET_TIMEOUT_S = 10.0
HOLD_TIMEOUT_S = 20.0


class FakePredictServer:
    def __init__(self, tokens: Sequence[str] = ("Hello", " from", " the", " fake", " model.")) -> None:
        self.tokens = list(tokens)
        self.requests: list[dict[str, Any]] = []
        self.hangups = 0
        """Streams the client closed before the fake had sent everything."""
        self.fail_status: int | None = None
        self.hold_after: int | None = None
        self.release = threading.Event()
        self.token_delay_s = 0.02
        self.errors: list[str] = []  # handler errors other than a client leaving; leaving `with` fails on any
        self._server = FakeHttpServer(
            ("127.0.0.1", 0), self._handler(), name="fake-predict", errors=self.errors
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}/predict"

    @property
    def reply(self) -> str:
        return "".join(self.tokens)

    def __enter__(self) -> FakePredictServer:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.stop(SOCKET_TIMEOUT_S)
        if self.errors:
            raise AssertionError(f"the fake predict server failed: {self.errors}")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # chunked streams, as TGI, vLLM and OCI send them
            timeout = SOCKET_TIMEOUT_S

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
                fake.requests.append(body)
                try:
                    self._answer(body)
                except ConnectionError:
                    fake.hangups += 1

            def _answer(self, body: dict[str, Any]) -> None:
                if fake.fail_status is not None:
                    self._send(
                        fake.fail_status,
                        "application/json",
                        b'{"code": "NotAuthenticated", "message": "denied"}',
                    )
                elif body.get("stream"):
                    self._stream()
                else:
                    self._send(200, "application/json", json.dumps({"generated_text": fake.reply}).encode())

            def _send(self, status: int, content_type: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("connection", "close")
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self) -> None:
                self.send_response(200)
                self.send_header("connection", "close")
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for i, text in enumerate(fake.tokens):
                    if i == fake.hold_after:
                        fake.release.wait(HOLD_TIMEOUT_S)
                    event = {
                        "token": {"id": i, "text": text, "logprob": 0.0, "special": False},
                        "generated_text": None,
                    }
                    self._event(event)
                    time.sleep(fake.token_delay_s)
                self._event(
                    {"token": {"id": 2, "text": "</s>", "special": True}, "generated_text": fake.reply}
                )
                self._chunk(b"")

            def _event(self, event: dict[str, Any]) -> None:
                self._chunk(f"data: {json.dumps(event)}\n\n".encode())

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        return Handler
