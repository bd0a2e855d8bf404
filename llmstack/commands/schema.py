"""`llmstack schema`: the JSON Schema of a stack file, made from the settings models (editors use it to
complete and check `stacks/Pulumi.<stack>.yaml`; `schema/stack.schema.json` is this output)."""

from __future__ import annotations

import argparse
import sys

HELP = "print the JSON Schema of a stack file (Pulumi.<stack>.yaml), made from the settings models"


def configure(parser: argparse.ArgumentParser) -> None:
    """No options: the schema is the same for every stack."""


def run(args: argparse.Namespace) -> int:
    from llmstack.settings_docs import stack_schema_text  # the settings models pull in pydantic and the SDK

    sys.stdout.write(stack_schema_text())
    return 0
