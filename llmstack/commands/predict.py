"""`llmstack predict`: send one prompt to a deployed model and print the completion.

`--api chat` (the default) sends OpenAI chat completions (the engine applies the model's chat template),
`--api completions` OpenAI completions of the raw text, `--api legacy` the `{"inputs", "parameters"}`
payload of the first release.
"""

from __future__ import annotations

import argparse
import sys

from domain.errors import UserError
from llmstack.endpoints import add_target_arguments, predict_client, resolve_target

HELP = "send a prompt to a deployed model and print its completion"

# GenerationParams field -> the flag that sets it, so a range error names what the user typed.
FLAGS = {"max_new_tokens": "--max-tokens", "temperature": "--temperature", "top_p": "--top-p"}


def configure(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument(
        "--api",
        choices=("chat", "completions", "legacy"),
        default="chat",
        help="chat: OpenAI chat completions (default); completions: OpenAI completions of the raw text; "
        'legacy: the {"inputs", "parameters"} payload',
    )
    parser.add_argument(
        "--model-name",
        metavar="NAME",
        help="the model name the server answers to (chat, completions; default: the first in /v1/models)",
    )
    gen = parser.add_argument_group("generation")
    gen.add_argument(
        "--system",
        metavar="TEXT",
        help="system prompt: the system message (chat), or text put before the prompt (completions, legacy)",
    )
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
    from oci_runtime.predict import GenerationParams, InvalidParameter

    try:
        params = GenerationParams(
            max_new_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p
        )
    except InvalidParameter as exc:
        raise UserError(f"{FLAGS[exc.name]}: {exc}") from None
    if not args.timeout > 0 or args.timeout == float("inf"):
        raise UserError(f"--timeout: timeout must be a positive number of seconds, got {args.timeout:g}")
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    target = resolve_target(args)
    client = predict_client(args, target, "predict", model=args.model_name)
    if not args.stream:
        print(client.predict(prompt, params, system=args.system))
        return 0
    for chunk in client.stream(prompt, params, system=args.system):
        sys.stdout.write(chunk)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
