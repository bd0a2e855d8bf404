"""The serving image's entrypoint: the deployment's environment in, the engine's command line out.

One launcher for both images; `ENGINE` (set by each Dockerfile) picks vLLM or TGI. It reads the keys that
`domain.container_env` sets and builds the engine's command line. vLLM then serves `PORT` itself: OCI's
extra routes (the legacy payload, the `route` header form) are answered inside vLLM's own process by the
`serving.vllm_routes` middleware (`--middleware`), so nothing of ours sits between OCI and the engine.
TGI's router has no such hook: TGI runs on a loopback port and `serving.adapter` serves `PORT` in front of
it (the OpenAI routes passed through unchanged). The Hugging Face token reaches the engine
only through its environment (`HF_TOKEN`, `HUGGING_FACE_HUB_TOKEN`): never argv, never a log line.
Signals are forwarded to the engine, and the launcher exits with the engine's exit code.

Plain Python on purpose: it runs inside the engines' images, next to their own Python packages, so it
imports neither an engine nor Pulumi; the `oci` SDK is imported only to read a Vault secret. The adapter's
server (uvicorn, starlette, httpx) comes from the image: the TGI image vendors it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from domain.container_env import DEFAULT_PORT, DEPLOYED_MODEL_DIR, RESERVED_PORTS
from domain.ids import ENGINES, Engine, is_hf_id, is_ocid
from serving.vllm_routes import SERVED_MODEL_ENV, OciRoutes

DEFAULT_ENGINE_PORT = 8000
DEFAULT_MAX_MODEL_LEN = 4096
# Where the images put the launcher's code (on PYTHONPATH) and the oci SDK it alone uses (vendor/).
CODE_ROOT = Path(__file__).resolve().parent.parent
VENDOR_DIR = CODE_ROOT / "vendor"
# What vLLM's `--middleware` imports in vLLM's own process (OCI's extra routes, serving.vllm_routes).
VLLM_MIDDLEWARE = f"{OciRoutes.__module__}.{OciRoutes.__qualname__}"

# The keys of the deployment contract the launcher reads (domain.container_env sets them).
LAUNCHER_KEYS = frozenset(
    {
        "ENGINE",
        "MODEL",
        "PORT",
        "TENSOR_PARALLELISM",
        "MAX_MODEL_LEN",
        "QUANTIZATION",
        "PARAMS",
        "TOKEN_FILE",
        "TOKEN_SECRET_ID",
        "LORA_ADAPTERS_DIR",
    }
)
# Keys the OCI service itself reads; the launcher leaves them alone.
SERVICE_KEYS = frozenset(
    {
        "STORAGE_SIZE_IN_GB",
        "MODEL_DEPLOY_PREDICT_ENDPOINT",
        "MODEL_DEPLOY_HEALTH_ENDPOINT",
        "MODEL_DEPLOY_ENABLE_STREAMING",
        "DEPLOYMENT_TIMEOUT_IN_MINUTES",
        "SHM_SIZE",  # the container's /dev/shm, for tensor parallelism (domain/container_env.py)
    }
)
TOKEN_ENV_NAMES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
FORWARDED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)

# The settings' quantization names, as each engine spells them ("int8" is bitsandbytes 8-bit, TGI only).
QUANTIZATION_FLAG_VALUE: dict[Engine, dict[str, str]] = {
    "vllm": {"fp8": "fp8", "awq": "awq", "gptq": "gptq"},
    "tgi": {"fp8": "fp8", "int8": "bitsandbytes", "awq": "awq", "gptq": "gptq"},
}


@dataclass(frozen=True)
class EngineFlags:
    """How one engine spells what the contract carries; `owned` flags only the launcher may set."""

    program: tuple[str, ...]
    model: str | None  # None: the model is the first positional argument
    host: str
    port: str
    tensor_parallelism: tuple[str, ...]
    max_len: tuple[str, ...]  # flags derived from MAX_MODEL_LEN; PARAMS naming any of them replaces all
    quantization: tuple[str, ...]
    owned: tuple[str, ...]


ENGINE_FLAGS: dict[Engine, EngineFlags] = {
    "vllm": EngineFlags(
        program=("vllm", "serve"),
        model=None,
        host="--host",
        port="--port",
        tensor_parallelism=("--tensor-parallel-size", "-tp"),
        max_len=("--max-model-len",),
        quantization=("--quantization", "-q"),
        owned=("--host", "--port", "--model"),
    ),
    "tgi": EngineFlags(
        program=("text-generation-launcher",),
        model="--model-id",
        host="--hostname",
        port="--port",
        tensor_parallelism=("--num-shard",),
        max_len=("--max-total-tokens", "--max-input-tokens", "--max-input-length"),
        quantization=("--quantize",),
        owned=("--hostname", "--port", "--model-id"),
    ),
}

# Where a path the engine writes moves when the image's own is not writable (for example storage mounted
# by root over /home/datascience): the launcher runs as uid 1000, and /tmp is writable by anyone.
FALLBACK_ROOT = Path("/tmp/llmstack")

SECRET_ACCEPTED = "accepted: a Vault secret whose current version is the Hugging Face token as text"


class LaunchError(Exception):
    """A bad value in the container's environment: printed as one line, exit code 2."""


@dataclass(frozen=True, kw_only=True)
class LaunchConfig:
    engine: Engine
    model: str
    port: int
    tensor_parallelism: int
    max_model_len: int
    quantization: str | None  # the engine's own spelling, or None
    params: tuple[str, ...]
    token_file: str | None
    token_secret_id: str | None
    lora_dir: str | None = None  # a model group deployment: its adapters are found here at start

    @property
    def local_model(self) -> bool:
        return self.model.startswith("/")


def read_config(env: Mapping[str, str]) -> LaunchConfig:
    """The launch settings from the container's environment; a bad value is a one-line LaunchError."""
    engine = _value(env, "ENGINE")
    if engine is None:
        raise LaunchError(f"ENGINE is not set; accepted: {', '.join(ENGINES)} (each image sets it)")
    if engine not in ENGINES:
        raise LaunchError(f"ENGINE={engine!r} is not an engine; accepted: {', '.join(ENGINES)}")
    chosen: Engine = engine

    model = _value(env, "MODEL") or DEPLOYED_MODEL_DIR
    if not model.startswith("/") and not is_hf_id(model):
        raise LaunchError(
            f"MODEL={model!r} is neither a folder in the container nor a Hugging Face id; "
            f"accepted: an absolute path such as {DEPLOYED_MODEL_DIR} "
            f"or an id such as meta-llama/Llama-2-7b-chat-hf"
        )

    port = _whole(env, "PORT", DEFAULT_PORT, minimum=1024, accepted="a port from 1024 to 65535")
    if port > 65535 or port in RESERVED_PORTS:
        reserved = ", ".join(map(str, sorted(RESERVED_PORTS)))
        raise LaunchError(f"PORT={port} cannot be used; accepted: 1024 to 65535 except {reserved}")
    tensor_parallelism = _whole(
        env,
        "TENSOR_PARALLELISM",
        1,
        minimum=1,
        accepted="a whole number of GPUs, at least 1 (such as 1, 2, 4)",
    )
    max_model_len = _whole(
        env,
        "MAX_MODEL_LEN",
        DEFAULT_MAX_MODEL_LEN,
        minimum=2,
        accepted="a whole number of tokens, at least 2",
    )

    quantization = _value(env, "QUANTIZATION")
    flag_value: str | None = None
    if quantization is not None and quantization != "none":
        table = QUANTIZATION_FLAG_VALUE[chosen]
        if quantization not in table:
            raise LaunchError(
                f"QUANTIZATION={quantization!r} is not served by {chosen}; accepted: none, {', '.join(table)}"
            )
        flag_value = table[quantization]

    raw_params = _value(env, "PARAMS") or ""
    try:
        params = tuple(shlex.split(raw_params))
    except ValueError as exc:
        raise LaunchError(f"PARAMS={raw_params!r} is not a shell-like list of flags: {exc}") from None
    for flag in ENGINE_FLAGS[chosen].owned:
        if _names_flag(params, flag):
            raise LaunchError(
                f"PARAMS sets {flag}, which the launcher controls; accepted: other {chosen} flags "
                f"(the model comes from MODEL, the port from PORT)"
            )

    token_file = _value(env, "TOKEN_FILE")
    token_secret_id = _value(env, "TOKEN_SECRET_ID")
    if token_file is not None and token_secret_id is not None:
        raise LaunchError(
            "TOKEN_FILE and TOKEN_SECRET_ID are both set; accepted: one of them, or neither (offline)"
        )
    if token_secret_id is not None and not is_ocid(token_secret_id, ("vaultsecret",)):
        raise LaunchError(
            f"TOKEN_SECRET_ID={token_secret_id!r} is not a Vault secret OCID; "
            f"accepted: ocid1.vaultsecret.oc1.<region>.<id>"
        )

    return LaunchConfig(
        engine=chosen,
        model=model,
        port=port,
        tensor_parallelism=tensor_parallelism,
        max_model_len=max_model_len,
        quantization=flag_value,
        params=params,
        token_file=token_file,
        token_secret_id=token_secret_id,
        lora_dir=_value(env, "LORA_ADAPTERS_DIR"),
    )


def lora_modules(folder: Path) -> list[str]:
    """`name=path` for each adapter a model group deployment unpacked under `folder` (one folder per member
    model): a folder with `adapter_config.json`, named by the `adapterName` its fine-tune wrote into
    `finetune.json`. The adapters' names and OCIDs stay out of the environment, so a changed adapter changes
    the model group alone, not the deployment."""
    found: list[str] = []
    for member in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        if not (member / "adapter_config.json").is_file():
            continue
        try:
            name = json.loads((member / "finetune.json").read_text(encoding="utf-8")).get("adapterName")
        except (OSError, ValueError):
            name = None
        if isinstance(name, str) and name:
            found.append(f"{name}={member}")
        else:
            _log(f"adapter folder {member} has no adapterName in finetune.json; not served")
    return found


def engine_command(config: LaunchConfig, engine_port: int) -> list[str]:
    """The engine's argv. A flag in PARAMS replaces the one the launcher would derive from another key.

    vLLM listens on PORT itself, with OCI's extra routes as its middleware; TGI listens on `engine_port`
    on the loopback interface, behind the adapter.
    """
    flags = ENGINE_FLAGS[config.engine]
    command = list(flags.program)
    command += [flags.model, config.model] if flags.model else [config.model]
    if config.engine == "vllm":
        command += [flags.host, "0.0.0.0", flags.port, str(config.port), "--middleware", VLLM_MIDDLEWARE]
    else:
        command += [flags.host, "127.0.0.1", flags.port, str(engine_port)]
    derived: list[tuple[tuple[str, ...], list[str]]] = [
        (flags.tensor_parallelism, [flags.tensor_parallelism[0], str(config.tensor_parallelism)])
    ]
    if config.engine == "vllm":
        derived.append((flags.max_len, ["--max-model-len", str(config.max_model_len)]))
    else:
        # TGI splits the context into prompt and total; the prompt may take all but one token.
        derived.append(
            (
                flags.max_len,
                [
                    "--max-input-tokens",
                    str(config.max_model_len - 1),
                    "--max-total-tokens",
                    str(config.max_model_len),
                ],
            )
        )
    if config.quantization:
        derived.append((flags.quantization, [flags.quantization[0], config.quantization]))
    for names, args in derived:
        if not any(_names_flag(config.params, name) for name in names):
            command += args
    modules = lora_modules(Path(config.lora_dir)) if config.lora_dir else []
    return command + list(config.params) + (["--lora-modules", *modules] if modules else [])


def served_model_name(config: LaunchConfig) -> str:
    """The name vLLM answers to: the first `--served-model-name` in PARAMS, else MODEL."""
    params = list(config.params)
    for index, arg in enumerate(params):
        name = arg.split("=", 1)[0].replace("_", "-")
        if name == "--served-model-name":
            if "=" in arg:
                return arg.split("=", 1)[1]
            if index + 1 < len(params):
                return params[index + 1]
    return config.model


def read_token(config: LaunchConfig, *, fetch_secret: Callable[[str], str] | None = None) -> str | None:
    """The Hugging Face token from the token file or the Vault secret; None when neither is set."""
    if config.token_file is not None:
        return read_token_file(config.token_file)
    if config.token_secret_id is not None:
        token = (fetch_secret or read_vault_secret)(config.token_secret_id).strip()
        if not token:
            raise LaunchError(
                f"TOKEN_SECRET_ID={config.token_secret_id!r} names an empty secret; {SECRET_ACCEPTED}"
            )
        return token
    return None


def read_token_file(path: str) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise LaunchError(
            f"TOKEN_FILE={path!r} cannot be read ({reason}); accepted: a readable file holding the "
            f"Hugging Face token (the online artifact carries it at {DEPLOYED_MODEL_DIR}/token)"
        ) from None
    if not token:
        raise LaunchError(f"TOKEN_FILE={path!r} is empty; accepted: a file holding the Hugging Face token")
    return token


def read_vault_secret(secret_id: str, *, client: Any | None = None) -> str:
    """The secret's current text, read with the deployment's resource principal.

    `client` stands in for the secrets client (tests point a real one at a loopback service).
    """
    if VENDOR_DIR.is_dir() and str(VENDOR_DIR) not in sys.path:
        sys.path.insert(0, str(VENDOR_DIR))
    try:
        import oci
    except ImportError:
        raise LaunchError(
            "TOKEN_SECRET_ID is set but the oci SDK is not installed in this image; accepted: TOKEN_FILE"
        ) from None
    if client is None:
        client = _secrets_client(oci)
    try:
        bundle = client.get_secret_bundle(secret_id=secret_id, stage="CURRENT").data
    except oci.exceptions.ServiceError as exc:
        hint = (
            "; the deployment's dynamic group needs 'read secret-bundles' on it"
            if exc.status in (401, 403, 404)
            else ""
        )
        raise LaunchError(
            f"TOKEN_SECRET_ID={secret_id!r} cannot be read: {exc.status} {exc.code}{hint}"
        ) from None
    except (oci.exceptions.RequestException, oci.exceptions.ConnectTimeout, ConnectionError) as exc:
        raise LaunchError(
            f"TOKEN_SECRET_ID={secret_id!r} cannot be read: the Vault secrets service is unreachable "
            f"({type(exc).__name__})"
        ) from None
    content = bundle.secret_bundle_content
    if getattr(content, "content_type", None) != "BASE64" or not isinstance(content.content, str):
        raise LaunchError(f"TOKEN_SECRET_ID={secret_id!r} holds no text content; {SECRET_ACCEPTED}")
    try:
        return base64.b64decode(content.content, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise LaunchError(
            f"TOKEN_SECRET_ID={secret_id!r} does not hold UTF-8 text; {SECRET_ACCEPTED}"
        ) from None


def _secrets_client(oci: Any) -> Any:
    try:
        signer = oci.auth.signers.get_resource_principals_signer()
    except Exception as exc:
        raise LaunchError(
            f"TOKEN_SECRET_ID is set but the resource principal is unavailable ({type(exc).__name__}); "
            f"accepted: a model deployment in OCI, or TOKEN_FILE elsewhere"
        ) from None
    try:
        from oci_runtime.retry import oci_retry_strategy

        retry_strategy = oci_retry_strategy()
    except ImportError:  # pragma: no cover - the images copy oci_runtime/retry.py next to the launcher
        retry_strategy = oci.retry.DEFAULT_RETRY_STRATEGY
    # No circuit breaker: the SDK's default one is shared by every client in the process and, after 10
    # answers of 429/5xx in a row (retries included), refuses every call for 30 s with an error that is
    # neither a ServiceError nor retried. The bounded retry above is the policy.
    return oci.secrets.SecretsClient(
        {"region": signer.region},
        signer=signer,
        retry_strategy=retry_strategy,
        circuit_breaker_strategy=oci.circuit_breaker.NoCircuitBreakerStrategy(),
    )


def engine_env(config: LaunchConfig, base: Mapping[str, str], token: str | None) -> dict[str, str]:
    """The engine's environment: the container's, plus the token under the names the Hub client reads.

    The engine runs on its image's packages: the launcher's own code root leaves PYTHONPATH (the `vendor/`
    folder beneath it, the oci SDK and its pinned dependencies, is never on it). vLLM is the one exception,
    and for one import: its `--middleware serving.vllm_routes.OciRoutes` is imported by vLLM's process, so
    the code root goes back, after the container's other entries. What vLLM imports from it is that module
    and `serving.legacy`, the standard library alone (tests/test_distribution.py holds them to it); the
    launcher's other modules lie beside them and nothing in vLLM imports them. vLLM also learns the name it
    answers to, for the legacy payload's completions call (`LLMSTACK_SERVED_MODEL`).
    """
    env = dict(base)
    kept = [
        part
        for part in env.pop("PYTHONPATH", "").split(os.pathsep)
        if part and Path(part).resolve() != CODE_ROOT
    ]
    if config.engine == "vllm":
        kept.append(str(CODE_ROOT))
        env[SERVED_MODEL_ENV] = served_model_name(config)
    if kept:
        env["PYTHONPATH"] = os.pathsep.join(kept)
    if token is not None:
        for name in TOKEN_ENV_NAMES:
            env[name] = token
    elif config.local_model:
        # A model from the artifact needs no Hub: fail fast instead of waiting on a network that is absent.
        env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def written_paths(engine: Engine, env: Mapping[str, str]) -> list[tuple[str, Path]]:
    """Each folder the engine writes, as (the variable that moves it, where it is now)."""
    home = Path(_value(env, "HOME") or Path.home())
    cache = Path(_value(env, "XDG_CACHE_HOME") or home / ".cache")
    paths = [("HF_HOME", Path(_value(env, "HF_HOME") or cache / "huggingface"))]
    paths += [
        (key, Path(value)) for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE") if (value := _value(env, key))
    ]
    if engine == "vllm":
        paths.append(("VLLM_CACHE_ROOT", Path(_value(env, "VLLM_CACHE_ROOT") or cache / "vllm")))
        paths.append(
            ("TRITON_CACHE_DIR", Path(_value(env, "TRITON_CACHE_DIR") or home / ".triton" / "cache"))
        )
    paths.append(("TMPDIR", Path(_value(env, "TMPDIR") or "/tmp")))
    return paths


def writable_paths(
    engine: Engine, env: Mapping[str, str], *, fallback_root: Path | None = None
) -> tuple[dict[str, str], list[str]]:
    """Check at start that every folder the engine writes is writable; move the ones that are not under
    `fallback_root`. Returns the variables to set and one line per move; a LaunchError naming the path
    when the fallback is not writable either."""
    moved: dict[str, str] = {}
    said: list[str] = []
    for key, path in written_paths(engine, env):
        why = _not_writable(path)
        if why is None:
            continue
        fallback = (fallback_root or FALLBACK_ROOT) / key.lower()
        if (why_not := _not_writable(fallback)) is not None:
            raise LaunchError(
                f"{key}={path} is not writable by uid {os.getuid()} ({why}), nor is {fallback} ({why_not}); "
                f"mount writable storage there or set {key} to a writable folder"
            )
        moved[key] = str(fallback)
        said.append(f"{key}={path} is not writable by uid {os.getuid()} ({why}); using {fallback}")
    return moved, said


def _not_writable(path: Path) -> str | None:
    """None when a file can be created in `path` (made if missing), else why not, with the owner."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".llmstack-probe-"):
            pass
    except OSError as exc:
        nearest = path
        while not nearest.exists() and nearest != nearest.parent:
            nearest = nearest.parent
        try:
            info = nearest.stat()
            owner = f"; {nearest} is owned by uid {info.st_uid}, mode {info.st_mode & 0o7777:o}"
        except OSError:
            owner = ""
        return f"{exc.strerror or exc}{owner}"
    return None


def run(config: LaunchConfig, command: list[str], env: dict[str, str], *, engine_port: int) -> int:
    """Run the engine, forward signals; the engine's exit code. vLLM serves PORT itself (OCI's extra routes
    in its own process); for TGI the adapter serves PORT in front of the engine on `engine_port`."""
    adapter: Any = None
    server: Any = None
    if config.engine == "vllm":
        _check_port(config.port)  # vLLM would find out only after loading the model
    else:
        if VENDOR_DIR.is_dir() and str(VENDOR_DIR) not in sys.path:
            sys.path.append(str(VENDOR_DIR))  # after the image's own packages: those win where both have one
        from serving.adapter import Adapter, AdapterConfig

        adapter = Adapter(
            AdapterConfig(
                engine=config.engine,
                engine_url=f"http://127.0.0.1:{engine_port}",
                served_model=served_model_name(config),
            )
        )
        try:
            server = adapter.bind("0.0.0.0", config.port)
        except OSError as exc:
            raise LaunchError(f"PORT={config.port} cannot be served ({exc.strerror or exc})") from None

    # The handlers go in before the engine starts: a signal in between must neither kill the launcher
    # (orphaning the engine) nor be lost.
    started: list[subprocess.Popen[bytes]] = []
    early: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        if not started:
            early.append(signum)
        elif started[0].poll() is None:
            started[0].send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        if early:
            _log(f"signal {early[0]} before {config.engine} started; not starting it")
            if server is not None:
                server.stop()
            return 128 + early[0]
        _log(f"starting {config.engine}: {shlex.join(command)}")
        try:
            # Its own process group: a Ctrl-C in a terminal reaches the engine once, through the launcher.
            process = subprocess.Popen(command, env=env, process_group=0)
        except OSError as exc:
            if server is not None:
                server.stop()
            raise LaunchError(
                f"ENGINE={config.engine!r}: cannot start {command[0]!r} ({exc.strerror or exc})"
            ) from None
        started.append(process)
        for signum in early:  # arrived while Popen ran
            process.send_signal(signum)
        if server is None:
            _log(
                f"vllm serves /health, its /v1/* and, through {VLLM_MIDDLEWARE}, /predict (legacy payload, "
                f"route header) on port {config.port} itself, once the model is loaded"
            )
            code = process.wait()
        else:
            adapter.engine_alive = lambda: process.poll() is None
            server.start()
            _log(
                f"serving /health, /predict (legacy payload, route header) and the engine's /v1/* "
                f"on port {config.port}"
            )
            try:
                code = process.wait()
            finally:
                lingering = server.stop()
                if lingering:
                    _log(f"{lingering} requests were still open when the adapter stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    exit_code = 128 - code if code < 0 else code
    _log(f"{config.engine} exited with code {exit_code}")
    return exit_code


def _check_port(port: int) -> None:
    """A LaunchError now when PORT is taken: the engine would otherwise fail after loading the model."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("0.0.0.0", port))
    except OSError as exc:
        raise LaunchError(f"PORT={port} cannot be served ({exc.strerror or exc})") from None
    finally:
        probe.close()


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving.launcher",
        description="Start the serving engine from the model deployment's environment.",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the engine's command line and exit")
    parser.add_argument(
        "--engine-port",
        type=int,
        default=None,
        help=f"loopback port for the engine behind the adapter (TGI; default {DEFAULT_ENGINE_PORT}); "
        f"vLLM serves PORT itself",
    )
    args = parser.parse_args(argv)
    environ = os.environ if env is None else env
    try:
        config = read_config(environ)
        default_port = DEFAULT_ENGINE_PORT if config.port != DEFAULT_ENGINE_PORT else DEFAULT_ENGINE_PORT + 1
        engine_port = args.engine_port or default_port
        if engine_port == config.port and config.engine != "vllm":
            raise LaunchError(f"PORT={config.port} is also the engine's port; accepted: any other port")
        command = engine_command(config, engine_port)
        if args.dry_run:
            # A bad token file fails the dry run too; the Vault secret waits for the real run (it needs OCI).
            if config.token_file is not None:
                read_token_file(config.token_file)
            print(shlex.join(command))
            return 0
        moved, said = writable_paths(config.engine, environ)
        for line in said:
            _log(line)
        token = read_token(config)
        return run(config, command, engine_env(config, {**environ, **moved}, token), engine_port=engine_port)
    except LaunchError as exc:
        _log(str(exc))
        return 2


def _log(message: str) -> None:
    print(f"launcher: {message}", file=sys.stderr, flush=True)


def _value(env: Mapping[str, str], key: str) -> str | None:
    value = env.get(key)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _whole(env: Mapping[str, str], key: str, default: int, *, minimum: int, accepted: str) -> int:
    raw = _value(env, key)
    if raw is None:
        return default
    try:
        number = int(raw)
    except ValueError:
        raise LaunchError(f"{key}={raw!r} is not a whole number; accepted: {accepted}") from None
    if number < minimum:
        raise LaunchError(f"{key}={number} is too small; accepted: {accepted}")
    return number


def _names_flag(params: Sequence[str], flag: str) -> bool:
    """True when `params` sets `flag` (as `--flag value` or `--flag=value`, dashes or underscores)."""
    wanted = flag.replace("_", "-")
    return any(arg.split("=", 1)[0].replace("_", "-") == wanted for arg in params if arg.startswith("-"))


if __name__ == "__main__":
    sys.exit(main())
