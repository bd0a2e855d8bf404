"""The HTTP server under every loopback fake in the tests (fake OCI, fake engine, fake predict server).

The standard library's servers print a traceback for each client that hangs up (a reset, a broken pipe),
and their connection threads live on after `shutdown()`: both land in whatever test runs next. This one
is a tracked server (`TrackedServer`: `stop()` ends every open connection and waits for its thread),
quiet about clients that leave, and it keeps any other handler error in `errors` for the test to fail on.

    server = FakeHttpServer(("127.0.0.1", 0), Handler, name="fake-engine").start()
    ...
    server.stop()
    assert not server.errors
"""

from __future__ import annotations

import contextlib
import errno
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

STOP_TIMEOUT_S = 10.0

_DISCONNECT_ERRNOS = frozenset(
    {errno.EPIPE, errno.ECONNRESET, errno.ECONNABORTED, errno.ENOTCONN, errno.ESHUTDOWN, errno.EBADF}
)


def is_disconnect(exc: BaseException | None) -> bool:
    """A caller that went away (closed, reset, timed out): routine for a server."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    return isinstance(exc, OSError) and exc.errno in _DISCONNECT_ERRNOS


class TrackedServer(ThreadingHTTPServer):
    """One thread per connection, each tracked, so that `stop` ends them all and waits for them: no request
    thread outlives the server. Subclasses say what a connection's failure becomes (`handle_error`)."""

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
