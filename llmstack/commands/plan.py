"""`llmstack plan`: what a stack would create, offline (no Pulumi CLI, no OCI account)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domain.context import TAG_ARTIFACT, TAG_CONTAINER
from domain.errors import SettingsError, UserError

if TYPE_CHECKING:
    from llmstack.plan import Plan, RecordedResource

HELP = (
    "show the resources, outputs and checks of a stack's plan, offline (exit 0 clean, 1 policy, 2 settings)"
)

EXIT_CLEAN = 0
EXIT_POLICY = 1
EXIT_SETTINGS = 2
EXIT_PROGRAM = 3


def configure(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--stack", metavar="NAME", help="read stacks/Pulumi.NAME.yaml (default: dev)")
    which.add_argument("--stack-file", metavar="PATH", type=Path, help="read this stack file instead")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a tree")
    parser.add_argument("--dot", metavar="FILE", type=Path, help="also write the graph as Graphviz DOT")
    parser.add_argument(
        "--project-dir", metavar="DIR", type=Path, help="project root (default: found from here)"
    )
    parser.add_argument(
        "--policy-config",
        metavar="FILE",
        type=Path,
        help="policy levels and settings (default: policy/config/<stack>.json when present)",
    )


def find_project_dir(start: Path) -> Path:
    """The nearest folder at or above `start` holding the project's Pulumi.yaml."""
    for folder in (start, *start.parents):
        if (folder / "Pulumi.yaml").is_file() and (folder / "__main__.py").is_file():
            return folder
    raise UserError(
        f"no Pulumi.yaml with a __main__.py in {start} or above; run from the project or pass --project-dir"
    )


def run(args: argparse.Namespace) -> int:
    from llmstack import guardrails
    from llmstack.plan import ProgramError, run_plan, shown_path, stack_file_for

    project_dir = (args.project_dir or find_project_dir(Path.cwd())).resolve()
    if args.stack_file is not None and not args.stack_file.is_file():
        raise UserError(f"--stack-file {args.stack_file}: no such file")
    if args.policy_config is not None and not args.policy_config.is_file():
        raise UserError(f"--policy-config {args.policy_config}: no such file")
    if args.stack_file is None:
        stack = args.stack or "dev"
        path = stack_file_for(project_dir, stack)
        if not path.is_file():
            known = sorted(
                p.name[len("Pulumi.") : -len(".yaml")] for p in (project_dir / "stacks").glob("Pulumi.*.yaml")
            )
            listed = ", ".join(known) or "none"
            raise UserError(f"--stack {stack}: no {path.relative_to(project_dir)}; stacks here: {listed}")
    try:
        plan = run_plan(project_dir, stack=args.stack, stack_file=args.stack_file)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return EXIT_SETTINGS
    except ProgramError as exc:
        print(f"llmstack plan: {exc}", file=sys.stderr)
        return EXIT_PROGRAM

    config_path = args.policy_config or guardrails.policy_config_path(project_dir, plan.stack)
    shown_config = shown_path(config_path, project_dir) if config_path else None
    checked = guardrails.review(plan, guardrails.load_config(config_path), shown_config)

    if args.dot is not None:
        try:
            args.dot.write_text(to_dot(plan), encoding="utf-8")
        except OSError as exc:
            raise UserError(f"--dot {args.dot}: cannot be written ({exc.strerror or exc})") from None
    if args.json:
        print(json.dumps({**plan.as_json(), **checked.as_json()}, indent=2, sort_keys=False))
    else:
        print(render_tree(plan))
        print()
        print(guardrails.render_review(checked))
    return EXIT_POLICY if checked.mandatory else EXIT_CLEAN


# ---------------------------------------------------------------------------------------------------------
# Rendering


def _detail(resource: RecordedResource) -> str:
    """A few words on what matters most about a resource, for the human tree."""
    i = resource.inputs
    t = resource.type
    if t == "oci:DataScience/modelDeployment:ModelDeployment":
        details = i.get("modelDeploymentConfigurationDetails", {})
        grouped = details.get("deploymentType") == "MODEL_GROUP"
        model = details.get(
            "infrastructureConfigurationDetails" if grouped else "modelConfigurationDetails", {}
        )
        shape = model.get("instanceConfiguration", {}).get("instanceShapeName")
        scaling = model.get("scalingPolicy", {})
        count = scaling.get("instanceCount") or _autoscale_range(scaling)
        tags = i.get("freeformTags") or {}
        image = str(details.get("environmentConfigurationDetails", {}).get("image"))
        container = tags.get(TAG_CONTAINER)
        said = (
            f"service container {image.removeprefix('dsmc://')}" if container == "service" else "custom image"
        )
        how = {"reference": "by reference", "copy": "copied zip", "none": "no model files"}.get(
            str(tags.get(TAG_ARTIFACT)), "?"
        )
        serving = f", {said}, {how}" if container else ""
        return f"{shape} x{count}{serving}" + (", model group (base + adapters)" if grouped else "")
    if t == "oci:DataScience/modelGroup:ModelGroup":
        members = i.get("memberModelEntries", {}).get("memberModelDetails", [])
        keys = [str(m.get("inferenceKey")) for m in members]
        return f"{i.get('modelGroupDetails', {}).get('type')}: {', '.join(keys)}"
    if t in ("oci:Core/vcn:Vcn",):
        return ", ".join(i.get("cidrBlocks", []))
    if t == "oci:Core/subnet:Subnet":
        return (
            f"{i.get('cidrBlock')}, private" if i.get("prohibitPublicIpOnVnic") else str(i.get("cidrBlock"))
        )
    if t == "oci:Logging/log:Log":
        return f"{i.get('logType')}, {i.get('retentionDuration')} days"
    if t == "oci:ObjectStorage/bucket:Bucket":
        return f"{i.get('name')}, {i.get('accessType')}, versioning {i.get('versioning')}"
    if t == "pulumi-python:dynamic/artifacts:ModelArtifact":
        return f"{i.get('localPath')} -> {i.get('objectPrefix')} (a zip, copied into the catalog)"
    if t == "pulumi-python:dynamic/artifacts:ModelObjects":
        return f"{i.get('localPath')} -> {i.get('objectPrefix')}files/ (objects, by reference)"
    if t == "pulumi-python:dynamic/catalog:CatalogModel":
        kind = str((i.get("artifact") or {}).get("kind"))
        return {
            "reference": "by reference",
            "objectStorage": "copies a zip",
            "inline": "token file only",
        }.get(kind, "")
    if t == "oci:DataScience/job:Job":
        nodes = i.get("jobNodeConfigurationDetails", {})
        groups = nodes.get("jobNodeGroupConfigurationDetailsLists") or []
        if groups:
            infra = groups[0].get("jobInfrastructureConfigurationDetails", {})
            runtime = nodes.get("maximumRuntimeInMinutes")
            where = f"{groups[0].get('replicas')} nodes x {infra.get('shapeName')}"
        else:
            infra = i.get("jobInfrastructureConfigurationDetails", {})
            runtime = i.get("jobConfigurationDetails", {}).get("maximumRuntimeInMinutes")
            where = str(infra.get("shapeName"))
        image = "" if groups or "jobEnvironmentConfigurationDetails" in i else ", service conda + artifact"
        if groups and "jobEnvironmentConfigurationDetails" not in groups[0]:
            image = ", service conda + artifact"
        return f"{where}, up to {runtime} min, {infra.get('blockStorageSizeInGbs')} GB disk{image}"
    if t == "pulumi-python:dynamic/training:JobRun":
        return f"-> oci://{i.get('bucket')}@{i.get('namespace')}/{i.get('objectName')}"
    if t == "pulumi-python:dynamic/readiness:Readiness":
        return f"smoke prompt, up to {i.get('timeoutMinutes')} min"
    if t == "oci:Identity/policy:Policy":
        return f"{len(i.get('statements', []))} statements"
    return ""


def _autoscale_range(scaling: dict[str, Any]) -> str:
    policies = scaling.get("autoScalingPolicies") or [{}]
    first = policies[0]
    return f"{first.get('minimumInstanceCount')}-{first.get('maximumInstanceCount')} (autoscaling)"


def render_tree(plan: Plan) -> str:
    children: dict[str | None, list[RecordedResource]] = {}
    for resource in plan.resources:
        children.setdefault(resource.parent, []).append(resource)
    lines = [f"Plan of stack {plan.stack} ({plan.source}): {len(plan.resources)} resources"]
    if plan.settings.tenancy_origin != "tenancyId":
        lines.append(f"tenancyId: {plan.settings.tenancy_id} (from {plan.settings.tenancy_origin})")
    lines.append("")

    def walk(parent: str | None, prefix: str) -> None:
        kids = children.get(parent, [])
        for index, resource in enumerate(kids):
            last = index == len(kids) - 1
            branch = "" if parent is None else ("└─ " if last else "├─ ")
            detail = _detail(resource)
            lines.append(
                f"{prefix}{branch}{resource.name}  [{resource.type}]" + (f"  {detail}" if detail else "")
            )
            walk(resource.urn, prefix + ("" if parent is None else ("   " if last else "│  ")))

    walk(None, "")
    lines += ["", "Outputs:"]
    for key, value in _flatten(plan.outputs):
        lines.append(f"  {key}: {value}")
    lines += ["", "Ids and URLs are placeholders from the mock engine; `pulumi preview` shows the real plan."]
    return "\n".join(lines)


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        out: list[tuple[str, Any]] = []
        for key, item in value.items():
            out += _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return out
    return [(prefix, value)]


def to_dot(plan: Plan) -> str:
    """The graph: boxes for resources, dashed edges from parents, solid edges for dependencies."""
    ids = {r.urn: f"n{i}" for i, r in enumerate(plan.resources)}
    lines = [f'digraph "{plan.stack}" {{', "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
    for r in plan.resources:
        style = ', style="rounded,dashed"' if not r.custom else ""
        lines.append(f'  {ids[r.urn]} [label="{r.name}\\n{r.type}"{style}];')
    for r in plan.resources:
        if r.parent in ids:
            lines.append(f"  {ids[r.parent]} -> {ids[r.urn]} [style=dashed, arrowhead=none];")
        for dep in r.dependencies:
            if dep in ids:
                lines.append(f"  {ids[dep]} -> {ids[r.urn]};")
    lines.append("}")
    return "\n".join(lines) + "\n"
