"""Oracle's service-managed vLLM container (SMC): its image URI, its pinned tag and its environment contract.

A model deployment runs it with `image: dsmc://<container name>:<tag>` in an `OCIR_CONTAINER` environment,
without a digest (ADS `ads/aqua/constants.py` `SERVICE_MANAGED_CONTAINER_URI_SCHEME = "dsmc://"`; AQUA's
`_create_deployment` calls `with_image(...)` and never `with_image_digest`). The container's own start command
reads the environment below; we send no cmd or entrypoint, as AQUA does.

The contract (ADS `ads/aqua/modeldeployment/deployment.py`, the service's ListContainers entry of the family,
and oracle-samples `LLM/llama3.1-8B-deployment-vLLM-container.md`):
- `BASE_MODEL`: the object prefix of the model's files, without `oci://bucket@ns/` and without a trailing
  `/`; the deployed files are at `/opt/ds/model/deployed_model/<prefix>/`.
- `PARAMS`: the container's own flags (the `cmd` of its ListContainers entry) first, then the user's engine
  flags; the flags the container sets itself (`restrictedParams`) may not be given again.
- `MODEL_DEPLOY_PREDICT_ENDPOINT`: the engine route `/predict` is sent to (`/v1/completions` in the entry;
  AQUA's default for chat models is `/v1/chat/completions`).
- `MODEL_DEPLOY_ENABLE_STREAMING=true`: the samples set it (ADS's code does not; its test fixture of a
  service response shows it) and `/predictWithResponseStream` needs it.
- `PORT` / `HEALTH_CHECK_PORT` 8080, and server and health-check ports 8080 on the deployment.
No `MODEL_DEPLOY_HEALTH_ENDPOINT`: no source names the SMC's health route, and the entry carries none; the
container's default is its contract (our launcher's `/health` is a BYOC choice).

Pure Python, no Pulumi: settings, the ModelServing component, the policy pack and preflight share it.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from domain.container_env import DEPLOYED_MODEL_DIR

if TYPE_CHECKING:
    from domain.settings import ModelSettings

SCHEME = "dsmc://"
VLLM_FAMILY = "odsc-vllm-serving"
# The newest tag any public source names: oracle-samples/oci-data-science-ai-samples
# `compute-target/model-deployment/samples/sdk/config.example.json` (2026-06-29),
# `"container_image": "dsmc://odsc-vllm-serving:0.19.1.265"`. Tags are `<vLLM version>.<build>`.
# `llmstack preflight` asks ListContainers whether a newer one is marked `isLatest`.
DEFAULT_VLLM_TAG = "0.19.1.265"
DEFAULT_SERVICE_CONTAINER = f"{VLLM_FAMILY}:{DEFAULT_VLLM_TAG}"
SERVICE_CONTAINER_FORM = "<container name>:<tag>, e.g. " + DEFAULT_SERVICE_CONTAINER

# The ListContainers entry of the family (ADS tests/unitary/with_extras/aqua/test_deployment.py, a service
# response): its cmd, ports, predict route and the flags it sets itself.
CONTAINER_CMD = "--served-model-name odsc-llm --disable-custom-all-reduce --seed 42"
SERVED_MODEL_NAME = "odsc-llm"
PORT = 8080
CHAT_ENDPOINT = "/v1/chat/completions"
COMPLETIONS_ENDPOINT = "/v1/completions"
# ADS `VLLM_INFERENCE_RESTRICTED_PARAMS` and the entry's `restrictedParams`.
RESTRICTED_PARAMS = ("--port", "--host", "--served-model-name", "--seed")

# Oracle deprecated its TGI service container: oracle-samples
# `ai-quick-actions/guide_to_upgrade_models_following_tgi_deprecation.md`, ADS
# `skills/aqua-model-lifecycle/references/containers.md` ("TGI is deprecated in AQUA").
TGI_DEPRECATED = (
    "Oracle deprecated its TGI service container (odsc-tgi-serving); TGI needs a custom image "
    "(make image ENGINE=tgi), or use engine vllm on the service container"
)

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,126}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class InvalidServiceContainer(ValueError):
    """`str()` says what is accepted."""


@dataclass(frozen=True)
class ServiceContainer:
    name: str
    tag: str

    @property
    def image(self) -> str:
        return f"{SCHEME}{self.name}:{self.tag}"

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"


def parse_service_container(value: object) -> ServiceContainer:
    """`odsc-vllm-serving:0.19.1.265` or `dsmc://odsc-vllm-serving:0.19.1.265`; the tag is required and is
    never `latest` (an implicit upgrade would change what runs without a change to the stack)."""
    if not isinstance(value, str):
        raise InvalidServiceContainer(SERVICE_CONTAINER_FORM)
    text = value.removeprefix(SCHEME)
    name, sep, tag = text.partition(":")
    if not sep or not _NAME.match(name) or not _TAG.match(tag):
        raise InvalidServiceContainer(SERVICE_CONTAINER_FORM)
    if tag.lower() == "latest":
        raise InvalidServiceContainer(f"an explicit version, not latest: {SERVICE_CONTAINER_FORM}")
    return ServiceContainer(name=name, tag=tag)


def is_service_image(image: object) -> bool:
    return isinstance(image, str) and image.startswith(SCHEME)


def restricted_params(params: str) -> list[str]:
    """The user's flags that the container sets itself (`--port 9000` and `--port=9000` alike)."""
    try:
        words = shlex.split(params)
    except ValueError:
        words = params.split()
    flags = [w.split("=", 1)[0] for w in words if w.startswith("--")]
    return sorted({f for f in flags if f in RESTRICTED_PARAMS})


@dataclass(frozen=True, kw_only=True)
class ServiceSpec:
    """What the service container needs to know; plain data from settings."""

    base_model: str  # the object prefix of the model's files (by reference), without oci:// or a final /
    params: str = ""
    tensor_parallelism: int = 1
    max_model_len: int = 4096
    quantization: str = "none"
    chat: bool = True
    timeout_minutes: int = 60


def service_spec(model: ModelSettings, base_model: str) -> ServiceSpec:
    """What the service container is told, for a model whose files are under `base_model`."""
    s = model.serving
    return ServiceSpec(
        base_model=base_model,
        params=s.params,
        tensor_parallelism=s.tensor_parallelism or 1,
        max_model_len=s.max_model_len,
        quantization=s.quantization,
        timeout_minutes=model.readiness.timeout_minutes,
    )


def engine_flags(spec: ServiceSpec) -> str:
    """The settings that are engine flags here (the launcher turns them into flags for BYOC)."""
    flags = [f"--max-model-len {spec.max_model_len}"]
    if spec.tensor_parallelism > 1:
        flags.append(f"--tensor-parallel-size {spec.tensor_parallelism}")
    if spec.quantization != "none":
        flags.append(f"--quantization {spec.quantization}")
    return " ".join(flags)


def service_env(spec: ServiceSpec) -> dict[str, str]:
    """Environment variables for the vLLM service container, in a stable order."""
    params = " ".join(p for p in (CONTAINER_CMD, engine_flags(spec), spec.params.strip()) if p)
    return {
        "BASE_MODEL": spec.base_model.strip("/"),
        "PARAMS": params,
        "MODEL_DEPLOY_PREDICT_ENDPOINT": CHAT_ENDPOINT if spec.chat else COMPLETIONS_ENDPOINT,
        "MODEL_DEPLOY_ENABLE_STREAMING": "true",
        "PORT": str(PORT),
        "HEALTH_CHECK_PORT": str(PORT),
        "DEPLOYMENT_TIMEOUT_IN_MINUTES": str(spec.timeout_minutes),
    }


def deployed_path(prefix: str) -> str:
    """Where the deployed container finds a model registered by reference under `prefix`."""
    return f"{DEPLOYED_MODEL_DIR}/{prefix.strip('/')}"
