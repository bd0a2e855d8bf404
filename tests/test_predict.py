"""The predict client and `llmstack predict` against the loopback fake OCI (real signatures, both engines)."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.errors import UserError
from llmstack.cli import main
from oci_runtime.auth import Auth
from oci_runtime.predict import GenerationParams, InvalidParameter, PredictClient, PredictError, endpoints_for
from oci_runtime.retry import Backoff
from tests.fakeoci.core import FakeOci, Fault, TestIdentity
from tests.fakeoci.inference import Inference
from tests.fakeoci.modeldeployments import Deployment, Engine, ModelDeployments
from tests.serving_fakes import running_adapter

FAST = Backoff(attempts=4, base_s=0.01, cap_s=0.02, total_s=5)
NO_AUTH = Auth(mode="none")
COMPLETION = "Hello there, friend."


@pytest.fixture
def api_key(oci_identity: TestIdentity) -> Auth:
    return Auth(mode="api_key", config_file=str(oci_identity.config_file))


@pytest.fixture
def deployment(fake_oci: FakeOci) -> Deployment:
    return fake_oci.service(ModelDeployments).script(polls=0)


@pytest.fixture
def container(fake_oci: FakeOci) -> Engine:
    return fake_oci.service(Inference).container


def client(url: str, auth: Auth, **kwargs: object) -> PredictClient:
    return PredictClient(url, auth=auth, backoff=FAST, timeout_s=5, **kwargs)  # type: ignore[arg-type]


def test_predict_sends_the_contract_signed_and_returns_the_completion(
    fake_oci: FakeOci, deployment: Deployment, api_key: Auth
) -> None:
    params = GenerationParams(max_new_tokens=32, temperature=0.2, top_p=0.5)

    text = client(f"{deployment.url}/predict", api_key).predict("Say hello.", params)

    assert text == COMPLETION
    assert deployment.engine.received == [
        {"inputs": "Say hello.", "parameters": {"max_new_tokens": 32, "temperature": 0.2, "top_p": 0.5}}
    ]
    assert [r.status for r in fake_oci.requests("Predict")] == [200]  # the fake checked the signature


def test_tgi_container_generate_route_gets_the_same_body(fake_oci: FakeOci, container: Engine) -> None:
    text = client(f"{fake_oci.endpoint}/generate", NO_AUTH).predict("Say hello.")

    assert text == COMPLETION
    assert container.received[0]["parameters"] == {"max_new_tokens": 256, "temperature": 0.7, "top_p": 0.9}


@pytest.mark.parametrize(
    ("params", "wire"),
    [
        (GenerationParams(temperature=0.0, top_p=0.5), {"max_new_tokens": 256, "do_sample": False}),
        (GenerationParams(temperature=0.3, top_p=1.0), {"max_new_tokens": 256, "temperature": 0.3}),
    ],
)
def test_values_tgi_refuses_are_sent_in_the_form_it_accepts(
    fake_oci: FakeOci, container: Engine, params: GenerationParams, wire: dict[str, object]
) -> None:
    # The fake's /generate checks parameters as TGI does: temperature > 0 and top_p < 1.
    text = client(f"{fake_oci.endpoint}/generate", NO_AUTH).predict("hi", params)

    assert text == COMPLETION
    assert container.received[0]["parameters"] == wire


@pytest.fixture
def adapter_for_tgi(fake_oci: FakeOci) -> Iterator[str]:
    """The serving images' adapter (engine: tgi) in front of the fake's TGI routes; yields its URL."""
    with running_adapter("tgi", fake_oci.endpoint, served_model="m") as url:
        yield url


def test_client_and_serving_adapter_agree_on_the_contract(
    fake_oci: FakeOci, container: Engine, adapter_for_tgi: str
) -> None:
    greedy = GenerationParams(max_new_tokens=8, temperature=0.0)

    assert client(f"{adapter_for_tgi}/predict", NO_AUTH).predict("hi", greedy) == COMPLETION
    chunks = list(client(f"{adapter_for_tgi}/predict", NO_AUTH).stream("hi", greedy))

    assert chunks == ["Hello", " there", ",", " friend", "."]
    assert [r.status for r in fake_oci.requests("ContainerGenerate")] == [200]
    assert [r.status for r in fake_oci.requests("ContainerGenerateStream")] == [200]
    assert container.received[-1]["parameters"] == {"max_new_tokens": 8, "do_sample": False}


def test_503_then_200_succeeds_after_retries(
    fake_oci: FakeOci, deployment: Deployment, api_key: Auth
) -> None:
    fake_oci.faults.burst(503, ops=["Predict"], times=2)
    retries: list[int] = []

    text = client(
        f"{deployment.url}/predict", api_key, on_retry=lambda n, exc, delay: retries.append(n)
    ).predict("hi")

    assert text == COMPLETION
    assert [r.status for r in fake_oci.requests("Predict")] == [503, 503, 200]
    assert retries == [1, 2]


def test_503_that_never_ends_gives_up_with_one_line(
    fake_oci: FakeOci, deployment: Deployment, api_key: Auth
) -> None:
    fake_oci.faults.add(Fault(kind="status", status=503, ops=frozenset({"Predict"})))

    with pytest.raises(PredictError) as caught:
        client(f"{deployment.url}/predict", api_key).predict("hi")

    assert len(fake_oci.requests("Predict")) == FAST.attempts
    message = str(caught.value)
    assert message.startswith("503 ServiceUnavailable from http://127.0.0.1:")
    assert "not ready" in message and "\n" not in message


def test_401_is_one_line_and_not_retried(fake_oci: FakeOci, deployment: Deployment, api_key: Auth) -> None:
    fake_oci.faults.add(
        Fault(
            kind="status", status=401, code="NotAuthenticated", ops=frozenset({"Predict", "PredictOpenAIGet"})
        )
    )

    with pytest.raises(PredictError) as caught:
        client(f"{deployment.url}/predict", api_key).predict("hi")

    assert caught.value.status == 401
    assert "\n" not in str(caught.value) and "--auth" in str(caught.value)
    assert len(fake_oci.requests("Predict")) == 1


def test_a_key_the_service_does_not_know_is_refused(
    fake_oci: FakeOci, deployment: Deployment, tmp_path: Path
) -> None:
    stranger = TestIdentity.create(tmp_path / "stranger")  # a key the fake does not trust
    auth = Auth(mode="api_key", config_file=str(stranger.config_file))

    with pytest.raises(PredictError) as caught:
        client(f"{deployment.url}/predict", auth).predict("hi")

    assert caught.value.status == 401 and "signature was not accepted" in str(caught.value)
    assert deployment.engine.received == []


def test_unsigned_requests_to_a_deployment_are_refused(fake_oci: FakeOci, deployment: Deployment) -> None:
    with pytest.raises(PredictError) as caught:
        client(f"{deployment.url}/predict", NO_AUTH).predict("hi")

    assert caught.value.status == 401


def test_404_says_the_deployment_is_unknown_or_forbidden(fake_oci: FakeOci, api_key: Auth) -> None:
    url = f"{fake_oci.endpoint}/ocid1.datasciencemodeldeployment.oc1.iad.gone/predict"

    with pytest.raises(PredictError) as caught:
        client(url, api_key).predict("hi")

    assert caught.value.status == 404
    assert str(caught.value).startswith("404 NotAuthorizedOrNotFound from ")
    assert "check the URL (region, OCID)" in str(caught.value)


def test_a_slow_answer_is_a_timeout_error_without_retries(
    fake_oci: FakeOci, deployment: Deployment, api_key: Auth
) -> None:
    slow = fake_oci.faults.add(Fault(kind="slow", delay_s=1.0, ops=frozenset({"Predict"})))

    with pytest.raises(PredictError) as caught:
        PredictClient(f"{deployment.url}/predict", auth=api_key, backoff=FAST, timeout_s=0.2).predict("hi")

    assert "within 0.2 s" in str(caught.value)
    assert slow.fired == 1  # asked once: a slow model is not asked again


def test_a_closed_port_is_a_connection_error_after_retries() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free, and nothing listens once the socket closes

    with pytest.raises(PredictError) as caught:
        PredictClient(f"http://127.0.0.1:{port}/predict", auth=NO_AUTH, backoff=FAST, timeout_s=1).predict(
            "hi"
        )

    assert "cannot reach" in str(caught.value) and "ConnectionRefusedError" in str(caught.value)
    assert f"after {FAST.attempts} attempts" in str(caught.value)


def test_a_connection_error_names_the_attempts_made_not_the_most_allowed() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # readiness allows retries for as long as its deadline lasts; the message counts the ones sent
    patient = Backoff(attempts=1_000_000, base_s=0.01, cap_s=0.02, total_s=0.05)

    with pytest.raises(PredictError) as caught:
        PredictClient(f"http://127.0.0.1:{port}/predict", auth=NO_AUTH, backoff=patient, timeout_s=1).predict(
            "hi"
        )

    assert "1000000" not in str(caught.value)
    assert re.search(r"after \d{1,2} attempts?:", str(caught.value)), str(caught.value)


@pytest.mark.parametrize(
    ("where", "route", "op"),
    [
        ("deployment", "/predict", "PredictWithResponseStream"),
        ("container", "/generate", "ContainerGenerateStream"),
        ("container", "/predict", "ContainerPredict"),
    ],
)
def test_stream_yields_the_tokens_in_order_as_they_come(
    fake_oci: FakeOci,
    deployment: Deployment,
    container: Engine,
    api_key: Auth,
    where: str,
    route: str,
    op: str,
) -> None:
    engine, base, auth = (
        (deployment.engine, deployment.url, api_key)
        if where == "deployment"
        else (container, fake_oci.endpoint, NO_AUTH)
    )
    hold = threading.Event()
    engine.hold_after_first = hold
    chunks = client(base + route, auth).stream("Say hello.")

    first = next(chunks)
    # The server still holds the rest: the first token reached us before the answer was complete.
    assert first == "Hello" and not engine.stream_done.is_set()
    hold.set()
    rest = list(chunks)

    assert [first, *rest] == ["Hello", " there", ",", " friend", "."]
    assert [r.status for r in fake_oci.requests(op)] == [200]
    assert engine.received[0]["stream"] is True


def test_stream_from_a_route_that_cannot_stream_is_one_chunk(fake_oci: FakeOci) -> None:
    url = f"{fake_oci.endpoint}/generate"

    assert list(client(url, NO_AUTH, stream_endpoint=url).stream("hi")) == [COMPLETION]


def test_a_deployment_that_cannot_stream_says_so(fake_oci: FakeOci, api_key: Auth) -> None:
    deployment = fake_oci.service(ModelDeployments).script(engine=Engine(streams=False))

    with pytest.raises(PredictError) as caught:
        list(client(f"{deployment.url}/predict", api_key).stream("hi"))

    assert caught.value.status == 409 and "MODEL_DEPLOY_ENABLE_STREAMING" in str(caught.value)


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
    edge = GenerationParams(max_new_tokens=1, temperature=0, top_p=1)

    assert edge.as_json() == {"max_new_tokens": 1, "temperature": 0, "top_p": 1}


def test_an_empty_prompt_is_refused_before_any_request(fake_oci: FakeOci, container: Engine) -> None:
    with pytest.raises(UserError, match="prompt is empty"):
        client(f"{fake_oci.endpoint}/predict", NO_AUTH).predict("  ")

    assert container.received == []


OCI_MD = (
    "https://modeldeployment.us-ashburn-1.oci.customer-oci.com/ocid1.datasciencemodeldeployment.oc1.iad.x"
)


@pytest.mark.parametrize(
    ("url", "predict", "stream"),
    [
        (f"{OCI_MD}/predict", f"{OCI_MD}/predict", f"{OCI_MD}/predictWithResponseStream"),
        (f"{OCI_MD}/", f"{OCI_MD}/predict", f"{OCI_MD}/predictWithResponseStream"),
        (f"{OCI_MD}/predictWithResponseStream", f"{OCI_MD}/predict", f"{OCI_MD}/predictWithResponseStream"),
        (
            "https://md.example.internal/ocid1.datasciencemodeldeployment.oc1.iad.x/predict",
            "https://md.example.internal/ocid1.datasciencemodeldeployment.oc1.iad.x/predict",
            "https://md.example.internal/ocid1.datasciencemodeldeployment.oc1.iad.x/predictWithResponseStream",
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
    with pytest.raises(UserError, match="'modeldeployment/predict' is not an http"):
        PredictClient("modeldeployment/predict", auth=NO_AUTH)


# --- the command line ---------------------------------------------------------------------------


@pytest.fixture
def oci_config(monkeypatch: pytest.MonkeyPatch, oci_identity: TestIdentity) -> None:
    monkeypatch.setenv("OCI_CLI_CONFIG_FILE", str(oci_identity.config_file))
    monkeypatch.delenv("OCI_CLI_AUTH", raising=False)
    monkeypatch.delenv("OCI_CLI_PROFILE", raising=False)


@pytest.mark.usefixtures("oci_config")
def test_cli_prints_the_completion(deployment: Deployment, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "predict",
            "--auth",
            "api_key",
            "--endpoint",
            f"{deployment.url}/predict",
            "--max-tokens",
            "8",
            "Say hello.",
        ]
    )

    assert code == 0
    assert capsys.readouterr().out == f"{COMPLETION}\n"
    # the default is OpenAI chat completions, on OCI's OpenAI route, for the model the server lists
    assert deployment.engine.received == [
        {
            "model": "served-model",
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 8,
            "temperature": 0.7,
            "top_p": 0.9,
        }
    ]
    [(method, path, routed, _)] = [seen for seen in deployment.engine.seen if seen[0] == "POST"]
    assert (method, path, routed) == (
        "POST",
        f"/{deployment.id}/predict/v1/chat/completions",
        "/v1/chat/completions",
    )


@pytest.mark.usefixtures("oci_config")
@pytest.mark.parametrize("stream", [False, True])
def test_cli_api_legacy_sends_inputs_and_parameters(
    fake_oci: FakeOci, deployment: Deployment, capsys: pytest.CaptureFixture[str], stream: bool
) -> None:
    args = ["predict", "--auth", "api_key", "--endpoint", f"{deployment.url}/predict", "--api", "legacy"]
    code = main([*args, "--max-tokens", "8", *(["--stream"] if stream else []), "Say hello."])

    assert code == 0 and capsys.readouterr().out == f"{COMPLETION}\n"
    sent = deployment.engine.received[0]
    assert set(sent) == ({"inputs", "parameters", "stream"} if stream else {"inputs", "parameters"})
    assert sent["inputs"] == "Say hello." and sent["parameters"]["max_new_tokens"] == 8
    assert deployment.engine.seen == []  # no OpenAI route was used


@pytest.mark.usefixtures("oci_config")
def test_cli_chat_streams_on_the_streaming_route_with_the_system_prompt(
    fake_oci: FakeOci, deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["predict", "--auth", "api_key", "--endpoint", f"{deployment.url}/predict", "--stream"]
    code = main([*args, "--system", "Be brief.", "--temperature", "0", "--top-p", "1", "Say hello."])

    assert code == 0 and capsys.readouterr().out == f"{COMPLETION}\n"
    assert deployment.engine.received == [
        {
            "model": "served-model",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Say hello."},
            ],
            "max_tokens": 256,
            "temperature": 0,
            "stream": True,
        }
    ]
    assert [r.status for r in fake_oci.requests("PredictStreamOpenAI")] == [200]


@pytest.mark.usefixtures("oci_config")
def test_cli_api_completions_sends_the_raw_text(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "predict",
        "--auth",
        "api_key",
        "--endpoint",
        f"{deployment.url}/predict/v1",
        "--api",
        "completions",
    ]
    assert main([*args, "--model-name", "served-model", "Once upon"]) == 0
    assert capsys.readouterr().out == f"{COMPLETION}\n"
    assert deployment.engine.received[0]["prompt"] == "Once upon"
    assert [seen[2] for seen in deployment.engine.seen] == ["/v1/completions"]  # no /v1/models lookup


@pytest.mark.usefixtures("oci_config")
def test_cli_streams_tokens(fake_oci: FakeOci, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "predict",
            "--api",
            "legacy",
            "--endpoint",
            f"{fake_oci.endpoint}/generate",
            "--stream",
            "Say hello.",
        ]
    )

    assert code == 0
    assert capsys.readouterr().out == f"{COMPLETION}\n"
    assert [r.status for r in fake_oci.requests("ContainerGenerateStream")] == [200]


@pytest.mark.usefixtures("oci_config")
@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--temperature", "-1"),
        ("--top-p", "0"),
        ("--top-p", "1.01"),
        ("--max-tokens", "0"),
        ("--timeout", "0"),
        ("--timeout", "nan"),
    ],
)
def test_cli_refuses_a_bad_parameter_before_any_request(
    fake_oci: FakeOci, deployment: Deployment, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    code = main(["predict", "--endpoint", f"{deployment.url}/predict", flag, value, "hi"])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"llmstack predict: {flag}: ") and value in err
    assert err.count("\n") == 1
    assert fake_oci.requests() == []


@pytest.mark.usefixtures("oci_config")
def test_cli_401_is_one_line_without_traceback(
    fake_oci: FakeOci, deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_oci.faults.add(
        Fault(
            kind="status", status=401, code="NotAuthenticated", ops=frozenset({"Predict", "PredictOpenAIGet"})
        )
    )

    code = main(["predict", "--auth", "api_key", "--endpoint", f"{deployment.url}/predict", "hi"])

    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("llmstack predict: 401 NotAuthenticated from ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_cli_a_key_that_does_not_load_is_one_line(
    tmp_path: Path,
    oci_identity: TestIdentity,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "key.pem").write_text("not a key\n")
    config = tmp_path / "config"
    config.write_text(
        oci_identity.config_file.read_text().replace(str(oci_identity.key_file), str(tmp_path / "key.pem"))
    )
    monkeypatch.setenv("OCI_CLI_CONFIG_FILE", str(config))

    code = main(["predict", "--auth", "api_key", "--endpoint", "http://192.0.2.1/predict", "hi"])

    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("llmstack predict: cannot load the API key of profile 'DEFAULT': ")


@pytest.mark.usefixtures("oci_config")
def test_cli_reads_the_urls_from_saved_stack_outputs(
    fake_oci: FakeOci, deployment: Deployment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = tmp_path / "outputs.json"
    models = {
        "llama2-7b-chat": {
            "predictUrl": f"{deployment.url}/predict",
            "streamUrl": f"{deployment.url}/predictWithResponseStream",
            "deploymentId": deployment.id,
            "catalogModelId": "ocid1.datasciencemodel.oc1.iad.y",
        },
        "llama2-13b-chat": {"predictUrl": f"{fake_oci.endpoint}/other/predict"},
    }
    outputs.write_text(json.dumps({"projectId": "p", "models": models}))

    code = main(
        [
            "predict",
            "--auth",
            "api_key",
            "--outputs",
            str(outputs),
            "--model",
            "llama2-7b-chat",
            "--stream",
            "hi",
        ]
    )
    assert code == 0 and capsys.readouterr().out == f"{COMPLETION}\n"
    assert [r.status for r in fake_oci.requests("PredictStreamOpenAI")] == [200]

    code = main(["predict", "--outputs", str(outputs), "--model", "mistral", "hi"])
    err = capsys.readouterr().err
    assert code == 2
    assert "'mistral' is not in" in err and "llama2-13b-chat, llama2-7b-chat" in err

    code = main(["predict", "--outputs", str(outputs), "hi"])
    assert code == 2 and "pick one with --model" in capsys.readouterr().err


def test_cli_without_pulumi_says_how_to_pass_outputs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "")

    code = main(["predict", "--stack", "dev", "--model", "llama2-7b-chat", "hi"])

    err = capsys.readouterr().err
    assert code == 2 and "--outputs" in err and err.count("\n") == 1


def test_cli_reads_stack_outputs_through_the_pulumi_cli(
    fake_oci: FakeOci,
    container: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    outputs = {"models": {"m": {"predictUrl": f"{fake_oci.endpoint}/predict"}}}
    fake_pulumi = tmp_path / "bin" / "pulumi"
    fake_pulumi.parent.mkdir()
    # Stands in for the real CLI: prints the outputs only for `stack output --json -s dev`.
    fake_pulumi.write_text(
        "#!/bin/sh\n"
        f'[ "$*" = "stack output --json -s dev" ] && echo \'{json.dumps(outputs)}\' && exit 0\n'
        'echo "error: no stack named $5" >&2; exit 255\n'
    )
    fake_pulumi.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake_pulumi.parent))

    assert main(["predict", "--stack", "dev", "--api", "legacy", "hi"]) == 0
    assert capsys.readouterr().out == f"{COMPLETION}\n"

    assert main(["predict", "--stack", "prod", "hi"]) == 2
    assert (
        capsys.readouterr().err
        == "llmstack predict: `pulumi stack output -s prod` failed: error: no stack named prod\n"
    )


def test_sdk_clients_refuse_unsigned_auth() -> None:
    import oci

    from domain.errors import UserError
    from oci_runtime.auth import Auth, make_client

    with pytest.raises(UserError, match="auth mode 'none' is for a local container"):
        make_client(oci.object_storage.ObjectStorageClient, Auth(mode="none"), region="us-ashburn-1")
