"""`llmstack`: the user's toolkit (plan, package, predict, chat, ...).

Each subcommand lives in `llmstack/commands/<name>.py` and exposes `HELP` (one line), `configure(parser)`
and `run(args) -> int`. Module-level imports there stay light; what an optional extra brings (pulumi,
oci, gradio) is imported inside `run`, so `llmstack predict` never pays for the Pulumi engine and an
install without the extra still lists every command and says which extra the one asked for needs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from domain.errors import UserError
from llmstack import commands

# The distribution's extras (pyproject.toml), by the top-level module each brings.
EXTRA_OF_MODULE = {
    "oci": "runtime",
    "requests": "runtime",
    "tenacity": "runtime",
    "pulumi": "stack",
    "pulumi_oci": "stack",
    "pulumi_policy": "stack",
    "gradio": "chat",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmstack",
        description="Plan, package, call and chat with LLM deployments on OCI Data Science.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        command = sub.add_parser(info.name.replace("_", "-"), help=module.HELP, description=module.HELP)
        module.configure(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args._run(args)
    except UserError as exc:
        print(f"llmstack {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        extra = EXTRA_OF_MODULE.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(
            f"llmstack {args.command}: needs the {extra!r} extra ({exc.name} is not installed): "
            f"pip install 'oci-llm-stack[{extra}]'",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"llmstack {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `llmstack plan --json | head`: the reader left; not an error of ours
        sys.stderr.close()
        return code_when_pipe_closed()
    return code


def code_when_pipe_closed() -> int:
    # Point stdout at devnull so the interpreter's final flush does not raise again.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
