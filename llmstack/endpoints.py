"""Which deployment a command talks to, and how it signs: shared by `llmstack predict` and `llmstack chat`.

A deployment is named by `--endpoint URL`, or by `--stack NAME` / `--outputs FILE` with `--model NAME`,
read from the stack's `models` output (`{"<model>": {"predictUrl", "streamUrl", ...}}`).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from domain.errors import UserError
from domain.ids import AUTH_MODES

if TYPE_CHECKING:
    from oci_runtime.auth import Auth
    from oci_runtime.predict import PredictClient

PULUMI_TIMEOUT_S = 120


@dataclass(frozen=True, kw_only=True)
class Target:
    model: str
    """The stack's name for the model, or a label for a bare URL."""
    predict_url: str
    stream_url: str | None


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """The `which deployment` and `signing` flags, the same for every command that calls a model."""
    where = parser.add_argument_group("which deployment (one of)")
    where.add_argument(
        "--endpoint", metavar="URL", help="the predict URL (…/predict) or a local container's URL"
    )
    where.add_argument("--stack", metavar="NAME", help="read the URL from this stack's outputs (pulumi CLI)")
    where.add_argument(
        "--outputs", metavar="FILE", help="read the URL from `pulumi stack output --json` saved here"
    )
    where.add_argument(
        "--model", metavar="NAME", help="the model entry in the stack (optional with one model)"
    )
    auth = parser.add_argument_group("signing")
    auth.add_argument(
        "--auth",
        choices=AUTH_MODES,
        help="how to sign (default: $OCI_CLI_AUTH, else none for localhost and api_key otherwise)",
    )
    auth.add_argument(
        "--profile", help="profile in the OCI config file (default: $OCI_CLI_PROFILE or DEFAULT)"
    )


def resolve_target(args: argparse.Namespace) -> Target:
    """The model's name and URLs from --endpoint, or from the stack's `models` output."""
    from_stack = args.stack or args.outputs
    if args.endpoint and (from_stack or args.model):
        raise UserError("pass either --endpoint URL or --stack/--outputs with --model, not both")
    if args.endpoint:
        return Target(
            model=f"model at {urlsplit(args.endpoint).netloc}", predict_url=args.endpoint, stream_url=None
        )
    if not from_stack:
        raise UserError(
            "say which deployment: --endpoint URL, or --stack NAME (or --outputs FILE) and --model NAME"
        )
    outputs = read_outputs(args.outputs) if args.outputs else stack_outputs(args.stack)
    source = args.outputs or f"stack {args.stack}"
    model, predict_url, stream_url = model_urls(outputs, args.model, source=source)
    return Target(model=model, predict_url=predict_url, stream_url=stream_url)


def auth_for(args: argparse.Namespace, url: str) -> Auth:
    """--auth, else $OCI_CLI_AUTH, else `none` for a container on this machine, else the api_key default."""
    from oci_runtime.auth import Auth

    return Auth.from_env(args.auth or os.environ.get("OCI_CLI_AUTH") or default_mode(url), args.profile)


def default_mode(url: str) -> str | None:
    """`none` for a container on this machine (nothing to sign for); else leave it to Auth.from_env."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return "none"
    try:
        return "none" if ipaddress.ip_address(host).is_loopback else None
    except ValueError:
        return None


def retry_notice(command: str) -> Callable[[int, BaseException, float], None]:
    """A retry callback that says on stderr what is being retried, and when."""

    def say(attempt: int, exc: BaseException, delay: float) -> None:
        print(
            f"llmstack {command}: {exc}; retrying in {delay:.1f} s (attempt {attempt + 1})", file=sys.stderr
        )

    return say


def predict_client(
    args: argparse.Namespace, target: Target, command: str, *, model: str | None = None
) -> PredictClient:
    """A client for the target's URLs, signed as `auth_for` says, with the command's --timeout and --api;
    retries are said on stderr. `model`: the name sent in OpenAI requests, when the command takes one."""
    from oci_runtime.predict import PredictClient

    return PredictClient(
        target.predict_url,
        auth=auth_for(args, target.predict_url),
        timeout_s=args.timeout,
        stream_endpoint=target.stream_url,
        on_retry=retry_notice(command),
        api=args.api,
        model=model,
    )


def stack_outputs(stack: str) -> dict[str, Any]:
    """`pulumi stack output --json -s STACK`, parsed."""
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise UserError(
            f"the pulumi CLI is not on PATH: where it is, save the outputs with "
            f"`pulumi stack output --json -s {stack} > outputs.json` and pass --outputs outputs.json; "
            f"or pass --endpoint URL"
        )
    try:
        done = subprocess.run(
            [pulumi, "stack", "output", "--json", "-s", stack],
            capture_output=True,
            text=True,
            timeout=PULUMI_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise UserError(
            f"`pulumi stack output -s {stack}` took over {PULUMI_TIMEOUT_S} s; try again"
        ) from exc
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"`pulumi stack output -s {stack}` failed: {reason}")
    return _outputs_object(done.stdout, f"stack {stack}")


def read_outputs(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise UserError(f"--outputs {path}: cannot read it ({exc.strerror})") from exc
    return _outputs_object(text, path)


def _outputs_object(text: str, source: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{source}: the outputs are not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise UserError(f"{source}: the outputs are not a JSON object")
    return data


def model_urls(outputs: dict[str, Any], model: str | None, *, source: str) -> tuple[str, str, str | None]:
    """(model name, predict URL, stream URL) of `model` in the stack's `models` output."""
    models = outputs.get("models")
    if not isinstance(models, dict) or not models:
        raise UserError(f"{source} has no 'models' output with a predict URL; has the stack been deployed?")
    names = ", ".join(sorted(models))
    if model is None:
        if len(models) > 1:
            raise UserError(f"{source} serves several models; pick one with --model ({names})")
        model = str(next(iter(models)))
    entry = models.get(model)
    if not isinstance(entry, dict):
        raise UserError(f"--model {model!r} is not in {source}; its models: {names}")
    predict_url = entry.get("predictUrl")
    if not isinstance(predict_url, str) or not predict_url:
        raise UserError(f"model {model!r} in {source} has no predictUrl yet; is its deployment ready?")
    stream_url = entry.get("streamUrl")
    return model, predict_url, stream_url if isinstance(stream_url, str) and stream_url else None
