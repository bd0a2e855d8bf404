"""The chat app's logic: history -> prompt, slider values -> parameters, errors -> readable chat lines."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
pytest.importorskip("gradio", reason="the chat extra is not installed: pip install -e '.[chat]'")

from domain.errors import UserError
from llmstack import chat
from llmstack.chat import ERROR_MARK, ChatSettings, params_from_controls, reply, turns_from_history
from llmstack.prompting import Turn, template_for
from oci_runtime.auth import Auth
from oci_runtime.predict import GenerationParams, PredictClient, PredictError
from oci_runtime.retry import Backoff
from tests.chat_fake import FakePredictServer


class FakeClient:
    """Streams scripted chunks; can fail before the first chunk or after some."""

    def __init__(self, chunks: list[str], *, fail: BaseException | None = None, fail_after: int = 0) -> None:
        self.chunks = chunks
        self.fail = fail
        self.fail_after = fail_after
        self.calls: list[tuple[str, GenerationParams]] = []
        self.chats: list[tuple[list[dict[str, str]], GenerationParams]] = []
        self.closed = False

    def stream_chat(
        self, messages: list[dict[str, str]], params: GenerationParams = GenerationParams()
    ) -> Iterator[str]:
        self.chats.append((messages, params))
        if self.fail is not None and self.fail_after == 0:
            raise self.fail
        return self._chunks()

    def stream(self, prompt: str, params: GenerationParams = GenerationParams()) -> Iterator[str]:
        self.calls.append((prompt, params))
        if self.fail is not None and self.fail_after == 0:
            raise self.fail
        return self._chunks()

    def _chunks(self) -> Iterator[str]:
        try:
            for i, chunk in enumerate(self.chunks):
                if self.fail is not None and i == self.fail_after:
                    raise self.fail
                yield chunk
        finally:
            self.closed = True


def settings(family: str = "llama2", context: int = 4096, api: str = "legacy") -> ChatSettings:
    """Most tests here are about the legacy API's hand-written templates; the chat API's are marked."""
    return ChatSettings(
        model="llama2-7b-chat",
        endpoint="https://modeldeployment.us-ashburn-1.oci.customer-oci.com/ocid1.x/predict",
        template=template_for(family),
        context_tokens=context,
        api=api,  # type: ignore[arg-type]
    )


def run_reply(
    client: FakeClient,
    message: str = "Hi",
    history: list[dict[str, Any]] | None = None,
    api: str = "legacy",
    **kw: Any,
) -> list[tuple[str, str]]:
    controls = {"system": "Be brief.", "max_tokens": 256.0, "temperature": 0.7, "top_p": 0.9} | kw
    return list(reply(client, settings(api=api), message, history or [], **controls))


# --- the OpenAI chat API (the default): the conversation as messages -----------------------------------


def test_with_the_chat_api_the_conversation_goes_as_messages_without_a_template() -> None:
    client = FakeClient(["Bonjour", " [INST] is just text here"])
    history = gradio_history(("Hello", "Hi there."), ("Who are you?", "A model."))
    steps = run_reply(client, "Say hello.", history, api="chat")
    assert client.calls == []  # no prompt string was built
    [(messages, params)] = client.chats
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi there."},
        {"role": "user", "content": "Who are you?"},
        {"role": "assistant", "content": "A model."},
        {"role": "user", "content": "Say hello."},
    ]
    assert params.max_new_tokens == 256
    assert steps[-1][0] == "Bonjour [INST] is just text here"  # no client-side stop strings


def test_with_the_chat_api_old_turns_are_left_out_to_fit() -> None:
    client = FakeClient(["ok"])
    long = "word " * 900  # about 1500 tokens each
    history = gradio_history((long, long), (long, long), ("short", "short"))
    status = run_reply(client, "now", history, api="chat", max_tokens=2048.0)[-1][1]
    [(messages, _)] = client.chats
    assert messages[1:] == [
        {"role": "user", "content": "short"},
        {"role": "assistant", "content": "short"},
        {"role": "user", "content": "now"},
    ]
    assert "2 earliest exchanges left out to fit" in status


def test_the_chat_api_through_the_real_client_on_a_deployment(fake_oci: Any, oci_identity: Any) -> None:
    from tests.fakeoci.modeldeployments import ModelDeployments

    deployment = fake_oci.service(ModelDeployments).script(polls=0)
    client = PredictClient(
        f"{deployment.url}/predict",
        auth=Auth(mode="api_key", config_file=str(oci_identity.config_file)),
        timeout_s=10,
        backoff=Backoff(attempts=1),
        api="chat",
    )
    steps = list(reply(client, settings(api="chat"), "Hi", [], "Be brief.", 64.0, 0.3, 0.5))
    assert steps[-1][0] == deployment.engine.completion
    [body] = deployment.engine.received
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["stream"]) == (64, 0.3, 0.5, True)


def gradio_history(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    """History as Gradio 6 hands it to the chat function (content as a list of text parts)."""
    out: list[dict[str, Any]] = []
    for user, assistant in pairs:
        out.append({"role": "user", "content": [{"type": "text", "text": user}], "metadata": None})
        out.append({"role": "assistant", "content": [{"type": "text", "text": assistant}], "metadata": None})
    return out


# --- history -> turns -------------------------------------------------------------------------------


def test_history_in_gradio_shapes_becomes_turns() -> None:
    history = [
        *gradio_history(("Hi", "Hello!")),
        {"role": "user", "content": "Plain string"},
        {"role": "assistant", "content": "Also fine"},
    ]
    assert turns_from_history(history) == [
        Turn(user="Hi", assistant="Hello!"),
        Turn(user="Plain string", assistant="Also fine"),
    ]


def test_error_reports_never_go_back_to_the_model() -> None:
    history = gradio_history(
        ("first", ERROR_MARK + "401 NotAuthenticated from https://x/predict: check --auth"),
        ("second", "Partial answer\n\n" + ERROR_MARK + "the stream broke after 3 chunks"),
        ("third", "Fine."),
    )
    assert turns_from_history(history) == [
        Turn(user="second", assistant="Partial answer"),
        Turn(user="third", assistant="Fine."),
    ]


def test_a_message_that_got_no_answer_is_left_out() -> None:
    history = [{"role": "user", "content": "stopped before any token"}, *gradio_history(("Hi", "Hello!"))]
    assert turns_from_history(history) == [Turn(user="Hi", assistant="Hello!")]


# --- sliders -> parameters --------------------------------------------------------------------------


def test_slider_values_map_to_the_request_parameters() -> None:
    assert params_from_controls(320.0, 0.5, 0.8) == GenerationParams(
        max_new_tokens=320, temperature=0.5, top_p=0.8
    )
    assert params_from_controls(64, 1, 1) == GenerationParams(max_new_tokens=64, temperature=1, top_p=1)


@pytest.mark.parametrize(
    ("controls", "message"),
    [
        ((0.0, 0.7, 0.9), "Max tokens: max_new_tokens must be a whole number of at least 1, got 0"),
        ((12.5, 0.7, 0.9), "Max tokens: max_new_tokens must be a whole number of at least 1, got 12.5"),
        ((256.0, -1.0, 0.9), "Temperature: temperature must be a number of at least 0, got -1.0"),
        ((256.0, 0.7, 0.0), r"Top p: top_p must be a number in \(0, 1\], got 0.0"),
        ((256.0, 0.7, None), r"Top p: top_p must be a number in \(0, 1\], got None"),
    ],
)
def test_a_bad_control_value_names_the_control(controls: tuple[Any, Any, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        params_from_controls(*controls)


# --- one reply ----------------------------------------------------------------------------------------


def test_a_reply_streams_and_the_prompt_is_the_whole_conversation_in_the_llama2_format() -> None:
    client = FakeClient(["Blue", " is", " calm."])
    steps = run_reply(
        client, "And why?", gradio_history(("Name a colour.", "Blue.")), max_tokens=320.0, top_p=0.8
    )
    assert [text for text, _ in steps] == ["", "Blue", "Blue is", "Blue is calm.", "Blue is calm."]
    prompt, params = client.calls[0]
    assert prompt == (
        "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nName a colour. [/INST] Blue. </s><s>[INST] And why? [/INST]"
    )
    assert params == GenerationParams(max_new_tokens=320, temperature=0.7, top_p=0.8)
    assert steps[-1][1].startswith("prompt ≈ ")
    assert " of 4096 tokens · reply in " in steps[-1][1]


def test_a_reply_stops_where_the_model_starts_a_new_turn_and_the_stream_is_closed() -> None:
    client = FakeClient(["Sure", "! </s>", "<s>[INST] and", " more"])
    steps = run_reply(client)
    assert steps[-1][0] == "Sure!"
    assert client.closed
    assert all("[INST]" not in text and "</s>" not in text for text, _ in steps)


def test_when_history_is_trimmed_the_status_line_says_so() -> None:
    long_history = gradio_history(*[(f"q{i} " + "x" * 900, "y" * 900) for i in range(12)])
    client = FakeClient(["ok"])
    steps = run_reply(client, "latest", long_history)
    prompt, _ = client.calls[0]
    assert "q11" in prompt and "q0 " not in prompt
    assert "earliest exchanges left out to fit" in steps[-1][1]


def test_an_endpoint_error_is_one_readable_line_in_the_chat() -> None:
    failure = PredictError(
        "401 NotAuthenticated from https://x/predict: the request signature was not accepted"
    )
    steps = run_reply(FakeClient([], fail=failure))
    assert steps == [
        ("", steps[0][1]),
        (
            ERROR_MARK
            + "401 NotAuthenticated from https://x/predict: the request signature was not accepted",
            steps[0][1],
        ),
    ]


def test_a_stream_that_breaks_keeps_what_arrived_and_adds_the_error() -> None:
    steps = run_reply(
        FakeClient(["Half", " an answer", "never"], fail=PredictError("the stream broke"), fail_after=2)
    )
    assert steps[-1][0] == "Half an answer\n\n" + ERROR_MARK + "the stream broke"


def test_an_unexpected_error_names_its_type_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    steps = run_reply(FakeClient([], fail=KeyError("generated_text")))
    text = steps[-1][0]
    assert (
        text
        == ERROR_MARK
        + "unexpected KeyError: 'generated_text' (details in the terminal running llmstack chat)"
    )
    assert "Traceback" not in text
    assert "chat reply failed" in caplog.text


def test_bad_controls_and_too_long_messages_are_reported_in_the_chat_before_any_request() -> None:
    client = FakeClient(["never"])
    assert run_reply(client, top_p=0.0)[-1][0].startswith(ERROR_MARK + "Top p: top_p must be")
    assert run_reply(client, "word " * 5000)[-1][0].startswith(
        ERROR_MARK + "the message and system prompt come to about"
    )
    assert run_reply(client, "   ")[-1][0] == ERROR_MARK + "nothing to send: type a message first"
    assert client.calls == []


def test_a_context_too_small_for_the_sliders_is_refused() -> None:
    with pytest.raises(
        UserError, match=r"context length \(--context-length\) must be at least 32 tokens, got 8"
    ):
        settings(context=8)
    assert settings(context=4096).max_tokens_limit == 2048
    assert settings(context=100).max_tokens_limit == 48


# --- the real predict client against a loopback server ------------------------------------------------


def test_a_reply_through_the_real_predict_client_streams_the_fake_servers_tokens() -> None:
    with FakePredictServer() as server:
        client = PredictClient(server.url, auth=Auth(mode="none"), timeout_s=10, backoff=Backoff(attempts=1))
        steps = run_reply(client, "Hi", max_tokens=64.0, temperature=0.3, top_p=0.5)  # type: ignore[arg-type]
    assert steps[-1][0] == server.reply
    assert len(steps) >= len(server.tokens)
    (body,) = server.requests
    assert body["stream"] is True
    assert body["parameters"] == {"max_new_tokens": 64, "temperature": 0.3, "top_p": 0.5}
    assert body["inputs"] == "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]"


def test_a_refusal_from_the_real_client_reads_as_one_line_in_the_chat() -> None:
    with FakePredictServer() as server:
        server.fail_status = 401
        client = PredictClient(server.url, auth=Auth(mode="none"), timeout_s=10, backoff=Backoff(attempts=1))
        text = run_reply(client)[-1][0]  # type: ignore[arg-type]
    assert text.startswith(ERROR_MARK + "401 NotAuthenticated from " + server.url)
    assert "\n" not in text


# --- the page -----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


LOOPBACK = ("127.0.0.1", "localhost", "::1")


@pytest.fixture
def outbound(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Names and addresses anything in this process tried to reach other than loopback; all are refused
    before any packet (or DNS query) leaves."""
    seen: list[Any] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else str(address)
        if host not in LOOPBACK and self.family != socket.AF_UNIX:
            seen.append(address)
            raise OSError(f"test blocked a connection to {address}")
        real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and str(host) not in LOOPBACK:
            seen.append(host)
            raise socket.gaierror(f"test blocked a lookup of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return seen


def test_the_outbound_guard_sees_what_gradio_analytics_would_do(outbound: list[Any]) -> None:
    with pytest.raises(OSError):
        socket.create_connection(("api.gradio.app", 443), timeout=1)
    assert outbound == ["api.gradio.app"]


def test_the_page_serves_on_loopback_with_model_and_endpoint_and_calls_nothing_outside(
    outbound: list[Any],
) -> None:
    app = chat.build_app(settings(), FakeClient(["ok"]))
    url, _ = chat.serve(app, host="127.0.0.1", port=free_port(), share=False)
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "config", timeout=10) as response:
            config = response.read().decode()
    finally:
        app.close()
    assert "Chat with `llama2-7b-chat`" in config
    assert "https://modeldeployment.us-ashburn-1.oci.customer-oci.com/ocid1.x/predict" in config
    for label in ("System prompt", "Max tokens", "Temperature", "Top p"):
        assert label in config
    assert outbound == []


# --- stop ---------------------------------------------------------------------------------------------


def test_stopping_a_reply_does_not_wait_for_a_silent_endpoint() -> None:
    """Stop cancels the page's task; that must not wait until the endpoint sends its next chunk."""
    gate = threading.Event()

    def silent_after_one() -> Iterator[str]:
        yield "first"
        gate.wait(10)
        yield "late"

    async def scenario() -> tuple[list[str], float]:
        seen: list[str] = []

        async def consume() -> None:
            async for step in chat.in_worker_thread(silent_after_one()):
                seen.append(step)

        task = asyncio.create_task(consume())
        while not seen:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        took = time.monotonic() - started
        gate.set()  # let the abandoned worker thread finish, as a real request would
        return seen, took

    try:
        seen, took = asyncio.run(asyncio.wait_for(scenario(), 5))
    finally:
        gate.set()
    assert seen == ["first"]
    assert took < 1.0
