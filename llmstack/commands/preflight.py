"""`llmstack preflight`: what a stack's first `pulumi up` would fail on, read from the account in seconds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from domain.errors import SettingsError, UserError

HELP = (
    "check a stack against the OCI account before `pulumi up`: access, GPU limits, sources, images, policies"
)

STATUS_MARK = {"pass": "ok  ", "fail": "FAIL", "warn": "warn"}


def configure(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--stack", metavar="NAME", help="read stacks/Pulumi.NAME.yaml (default: dev)")
    which.add_argument("--stack-file", metavar="PATH", type=Path, help="read this stack file instead")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    parser.add_argument(
        "--project-dir", metavar="DIR", type=Path, help="project root (default: found from here)"
    )
    parser.add_argument(
        "--endpoint", metavar="URL", help="send every OCI call to this endpoint (a proxy or a test fake)"
    )


def run(args: argparse.Namespace) -> int:
    from domain.settings import load_settings
    from llmstack.commands.plan import find_project_dir
    from llmstack.stack_clients import stack_clients
    from llmstack.stack_files import read_stack_file
    from oci_runtime.preflight import run_checks

    project_dir = (args.project_dir or find_project_dir(Path.cwd())).resolve()
    path = args.stack_file or project_dir / "stacks" / f"Pulumi.{args.stack or 'dev'}.yaml"
    if not path.is_file():
        raise UserError(f"{path}: no such stack file", exit_code=1)
    parsed = read_stack_file(path, None if args.stack_file else (args.stack or "dev"))
    try:
        settings = load_settings(parsed.config, stack=parsed.stack, project_dir=project_dir, source=str(path))
    except SettingsError as exc:
        raise UserError(str(exc), exit_code=1) from None
    checks = run_checks(settings, stack_clients(settings, args.endpoint))
    failed = any(c.status == "fail" for c in checks)
    if args.json:
        print(json.dumps({"stack": parsed.stack, "ok": not failed, "checks": [c.as_json() for c in checks]}))
    else:
        for c in checks:
            fix = f"  -> {c.fix}" if c.status != "pass" and c.fix else ""
            print(f"{STATUS_MARK[c.status]}  {c.name}: {c.detail}{fix}")
        print(f"preflight of stack {parsed.stack}: " + ("checks failed" if failed else "all checks passed"))
    return 1 if failed else 0
