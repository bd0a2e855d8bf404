"""The predict client and `llmstack predict` against a model server on 127.0.0.1 (signed with a test key)."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmstack.cli import main
from llmstack.oci_auth import Auth
from llmstack.predict import (
    GenerationParams,
    InvalidParameter,
    PredictClient,
    PredictError,
    endpoints_for,
)
from llmstack.retry import Backoff
from tests.fake_engine import FakeEngine, RunningEngine
from tests.oci_signature import SigningKey, make_test_key, write_oci_config

FAST = Backoff(attempts=4, base_s=0.01, cap_s=0.02, total_s=5)


@pytest.fixture(scope="module")
def test_key() -> SigningKey:
    return make_test_key()


@pytest.fixture
def api_key_auth(tmp_path: Path, test_key: SigningKey) -> Auth:
    return Auth(mode="api_key", config_file=str(write_oci_config(tmp_path, test_key)))


@pytest.fixture
def engine(test_key: SigningKey) -> Iterator[RunningEngine]:
    running = RunningEngine(FakeEngine(public_key=test_key.public_key))
    yield running
    running.stop()


def client(engine: RunningEngine, path: str, auth: Auth, **kwargs: object) -> PredictClient:
    return PredictClient(engine.url(path), auth=auth, backoff=FAST, timeout_s=5, **kwargs)  # type: ignore[arg-type]


def test_predict_sends_the_contract_signed_and_returns_the_completion(
    engine: RunningEngine, api_key_auth: Auth, test_key: SigningKey
) -> None:
    params = GenerationParams(max_new_tokens=32, temperature=0.2, top_p=0.5)
    text = client(engine, "/predict", api_key_auth).predict("Say hello.", params)

    assert text == "Hello there, friend."
    [request] = engine.engine.received
    assert request.path == "/predict"
    assert request.body == {
        "inputs": "Say hello.",
        "parameters": {"max_new_tokens": 32, "temperature": 0.2, "top_p": 0.5},
    }
    assert (
        request.signer
        == f"ocid1.tenancy.oc1..aaaatesttenancy/ocid1.user.oc1..aaaatestuser/{test_key.fingerprint}"
    )


def test_tgi_generate_route_gets_the_same_body(engine: RunningEngine, api_key_auth: Auth) -> None:
    text = client(engine, "/generate", api_key_auth).predict("Say hello.")

    assert text == "Hello there, friend."
    assert engine.engine.received[0].path == "/generate"
    assert engine.engine.received[0].body["parameters"] == {
        "max_new_tokens": 256,
        "temperature": 0.7,
        "top_p": 0.9,
    }


def test_503_then_200_succeeds_after_a_retry(engine: RunningEngine, api_key_auth: Auth) -> None:
    engine.engine.fail_first = deque([503, 503])
    retries: list[int] = []

    text = client(engine, "/predict", api_key_auth, on_retry=lambda n, exc, delay: retries.append(n)).predict(
        "hi"
    )

    assert text == "Hello there, friend."
    assert len(engine.engine.received) == 3
    assert retries == [1, 2]


def test_503_that_never_ends_gives_up_with_one_line(engine: RunningEngine, api_key_auth: Auth) -> None:
    engine.engine.status = 503

    with pytest.raises(PredictError) as caught:
        client(engine, "/predict", api_key_auth).predict("hi")

    assert len(engine.engine.received) == FAST.attempts
    message = str(caught.value)
    assert message.startswith("503 Refused from http://127.0.0.1:")
    assert "not ready" in message and "\n" not in message


def test_401_is_one_line_and_not_retried(engine: RunningEngine, api_key_auth: Auth) -> None:
    engine.engine.status = 401

    with pytest.raises(PredictError) as caught:
        client(engine, "/predict", api_key_auth).predict("hi")

    assert caught.value.status == 401
    assert "\n" not in str(caught.value) and "--auth" in str(caught.value)
    assert len(engine.engine.received) == 1


def test_a_bad_signature_is_refused_by_the_server(engine: RunningEngine, tmp_path: Path) -> None:
    stranger = make_test_key()  # not the key the server trusts
    auth = Auth(mode="api_key", config_file=str(write_oci_config(tmp_path, stranger)))

    with pytest.raises(PredictError) as caught:
        client(engine, "/predict", auth).predict("hi")

    assert caught.value.status == 401
    assert engine.engine.received == []


def test_404_names_the_route(engine: RunningEngine, api_key_auth: Auth) -> None:
    with pytest.raises(PredictError) as caught:
        client(engine, "/nowhere", api_key_auth).predict("hi")

    assert caught.value.status == 404
    assert "/nowhere" in str(caught.value)


def test_a_slow_answer_is_a_timeout_error_without_retries(engine: RunningEngine, api_key_auth: Auth) -> None:
    engine.engine.delay_s = 1.0
    slow = PredictClient(engine.url("/predict"), auth=api_key_auth, backoff=FAST, timeout_s=0.2)

    with pytest.raises(PredictError) as caught:
        slow.predict("hi")

    assert "within 0.2 s" in str(caught.value)
    assert len(engine.engine.received) == 1


def test_a_closed_port_is_a_connection_error_after_retries() -> None:
    closed = RunningEngine(FakeEngine())
    url = closed.url("/predict")
    closed.stop()

    with pytest.raises(PredictError) as caught:
        PredictClient(url, auth=Auth(mode="none"), backoff=FAST, timeout_s=1).predict("hi")

    assert "cannot reach" in str(caught.value) and "ConnectionRefusedError" in str(caught.value)


@pytest.mark.parametrize("path", ["/predict", "/generate"])
def test_stream_yields_the_tokens_in_order_as_they_come(
    engine: RunningEngine, api_key_auth: Auth, path: str
) -> None:
    hold = threading.Event()
    engine.engine.hold_after_first = hold
    chunks = client(engine, path, api_key_auth).stream("Say hello.")

    first = next(chunks)
    # The server still holds the rest: the first token reached us before the answer was complete.
    assert first == "Hello" and not engine.engine.stream_done.is_set()
    hold.set()
    rest = list(chunks)

    assert [first, *rest] == ["Hello", " there", ",", " friend", "."]
    [request] = engine.engine.received
    assert request.path == {"/predict": "/predict", "/generate": "/generate_stream"}[path]
    assert request.body["stream"] is True and request.signer is not None


def test_stream_from_a_server_that_cannot_stream_is_one_chunk(
    engine: RunningEngine, api_key_auth: Auth
) -> None:
    chunks = list(
        PredictClient(
            engine.url("/generate"), auth=api_key_auth, stream_endpoint=engine.url("/generate")
        ).stream("hi")
    )

    assert chunks == ["Hello there, friend."]


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 2.5}, "max_new_tokens"),
        ({"temperature": float("nan")}, "temperature"),
    ],
)
def test_bad_parameters_are_refused_with_their_name(kwargs: dict[str, float], named: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        GenerationParams(**kwargs)  # type: ignore[arg-type]

    assert caught.value.name == named
    assert str(caught.value).startswith(f"{named} must be ")
    assert isinstance(caught.value, ValueError)


def test_edge_values_are_accepted() -> None:
    assert GenerationParams(max_new_tokens=1, temperature=0, top_p=1).as_json() == {
        "max_new_tokens": 1,
        "temperature": 0,
        "top_p": 1,
    }


@pytest.mark.parametrize(
    ("url", "predict", "stream"),
    [
        (
            "https://modeldeployment.us-ashburn-1.oci.customer-oci.com/ocid1.datasciencemodeldeployment.oc1.iad.x/predict",
            "https://modeldeployment.us-ashburn-1.oci.customer-oci.com/ocid1.datasciencemodeldeployment.oc1.iad.x/predict",
            "https://modeldeployment.us-ashburn-1.oci.customer-oci.com/ocid1.datasciencemodeldeployment.oc1.iad.x/predictWithResponseStream",
        ),
        (
            "https://modeldeployment.eu-frankfurt-1.oci.customer-oci.com/ocid1.x/",
            "https://modeldeployment.eu-frankfurt-1.oci.customer-oci.com/ocid1.x/predict",
            "https://modeldeployment.eu-frankfurt-1.oci.customer-oci.com/ocid1.x/predictWithResponseStream",
        ),
        (
            "http://localhost:8080/generate",
            "http://localhost:8080/generate",
            "http://localhost:8080/generate_stream",
        ),
        ("http://localhost:8080/predict", "http://localhost:8080/predict", "http://localhost:8080/predict"),
        ("http://localhost:8080", "http://localhost:8080/predict", "http://localhost:8080/predict"),
    ],
)
def test_stream_url_is_the_predict_urls_sibling(url: str, predict: str, stream: str) -> None:
    found = endpoints_for(url)

    assert (found.predict, found.stream) == (predict, stream)


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(Exception, match="not an http"):
        PredictClient("modeldeployment/predict", auth=Auth(mode="none"))


# --- the command line ---------------------------------------------------------------------------


def test_cli_prints_the_completion(
    engine: RunningEngine,
    api_key_auth: Auth,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OCI_CLI_CONFIG_FILE", api_key_auth.config_file)

    code = main(
        [
            "predict",
            "--endpoint",
            engine.url("/predict"),
            "--auth",
            "api_key",
            "--max-tokens",
            "8",
            "Say hello.",
        ]
    )

    assert code == 0
    assert capsys.readouterr().out == "Hello there, friend.\n"
    assert engine.engine.received[0].body["parameters"]["max_new_tokens"] == 8


def test_cli_streams_tokens(
    engine: RunningEngine,
    api_key_auth: Auth,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OCI_CLI_CONFIG_FILE", api_key_auth.config_file)

    code = main(
        ["predict", "--endpoint", engine.url("/generate"), "--auth", "api_key", "--stream", "Say hello."]
    )

    assert code == 0
    assert capsys.readouterr().out == "Hello there, friend.\n"
    assert engine.engine.received[0].path == "/generate_stream"


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--temperature", "-1"), ("--top-p", "0"), ("--top-p", "1.01"), ("--max-tokens", "0")],
)
def test_cli_refuses_a_bad_parameter_before_any_request(
    engine: RunningEngine, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    code = main(["predict", "--endpoint", engine.url("/predict"), flag, value, "hi"])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"llmstack predict: {flag}: ") and value in err
    assert err.count("\n") == 1
    assert engine.engine.received == []


def test_cli_401_is_one_line_without_traceback(
    engine: RunningEngine,
    api_key_auth: Auth,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OCI_CLI_CONFIG_FILE", api_key_auth.config_file)
    engine.engine.status = 401

    code = main(["predict", "--endpoint", engine.url("/predict"), "--auth", "api_key", "hi"])

    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("llmstack predict: 401 ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_cli_reads_the_url_from_saved_stack_outputs(
    engine: RunningEngine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine.engine.public_key = None
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps(
            {
                "models": {
                    "llama2-7b-chat": {
                        "predictUrl": engine.url("/predict"),
                        "streamUrl": engine.url("/predict"),
                        "deploymentId": "ocid1.datasciencemodeldeployment.oc1.iad.x",
                        "catalogModelId": "ocid1.datasciencemodel.oc1.iad.y",
                    },
                    "llama2-13b-chat": {"predictUrl": engine.url("/other")},
                }
            }
        )
    )

    code = main(["predict", "--outputs", str(outputs), "--model", "llama2-7b-chat", "hi"])
    assert code == 0 and capsys.readouterr().out == "Hello there, friend.\n"

    code = main(["predict", "--outputs", str(outputs), "--model", "mistral", "hi"])
    err = capsys.readouterr().err
    assert code == 2
    assert "'mistral' is not in" in err and "llama2-13b-chat, llama2-7b-chat" in err


def test_cli_without_pulumi_says_how_to_pass_outputs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "")

    code = main(["predict", "--stack", "dev", "--model", "llama2-7b-chat", "hi"])

    err = capsys.readouterr().err
    assert code == 2 and "--outputs" in err and err.count("\n") == 1
