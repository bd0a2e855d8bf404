"""The serving adapter against a fake engine on 127.0.0.1: health, the legacy payload's mapping, the OpenAI
routes and the `route` header passed through, streaming, errors, bodies sized or chunked."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from serving.adapter import Adapter, AdapterConfig
from tests.serving_fakes import SOCKET_TIMEOUT_S, FakeEngine, free_port

SERVED = "/opt/ds/model/deployed_model"


class Running:
    """An adapter serving on a loopback port in a thread, in front of `engine`."""

    def __init__(self, engine: FakeEngine, **overrides: Any) -> None:
        self.engine = engine
        self.alive = True
        settings: dict[str, Any] = {
            "engine": engine.engine,
            "engine_url": engine.url,
            "served_model": SERVED,
            "request_timeout_s": SOCKET_TIMEOUT_S,
            "health_timeout_s": 1.0,
            "idle_timeout_s": SOCKET_TIMEOUT_S,
        }
        settings.update(overrides)
        self.lines: list[str] = []  # the adapter's access and error lines
        self.adapter = Adapter(
            AdapterConfig(**settings), engine_alive=lambda: self.alive, log=self.lines.append
        )
        self.server = self.adapter.bind("127.0.0.1", 0)
        self.port = int(self.server.server_address[1])
        self.server.start(poll_interval=0.05)

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        lingering = self.server.stop(SOCKET_TIMEOUT_S)
        assert lingering == 0, f"{lingering} adapter connection threads outlived stop()"

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=SOCKET_TIMEOUT_S)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=SOCKET_TIMEOUT_S)
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        connection.request(
            "POST", path, body=data, headers={"Content-Type": "application/json", **(headers or {})}
        )
        return connection.getresponse()

    def predict(self, body: Any, path: str = "/predict") -> tuple[int, dict[str, Any]]:
        response = self.post(path, body)
        return response.status, json.loads(response.read())


def sse_events(response: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
    """The adapter's events, read as they arrive."""
    while True:
        line = response.readline()
        if not line:
            return
        text = line.decode().rstrip("\r\n")
        if text.startswith("data: "):
            yield json.loads(text[6:])


@pytest.fixture(params=["vllm", "tgi"])
def engine(request: pytest.FixtureRequest) -> Iterator[FakeEngine]:
    with FakeEngine(request.param).start() as fake:
        yield fake


@pytest.fixture
def running(engine: FakeEngine) -> Iterator[Running]:
    with Running(engine) as adapter:
        yield adapter


# -- health ----------------------------------------------------------------------------------------


def test_health_is_503_before_the_engine_listens_and_200_once_it_has_loaded() -> None:
    port = free_port()
    adapter = Running(FakeEngine("vllm", port=port))
    engine = FakeEngine("vllm", port=port)
    try:
        status, body = adapter.get("/health")
        assert (status, body["status"]) == (503, "loading")

        engine.ready = False
        engine.start()  # listening, model still loading
        status, body = adapter.get("/health")
        assert (status, body["status"]) == (503, "loading")

        engine.ready = True
        assert adapter.get("/health") == (200, {"status": "ready"})
    finally:
        engine.stop()
        adapter.stop()


def test_health_is_503_once_the_engine_process_has_exited(running: Running) -> None:
    assert running.get("/health")[0] == 200
    running.alive = False
    status, body = running.get("/health")
    assert (status, body["status"]) == (503, "stopped")


# -- predict ---------------------------------------------------------------------------------------


def test_predict_maps_the_contract_to_vllm_completions_and_back() -> None:
    with FakeEngine("vllm").start() as engine, Running(engine) as adapter:
        status, body = adapter.predict(
            {
                "inputs": "Say hello.",
                "parameters": {
                    "max_new_tokens": 20,
                    "temperature": 0.7,
                    "top_p": 0.9,
                    "top_k": 40,
                    "repetition_penalty": 1.1,
                    "stop": ["\n"],
                    "seed": 3,
                },
            }
        )
    assert (status, body) == (200, {"generated_text": "Hello world"})
    route, sent = engine.requests[-1]
    assert route == "/v1/completions"
    assert sent == {
        "model": SERVED,
        "prompt": "Say hello.",
        "stream": False,
        "max_tokens": 20,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 40,
        "repetition_penalty": 1.1,
        "stop": ["\n"],
        "seed": 3,
    }


def test_predict_greedy_and_full_text_flags_reach_vllm() -> None:
    with FakeEngine("vllm").start() as engine, Running(engine) as adapter:
        status, _ = adapter.predict(
            {"inputs": "x", "parameters": {"do_sample": False, "temperature": 0.9, "return_full_text": True}}
        )
    assert status == 200
    sent = engine.requests[-1][1]
    assert sent["temperature"] == 0.0 and sent["echo"] is True


def test_predict_passes_the_contract_through_to_tgi_generate_on_both_routes() -> None:
    with FakeEngine("tgi").start() as engine, Running(engine) as adapter:
        body = {
            "inputs": "Say hello.",
            "parameters": {"max_new_tokens": 20, "watermark": True},
            "stream": False,
        }
        first = adapter.predict(body, path="/predict")
        second = adapter.predict(body, path="/generate")
    assert first == second == (200, {"generated_text": "Hello world"})
    assert (
        engine.requests
        == [("/generate", {"inputs": "Say hello.", "parameters": {"max_new_tokens": 20, "watermark": True}})]
        * 2
    )


@pytest.mark.parametrize(
    ("parameters", "sent"),
    [
        # TGI refuses these values (temperature must be > 0, top_p < 1, top_k > 0); each means the same
        # on every engine, so TGI gets it in the form it takes.
        ({"max_new_tokens": 8, "temperature": 0, "top_p": 0.9}, {"max_new_tokens": 8, "do_sample": False}),
        ({"temperature": 0.0, "top_k": 40, "typical_p": 0.5}, {"do_sample": False}),
        ({"do_sample": False, "temperature": 0.7}, {"do_sample": False}),  # greedy, as on the vLLM image
        ({"temperature": 0.7, "top_p": 1.0, "top_k": 0}, {"temperature": 0.7}),
        ({"temperature": 0.7, "top_p": 1, "top_k": -1}, {"temperature": 0.7}),
        # Everything else goes through as it came, TGI's own checks included.
        (
            {"temperature": 0.7, "top_p": 0.9, "top_k": 40, "do_sample": True},
            {"temperature": 0.7, "top_p": 0.9, "top_k": 40, "do_sample": True},
        ),
        ({"temperature": -1, "top_p": 1.5}, {"temperature": -1}),
        ({"temperature": True, "top_p": "1"}, {"temperature": True, "top_p": "1"}),
    ],
)
def test_tgi_gets_greedy_and_no_op_cuts_in_the_form_it_accepts(
    parameters: dict[str, Any], sent: dict[str, Any]
) -> None:
    with FakeEngine("tgi").start() as engine, Running(engine) as adapter:
        status, _ = adapter.predict({"inputs": "x", "parameters": parameters})
    assert status == 200
    assert engine.requests == [("/generate", {"inputs": "x", "parameters": sent})]


def test_a_negative_content_length_is_a_400_not_a_wait(running: Running) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", running.port), timeout=SOCKET_TIMEOUT_S) as raw:
        raw.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
        chunks = []
        while chunk := raw.recv(65536):  # the adapter closes the connection after the answer
            chunks.append(chunk)
    answer = b"".join(chunks).decode()
    assert answer.startswith("HTTP/1.1 400 ")  # the HTTP parser refuses it before the adapter sees it
    assert running.engine.requests == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"parameters": {}}, "'inputs' must be a non-empty string"),
        ({"inputs": 3}, "'inputs' must be a non-empty string"),
        ({"inputs": "x", "parameters": [1]}, "'parameters' must be an object"),
        (b"not json", "the body is not JSON"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_a_malformed_request_is_a_400_with_a_message_and_never_reaches_the_engine(
    running: Running, body: Any, message: str
) -> None:
    status, answer = running.predict(body)
    assert status == 400
    assert message in answer["error"] and answer["error_type"] == "validation"
    assert running.engine.requests == []


def test_a_parameter_vllm_cannot_honour_is_refused_with_the_accepted_list() -> None:
    with FakeEngine("vllm").start() as engine, Running(engine) as adapter:
        status, answer = adapter.predict({"inputs": "x", "parameters": {"watermark": True}})
    assert status == 400
    assert "parameters.watermark" in answer["error"] and "max_new_tokens" in answer["error"]
    assert engine.requests == []


def test_a_body_over_the_limit_is_413(engine: FakeEngine) -> None:
    with Running(engine, max_body_bytes=64) as adapter:
        status, answer = adapter.predict({"inputs": "x" * 100})
    assert status == 413 and "64 bytes" in answer["error"]


def test_unknown_routes_and_methods_are_answered_not_dropped(running: Running) -> None:
    assert running.get("/nope") == (404, {"detail": "Not Found"})  # the engine's own answer
    assert running.get("/predict")[0] == 405
    response = running.post("/health", {})
    assert response.status == 405 and response.getheader("Allow") == "GET"


# -- engine errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503])
def test_an_engine_failure_is_a_502_with_the_engines_message(engine: FakeEngine, status: int) -> None:
    engine.mode, engine.error_status = "error", status
    with Running(engine) as adapter:
        plain = adapter.predict({"inputs": "x"})
        streamed = adapter.predict({"inputs": "x", "stream": True})
    for code, answer in (plain, streamed):
        assert code == 502
        assert answer["error_type"] == "engine"
        assert f"({status})" in answer["error"] and "CUDA out of memory" in answer["error"]


def test_a_request_the_engine_refuses_keeps_its_4xx(engine: FakeEngine) -> None:
    engine.mode, engine.error_status = "error", 400
    engine.error_message = "This model's maximum context length is 4096 tokens"
    with Running(engine) as adapter:
        status, answer = adapter.predict({"inputs": "x"})
    assert status == 400 and answer["error"] == engine.error_message


def test_an_engine_that_is_not_up_is_a_503() -> None:
    with Running(FakeEngine("vllm", port=free_port())) as adapter:
        status, answer = adapter.predict({"inputs": "x"})
    assert status == 503 and answer["error_type"] == "unavailable"


# -- streaming -------------------------------------------------------------------------------------


def test_streaming_sends_each_piece_in_order_then_the_full_text(running: Running) -> None:
    response = running.post("/predict", {"inputs": "Say hello.", "stream": True})
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream"
    events = list(sse_events(response))
    texts = [event["token"]["text"] for event in events if not event["token"].get("special")]
    assert texts == ["Hel", "lo", " world"]
    assert all(event["generated_text"] is None for event in events[:-1])
    assert events[-1]["generated_text"] == "Hello world"
    path, sent = running.engine.requests[-1]
    assert path == ("/v1/completions" if running.engine.engine == "vllm" else "/generate_stream")
    assert sent.get("stream", True) is True


def test_streaming_is_live_not_buffered(engine: FakeEngine) -> None:
    engine.gate = threading.Event()
    with Running(engine) as adapter:
        response = adapter.post("/predict", {"inputs": "x", "stream": True})
        events = sse_events(response)
        first = next(events)  # arrives while the engine still holds the rest back
        assert first["token"]["text"] == "Hel" and first["generated_text"] is None
        engine.gate.set()
        rest = list(events)
    assert rest[-1]["generated_text"] == "Hello world"


def test_the_stream_route_and_the_streaming_header_also_stream(running: Running) -> None:
    by_route = list(sse_events(running.post("/generate_stream", {"inputs": "x"})))
    by_header = list(
        sse_events(running.post("/predict", {"inputs": "x"}, headers={"enable-streaming": "true"}))
    )
    assert by_route[-1]["generated_text"] == by_header[-1]["generated_text"] == "Hello world"


@pytest.mark.parametrize("mode", ["midstream-error", "truncate"])
def test_an_engine_failing_mid_stream_ends_the_stream_with_an_error_event(
    engine: FakeEngine, mode: str
) -> None:
    engine.mode = mode
    with Running(engine) as adapter:
        events = list(sse_events(adapter.post("/predict", {"inputs": "x", "stream": True})))
    assert events[0]["token"]["text"] == "Hel"
    assert "error" in events[-1] and events[-1]["error"]
    assert not any(isinstance(event.get("generated_text"), str) for event in events)
    if mode == "midstream-error":
        assert "CUDA out of memory" in events[-1]["error"]


def test_requests_beyond_the_concurrency_limit_are_told_to_retry(engine: FakeEngine) -> None:
    engine.gate = threading.Event()
    with Running(engine, max_concurrency=1) as adapter:
        held = adapter.post("/predict", {"inputs": "x", "stream": True})
        next(sse_events(held))  # the only slot is busy streaming
        status, answer = adapter.predict({"inputs": "y"})
        engine.gate.set()
        list(sse_events(held))
    assert status == 429 and answer["error_type"] == "overloaded"


# -- the log, callers that leave, stopping -----------------------------------------------------------


def adapter_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("adapter")]


def test_keep_alive_connections_send_without_nagle(running: Running) -> None:
    """Headers, body and stream chunks are separate writes; with Nagle's algorithm each waits for the
    caller's delayed ACK (about 40 ms a request on a keep-alive connection, as OCI's front end keeps):
    three answers on one connection come well within that."""
    import time

    connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=SOCKET_TIMEOUT_S)
    try:
        running.predict({"inputs": "warm"})
        started = time.monotonic()
        for _ in range(3):  # one connection, several answers
            connection.request("POST", "/predict", body=b'{"inputs": "x"}')
            response = connection.getresponse()
            assert response.status == 200 and json.loads(response.read())
        assert time.monotonic() - started < 0.1
    finally:
        connection.close()


def test_each_request_is_one_access_line_and_a_healthy_poll_none(running: Running) -> None:
    assert running.get("/health")[0] == 200
    assert running.predict({"inputs": "x"})[0] == 200
    assert running.get("/nope")[0] == 404
    running.engine.mode = "error"
    assert running.predict({"inputs": "x"})[0] == 502
    running.stop()  # every request has finished its line (each is written once its answer is out)
    assert len(running.lines) == 3

    def line(start: str) -> str:
        [found] = [line for line in running.lines if line.startswith(start)]
        return found

    assert line('adapter: 127.0.0.1 "POST /predict HTTP/1.1" 200 ').endswith("s")  # the duration
    assert line('adapter: 127.0.0.1 "GET /nope HTTP/1.1" 404 ')
    assert line('adapter: 127.0.0.1 "POST /predict HTTP/1.1" 502 ').endswith(
        "the engine failed (500): CUDA out of memory"  # why, for the operator
    )


def test_a_stream_that_fails_says_why_on_its_line(engine: FakeEngine) -> None:
    engine.mode = "midstream-error"
    with Running(engine) as adapter:
        events = list(sse_events(adapter.post("/predict", {"inputs": "x", "stream": True})))
    assert "error" in events[-1]
    [line] = adapter.lines
    assert '"POST /predict HTTP/1.1" 200 ' in line
    assert "the stream ended with an error: " in line and line.endswith("CUDA out of memory")


def test_the_log_goes_to_stderr_by_default(engine: FakeEngine, capfd: pytest.CaptureFixture[str]) -> None:
    adapter = Adapter(AdapterConfig(engine=engine.engine, engine_url=engine.url, served_model=SERVED))
    server = adapter.bind("127.0.0.1", 0)
    server.start(poll_interval=0.05)
    try:
        connection = http.client.HTTPConnection(
            "127.0.0.1", server.server_address[1], timeout=SOCKET_TIMEOUT_S
        )
        connection.request("POST", "/predict", body=b'{"inputs": "x"}')
        assert connection.getresponse().status == 200
        connection.close()
    finally:
        assert server.stop(SOCKET_TIMEOUT_S) == 0
    out, err = capfd.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and '"POST /predict HTTP/1.1" 200 ' in err


def test_a_caller_that_hangs_up_mid_stream_is_routine_not_a_traceback(
    engine: FakeEngine, capfd: pytest.CaptureFixture[str]
) -> None:
    import socket
    import struct

    engine.gate = threading.Event()
    with Running(engine) as adapter:
        connection = http.client.HTTPConnection("127.0.0.1", adapter.port, timeout=SOCKET_TIMEOUT_S)
        connection.request("POST", "/predict", body=b'{"inputs": "x", "stream": true}')
        first = next(sse_events(connection.getresponse()))
        assert first["token"]["text"] == "Hel"
        assert connection.sock is not None
        connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()  # a reset, as a client that gives up does
        engine.gate.set()  # the adapter writes the rest into the closed connection
    [line] = adapter.lines
    assert '"POST /predict HTTP/1.1" 200 ' in line and line.endswith("the caller left mid-stream")
    assert "Traceback" not in capfd.readouterr().err
    assert adapter_threads() == []


def test_a_failing_handler_is_one_line_naming_the_route(
    running: Running, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    def broken(body: dict[str, Any], *, stream: bool) -> tuple[str, dict[str, Any]]:
        raise RuntimeError("a bug\nover two lines")

    monkeypatch.setattr(running.adapter, "engine_request", broken)
    status, answer = running.predict({"inputs": "x"})
    assert (status, answer["error_type"]) == (500, "internal")
    assert running.get("/nope")[0] == 404  # the adapter still serves
    running.stop()
    failed, _ = running.lines
    assert failed.startswith('adapter: 127.0.0.1 "POST /predict HTTP/1.1" 500 ')
    assert failed.endswith("failed: RuntimeError: a bug over two lines")
    assert "Traceback" not in capfd.readouterr().err


def test_an_idle_connection_times_out_without_a_line(
    engine: FakeEngine, capfd: pytest.CaptureFixture[str]
) -> None:
    with Running(engine, idle_timeout_s=0.2) as adapter:
        connection = http.client.HTTPConnection("127.0.0.1", adapter.port, timeout=SOCKET_TIMEOUT_S)
        connection.request("GET", "/health")
        assert connection.getresponse().read()
        assert connection.sock is not None
        # the keep-alive connection is closed once nothing more was asked within the idle timeout
        assert connection.sock.recv(1) == b""
        connection.close()
    assert adapter.lines == []
    assert capfd.readouterr().err == ""


def test_stop_ends_open_connections_at_once_and_leaves_no_thread(engine: FakeEngine) -> None:
    import socket
    import time

    adapter = Running(engine, idle_timeout_s=60)
    kept = http.client.HTTPConnection("127.0.0.1", adapter.port, timeout=SOCKET_TIMEOUT_S)
    kept.request("POST", "/predict", body=b'{"inputs": "x"}')
    assert kept.getresponse().read()  # answered; the keep-alive connection stays open
    idle = socket.create_connection(("127.0.0.1", adapter.port), timeout=SOCKET_TIMEOUT_S)
    started = time.monotonic()
    adapter.stop()  # asserts that no connection thread outlived it
    assert time.monotonic() - started < 2  # not the 60 s idle timeout
    assert adapter_threads() == []
    kept.close()
    idle.close()


# -- bodies without Content-Length (issue 18, point 6) ------------------------------------------------


def chunked_post(port: int, path: str, data: bytes, pieces: int = 3) -> tuple[int, dict[str, Any]]:
    """POST `data` with Transfer-Encoding: chunked (no Content-Length), as a streaming client sends it."""
    size = max(1, len(data) // pieces)
    chunks = (data[i : i + size] for i in range(0, len(data), size))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=SOCKET_TIMEOUT_S)
    try:
        connection.request("POST", path, body=chunks, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_chunked_body_is_read_like_a_sized_one(running: Running) -> None:
    status, answer = chunked_post(running.port, "/predict", b'{"inputs": "Say hello.", "parameters": {}}')
    assert (status, answer) == (200, {"generated_text": "Hello world"})


def test_a_chunked_body_over_the_limit_is_413(engine: FakeEngine) -> None:
    with Running(engine, max_body_bytes=64) as adapter:
        status, answer = chunked_post(adapter.port, "/predict", json.dumps({"inputs": "x" * 100}).encode())
    assert status == 413 and "64 bytes" in answer["error"]
    assert engine.requests == []


def test_411_only_when_there_is_no_body_at_all(running: Running) -> None:
    with socket.create_connection(("127.0.0.1", running.port), timeout=SOCKET_TIMEOUT_S) as raw:
        raw.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := raw.recv(65536):
            chunks.append(chunk)
    assert b"".join(chunks).startswith(b"HTTP/1.1 411 ")


# -- the OpenAI routes and the route header: passed through ------------------------------------------


def test_openai_routes_reach_the_engine_unchanged(running: Running) -> None:
    body = {"model": "served", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}
    response = running.post("/v1/chat/completions?x=1", body)
    answer = json.loads(response.read())
    assert response.status == 200 and answer["choices"][0]["message"]["content"] == "Hello world"
    assert running.engine.requests[-1] == ("/v1/chat/completions?x=1", body)
    assert running.get("/v1/models")[1]["data"][0]["id"] == "served"


def test_an_openai_stream_is_relayed_as_it_comes(running: Running) -> None:
    body = {"model": "served", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    response = running.post("/v1/chat/completions", body)
    assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
    raw = response.read().decode()
    assert raw.endswith("data: [DONE]\n\n")
    texts = [
        json.loads(line[6:])["choices"][0]["delta"].get("content", "")
        for line in raw.splitlines()
        if line.startswith("data: {")
    ]
    assert "".join(texts) == "Hello world"


@pytest.mark.parametrize("streaming", [False, True])
def test_the_route_header_on_predict_goes_to_that_route(running: Running, streaming: bool) -> None:
    """langchain-oci and ADS (patch_headers=True) post the OpenAI body to /predict with `route`."""
    body = {"model": "served", "messages": [{"role": "user", "content": "hi"}], "stream": streaming}
    headers = {"route": "/v1/chat/completions"}
    if streaming:
        headers |= {"enable-streaming": "true", "Accept": "text/event-stream"}
    response = running.post("/predict", body, headers=headers)
    raw = response.read().decode()
    assert response.status == 200
    assert running.engine.requests[-1] == ("/v1/chat/completions", body)
    assert "route" not in {k.lower() for k in running.engine.chat_headers[-1]}
    assert ("data: [DONE]" in raw) is streaming


def test_a_route_header_that_is_not_a_path_is_refused(running: Running) -> None:
    response = running.post("/predict", {"x": 1}, headers={"route": "http://elsewhere/v1/models"})
    assert response.status == 400 and "not a path" in json.loads(response.read())["error"]
    assert running.engine.requests == []
