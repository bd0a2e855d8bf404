"""The HTTP server under every loopback fake in the tests (fake OCI, fake engine, fake predict server).

The standard library's servers print a traceback for each client that hangs up (a reset, a broken pipe),
and their connection threads live on after `shutdown()`: both land in whatever test runs next. This one
is the adapter's own tracked server (`serving.adapter.TrackedServer`: `stop()` ends every open connection
and waits for its thread), quiet about clients that leave, and it keeps any other handler error in
`errors` for the test to fail on.

    server = FakeHttpServer(("127.0.0.1", 0), Handler, name="fake-engine").start()
    ...
    server.stop()
    assert not server.errors
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any, Self

from serving.adapter import STOP_TIMEOUT_S, TrackedServer, is_disconnect

__all__ = ["STOP_TIMEOUT_S", "FakeHttpServer", "is_disconnect", "send_json"]


class FakeHttpServer(TrackedServer):
    """`errors` and `stopping` may be shared with the fake that owns the server (a fake that restarts keeps
    one list); once `stopping` is set, errors from the connections being cut are expected and dropped."""

    allow_reuse_address = True
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        name: str,
        errors: list[str] | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.errors: list[str] = [] if errors is None else errors
        self.stopping = threading.Event() if stopping is None else stopping
        super().__init__(address, handler, name=name)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self, poll_interval: float = 0.05) -> Self:
        return super().start(poll_interval)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """As the tracked server's, and a connection thread still running after `timeout` is recorded in
        `errors`."""
        self.stopping.set()
        lingering = super().stop(timeout)
        if lingering:
            self.errors.append(
                f"{self.name}: {lingering} connection threads still ran {timeout:g} s after stop()"
            )
        return lingering

    def get_request(self) -> tuple[socket.socket, Any]:
        """An accepted connection, without Nagle's algorithm: handlers write a response's headers and its
        body (or each streamed chunk) separately, and with Nagle the second write waits for the client's
        delayed ACK of the first, 40 ms on Linux, that no real server adds to each answer."""
        sock, address = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Instead of printing a traceback into whatever test runs next: a client that left is routine,
        anything else is kept in `errors` (the test fails with it)."""
        exc = sys.exc_info()[1]
        if is_disconnect(exc) or self.stopping.is_set():
            return
        self.errors.append(f"{self.name}: connection from {client_address[0]}:{client_address[1]}: {exc!r}")


def send_json(handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    """Answer `handler`'s request with `body` as JSON, sized (Content-Length), as the services do."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
