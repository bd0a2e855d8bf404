"""`llmstack image-repository`: the stack's OCIR repository, refused unless it exists in its compartment.

Prints `<region-key>.ocir.io/<namespace>/<repository>` for `make image`; `--urn` prints the URN of the
stack's repository resource instead, for `make bootstrap` (`pulumi up --target`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from domain.errors import UserError

HELP = "print the stack's OCIR repository if it exists in the stack's compartment (make image), or its URN"

REPOSITORY_TYPE = "oci:Artifacts/containerRepository:ContainerRepository"


def configure(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--stack", metavar="NAME", help="read stacks/Pulumi.NAME.yaml (default: dev)")
    which.add_argument("--stack-file", metavar="PATH", type=Path, help="read this stack file instead")
    parser.add_argument("--repository", default="", help="check this repository name instead of the stack's")
    parser.add_argument("--urn", action="store_true", help="print the repository resource's URN (offline)")
    parser.add_argument(
        "--project-dir", metavar="DIR", type=Path, help="project root (default: found from here)"
    )
    parser.add_argument("--endpoint", metavar="URL", help="send the OCI calls here (a proxy or a test fake)")


def run(args: argparse.Namespace) -> int:
    from domain.oci_rules import ocir_host
    from llmstack.commands.plan import find_project_dir
    from llmstack.plan import load

    project_dir = (args.project_dir or find_project_dir(Path.cwd())).resolve()
    parsed, settings = load(project_dir, stack=args.stack, stack_file=args.stack_file)
    if args.urn:
        from llmstack.plan import record_program

        plan = record_program(project_dir, parsed, settings)
        print(next(r.urn for r in plan.resources if r.type == REPOSITORY_TYPE))
        return 0

    import oci

    from llmstack.stack_clients import stack_clients
    from oci_runtime.registry import namespace_of, repository_exists

    client = stack_clients(settings, args.endpoint)
    name = args.repository or settings.registry.repository
    if not repository_exists(client(oci.artifacts.ArtifactsClient), settings.compartment_id, name):
        raise UserError(
            f"OCIR repository {name!r} does not exist in compartment {settings.compartment_id}; run "
            f"`make bootstrap STACK={parsed.stack}` first (a push would create it in the root compartment, "
            "where the deployments cannot read it and the stack's repository would collide with it)",
            exit_code=1,
        )
    namespace = namespace_of(client(oci.object_storage.ObjectStorageClient), settings.compartment_id)
    print(f"{ocir_host(settings.region)}/{namespace}/{name}")
    return 0
