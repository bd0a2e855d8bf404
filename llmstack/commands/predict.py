"""`llmstack predict`: send one prompt to a deployed model and print the completion."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import subprocess
import sys
from typing import Any
from urllib.parse import urlsplit

from llmstack.errors import UserError
from llmstack.oci_auth import AUTH_MODES

HELP = "send a prompt to a deployed model and print its completion"

# GenerationParams field -> the flag that sets it, so a range error names what the user typed.
FLAGS = {"max_new_tokens": "--max-tokens", "temperature": "--temperature", "top_p": "--top-p"}
PULUMI_TIMEOUT_S = 120


def configure(parser: argparse.ArgumentParser) -> None:
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
    gen = parser.add_argument_group("generation")
    gen.add_argument("--max-tokens", type=int, default=256, metavar="N", help="most tokens to generate (256)")
    gen.add_argument(
        "--temperature", type=float, default=0.7, metavar="T", help="sampling temperature, >= 0 (0.7)"
    )
    gen.add_argument(
        "--top-p", type=float, default=0.9, metavar="P", help="nucleus sampling, in (0, 1] (0.9)"
    )
    gen.add_argument("--stream", action="store_true", help="print tokens as they arrive")
    gen.add_argument(
        "--timeout", type=float, default=120.0, metavar="S", help="seconds to wait for an answer (120)"
    )
    parser.add_argument("prompt", metavar="PROMPT", help="the text to complete ('-' reads standard input)")


def run(args: argparse.Namespace) -> int:
    from llmstack.oci_auth import Auth
    from llmstack.predict import GenerationParams, InvalidParameter, PredictClient

    try:
        params = GenerationParams(
            max_new_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p
        )
    except InvalidParameter as exc:
        raise UserError(f"{FLAGS[exc.name]}: {exc}") from None
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    predict_url, stream_url = _target(args)
    auth = Auth.from_env(
        args.auth or os.environ.get("OCI_CLI_AUTH") or _default_mode(predict_url), args.profile
    )
    client = PredictClient(
        predict_url, auth=auth, timeout_s=args.timeout, stream_endpoint=stream_url, on_retry=_say_retry
    )
    if not args.stream:
        print(client.predict(prompt, params))
        return 0
    for chunk in client.stream(prompt, params):
        sys.stdout.write(chunk)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def _target(args: argparse.Namespace) -> tuple[str, str | None]:
    """(predict URL, stream URL or None to derive it) from --endpoint or the stack's outputs."""
    from_stack = args.stack or args.outputs
    if args.endpoint and (from_stack or args.model):
        raise UserError("pass either --endpoint URL or --stack/--outputs with --model, not both")
    if args.endpoint:
        return args.endpoint, None
    if not from_stack:
        raise UserError(
            "say which deployment: --endpoint URL, or --stack NAME (or --outputs FILE) and --model NAME"
        )
    outputs = read_outputs(args.outputs) if args.outputs else stack_outputs(args.stack)
    return model_urls(outputs, args.model, source=args.outputs or f"stack {args.stack}")


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


def model_urls(outputs: dict[str, Any], model: str | None, *, source: str) -> tuple[str, str | None]:
    """The predict and stream URLs of `model` in the stack's `models` output."""
    models = outputs.get("models")
    if not isinstance(models, dict) or not models:
        raise UserError(f"{source} has no 'models' output with a predict URL; has the stack been deployed?")
    names = ", ".join(sorted(models))
    if model is None:
        if len(models) > 1:
            raise UserError(f"{source} serves several models; pick one with --model ({names})")
        model = next(iter(models))
    entry = models.get(model)
    if not isinstance(entry, dict):
        raise UserError(f"--model {model!r} is not in {source}; its models: {names}")
    predict_url = entry.get("predictUrl")
    if not isinstance(predict_url, str) or not predict_url:
        raise UserError(f"model {model!r} in {source} has no predictUrl yet; is its deployment ready?")
    stream_url = entry.get("streamUrl")
    return predict_url, stream_url if isinstance(stream_url, str) and stream_url else None


def _default_mode(url: str) -> str | None:
    """`none` for a container on this machine (nothing to sign for); else leave it to Auth.from_env."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return "none"
    try:
        return "none" if ipaddress.ip_address(host).is_loopback else None
    except ValueError:
        return None


def _say_retry(attempt: int, exc: BaseException, delay: float) -> None:
    print(f"llmstack predict: {exc}; retrying in {delay:.1f} s (attempt {attempt + 1})", file=sys.stderr)
