"""Preflight: what a first `pulumi up` would fail on, read from the account in seconds.

Each check is one line with what to do when it fails. Reads only; nothing is created. Where a source
decides what a check means, it is named here.

- GPU capacity: the Limits service, service `data-science`, read against the tenancy
  (`get_resource_availability(service_name, limit_name, compartment_id=<tenancy>)`, as ADS's AI Quick
  Actions does). Limits count GPUs, not instances: ADS `ads/aqua/ui.py` compares `available` with the
  shape's GPU count. The need is (replicas, or the autoscaling maximum) x GPUs per shape, summed over the
  stack's models on that shape. Only two limit names are confirmed in Oracle's code (`ds-gpu-a10-count`
  for the A10 VM shapes, `ds-gpu4-count` for BM.GPU4.8); others are found at run time among the
  service's limit definitions by the GPU's name, and when none matches the line says so (a warning).
- Policies, with `identity.existingDynamicGroup`: `list_policies` in the compartment and each ancestor up
  to the tenancy; statements parsed (domain/iam.py), policies this stack wrote itself not counted (their
  `pulumi-stack` tag), since the next `up` would delete them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import oci

from domain.iam import missing_statements, stack_statements
from domain.ids import parse_image, parse_object_uri
from domain.oci_rules import MAX_SUBNET_PREFIX, subnet_problem
from domain.service_container import parse_service_container
from domain.settings import Settings
from domain.shapes import SHAPES

Status = Literal["pass", "fail", "warn"]
DATA_SCIENCE = "data-science"
# Limit names confirmed in Oracle's own code (ADS aqua verify_policies/constants.py and its tests).
KNOWN_LIMITS: dict[str, str] = {"VM.GPU.A10.1": "ds-gpu-a10-count", "VM.GPU.A10.2": "ds-gpu-a10-count"}
KNOWN_LIMITS["BM.GPU4.8"] = "ds-gpu4-count"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_json(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


ClientFactory = Callable[[type[Any]], Any]  # an SDK client class -> a client for the stack's account


def _error(exc: Exception) -> str:
    """One line from an SDK or connection error, never a traceback."""
    status = getattr(exc, "status", None)
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{status} {code}: {message}" if status else str(message)


def run_checks(settings: Settings, client: ClientFactory) -> list[Check]:
    checks: list[Check] = []
    for step in (
        _account,
        _project,
        _subnet,
        _log_group,
        _gpu_capacity,
        _sources,
        _secret,
        _images,
        _service_containers,
        _policies,
    ):
        try:
            checks.extend(step(settings, client))
        except Exception as exc:  # one failed read is one failed line, never a traceback
            checks.append(Check(step.__name__.strip("_").replace("_", " "), "fail", _error(exc), "see above"))
    return checks


def _account(s: Settings, client: ClientFactory) -> list[Check]:

    try:
        compartment = client(oci.identity.IdentityClient).get_compartment(s.compartment_id).data
    except oci.exceptions.ServiceError as exc:
        return [
            Check(
                "credentials, region and compartment",
                "fail",
                f"compartmentId {s.compartment_id}: {_error(exc)}",
                f"check auth.profile/auth.configFile, oci:region {s.region} and that the user may read the "
                "compartment",
            )
        ]
    state = compartment.lifecycle_state
    ok = state == "ACTIVE"
    return [
        Check(
            "credentials, region and compartment",
            "pass" if ok else "fail",
            f"compartment {compartment.name} is {state} in {s.region}",
            "" if ok else "use an ACTIVE compartment",
        )
    ]


def _project(s: Settings, client: ClientFactory) -> list[Check]:

    if s.project_id is None:
        return []
    try:
        client(oci.data_science.DataScienceClient).get_project(s.project_id)
    except oci.exceptions.ServiceError as exc:
        return [
            Check(
                "project", "fail", f"projectId {s.project_id}: {_error(exc)}", "unset projectId to create one"
            )
        ]
    return [Check("project", "pass", f"project {s.project_id} exists")]


def _subnet(s: Settings, client: ClientFactory) -> list[Check]:

    subnet_id = s.network.existing_subnet_id
    if subnet_id is None:
        return []
    try:
        subnet = client(oci.core.VirtualNetworkClient).get_subnet(subnet_id).data
    except oci.exceptions.ServiceError as exc:
        return [
            Check(
                "subnet", "fail", f"existingSubnetId {subnet_id}: {_error(exc)}", "use a subnet you can read"
            )
        ]
    expected = s.network.subnet_compartment_id or s.compartment_id
    problems = []
    fixes = []
    if subnet.compartment_id != expected:
        problems.append(f"it is in compartment {subnet.compartment_id}, the stack grants {expected}")
        fixes.append(f"set network.subnetCompartmentId: {subnet.compartment_id}")
    small = subnet_problem(subnet.cidr_block)
    if small:
        problems.append(f"{subnet.cidr_block}: {small}")
        fixes.append(f"use a /{MAX_SUBNET_PREFIX} or larger subnet")
    if problems:
        return [Check("subnet", "fail", "; ".join(problems), "; ".join(fixes))]
    return [Check("subnet", "pass", f"subnet {subnet.cidr_block} in the granted compartment")]


def _log_group(s: Settings, client: ClientFactory) -> list[Check]:

    log_group = s.logging.existing_log_group_id
    if log_group is None:
        return []
    try:
        client(oci.logging.LoggingManagementClient).get_log_group(log_group)
    except oci.exceptions.ServiceError as exc:
        return [
            Check(
                "log group",
                "fail",
                f"existingLogGroupId {log_group}: {_error(exc)}",
                "unset it to create one",
            )
        ]
    return [Check("log group", "pass", f"log group {log_group} exists")]


def gpu_needs(s: Settings) -> dict[str, int]:
    """shape -> GPUs the stack may hold at once: replicas (or the autoscaling maximum) x GPUs per shape,
    plus the fine-tuning jobs' shapes."""
    needs: dict[str, int] = {}
    for model in s.models:
        shape = SHAPES.get(model.compute.shape)
        gpus = shape.gpu_count if shape else 1
        needs[model.compute.shape] = needs.get(model.compute.shape, 0) + model.compute.max_replicas * gpus
    tunes = [m.source.fine_tune for m in s.models if m.source.fine_tune is not None]
    for tune in tunes + [adapter.fine_tune for adapter in s.adapters]:
        tuned = SHAPES.get(tune.shape)
        needs[tune.shape] = needs.get(tune.shape, 0) + tune.nodes * (tuned.gpu_count if tuned else 1)
    return needs


def _limit_name(shape: str, definitions: list[Any]) -> str | None:
    if shape in KNOWN_LIMITS:
        return KNOWN_LIMITS[shape]
    gpu = SHAPES[shape].gpu.split("-")[0].lower() if shape in SHAPES else ""
    for d in definitions:
        text = f"{d.name} {d.description or ''}".lower()
        if gpu and gpu in text and "gpu" in text and not getattr(d, "is_deprecated", False):
            return str(d.name)
    return None


def _gpu_capacity(s: Settings, client: ClientFactory) -> list[Check]:

    limits = client(oci.limits.LimitsClient)
    definitions = oci.pagination.list_call_get_all_results(
        limits.list_limit_definitions, s.tenancy_id, service_name=DATA_SCIENCE
    ).data
    checks = []
    for shape, need in sorted(gpu_needs(s).items()):
        name = _limit_name(shape, definitions)
        label = f"GPU limit for {shape}"
        if name is None:
            checks.append(
                Check(
                    label,
                    "warn",
                    f"no data-science limit found for {shape} among {len(definitions)} definitions",
                    "check Governance > Limits, Quotas and Usage > Data Science in the console",
                )
            )
            continue
        availability = limits.get_resource_availability(DATA_SCIENCE, name, s.tenancy_id).data
        available = int(availability.available or 0)
        used = int(availability.used or 0)
        detail = f"{name}: {need} GPUs needed, {available} available ({used} in use)"
        if available >= need:
            checks.append(Check(label, "pass", detail))
        else:
            checks.append(
                Check(
                    label,
                    "fail",
                    detail,
                    f"request a limit increase of {name} to {used + need} in {s.region} "
                    "(Governance > Limits), or lower replicas/autoscaling.maxReplicas",
                )
            )
    return checks


def _sources(s: Settings, client: ClientFactory) -> list[Check]:

    store = client(oci.object_storage.ObjectStorageClient)
    checks = []
    for model in s.models:
        source = model.source
        if source.object_storage is not None and not source.object_storage.is_zip:
            checks.append(_prefix_source(store, model.name, source.object_storage))
        elif source.object_storage is not None:
            uri = source.object_storage
            try:
                store.head_object(uri.namespace, uri.bucket, uri.path)
                checks.append(Check(f"source of {model.name}", "pass", f"{uri} is readable"))
            except oci.exceptions.ServiceError as exc:
                checks.append(
                    Check(
                        f"source of {model.name}",
                        "fail",
                        f"{uri}: {_error(exc)}",
                        "upload the model zip there (llmstack package --to ...) or fix source.objectStorage",
                    )
                )
        if source.fine_tune is not None:
            dataset = parse_object_uri(source.fine_tune.dataset)
            found = store.list_objects(dataset.namespace, dataset.bucket, prefix=dataset.path, limit=1).data
            ok = bool(found.objects)
            checks.append(
                Check(
                    f"dataset of {model.name}",
                    "pass" if ok else "fail",
                    f"{source.fine_tune.dataset}: {'has objects' if ok else 'no object under this prefix'}",
                    "" if ok else "upload the dataset there or fix source.fineTune.dataset",
                )
            )
    return checks


def _prefix_source(store: Any, name: str, uri: Any) -> Check:
    """A model folder by reference: objects under the prefix, in a versioned bucket (each is pinned)."""
    label = f"source of {name}"
    versioning = store.get_bucket(uri.namespace, uri.bucket).data.versioning
    if versioning != "Enabled":
        return Check(
            label,
            "fail",
            f"bucket {uri.bucket!r} has versioning {versioning!r}; a model by reference pins each object "
            "by its version",
            f"oci os bucket update --bucket-name {uri.bucket} --versioning Enabled; upload the files again",
        )
    found = store.list_objects(uri.namespace, uri.bucket, prefix=uri.path, limit=1).data.objects
    if not found:
        return Check(
            label,
            "fail",
            f"{uri}: no object under this prefix",
            f"upload the model folder's files there (oci os object bulk-upload --prefix {uri.path}) or fix "
            "source.objectStorage",
        )
    return Check(label, "pass", f"{uri} holds objects in a versioned bucket")


def _service_containers(s: Settings, client: ClientFactory) -> list[Check]:
    """The pinned service container against what ListContainers marks `isLatest` (never upgraded here)."""
    pinned = {parse_service_container(m.serving.service_container) for m in s.models if not m.serving.image}
    if not pinned:
        return []
    data_science = client(oci.data_science.DataScienceClient)
    checks = []
    for container in sorted(pinned, key=str):
        latest = data_science.list_containers(container_name=container.name, is_latest=True).data
        tags = sorted({c.tag for c in latest if c.container_name == container.name})
        label = f"service container {container}"
        if not tags:
            checks.append(Check(label, "warn", f"ListContainers names no latest {container.name}", ""))
        elif container.tag in tags:
            checks.append(Check(label, "pass", f"{container.tag} is the latest {container.name}"))
        else:
            newer = tags[-1]
            checks.append(
                Check(
                    label,
                    "warn",
                    f"a newer service container is available: {container.name}:{newer} "
                    f"(pinned: {container.tag})",
                    f"after trying it: serving.serviceContainer: {container.name}:{newer}",
                )
            )
    return checks


def _secret(s: Settings, client: ClientFactory) -> list[Check]:

    if s.hf_token_secret_id is None:
        return []
    try:
        client(oci.secrets.SecretsClient).get_secret_bundle(s.hf_token_secret_id)
    except oci.exceptions.ServiceError as exc:
        return [
            Check(
                "Hugging Face token secret",
                "fail",
                f"hfTokenSecretId {s.hf_token_secret_id}: {_error(exc)}",
                "create the secret in Vault, or allow your group to read secret-bundles there",
            )
        ]
    return [Check("Hugging Face token secret", "pass", "the Vault secret is readable")]


def _images(s: Settings, client: ClientFactory) -> list[Check]:

    artifacts = client(oci.artifacts.ArtifactsClient)
    wanted = [(f"serving image of {m.name}", m.serving.image) for m in s.models if m.serving.image]
    wanted += [
        (f"training image of {m.name}", m.source.fine_tune.image)
        for m in s.models
        if m.source.fine_tune is not None and m.source.fine_tune.image is not None
    ]
    wanted += [(f"training image of {a.name}", a.fine_tune.image) for a in s.adapters if a.fine_tune.image]
    checks = []
    for label, text in wanted:
        image = parse_image(text)
        if image.digest is None:
            continue
        repository = image.path.split("/", 1)[1] if "/" in image.path else image.path
        found = artifacts.list_container_images(
            s.compartment_id, repository_name=repository, image_digest=image.digest
        ).data.items
        if found:
            checks.append(Check(label, "pass", f"{repository}@{image.digest[:19]}... is in OCIR"))
        else:
            checks.append(
                Check(
                    label,
                    "fail",
                    f"no image {image.digest} in repository {repository} of the stack's compartment",
                    "make bootstrap STACK=<stack>; make image ENGINE=<engine> STACK=<stack>; set its digest",
                )
            )
    return checks


def _policies(s: Settings, client: ClientFactory) -> list[Check]:

    group = s.identity.existing_dynamic_group
    if group is None:
        return []
    identity = client(oci.identity.IdentityClient)
    present: list[str] = []
    names: dict[str, str] = {}
    compartment: str | None = s.compartment_id
    while compartment:
        policies = oci.pagination.list_call_get_all_results(identity.list_policies, compartment).data
        present += [
            statement
            for p in policies
            if (p.freeform_tags or {}).get("pulumi-stack") != s.stack
            for statement in p.statements
        ]
        if compartment.startswith("ocid1.tenancy."):
            break
        data = identity.get_compartment(compartment).data
        names[compartment] = data.name
        compartment = data.compartment_id
    needed = [st for statements in stack_statements(s, group).values() for st in statements]
    missing = missing_statements(needed, present, names)
    if not missing:
        return [
            Check(
                "policies for " + group, "pass", f"all {len(needed)} statements the stack needs are present"
            )
        ]
    return [
        Check(
            "policies for " + group,
            "fail",
            f"{len(missing)} of {len(needed)} statements missing",
            "ask an administrator to add: " + " | ".join(missing),
        )
    ]
