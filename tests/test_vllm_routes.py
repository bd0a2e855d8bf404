"""The vLLM middleware on a stand-in for vLLM's own OpenAI server (Starlette on uvicorn, the middleware
added the way vLLM's `--middleware` adds it): the OpenAI routes untouched, the `route` header, the legacy
payload translated in-process exactly as the TGI adapter translates it."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from serving.vllm_routes import SERVED_MODEL_ENV, OciRoutes
from tests.serving_fakes import SOCKET_TIMEOUT_S, AsgiServer, FakeEngine, FakeVllmApp, running_adapter


class Vllm:
    """vLLM's server with the middleware, on a loopback port."""

    def __init__(self, *, middleware: bool = True, **options: Any) -> None:
        self.lines: list[str] = []
        if middleware:
            options.setdefault("served_model", "served")
            options.setdefault("log", self.lines.append)
        self.fake = FakeVllmApp(middleware=OciRoutes if middleware else None, **options)
        self.engine = self.fake.engine
        self.server = AsgiServer(self.fake.app)

    def __enter__(self) -> Vllm:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.engine.gate is not None:
            self.engine.gate.set()
        self.server.stop()

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> http.client.HTTPResponse:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=SOCKET_TIMEOUT_S)
        data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"Content-Type": "application/json"} if data is not None else {}
        connection.request(method, path, body=data, headers={**sent, **(headers or {})})
        return connection.getresponse()

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        return self.request("POST", path, body, headers)

    def predict(self, body: Any, path: str = "/predict") -> tuple[int, dict[str, Any]]:
        response = self.post(path, body)
        return response.status, json.loads(response.read())


@pytest.fixture
def vllm() -> Iterator[Vllm]:
    with Vllm() as server:
        yield server


def events(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data: ")]


CHAT = {"model": "served", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}


# -- everything but the legacy routes: untouched --------------------------------------------------


def test_every_other_request_reaches_vllm_as_the_same_objects() -> None:
    """Zero work on /v1/*: vLLM's app gets the very scope, receive and send the server gave."""
    seen: list[tuple[Any, Any, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    import asyncio

    middleware = OciRoutes(app, served_model="m")
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics", "/"):
        scope = {"type": "http", "method": "POST", "path": path, "headers": []}
        receive, send = object(), object()
        asyncio.run(middleware(scope, receive, send))  # type: ignore[arg-type]
        assert seen[-1][0] is scope and seen[-1][1] is receive and seen[-1][2] is send
    lifespan = {"type": "lifespan"}
    asyncio.run(middleware(lifespan, object(), object()))  # type: ignore[arg-type]
    assert seen[-1][0] is lifespan


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/models", None),
        ("GET", "/health", None),
        ("POST", "/v1/chat/completions", CHAT),
        ("POST", "/v1/chat/completions", {**CHAT, "stream": True}),
        ("POST", "/v1/completions", {"model": "served", "prompt": "hi", "stream": True}),
        ("POST", "/v1/completions", {"model": "elsewhere", "prompt": "hi"}),
        ("GET", "/nowhere", None),
    ],
)
def test_the_openai_routes_answer_byte_for_byte_as_without_the_middleware(
    method: str, path: str, body: Any
) -> None:
    answers = []
    for middleware in (False, True):
        with Vllm(middleware=middleware) as server:
            response = server.request(method, path, body)
            headers = sorted((k.lower(), v) for k, v in response.getheaders() if k.lower() != "date")
            answers.append((response.status, headers, response.read()))
    assert answers[0] == answers[1]


def test_health_is_vllms_own(vllm: Vllm) -> None:
    assert vllm.request("GET", "/health").status == 200
    vllm.engine.ready = False
    assert vllm.request("GET", "/health").status == 503


# -- the route header -----------------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True])
def test_the_route_header_on_predict_goes_to_that_route_unchanged(vllm: Vllm, streaming: bool) -> None:
    body = {**CHAT, "stream": streaming}
    headers = {"route": "/v1/chat/completions"}
    if streaming:
        headers |= {"enable-streaming": "true", "Accept": "text/event-stream"}
    routed = vllm.post("/predict", body, headers=headers)
    routed_raw = routed.read()
    direct = vllm.post("/v1/chat/completions", body)
    assert (routed.status, routed_raw) == (direct.status, direct.read())
    assert routed.getheader("Content-Type") == direct.getheader("Content-Type")
    assert vllm.engine.requests[-2:] == [("/v1/chat/completions", body)] * 2
    assert "route" not in vllm.engine.chat_headers[-2]
    assert (b"data: [DONE]" in routed_raw) is streaming


def test_the_route_header_keeps_its_query_and_works_on_every_legacy_route(vllm: Vllm) -> None:
    for path in ("/predict", "/generate", "/generate_stream", "/"):
        response = vllm.post(path, CHAT, headers={"route": "/v1/chat/completions?trace=1"})
        assert response.status == 200, path
        response.read()
    assert [p for p, _ in vllm.engine.requests] == ["/v1/chat/completions?trace=1"] * 4
    assert vllm.request("GET", "/predict", headers={"route": "/v1/models"}).status == 405


def test_a_route_header_that_is_not_a_path_is_refused(vllm: Vllm) -> None:
    response = vllm.post("/predict", {"x": 1}, headers={"route": "http://elsewhere/v1/models"})
    assert response.status == 400 and "not a path" in json.loads(response.read())["error"]
    assert vllm.engine.requests == []


# -- the legacy payload ---------------------------------------------------------------------------


def test_predict_is_a_completions_call_in_vllms_own_process(vllm: Vllm) -> None:
    body = {"inputs": "Say hello.", "parameters": {"max_new_tokens": 8, "temperature": 0.7, "stop": ["\n"]}}
    assert vllm.predict(body) == (200, {"generated_text": "Hello world"})
    assert vllm.predict(body, "/generate") == (200, {"generated_text": "Hello world"})
    expected = {"model": "served", "prompt": "Say hello.", "stream": False, "max_tokens": 8}
    assert vllm.engine.requests == [("/v1/completions", expected | {"temperature": 0.7, "stop": ["\n"]})] * 2


def test_greedy_full_text_and_unknown_parameters(vllm: Vllm) -> None:
    vllm.predict({"inputs": "x", "parameters": {"do_sample": False, "return_full_text": True}})
    assert vllm.engine.requests[-1][1] | {} == {
        "model": "served",
        "prompt": "x",
        "stream": False,
        "echo": True,
        "temperature": 0.0,
    }
    status, answer = vllm.predict({"inputs": "x", "parameters": {"watermark": True}})
    assert status == 400 and "parameters.watermark" in answer["error"] and "max_new_tokens" in answer["error"]
    assert len(vllm.engine.requests) == 1


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "not JSON"),
        ([1, 2], "JSON object"),
        ({"parameters": {}}, "'inputs'"),
        ({"inputs": "x", "parameters": [1]}, "'parameters'"),
    ],
)
def test_a_malformed_request_is_a_400_and_never_reaches_vllm(vllm: Vllm, body: Any, problem: str) -> None:
    response = vllm.post("/predict", body)
    answer = json.loads(response.read())
    assert response.status == 400 and problem in answer["error"] and answer["error_type"] == "validation"
    assert vllm.engine.requests == []


def test_wrong_methods_and_bodies_are_answered(vllm: Vllm) -> None:
    response = vllm.request("GET", "/predict")
    assert response.status == 405 and response.getheader("Allow") == "POST"
    response.read()
    connection = http.client.HTTPConnection("127.0.0.1", vllm.server.port, timeout=SOCKET_TIMEOUT_S)
    connection.putrequest("POST", "/predict")
    connection.endheaders()
    assert connection.getresponse().status == 411
    too_big = vllm.post("/predict", b"x", headers={"Content-Length": str(11 * 1024 * 1024)})
    assert too_big.status == 413


def test_a_request_vllm_refuses_keeps_its_4xx_and_a_failure_is_a_502(vllm: Vllm) -> None:
    vllm.engine.mode = "error"
    vllm.engine.error_status = 400
    vllm.engine.error_message = "This model's maximum context length is 4096 tokens."
    status, answer = vllm.predict({"inputs": "x"})
    assert (status, answer) == (400, {"error": vllm.engine.error_message, "error_type": "validation"})
    vllm.engine.error_status = 500
    vllm.engine.error_message = "CUDA out of memory"
    status, answer = vllm.predict({"inputs": "x"})
    assert status == 502 and answer["error_type"] == "engine" and "CUDA out of memory" in answer["error"]
    assert any("502" in line and "CUDA out of memory" in line for line in vllm.lines)
    response = vllm.post("/predict", {"inputs": "x", "stream": True})
    assert response.status == 502 and "CUDA out of memory" in json.loads(response.read())["error"]


def test_without_a_name_given_the_model_is_the_one_vllm_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    """Added exactly as vLLM adds it (`app.add_middleware(cls)`, no arguments): the name comes from the
    launcher's variable, else from vLLM's `/v1/models`."""
    monkeypatch.setenv(SERVED_MODEL_ENV, "from-launcher")
    fake = FakeVllmApp(served="from-launcher", middleware=OciRoutes)
    with AsgiServer(fake.app) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=SOCKET_TIMEOUT_S)
        connection.request("POST", "/predict", body=b'{"inputs": "x"}')
        assert connection.getresponse().status == 200
    assert fake.engine.requests[-1][1]["model"] == "from-launcher"
    monkeypatch.delenv(SERVED_MODEL_ENV)
    fake = FakeVllmApp(served="listed", middleware=OciRoutes)
    with AsgiServer(fake.app) as server:
        for _ in range(2):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=SOCKET_TIMEOUT_S)
            connection.request("POST", "/predict", body=b'{"inputs": "x"}')
            assert json.loads(connection.getresponse().read()) == {"generated_text": "Hello world"}
    assert [body["model"] for _, body in fake.engine.requests] == ["listed", "listed"]


# -- the legacy stream: exactly the adapter's -------------------------------------------------------


def adapter_stream(body: dict[str, Any], path: str, headers: dict[str, str], mode: str = "ok") -> bytes:
    with FakeEngine("vllm").start() as engine, running_adapter("vllm", engine.url) as url:
        engine.mode = mode
        connection = http.client.HTTPConnection("127.0.0.1", urlsplit(url).port, timeout=5)
        try:
            connection.request("POST", path, body=json.dumps(body).encode(), headers=headers)
            return connection.getresponse().read()
        finally:
            connection.close()


@pytest.mark.parametrize(
    ("body", "path", "headers"),
    [
        ({"inputs": "Say hello.", "stream": True}, "/predict", {}),
        ({"inputs": "Say hello."}, "/generate_stream", {}),
        ({"inputs": "Say hello."}, "/predict", {"enable-streaming": "true"}),
    ],
)
def test_the_legacy_stream_is_byte_for_byte_the_adapters(
    vllm: Vllm, body: dict[str, Any], path: str, headers: dict[str, str]
) -> None:
    response = vllm.post(path, body, headers=headers)
    assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
    raw = response.read()
    assert raw == adapter_stream(body, path, headers)
    sent = events(raw)
    assert [e["token"]["text"] for e in sent] == ["Hel", "lo", " world", ""]
    assert sent[-1] == {"token": {"text": "", "special": True}, "generated_text": "Hello world"}
    assert vllm.engine.requests[-1][1]["stream"] is True


@pytest.mark.parametrize("mode", ["midstream-error"])
def test_a_failure_mid_stream_ends_it_with_the_adapters_error_event(vllm: Vllm, mode: str) -> None:
    vllm.engine.mode = mode
    raw = vllm.post("/predict", {"inputs": "x", "stream": True}).read()
    assert raw == adapter_stream({"inputs": "x", "stream": True}, "/predict", {}, mode)
    last = events(raw)[-1]
    assert last["error_type"] == "engine" and "CUDA out of memory" in last["error"]


def test_an_engine_dying_mid_stream_ends_it_with_an_error_event(vllm: Vllm) -> None:
    vllm.engine.mode = "truncate"
    sent = events(vllm.post("/predict", {"inputs": "x", "stream": True}).read())
    assert sent[0]["token"]["text"] == "Hel"
    assert sent[-1] == {"error": "the engine stream broke (RuntimeError)", "error_type": "engine"}


def test_the_legacy_stream_is_live_not_buffered(vllm: Vllm) -> None:
    vllm.engine.gate = threading.Event()
    response = vllm.post("/predict", {"inputs": "x", "stream": True})
    first = response.readline()  # arrives while vLLM still holds the rest back
    assert json.loads(first[6:])["token"]["text"] == "Hel"
    vllm.engine.gate.set()
    assert events(response.read())[-1]["generated_text"] == "Hello world"
