"""The launcher: flags from every contract key, bad values refused in one line, the token kept out of
argv and output, signals forwarded, the engine's exit code returned."""

from __future__ import annotations

import base64
import http.client
import importlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from serving import launcher
from serving.launcher import LaunchError, engine_command, engine_env, main, read_config, read_token
from serving.vllm_routes import OciRoutes
from tests.httpfakes import FakeHttpServer, send_json
from tests.serving_fakes import SOCKET_TIMEOUT_S, free_port, write_fake_program

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "hf_TESTtoken0123456789abcdef"
SECRET_OCID = "ocid1.vaultsecret.oc1.iad.amaaaaaatestsecretaaaa"
PROGRAMS = {"vllm": "vllm", "tgi": "text-generation-launcher"}


def dry_run(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["--dry-run"], env=env)
    out, err = capsys.readouterr()
    return code, out, err


# -- the command line ------------------------------------------------------------------------------


def test_vllm_flags_come_from_every_contract_key(capsys: pytest.CaptureFixture[str]) -> None:
    env = {
        "ENGINE": "vllm",
        "MODEL": "meta-llama/Llama-2-13b-chat-hf",
        "PORT": "8080",
        "TENSOR_PARALLELISM": "2",
        "MAX_MODEL_LEN": "2048",
        "QUANTIZATION": "awq",
        "PARAMS": "--gpu-memory-utilization 0.85 --chat-template '{{ messages }} x'",
    }
    code, out, err = dry_run(env, capsys)
    assert (code, err) == (0, "")
    assert out.count("\n") == 1
    assert shlex.split(out) == [
        "vllm",
        "serve",
        "meta-llama/Llama-2-13b-chat-hf",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",  # vLLM serves PORT itself: no hop
        "--middleware",
        "serving.vllm_routes.OciRoutes",  # OCI's extra routes, inside vLLM's own process
        "--tensor-parallel-size",
        "2",
        "--max-model-len",
        "2048",
        "--quantization",
        "awq",
        "--gpu-memory-utilization",
        "0.85",
        "--chat-template",
        "{{ messages }} x",
    ]


def test_tgi_flags_come_from_every_contract_key(capsys: pytest.CaptureFixture[str]) -> None:
    env = {
        "ENGINE": "tgi",
        "MODEL": "meta-llama/Llama-2-13b-chat-hf",
        "PORT": "9000",
        "TENSOR_PARALLELISM": "2",
        "MAX_MODEL_LEN": "4096",
        "QUANTIZATION": "int8",
        "PARAMS": "--max-batch-prefill-tokens 1024",
    }
    code, out, _ = dry_run(env, capsys)
    assert code == 0
    assert shlex.split(out) == [
        "text-generation-launcher",
        "--model-id",
        "meta-llama/Llama-2-13b-chat-hf",
        "--hostname",
        "127.0.0.1",
        "--port",
        "8000",
        "--num-shard",
        "2",
        "--max-input-tokens",
        "4095",
        "--max-total-tokens",
        "4096",
        "--quantize",
        "bitsandbytes",
        "--max-batch-prefill-tokens",
        "1024",
    ]


@pytest.mark.parametrize("engine", ["vllm", "tgi"])
def test_offline_serves_the_deployed_model_folder_by_default(
    engine: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = dry_run({"ENGINE": engine}, capsys)
    assert code == 0
    assert "/opt/ds/model/deployed_model" in shlex.split(out)


@pytest.mark.parametrize(
    ("engine", "params", "replaced"),
    [
        ("vllm", "--max-model-len=8192", "--max-model-len"),
        ("vllm", "-tp 4", "--tensor-parallel-size"),
        ("vllm", "--quantization gptq", "--quantization"),
        ("tgi", "--max-total-tokens 2048", "--max-input-tokens"),
        ("tgi", "--num-shard 4", "--num-shard"),
    ],
)
def test_a_flag_in_params_replaces_the_derived_one(engine: str, params: str, replaced: str) -> None:
    config = read_config(
        {"ENGINE": engine, "PARAMS": params, "QUANTIZATION": "awq", "TENSOR_PARALLELISM": "2"}
    )
    command = engine_command(config, 8000)
    assert command[-len(shlex.split(params)) :] == shlex.split(params)
    derived = command[: -len(shlex.split(params))]
    assert replaced not in derived


def test_vllm_answers_to_the_served_model_name_params_give() -> None:
    config = read_config({"ENGINE": "vllm", "PARAMS": "--served-model-name odsc-llm --seed 42"})
    assert launcher.served_model_name(config) == "odsc-llm"
    assert launcher.served_model_name(read_config({"ENGINE": "vllm", "MODEL": "org/m"})) == "org/m"


# -- bad values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"ENGINE": "vllm", "TENSOR_PARALLELISM": "two"}, ["TENSOR_PARALLELISM='two'", "whole number"]),
        ({"ENGINE": "vllm", "TENSOR_PARALLELISM": "0"}, ["TENSOR_PARALLELISM=0", "at least 1"]),
        ({"ENGINE": "tgi", "MAX_MODEL_LEN": "4k"}, ["MAX_MODEL_LEN='4k'", "whole number of tokens"]),
        ({"ENGINE": "vllm", "PORT": "http"}, ["PORT='http'", "1024 to 65535"]),
        ({"ENGINE": "vllm", "PORT": "8446"}, ["PORT=8446", "except 8446, 8447, 24224"]),
        ({"ENGINE": "vllm", "PORT": "80"}, ["PORT=80", "1024 to 65535"]),
        ({}, ["ENGINE is not set", "vllm, tgi"]),
        ({"ENGINE": "triton"}, ["ENGINE='triton'", "vllm, tgi"]),
        (
            {"ENGINE": "vllm", "QUANTIZATION": "int8"},
            ["QUANTIZATION='int8'", "not served by vllm", "fp8, awq, gptq"],
        ),
        ({"ENGINE": "tgi", "QUANTIZATION": "int4"}, ["QUANTIZATION='int4'", "fp8, int8, awq, gptq"]),
        ({"ENGINE": "vllm", "PARAMS": "--chat-template 'open"}, ["PARAMS=", "No closing quotation"]),
        ({"ENGINE": "vllm", "PARAMS": "--port 9000"}, ["PARAMS sets --port", "PORT"]),
        ({"ENGINE": "tgi", "PARAMS": "--model-id=x/y"}, ["PARAMS sets --model-id", "MODEL"]),
        (
            {"ENGINE": "vllm", "MODEL": "https://huggingface.co/meta-llama/x"},
            ["MODEL='https://", "Hugging Face id"],
        ),
        (
            {"ENGINE": "vllm", "TOKEN_SECRET_ID": "my-secret"},
            ["TOKEN_SECRET_ID='my-secret'", "ocid1.vaultsecret"],
        ),
        (
            {"ENGINE": "vllm", "TOKEN_FILE": "/t", "TOKEN_SECRET_ID": SECRET_OCID},
            ["TOKEN_FILE and TOKEN_SECRET_ID", "one of them"],
        ),
    ],
)
def test_a_bad_value_is_refused_in_one_line_naming_the_variable(
    env: dict[str, str], names: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = dry_run(env, capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("launcher: ")
    for name in names:
        assert name in err
    assert "Traceback" not in err


@pytest.mark.parametrize("problem", ["missing", "directory", "empty", "binary"])
def test_an_unreadable_token_file_is_refused_without_showing_its_content(
    problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "token"
    if problem == "directory":
        path.mkdir()
    elif problem == "empty":
        path.write_text("  \n")
    elif problem == "binary":
        path.write_bytes(b"\xff\xfe" + TOKEN.encode())
    code, out, err = dry_run({"ENGINE": "vllm", "MODEL": "org/m", "TOKEN_FILE": str(path)}, capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and f"TOKEN_FILE={str(path)!r}" in err
    assert TOKEN not in err


def test_a_bad_value_in_a_real_process_is_one_line_with_no_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "serving.launcher", "--dry-run"],
        env={"PATH": os.environ["PATH"], "ENGINE": "vllm", "TENSOR_PARALLELISM": "two"},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "launcher: TENSOR_PARALLELISM='two' is not a whole number; "
        "accepted: a whole number of GPUs, at least 1 (such as 1, 2, 4)"
    ]


# -- the token -------------------------------------------------------------------------------------


def test_the_token_goes_only_into_the_engine_environment(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    config = read_config({"ENGINE": "tgi", "MODEL": "org/m", "TOKEN_FILE": str(token_file)})
    token = read_token(config)
    command = engine_command(config, 8000)
    env = engine_env(config, {"PATH": "/bin", "PYTHONPATH": f"{ROOT}{os.pathsep}/extra"}, token)
    assert token == TOKEN
    assert not any(TOKEN in arg for arg in command)
    assert env["HF_TOKEN"] == env["HUGGING_FACE_HUB_TOKEN"] == TOKEN
    assert env["PYTHONPATH"] == "/extra"  # the launcher's code does not leak into the engine's imports
    assert "HF_HUB_OFFLINE" not in env


def test_vllm_gets_the_code_root_back_for_its_middleware_alone(tmp_path: Path) -> None:
    """The one import vLLM makes from our code is its --middleware: the code root is on its PYTHONPATH,
    after the container's own entries, and the vendored oci SDK is not; TGI gets neither."""
    base = {"PATH": "/bin", "PYTHONPATH": f"{ROOT}{os.pathsep}/extra"}
    vllm = engine_env(read_config({"ENGINE": "vllm", "MODEL": "org/m"}), base, None)
    assert vllm["PYTHONPATH"].split(os.pathsep) == ["/extra", str(launcher.CODE_ROOT)]
    assert str(launcher.VENDOR_DIR) not in vllm["PYTHONPATH"]
    assert vllm["LLMSTACK_SERVED_MODEL"] == "org/m"
    named = read_config({"ENGINE": "vllm", "MODEL": "org/m", "PARAMS": "--served-model-name chat"})
    assert engine_env(named, {}, None) == {
        "PYTHONPATH": str(launcher.CODE_ROOT),
        "LLMSTACK_SERVED_MODEL": "chat",
    }
    tgi = engine_env(read_config({"ENGINE": "tgi", "MODEL": "org/m"}), base, None)
    assert tgi["PYTHONPATH"] == "/extra" and "LLMSTACK_SERVED_MODEL" not in tgi
    # the path vLLM imports is the middleware class itself
    module, name = launcher.VLLM_MIDDLEWARE.rsplit(".", 1)
    assert getattr(importlib.import_module(module), name) is OciRoutes


def test_an_offline_model_runs_the_engine_without_the_hub() -> None:
    config = read_config({"ENGINE": "vllm"})
    env = engine_env(config, {"PATH": "/bin"}, read_token(config))
    assert env["HF_HUB_OFFLINE"] == "1"
    assert not {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"} & env.keys()


@pytest.mark.parametrize("engine", ["vllm", "tgi"])
def test_a_real_run_keeps_the_token_out_of_argv_stdout_and_stderr(engine: str, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    record = tmp_path / "record.json"
    write_fake_program(tmp_path / "bin", PROGRAMS[engine], engine)
    env = {
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "ENGINE": engine,
        "MODEL": "meta-llama/Llama-2-7b-chat-hf",
        "PORT": str(free_port()),
        "TOKEN_FILE": str(token_file),
        "FAKE_ENGINE_RECORD": str(record),
        "HOME": str(tmp_path),  # the engine's cache folders go here, not in the real home
        "FAKE_ENGINE_MODE": "exit:3",
    }
    result = subprocess.run(
        [sys.executable, "-m", "serving.launcher", "--engine-port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    seen = json.loads(record.read_text())
    assert result.returncode == 3
    assert TOKEN not in result.stdout and TOKEN not in result.stderr
    assert not any(TOKEN in arg for arg in seen["argv"])
    assert seen["env"]["HF_TOKEN"] == seen["env"]["HUGGING_FACE_HUB_TOKEN"] == TOKEN
    assert f"launcher: {engine} exited with code 3" in result.stderr


# -- the Vault secret, read with the real SDK from a loopback secrets service -----------------------


class FakeSecrets:
    """GET .../secretbundles/{id}: answers scripted statuses, then the secret."""

    def __init__(self, content: str, statuses: list[int] | None = None) -> None:
        self.content = content
        self.statuses = list(statuses or [])
        self.paths: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            timeout = SOCKET_TIMEOUT_S

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.paths.append(self.path)
                status = fake.statuses.pop(0) if fake.statuses else 200
                if status == 200:
                    body = {
                        "secretId": SECRET_OCID,
                        "versionNumber": 1,
                        "stages": ["CURRENT"],
                        "secretBundleContent": {"contentType": "BASE64", "content": fake.content},
                    }
                else:
                    body = {
                        "code": "NotAuthorizedOrNotFound" if status == 404 else "InternalError",
                        "message": "x",
                    }
                send_json(self, status, body)

        self.server = FakeHttpServer(("127.0.0.1", 0), Handler, name="fake-secrets").start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def stop(self) -> None:
        self.server.stop(SOCKET_TIMEOUT_S)
        assert not self.server.errors, f"the fake secrets service failed: {self.server.errors}"


def secrets_client(endpoint: str) -> Any:
    import oci
    from cryptography.hazmat.primitives.asymmetric import rsa

    from oci_runtime.retry import Backoff, oci_retry_strategy

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = oci.auth.signers.SecurityTokenSigner("header.payload.signature", key)
    return oci.secrets.SecretsClient(
        {"region": "us-ashburn-1"},
        signer=signer,
        service_endpoint=endpoint,
        retry_strategy=oci_retry_strategy(Backoff(attempts=3, base_s=0.01, cap_s=0.02)),
        timeout=(SOCKET_TIMEOUT_S, SOCKET_TIMEOUT_S),
    )


@pytest.fixture
def secrets() -> Iterator[FakeSecrets]:
    fake = FakeSecrets(base64.b64encode(TOKEN.encode()).decode(), statuses=[503])
    yield fake
    fake.stop()


def test_the_vault_secret_is_read_with_retries_and_reaches_only_the_engine_env(secrets: FakeSecrets) -> None:
    config = read_config({"ENGINE": "vllm", "MODEL": "org/m", "TOKEN_SECRET_ID": SECRET_OCID})
    client = secrets_client(secrets.endpoint)
    token = read_token(config, fetch_secret=lambda ocid: launcher.read_vault_secret(ocid, client=client))
    assert token == TOKEN
    assert len(secrets.paths) == 2  # a 503, then the secret
    assert secrets.paths[-1].endswith(f"/secretbundles/{SECRET_OCID}?stage=CURRENT")
    assert not any(TOKEN in arg for arg in engine_command(config, 8000))
    assert engine_env(config, {}, token)["HF_TOKEN"] == TOKEN


def test_a_secret_the_deployment_may_not_read_is_one_line_with_the_policy_hint() -> None:
    fake = FakeSecrets("", statuses=[404])
    try:
        with pytest.raises(LaunchError) as raised:
            launcher.read_vault_secret(SECRET_OCID, client=secrets_client(fake.endpoint))
    finally:
        fake.stop()
    message = str(raised.value)
    assert "\n" not in message
    assert (
        f"TOKEN_SECRET_ID={SECRET_OCID!r}" in message
        and "404" in message
        and "read secret-bundles" in message
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [(base64.b64encode(b"  \n").decode(), "names an empty secret"), ("not base64!", "not hold UTF-8 text")],
)
def test_a_secret_without_a_token_is_one_line_saying_what_is_accepted(content: str, problem: str) -> None:
    fake = FakeSecrets(content)
    config = read_config({"ENGINE": "vllm", "MODEL": "org/m", "TOKEN_SECRET_ID": SECRET_OCID})
    try:
        with pytest.raises(LaunchError) as raised:
            read_token(
                config,
                fetch_secret=lambda ocid: launcher.read_vault_secret(
                    ocid, client=secrets_client(fake.endpoint)
                ),
            )
    finally:
        fake.stop()
    message = str(raised.value)
    assert "\n" not in message and f"TOKEN_SECRET_ID={SECRET_OCID!r}" in message
    assert problem in message and "accepted: a Vault secret" in message


def test_a_long_run_of_503s_from_the_vault_trips_no_breaker_shared_by_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The client the launcher builds itself (with the resource principal) has no circuit breaker: the
    SDK's default one would refuse every call for 30 s after 10 answers of 5xx in a row, with an error
    the launcher does not expect."""
    import oci
    from cryptography.hazmat.primitives.asymmetric import rsa

    from oci_runtime import retry

    attempts = 4
    fake = FakeSecrets(base64.b64encode(TOKEN.encode()).decode(), statuses=[503] * (3 * attempts))
    signer = oci.auth.signers.SecurityTokenSigner(
        "header.payload.signature", rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    signer.region = "us-ashburn-1"  # type: ignore[attr-defined]  (a resource principal signer has one)
    monkeypatch.setattr(oci.auth.signers, "get_resource_principals_signer", lambda: signer)
    quick = retry.Backoff(attempts=attempts, base_s=0.001, cap_s=0.002, total_s=5)
    real_strategy = retry.oci_retry_strategy
    monkeypatch.setattr(retry, "oci_retry_strategy", lambda: real_strategy(quick))  # fast retries
    real_client = oci.secrets.SecretsClient
    monkeypatch.setattr(
        oci.secrets,
        "SecretsClient",
        lambda config, **kwargs: real_client(config, service_endpoint=fake.endpoint, **kwargs),
    )
    try:
        for _ in range(3):  # 12 answers of 503 in a row: the SDK's default breaker opens after 10
            with pytest.raises(LaunchError, match="cannot be read: 503"):
                launcher.read_vault_secret(SECRET_OCID)
        assert len(fake.paths) == 3 * attempts  # every retry was sent
        assert launcher.read_vault_secret(SECRET_OCID) == TOKEN  # answered, not refused for 30 s
    finally:
        fake.stop()


def test_outside_oci_the_vault_path_says_the_resource_principal_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [key for key in os.environ if key.startswith("OCI_RESOURCE_PRINCIPAL")]:
        monkeypatch.delenv(name)
    with pytest.raises(LaunchError, match="resource principal is unavailable"):
        launcher.read_vault_secret(SECRET_OCID)


# -- the process: signals, exit codes, the adapter in front -----------------------------------------


def start_launcher(
    tmp_path: Path, engine: str, mode: str, **extra: str
) -> tuple[subprocess.Popen[str], Path, int]:
    record = tmp_path / "record.json"
    write_fake_program(tmp_path / "bin", PROGRAMS[engine], engine)
    port = free_port()
    env = {
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "ENGINE": engine,
        "PORT": str(port),
        "FAKE_ENGINE_RECORD": str(record),
        "HOME": str(tmp_path),  # the engine's cache folders go here, not in the real home
        "FAKE_ENGINE_MODE": mode,
        **extra,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "serving.launcher", "--engine-port", str(free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    return process, record, port


def wait_for(path: Path, process: subprocess.Popen[str], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the fake engine never started: {process.communicate(timeout=5)}")
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_reaches_the_engine_and_the_launcher_exits_with_its_code(sig: int, tmp_path: Path) -> None:
    process, record, _ = start_launcher(tmp_path, "vllm", "wait-signal")
    try:
        wait_for(record, process)
        process.send_signal(sig)
        code = process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=5)
    assert Path(f"{record}.signal").read_text() == str(int(sig))
    assert code == 7


def test_an_engine_killed_by_a_signal_gives_the_shell_style_code(tmp_path: Path) -> None:
    process, _, _ = start_launcher(tmp_path, "tgi", "kill-self")
    try:
        code = process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
        _, err = process.communicate(timeout=5)
    assert code == 128 + signal.SIGKILL
    assert f"tgi exited with code {128 + signal.SIGKILL}" in err


def test_a_missing_engine_program_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "serving.launcher", "--engine-port", str(free_port())],
        env={"PATH": str(tmp_path), "ENGINE": "vllm", "PORT": str(free_port())},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith("launcher: ENGINE='vllm': cannot start 'vllm'")
    assert "Traceback" not in result.stderr


def test_a_port_already_taken_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"ENGINE": "vllm", "PORT": str(port), "HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
        code = main(["--engine-port", str(free_port())], env=env)
    err = capsys.readouterr().err
    assert code == 2 and f"PORT={port} cannot be served" in err and err.count("\n") == 1


@pytest.mark.parametrize("engine", ["vllm", "tgi"])
def test_the_image_flow_serves_health_then_predict_and_stops_on_sigterm(engine: str, tmp_path: Path) -> None:
    process, record, port = start_launcher(tmp_path, engine, "serve")
    try:
        deadline = time.monotonic() + 60  # generous: CI machines can be slow to start two processes
        status = 0
        while status != 200 and time.monotonic() < deadline and process.poll() is None:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=SOCKET_TIMEOUT_S)
                connection.request("GET", "/health")
                status = connection.getresponse().status
                connection.close()
            except OSError:
                pass
            if status != 200:
                time.sleep(0.1)
        assert status == 200, f"health never turned 200 (last {status}, launcher exit {process.poll()})"
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=SOCKET_TIMEOUT_S)
        body = json.dumps({"inputs": "Say hello.", "parameters": {"max_new_tokens": 8}}).encode()
        connection.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = (response.status, json.loads(response.read()))
        chat = {"model": "/opt/ds/model/deployed_model", "messages": [{"role": "user", "content": "hi"}]}
        connection.request(
            "POST",
            "/predict",
            body=json.dumps(chat).encode(),
            headers={"route": "/v1/chat/completions", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        routed = (response.status, json.loads(response.read())["choices"][0]["message"]["content"])
        connection.close()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=5)
    assert answer == (200, {"generated_text": "Hello world"})
    assert routed == (200, "Hello world")
    assert code == 0
    argv = json.loads(record.read_text())["argv"]
    if engine == "vllm":  # vLLM itself on PORT, OCI's extra routes in its process: nothing in between
        assert argv[argv.index("--port") + 1] == str(port)
        assert argv[argv.index("--middleware") + 1] == "serving.vllm_routes.OciRoutes"
    else:  # TGI on a loopback port, the adapter on PORT
        assert argv[argv.index("--port") + 1] != str(port)
    assert argv[1:3] == (
        ["serve", "/opt/ds/model/deployed_model"]
        if engine == "vllm"
        else ["--model-id", "/opt/ds/model/deployed_model"]
    )


def test_a_signal_while_the_engine_starts_is_forwarded_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM lands while Popen runs (OCI stopping a deployment that is just starting): the launcher must
    already be forwarding, or it dies and leaves the engine running in its own process group."""

    class Engine:
        def __init__(self) -> None:
            self.signals: list[int] = []
            os.kill(os.getpid(), signal.SIGTERM)  # handled in this thread before Popen returns

        def send_signal(self, signum: int) -> None:
            self.signals.append(signum)

        def poll(self) -> int | None:
            return -self.signals[0] if self.signals else None

        def wait(self) -> int:
            return -self.signals[0] if self.signals else 0

    engines: list[Engine] = []

    def popen(*args: Any, **kwargs: Any) -> Engine:
        engines.append(Engine())
        return engines[-1]

    monkeypatch.setattr(launcher.subprocess, "Popen", popen)
    config = read_config({"ENGINE": "vllm", "PORT": str(free_port())})
    before = signal.getsignal(signal.SIGTERM)
    code = launcher.run(config, engine_command(config, 8000), {}, engine_port=free_port())
    assert [engine.signals for engine in engines] == [[signal.SIGTERM]]
    assert code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before


# -- the folders the engine writes ---------------------------------------------------------------------


def blocked(tmp_path: Path) -> Path:
    """A folder nobody can create, root included: its parent is a regular file."""
    (tmp_path / "a-file").write_text("")
    return tmp_path / "a-file" / "folder"


@pytest.mark.parametrize("engine", ["vllm", "tgi"])
def test_each_folder_the_engine_writes_is_checked_and_moved_when_not_writable(
    engine: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (home).mkdir()
    (home / ".cache").write_text("")  # storage over the home folder hides the image's cache folders
    env = {"HOME": str(home), "TMPDIR": str(tmp_path / "tmp")}
    moved, said = launcher.writable_paths(engine, env, fallback_root=tmp_path / "fallback")
    keys = ["HF_HOME", "VLLM_CACHE_ROOT"] if engine == "vllm" else ["HF_HOME"]
    assert moved == {key: str(tmp_path / "fallback" / key.lower()) for key in keys}
    assert all(Path(folder).is_dir() for folder in moved.values())
    assert said[0].startswith(f"HF_HOME={home}/.cache/huggingface is not writable by uid {os.getuid()} (")
    assert said[0].endswith(f"; using {tmp_path / 'fallback' / 'hf_home'}")
    assert [key for key, _ in launcher.written_paths(engine, env)] == (
        ["HF_HOME", "VLLM_CACHE_ROOT", "TRITON_CACHE_DIR", "TMPDIR"]
        if engine == "vllm"
        else ["HF_HOME", "TMPDIR"]
    )


def test_writable_folders_stay_where_the_image_put_them(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf"), "TMPDIR": str(tmp_path / "tmp")}
    assert launcher.writable_paths("tgi", env, fallback_root=blocked(tmp_path)) == ({}, [])
    assert (tmp_path / "hf").is_dir() and list((tmp_path / "hf").iterdir()) == []  # the probe is gone


@pytest.mark.skipif(os.getuid() == 0, reason="root writes through any mode")
def test_a_root_owned_read_only_folder_is_moved(tmp_path: Path) -> None:
    hf = tmp_path / "hf"
    hf.mkdir(mode=0o555)
    env = {"HOME": str(tmp_path), "HF_HOME": str(hf), "TMPDIR": str(tmp_path)}
    moved, said = launcher.writable_paths("tgi", env, fallback_root=tmp_path / "fallback")
    assert moved == {"HF_HOME": str(tmp_path / "fallback" / "hf_home")} and "mode 555" in said[0]


def test_without_any_writable_place_the_launcher_stops_in_one_line_naming_the_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(launcher, "FALLBACK_ROOT", blocked(tmp_path))
    hf_home = tmp_path / "a-file" / "hf"
    env = {"ENGINE": "tgi", "PORT": str(free_port()), "HOME": str(tmp_path), "HF_HOME": str(hf_home)}
    code = main(["--engine-port", str(free_port())], env=env)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"launcher: HF_HOME={hf_home} is not writable by uid {os.getuid()} (")
    assert "set HF_HOME to a writable folder" in err


def test_the_engine_gets_the_moved_folders(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, str] = {}

    def fake_run(config: Any, command: list[str], env: dict[str, str], *, engine_port: int) -> int:
        seen.update(env)
        return 0

    monkeypatch.setattr(launcher, "run", fake_run)
    monkeypatch.setattr(launcher, "FALLBACK_ROOT", tmp_path / "fallback")
    env = {
        "ENGINE": "vllm",
        "HOME": str(tmp_path),
        "HF_HOME": str(tmp_path / "a-file" / "hf"),
        "TMPDIR": str(tmp_path),
    }
    (tmp_path / "a-file").write_text("")
    assert main([], env=env) == 0
    assert seen["HF_HOME"] == str(tmp_path / "fallback" / "hf_home")
