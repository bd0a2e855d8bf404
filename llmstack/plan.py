"""The offline plan: run the real Pulumi program under Pulumi's mock engine and record every resource.

No Pulumi CLI and no cloud credentials are needed. The stack file is read and validated first (bad settings
never reach the engine), its config is handed to the runtime the way the CLI would, `__main__.py` runs, and
a recording monitor keeps each registration: type, name, parent, dependencies and inputs (secrets masked).
Ids, URLs and the Object Storage namespace in the result are placeholders the mocks make up.
"""

from __future__ import annotations

import asyncio
import hashlib
import runpy
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from components import pulumi_internals
from domain.errors import UserError
from domain.oci_rules import region_key
from domain.secrets import SECRET_PLACEHOLDER
from domain.settings import Settings, load_settings
from llmstack.stack_files import StackFile, config_as_strings, read_stack_file

STACK_TYPE = "pulumi:pulumi:Stack"
SECRET_SIG = "4dabf18193072939515e22adb298388d"
PROVIDER_KEY = "__provider"


@dataclass
class RecordedResource:
    urn: str
    type: str
    name: str
    parent: str | None
    dependencies: list[str]
    inputs: dict[str, Any]
    custom: bool
    id: str | None = None
    registered_outputs: bool = False
    custom_timeouts: dict[str, str] = field(default_factory=dict)  # as registered: create, update, delete
    replace_on_changes: list[str] = field(default_factory=list)  # input paths whose change replaces it

    def as_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "dependencies": self.dependencies,
            "inputs": self.inputs,
            **({"replaceOnChanges": self.replace_on_changes} if self.replace_on_changes else {}),
        }


@dataclass
class Plan:
    stack: str
    source: str
    settings: Settings
    resources: list[RecordedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def find(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_]

    def by_urn(self) -> dict[str, RecordedResource]:
        return {r.urn: r for r in self.resources}

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "resources": [r.as_json() for r in self.resources],
            "outputs": self.outputs,
            "tenancy": {"id": self.settings.tenancy_id, "from": self.settings.tenancy_origin},
        }


class ProgramError(Exception):
    """The program itself failed under the mock engine (a bug, not a settings problem)."""


# ---------------------------------------------------------------------------------------------------------


def stack_file_for(project_dir: Path, stack: str) -> Path:
    return project_dir / "stacks" / f"Pulumi.{stack}.yaml"


def load(
    project_dir: Path, *, stack: str | None = None, stack_file: Path | None = None
) -> tuple[StackFile, Settings]:
    """Read and validate a stack file; raises SettingsError (all problems at once)."""
    path = stack_file if stack_file is not None else stack_file_for(project_dir, stack or "dev")
    parsed = read_stack_file(path, stack if stack_file is None else None)
    settings = load_settings(parsed.config, stack=parsed.stack, project_dir=project_dir, source=str(path))
    return parsed, settings


def run_plan(project_dir: Path, *, stack: str | None = None, stack_file: Path | None = None) -> Plan:
    """Validate the stack's settings, then run `__main__.py` under the mock engine and record the graph."""
    parsed, settings = load(project_dir, stack=stack, stack_file=stack_file)
    return record_program(project_dir, parsed, settings)


def record_program(
    project_dir: Path, parsed: StackFile, settings: Settings, secret_keys: Iterable[str] = ()
) -> Plan:
    """Run the program for an already validated stack; `secret_keys` mark plain config values as secrets."""
    config, secure_keys = config_as_strings(parsed.config)
    all_secret_keys = sorted({*secure_keys, *secret_keys})
    mocks = PlanMocks(settings)
    monitor = RecordingMonitor(mocks)
    plan = Plan(stack=parsed.stack, source=shown_path(parsed.path, project_dir), settings=settings)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        pulumi_internals.clear_root_resource()
        pulumi.runtime.set_all_config(config, all_secret_keys)
        pulumi.runtime.set_mocks(
            mocks, project=settings.project, stack=parsed.stack, preview=False, monitor=monitor
        )
        program = str(project_dir / "__main__.py")

        def run_program() -> None:
            runpy.run_path(program, run_name="__main__")

        try:
            pulumi_internals.run_program(run_program)
        except Exception as exc:
            # `__main__` hands the engine a user's error (a model folder that cannot be read) as a RunError.
            cause = exc if isinstance(exc, UserError) else exc.__cause__
            if isinstance(cause, UserError):
                raise cause from None
            raise ProgramError(f"the program failed under the mock engine: {exc}") from exc
        root = pulumi_internals.root_resource()
        exports = dict(getattr(root, "outputs", {}) or {})
        plan.outputs = {
            name: pulumi_internals.sync_await(_resolve_output(value)) for name, value in exports.items()
        }
    finally:
        pulumi.runtime.set_all_config({}, [])
        pulumi_internals.clear_root_resource()
        # The engine's calls ran in the loop's worker threads: join them, then close the loops they made.
        loop.run_until_complete(loop.shutdown_default_executor())
        monitor.close_thread_loops()
        asyncio.set_event_loop(None)
        loop.close()
    plan.resources = stable_order(monitor.recorded)
    for resource in plan.resources:
        resource.registered_outputs = resource.urn in monitor.outputs_registered
    return plan


def shown_path(path: Path, project_dir: Path) -> str:
    """`path` relative to the project when it lies inside it, as the user would type it."""
    try:
        return str(path.resolve().relative_to(project_dir.resolve()))
    except ValueError:
        return str(path)


async def _resolve_output(value: Any) -> Any:
    output = pulumi.Output.from_input(value)
    if await output.is_secret():
        return SECRET_PLACEHOLDER
    if not await output.is_known():
        return "(known after apply)"
    return _plain(await output.future())


def _plain(value: Any) -> Any:
    """JSON-friendly values: secrets masked, integral floats back to ints (protobuf has only doubles)."""
    if isinstance(value, Mapping):
        if value.get(SECRET_SIG) is not None and "value" in value:
            return SECRET_PLACEHOLDER
        # Sorted: protobuf maps come back in no fixed order, and a plan should diff cleanly.
        return {str(k): _plain(value[k]) for k in sorted(value, key=str) if k != PROVIDER_KEY}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def stable_order(resources: list[RecordedResource]) -> list[RecordedResource]:
    """Parents and dependencies before dependents, ties by URN: the same graph always lists the same way.

    (The engine registers resources as their inputs resolve, which is not a fixed order.)
    """
    by_urn = {r.urn: r for r in resources}
    done: set[str] = set()
    ordered: list[RecordedResource] = []

    def visit(resource: RecordedResource) -> None:
        if resource.urn in done:
            return
        done.add(resource.urn)
        for urn in sorted({*([resource.parent] if resource.parent else []), *resource.dependencies}):
            if urn in by_urn:
                visit(by_urn[urn])
        ordered.append(resource)

    for resource in sorted(resources, key=lambda r: r.urn):
        visit(resource)
    return ordered


# ---------------------------------------------------------------------------------------------------------
# Mock engine


def _fake_ocid(kind: str, region_key: str, seed: str) -> str:
    unique = hashlib.sha256(seed.encode()).hexdigest()[:40]
    return f"ocid1.{kind}.oc1.{region_key}.mock{unique}"


_OCID_KINDS = {
    "oci:Core/vcn:Vcn": "vcn",
    "oci:Core/subnet:Subnet": "subnet",
    "oci:Core/natGateway:NatGateway": "natgateway",
    "oci:Core/serviceGateway:ServiceGateway": "servicegateway",
    "oci:Core/routeTable:RouteTable": "routetable",
    "oci:Core/securityList:SecurityList": "securitylist",
    "oci:Core/networkSecurityGroup:NetworkSecurityGroup": "networksecuritygroup",
    "oci:Logging/logGroup:LogGroup": "loggroup",
    "oci:Logging/log:Log": "log",
    "oci:Artifacts/containerRepository:ContainerRepository": "containerrepo",
    "oci:Identity/dynamicGroup:DynamicGroup": "dynamicgroup",
    "oci:Identity/policy:Policy": "policy",
    "oci:DataScience/project:Project": "datascienceproject",
    "oci:DataScience/modelDeployment:ModelDeployment": "datasciencemodeldeployment",
    "oci:DataScience/job:Job": "datasciencejob",
    "pulumi-python:dynamic/training:JobRun": "datasciencejobrun",
    "pulumi-python:dynamic/catalog:CatalogModel": "datasciencemodel",
}


def namespace_hint(settings: Settings) -> str:
    """The tenancy's Object Storage namespace as an OCIR image path or a source bucket reveals it, else a
    stand-in."""
    for model in settings.models:
        parts = (model.serving.image or "").split("/")
        if len(parts) > 2 and parts[0].endswith(("ocir.io", "oraclecloud.com")):
            return parts[1]
    for model in settings.models:
        if model.source.object_storage is not None:
            return model.source.object_storage.namespace
    return "mynamespace"


class PlanMocks(pulumi.runtime.Mocks):
    """Ids, URLs and invoke results a real `pulumi up` would get from OCI, made up deterministically."""

    def __init__(self, settings: Settings) -> None:
        self.region = settings.region
        self.region_key = region_key(settings.region) or settings.region
        self.namespace = namespace_hint(settings)

    def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
        inputs = {k: v for k, v in args.inputs.items() if k != PROVIDER_KEY}
        kind = _OCID_KINDS.get(args.typ, args.typ.rsplit(":", 1)[-1].lower())
        rid = _fake_ocid(kind, self.region_key, f"{args.typ}::{args.name}")
        state: dict[str, Any] = dict(inputs)
        if args.typ == "oci:DataScience/modelDeployment:ModelDeployment":
            state["modelDeploymentUrl"] = f"https://modeldeployment.{self.region}.oci.customer-oci.com/{rid}"
            state["state"] = "ACTIVE"
        elif args.typ == "pulumi-python:dynamic/artifacts:ModelArtifact":
            digest = str(inputs.get("manifestDigest", ""))[:16]
            object_name = f"{inputs.get('objectPrefix', '')}{digest}.zip"
            state.update(
                objectName=object_name,
                # The provider's fingerprint is the zip's SHA-256 as bare hex (oci_runtime/upload.py); the
                # stand-in has that shape: the manifest digest, which the real one is computed after.
                fingerprint=str(inputs.get("manifestDigest", "")).ljust(64, "0")[:64],
                uri=f"oci://{inputs.get('bucket')}@{inputs.get('namespace')}/{object_name}",
                sizeBytes=0,
            )
            rid = object_name
        elif args.typ == "pulumi-python:dynamic/artifacts:ModelObjects":
            digest = str(inputs.get("manifestDigest", ""))[:16]
            prefix = f"{inputs.get('objectPrefix', '')}files/"
            state.update(
                prefix=prefix,
                description=f"(model_description.json, at upload: manifest {digest})",
                # The provider's fingerprint is bare hex; the stand-in has its shape.
                fingerprint=str(inputs.get("manifestDigest", "")).ljust(64, "0")[:64],
                sizeBytes=0,
            )
            rid = f"oci://{inputs.get('bucket')}@{inputs.get('namespace')}/{prefix}"
        elif args.typ == "pulumi-python:dynamic/catalog:CatalogModel":
            state.update(modelId=rid, state="ACTIVE")
        elif args.typ == "pulumi-python:dynamic/training:JobRun":
            uri = f"oci://{inputs.get('bucket')}@{inputs.get('namespace')}/{inputs.get('objectName')}"
            state.update(
                jobRunId=rid,
                state="SUCCEEDED",
                timeStarted="(at training)",
                timeFinished="(at training)",
                artifactUri=uri,
                artifactBytes=0,
            )
        elif args.typ == "pulumi-python:dynamic/readiness:Readiness":
            url = str(inputs.get("deploymentUrl", ""))
            state.update(
                predictUrl=f"{url}/predict",
                streamUrl=f"{url}/predictWithResponseStream",
                state="ACTIVE",
                smokeLatencyMs=0,
                checkedAt="(at deployment)",
            )
            rid = f"readiness-{args.name}"
        return rid, state

    def call(self, args: Any) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        if args.token == "oci:ObjectStorage/getNamespace:getNamespace":
            return {"namespace": self.namespace, "id": self.namespace}, []
        if args.token == "oci:Core/getServices:getServices":
            key = self.region_key
            service = {
                "id": _fake_ocid("service", key, "all-services"),
                "cidrBlock": f"all-{key}-services-in-oracle-services-network",
                "name": f"All {key.upper()} Services In Oracle Services Network",
                "description": "All services in the Oracle Services Network",
            }
            return {"services": [service], "filters": args.args.get("filters"), "id": "services"}, []
        raise ProgramError(f"the plan has no mock for invoke {args.token}; add one to llmstack/plan.py")


class RecordingMonitor(pulumi_internals.MockMonitor):
    """The mock monitor, keeping what a real engine would see: parents, dependencies and raw inputs.

    The engine calls it from worker threads, and the mock monitor gives each such thread an event loop it
    never closes; left to the interpreter's exit, closing them can print a traceback. This monitor makes
    those loops itself and closes them in `close_thread_loops`.
    """

    def __init__(self, mocks: PlanMocks) -> None:
        super().__init__(mocks)
        self.recorded: list[RecordedResource] = []
        self.outputs_registered: set[str] = set()
        self._thread_loops: list[asyncio.AbstractEventLoop] = []
        self._lock = threading.Lock()

    def _ensure_thread_loop(self) -> None:
        try:
            asyncio.get_event_loop()
        except RuntimeError:  # a worker thread without a loop: the mock monitor would make one
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            with self._lock:
                self._thread_loops.append(loop)

    def close_thread_loops(self) -> None:
        with self._lock:
            loops, self._thread_loops = self._thread_loops, []
        for loop in loops:
            loop.close()

    def Invoke(self, request: Any) -> Any:
        self._ensure_thread_loop()
        return super().Invoke(request)  # type: ignore[no-untyped-call]

    def RegisterResource(self, request: Any) -> Any:
        self._ensure_thread_loop()
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        inputs = pulumi_internals.deserialize_properties(request.object)
        # Sorted: the SDK collects dependencies in sets, whose order changes from one process to the next.
        dependencies = sorted(
            {
                *request.dependencies,
                *(urn for deps in request.propertyDependencies.values() for urn in deps.urns),
            }
        )
        self.recorded.append(
            RecordedResource(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent=request.parent or None,
                dependencies=dependencies,
                inputs=_plain(inputs),
                custom=bool(request.custom),
                id=response.id or None,
                custom_timeouts={
                    kind: value
                    for kind in ("create", "update", "delete")
                    if (value := getattr(request.customTimeouts, kind))
                },
                replace_on_changes=sorted(request.replaceOnChanges),
            )
        )
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:
        self.outputs_registered.add(request.urn)
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]
