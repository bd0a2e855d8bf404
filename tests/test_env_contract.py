"""One contract between the ModelDeployment component and the launcher.

For every engine x method (x token file / Vault secret / no token): the keys `container_env` sets are
exactly the keys the launcher reads from that environment plus the keys the OCI service reads, the two
sets do not overlap, and the launcher accepts what the component sets.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from domain import container_env as contract
from domain.container_env import ContainerSpec, container_env
from domain.ids import ENGINES
from serving import launcher


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers every key looked up, present or not."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return self.values.get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return key in self.values

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the launcher must look keys up one by one, not scan the environment")

    def __len__(self) -> int:
        return len(self.values)


QUANTIZED = {"vllm": "awq", "tgi": "int8"}
TOKEN_SOURCES = {"offline": ("none",), "online": ("file", "vault", "none")}
CASES = [
    pytest.param(
        engine, method, token, tuned, id=f"{engine}-{method}-token-{token}{'-tuned' if tuned else ''}"
    )
    for engine in ENGINES
    for method in ("offline", "online")
    for token in TOKEN_SOURCES[method]
    for tuned in (False, True)
]


def spec(engine: str, method: str, token: str, tuned: bool) -> ContainerSpec:
    tuned_params = "--served-model-name odsc-llm" if engine == "vllm" else "--max-batch-prefill-tokens 2048"
    return ContainerSpec(
        engine=engine,  # type: ignore[arg-type]
        method=method,  # type: ignore[arg-type]
        model="meta-llama/Llama-2-7b-chat-hf",
        tensor_parallelism=2 if tuned else 1,
        quantization=QUANTIZED[engine] if tuned else "none",
        params=tuned_params if tuned else "",
        token_secret_id="ocid1.vaultsecret.oc1.iad.amaaaaaaexampleaaaaaaa" if token == "vault" else None,
        token_in_artifact=token == "file",
    )


@pytest.mark.parametrize(("engine", "method", "token", "tuned"), CASES)
def test_component_keys_are_launcher_keys_plus_service_keys(
    engine: str, method: str, token: str, tuned: bool
) -> None:
    env = container_env(spec(engine, method, token, tuned))
    recording = RecordingEnv(env)
    config = launcher.read_config(recording)
    launcher.engine_command(
        config, launcher.DEFAULT_ENGINE_PORT
    )  # the launcher accepts what the component set

    component = set(env)
    launcher_reads = recording.read & component
    service_reads = component & launcher.SERVICE_KEYS
    assert component == launcher_reads | service_reads
    assert not launcher_reads & service_reads
    assert recording.read <= launcher.LAUNCHER_KEYS  # nothing read that the contract does not name
    assert not recording.read & launcher.SERVICE_KEYS


@pytest.mark.parametrize(("engine", "method", "token", "tuned"), CASES)
def test_what_the_launcher_reads_tracks_the_case(engine: str, method: str, token: str, tuned: bool) -> None:
    env = container_env(spec(engine, method, token, tuned))
    launcher_keys = set(env) - launcher.SERVICE_KEYS
    expected = {"ENGINE", "MODEL", "PORT", "TENSOR_PARALLELISM", "MAX_MODEL_LEN"}
    if tuned:
        expected |= {"QUANTIZATION", "PARAMS"}
    if token != "none":
        expected.add("TOKEN_SECRET_ID" if token == "vault" else "TOKEN_FILE")
    assert launcher_keys == expected
    service_keys = set(env) & launcher.SERVICE_KEYS
    assert service_keys >= {
        "MODEL_DEPLOY_HEALTH_ENDPOINT",
        "MODEL_DEPLOY_ENABLE_STREAMING",
        "DEPLOYMENT_TIMEOUT_IN_MINUTES",
    }
    assert ("STORAGE_SIZE_IN_GB" in service_keys) == (method == "online")
    assert ("SHM_SIZE" in service_keys) == (env["TENSOR_PARALLELISM"] != "1")


@pytest.mark.parametrize(("engine", "method", "token", "tuned"), CASES)
def test_the_launcher_builds_what_the_component_asked_for(
    engine: str, method: str, token: str, tuned: bool
) -> None:
    env = container_env(spec(engine, method, token, tuned))
    config = launcher.read_config(env)
    assert config.engine == engine
    assert config.port == int(env["PORT"])
    assert config.model == (
        contract.DEPLOYED_MODEL_DIR if method == "offline" else "meta-llama/Llama-2-7b-chat-hf"
    )
    assert config.token_file == env.get("TOKEN_FILE")
    assert config.token_secret_id == env.get("TOKEN_SECRET_ID")
    command = launcher.engine_command(config, launcher.DEFAULT_ENGINE_PORT)
    assert env["TENSOR_PARALLELISM"] in command and env["MAX_MODEL_LEN"] in command


def test_the_launcher_shares_the_contracts_constants() -> None:
    assert launcher.DEPLOYED_MODEL_DIR == contract.DEPLOYED_MODEL_DIR
    assert f"{launcher.DEPLOYED_MODEL_DIR}/token" == contract.TOKEN_FILE
    assert launcher.DEFAULT_PORT == contract.DEFAULT_PORT
    assert launcher.RESERVED_PORTS == contract.RESERVED_PORTS
    assert launcher.ENGINES is ENGINES


def test_the_routes_oci_is_told_to_call_are_served_by_the_adapter() -> None:
    from serving.adapter import HEALTH_ROUTE, PREDICT_ROUTES

    assert contract.OCI_DEFAULT_HEALTH == HEALTH_ROUTE
    for engine in ENGINES:
        assert contract.PREDICT_ENDPOINT[engine] in PREDICT_ROUTES


def test_the_launcher_serves_every_quantization_the_settings_accept_and_no_other() -> None:
    from domain.container_env import ENGINE_QUANTIZATIONS

    for engine in ENGINES:
        accepted = set(ENGINE_QUANTIZATIONS[engine]) - {"none"}
        assert set(launcher.QUANTIZATION_FLAG_VALUE[engine]) == accepted


def test_a_public_online_model_starts_without_a_token_and_with_the_hub_reachable() -> None:
    env = container_env(spec("vllm", "online", "none", tuned=False))
    config = launcher.read_config(env)
    assert launcher.read_token(config) is None
    engine_env = launcher.engine_env(config, {}, None)
    assert not {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"} & engine_env.keys()
