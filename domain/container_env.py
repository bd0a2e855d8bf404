"""The environment a serving container receives: one contract between the deployment and the launcher.

Pure Python (no Pulumi imports) so that settings validation, the ModelDeployment component and the
launcher's contract test all use the same function. OCI's limits: every key is letters, digits and `_`,
starts with a letter and is shorter than 32 characters; all variables together stay under 2048 bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from domain.ids import Engine

if TYPE_CHECKING:
    from domain.settings import ModelSettings

Method = Literal["offline", "online"]

DEPLOYED_MODEL_DIR = "/opt/ds/model/deployed_model"
TOKEN_FILE = f"{DEPLOYED_MODEL_DIR}/token"
DEFAULT_PORT = 8080
# The weight formats each engine serves (the launcher turns them into its flags: QUANTIZATION_FLAG_VALUE).
ENGINE_QUANTIZATIONS = {"vllm": ("none", "fp8", "awq", "gptq"), "tgi": ("none", "fp8", "int8", "awq", "gptq")}
# SDK `OcirModelDeploymentEnvironmentConfigurationDetails.server_port`: "The port can be anything between
# `1024` and `65535`. The following ports cannot be used `24224`, `8446`, `8447`."
RESERVED_PORTS = frozenset({24224, 8446, 8447})
ENV_LIMIT_BYTES = 2048
ONLINE_STORAGE_GB = 950
# Tensor-parallel engines share tensors through /dev/shm; Oracle's samples give the container `SHM_SIZE`
# (`10g`, oracle-samples LLM/deploy-llama3.1.md and deploy-openai-llm-byoc.md, tensor parallelism 8). Not in
# Oracle's docs; set whenever more than one GPU is used, counted in the 2048-byte budget like any variable.
TENSOR_PARALLEL_SHM = "10g"

# Routes OCI calls on the container when not told otherwise.
OCI_DEFAULT_PREDICT = "/predict"
OCI_DEFAULT_HEALTH = "/health"
# The launcher's adapter fronts both engines and serves /predict and /generate alike (streaming included);
# TGI keeps /generate, the route the samples use.
PREDICT_ENDPOINT: dict[Engine, str] = {"vllm": OCI_DEFAULT_PREDICT, "tgi": "/generate"}

# OCI's OpenAI routing ("Multiple Inference Endpoints"), set on every deployment. Sources:
# pulumi-oci 5.5.0 `...EnvironmentConfigurationDetailsArgs.predict_api_specification` ("if the value is
# 'openai', the user can access OpenAI-compliant endpoints like /v1/completions, /v1/chat/completions,
# /v1/models"); oracle-samples/oci-data-science-ai-samples model-deployment/multiple_inference_endpoints:
# `.../<ocid>/predict/<suffix>` and `.../predictWithResponseStream/<suffix>` reach the container as `<suffix>`
# ("Router strips /predict"), only suffixes on the framework's allow-list or in `customHttpEndpoints` are
# routed (up to 15; methods GET, POST, PUT, DELETE; `{}` is a one-segment wildcard).
PREDICT_API_SPECIFICATION = "openai"
MAX_CUSTOM_HTTP_ENDPOINTS = 15
CUSTOM_HTTP_METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})
# The routes of `openai`'s allow-list (supported_endpoints/frameworks/openai/README.md) that the engines'
# own OpenAI servers answer (vLLM and TGI alike); `/health` is not on it: OCI polls it itself.
OPENAI_ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/models")
OPENAI_ALLOW_LIST = frozenset(
    {
        *OPENAI_ROUTES,
        "/v1/embeddings",
        "/v1/responses",
        "/tokenize",
        "/detokenize",
        "/version",
        "/metrics",
        "/generate",
        "/generate_stream",
        "/info",
        "/invocations",
    }
)
# Whether a bare `.../predict` still reaches MODEL_DEPLOY_PREDICT_ENDPOINT once the specification is set
# is documented nowhere (the samples are silent; research note issue 16 §2a), so the legacy payload's
# route is put on the allow-list too: `.../predict/predict` then reaches it for certain, and `/predict`
# is also the route the `route: /v1/...` header form arrives on (AQUA's model-deployment-tips.md).
CUSTOM_HTTP_ENDPOINTS: tuple[tuple[str, tuple[str, ...]], ...] = ((OCI_DEFAULT_PREDICT, ("POST",)),)

_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,30}$")


@dataclass(frozen=True, kw_only=True)
class ContainerSpec:
    """What the serving container needs to know; every field is plain data from settings."""

    engine: Engine
    method: Method
    model: str  # Hugging Face id (online) or ignored (offline: the deployed-model folder)
    # Offline: where the files are. A model by reference is under its prefix there (service_container.py).
    model_dir: str = DEPLOYED_MODEL_DIR
    port: int = DEFAULT_PORT
    tensor_parallelism: int = 1
    max_model_len: int = 4096
    quantization: str = "none"
    params: str = ""
    timeout_minutes: int = 60
    token_secret_id: str | None = None  # OCI Vault secret holding the HF token (online, instead of the file)
    token_in_artifact: bool = True  # online, no Vault secret: False for a public model (no token given)


def container_spec(
    model: ModelSettings, token_secret_id: str | None = None, token_in_artifact: bool = True
) -> ContainerSpec:
    """What a custom serving image is told about a deployed model of the stack's settings."""
    s = model.serving
    return ContainerSpec(
        engine=s.engine,
        method=model.source.method,
        model=model.source.huggingface or "",
        port=s.port,
        tensor_parallelism=s.tensor_parallelism or 1,
        max_model_len=s.max_model_len,
        quantization=s.quantization,
        params=s.params,
        timeout_minutes=model.readiness.timeout_minutes,
        token_secret_id=token_secret_id,
        token_in_artifact=token_in_artifact,
    )


def container_env(spec: ContainerSpec) -> dict[str, str]:
    """Environment variables for the BYOC container, in a stable order.

    The Hugging Face token is never a value here: online deployments get the path of the token file
    that the catalog model's artifact carries, or the OCID of a Vault secret the container reads with
    its resource principal.
    """
    env: dict[str, str] = {
        "ENGINE": spec.engine,
        "MODEL": spec.model if spec.method == "online" else spec.model_dir,
        "PORT": str(spec.port),
        "TENSOR_PARALLELISM": str(spec.tensor_parallelism),
        "MAX_MODEL_LEN": str(spec.max_model_len),
    }
    if spec.tensor_parallelism > 1:
        env["SHM_SIZE"] = TENSOR_PARALLEL_SHM
    if spec.quantization != "none":
        env["QUANTIZATION"] = spec.quantization
    if spec.params:
        env["PARAMS"] = spec.params
    if spec.method == "online":
        if spec.token_secret_id:
            env["TOKEN_SECRET_ID"] = spec.token_secret_id
        elif spec.token_in_artifact:
            env["TOKEN_FILE"] = TOKEN_FILE
        env["STORAGE_SIZE_IN_GB"] = str(ONLINE_STORAGE_GB)
    if PREDICT_ENDPOINT[spec.engine] != OCI_DEFAULT_PREDICT:
        env["MODEL_DEPLOY_PREDICT_ENDPOINT"] = PREDICT_ENDPOINT[spec.engine]
    env["MODEL_DEPLOY_HEALTH_ENDPOINT"] = OCI_DEFAULT_HEALTH
    env["MODEL_DEPLOY_ENABLE_STREAMING"] = "true"
    env["DEPLOYMENT_TIMEOUT_IN_MINUTES"] = str(spec.timeout_minutes)
    return env


def env_size_bytes(env: dict[str, str]) -> int:
    """Bytes the variables take as OCI counts them (key and value, UTF-8)."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in env.items())


def env_problems(env: dict[str, str]) -> list[str]:
    """Reasons OCI would refuse this environment; empty when it is acceptable."""
    problems = [
        f"variable name {key!r} must start with a letter, hold only letters, digits and '_' "
        f"and be shorter than 32 characters"
        for key in env
        if not _KEY.match(key)
    ]
    size = env_size_bytes(env)
    if size >= ENV_LIMIT_BYTES:
        problems.append(f"the container environment takes {size} bytes; OCI accepts under {ENV_LIMIT_BYTES}")
    return problems
