"""Every IAM statement a stack needs, as pure data: the component writes them, preflight looks for them.

Sources (read 2026-11; exact strings quoted where they decide a statement):
- Custom networking, "Use Custom Networking" (docs.oracle.com/en-us/iaas/data-science/using/
  model-dep-create-cus-net.htm): "allow service datascience to use virtual-network-family in compartment
  <subnet_compartment>". Jobs on the stack's subnet need the same grant (oracle-samples
  `ml-applications/.../identity_ml_app_runtime/main.tf`: "Allow service datascience to use
  virtual-network-family in compartment id ${local.subnet_compartment_id}").
- Catalog copy from a bucket, "Exporting a Large Model Artifact" (docs.oracle.com/en-us/iaas/Content/
  data-science/using/large-model-artifact-export.htm; the same two lines in ADS
  `docs/source/user_guide/model_registration/large_model_artifact.rst`): "allow service datascience to
  manage object-family in compartment <compartment> where ALL {target.bucket.name='<bucket_name>'}" and
  "allow service objectstorage-<region> to manage object-family in compartment <compartment> where ALL
  {target.bucket.name='<bucket_name>'}". Issue 14 proposed the Object Storage line without the bucket
  condition; Oracle documents it scoped to the bucket, so it is scoped here.
- A bucket under a Vault key, Vault policy reference (keypolicyreference.htm, `target.key.id`) and "Using
  Keys": Object Storage must be allowed to use the key: "allow service objectstorage-<region> to use keys
  in compartment <c> where target.key.id = '<key>'".
- Object lifecycle rules, Object Storage policy reference (objectstoragepolicyreference.htm): "The object
  lifecycle policies feature requires that you grant permissions to the Object Storage service to archive
  and delete objects on your behalf": the same `objectstorage-<region>` grant on the artifact bucket.
- Job runs' logs: ADS `docs/source/user_guide/jobs/policies.rst` lists `use log-groups` and
  `use logging-family` for the job runs' dynamic group, as a broad example ("You should further restrict").
  A job run that writes to an existing custom log (enable_auto_log_creation=False, as here) needs
  `use log-content` on it, which the stack grants; `use log-groups` is needed only to create logs, which
  the job never does. Kept as `use log-content`, scoped to the compartment.

A statement is written by a policy in the compartment it names (a policy in an ancestor would do as well;
the stack writes it where the resource lives, so a compartment administrator can own it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from domain import fine_tune_job

if TYPE_CHECKING:
    from domain.settings import Settings

# -- where a statement applies -----------------------------------------------------------------------------


def location(compartment_id: str) -> str:
    """Where a statement applies: `compartment id <ocid>`, or `tenancy` when the compartment is the root."""
    return "tenancy" if compartment_id.startswith("ocid1.tenancy.") else f"compartment id {compartment_id}"


def matching_rule(compartment_id: str) -> str:
    return (
        f"ALL {{resource.type = 'datasciencemodeldeployment', resource.compartment.id = '{compartment_id}'}}"
    )


def job_matching_rule(compartment_id: str) -> str:
    return f"ALL {{resource.type = 'datasciencejobrun', resource.compartment.id = '{compartment_id}'}}"


def _in_bucket(bucket: str) -> str:
    return f"where target.bucket.name = '{bucket}'"


def _in_buckets(buckets: Iterable[str]) -> str:
    names = ", ".join(f"target.bucket.name = '{b}'" for b in sorted(set(buckets)))
    return f"where any {{{names}}}"


def object_storage_service(region: str) -> str:
    """The Object Storage service's principal in a region, as policies name it (`objectstorage-<region>`)."""
    return f"objectstorage-{region}"


# -- the dynamic groups' grants ----------------------------------------------------------------------------


def _runtime_grants(group: str, where: str, grants: list[str], token_secret_id: str | None) -> list[str]:
    """What every workload here needs (pull its image, write its logs), `grants`, then the token's secret."""
    statements = [
        f"Allow {group} to read repos in {where}",
        f"Allow {group} to use log-content in {where}",
        *grants,
    ]
    if token_secret_id is not None:
        statements.append(
            f"Allow {group} to read secret-bundles in {where} where target.secret.id = '{token_secret_id}'"
        )
    return statements


def policy_statements(
    *,
    dynamic_group: str,
    compartment_id: str,
    bucket: str,
    token_secret_id: str | None = None,
) -> list[str]:
    """What the deployments need: their image, their logs, the artifact bucket (read) and the token."""
    where = location(compartment_id)
    group = f"dynamic-group {dynamic_group}"
    grants = [
        f"Allow {group} to read buckets in {where} {_in_bucket(bucket)}",
        f"Allow {group} to read objects in {where} {_in_bucket(bucket)}",
    ]
    return _runtime_grants(group, where, grants, token_secret_id)


def training_policy_statements(
    *,
    dynamic_group: str,
    compartment_id: str,
    read_buckets: Sequence[str],
    write_buckets: Sequence[str],
    token_secret_id: str | None = None,
) -> list[str]:
    """What a fine-tuning job run needs: its image, its log, its buckets (and the token's secret)."""
    where = location(compartment_id)
    group = f"dynamic-group {dynamic_group}"
    writes = sorted(set(write_buckets))
    reads = sorted(set(read_buckets) - set(writes))
    grants = [f"Allow {group} to read buckets in {where} {_in_bucket(b)}" for b in sorted({*reads, *writes})]
    grants += [f"Allow {group} to read objects in {where} {_in_bucket(b)}" for b in reads]
    # The job writes the model (and replaces a failed attempt's objects); the catalog then copies it in.
    grants += [f"Allow {group} to manage objects in {where} {_in_bucket(b)}" for b in writes]
    return _runtime_grants(group, where, grants, token_secret_id)


# -- the services' grants ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ServiceNeeds:
    """What the OCI services must be allowed to do for one stack (see the module's sources)."""

    region: str
    compartment_id: str  # the stack's compartment
    subnet_compartment_id: str | None = None  # set when deployments or jobs use a subnet (custom networking)
    export_buckets: Mapping[str, str] = field(
        default_factory=dict
    )  # bucket -> its compartment (catalog copy)
    artifact_bucket: str | None = None  # the stack's bucket (lifecycle rules act on it)
    kms_key_id: str | None = None
    kms_key_compartment_id: str | None = None


def service_statements(needs: ServiceNeeds) -> dict[str, list[str]]:
    """compartment OCID -> the statements granting the Data Science and Object Storage services their part,
    to be written by a policy in that compartment."""
    by_compartment: dict[str, list[str]] = {}

    def add(compartment: str, statement: str) -> None:
        by_compartment.setdefault(compartment, []).append(statement)

    if needs.subnet_compartment_id is not None:
        c = needs.subnet_compartment_id
        add(c, f"Allow service datascience to use virtual-network-family in {location(c)}")
    objectstorage = object_storage_service(needs.region)
    exports: dict[str, set[str]] = {}
    for bucket, compartment in needs.export_buckets.items():
        exports.setdefault(compartment, set()).add(bucket)
    lifecycle: dict[str, set[str]] = {c: set(b) for c, b in exports.items()}
    if needs.artifact_bucket is not None:
        lifecycle.setdefault(needs.compartment_id, set()).add(needs.artifact_bucket)
    for compartment in sorted({*exports, *lifecycle}):
        where = location(compartment)
        if compartment in exports:
            buckets = _in_buckets(exports[compartment])
            add(compartment, f"Allow service datascience to manage object-family in {where} {buckets}")
        buckets = _in_buckets(lifecycle[compartment])
        add(compartment, f"Allow service {objectstorage} to manage object-family in {where} {buckets}")
    if needs.kms_key_id is not None:
        c = needs.kms_key_compartment_id or needs.compartment_id
        key = f"where target.key.id = '{needs.kms_key_id}'"
        add(c, f"Allow service {objectstorage} to use keys in {location(c)} {key}")
    return by_compartment


# -- one stack's needs, from its settings --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TrainingAccess:
    """The buckets the stack's fine-tuning jobs read and write."""

    read_buckets: tuple[str, ...]
    write_buckets: tuple[str, ...]


def training_access(settings: Settings) -> TrainingAccess | None:
    """The buckets the stack's fine-tuning jobs read and write; None when nothing is fine-tuned."""
    tunes = [m.source.fine_tune for m in settings.models if m.source.fine_tune is not None]
    tunes += [adapter.fine_tune for adapter in settings.adapters]  # served on their base's deployment
    buckets = [access for tune in tunes for access in fine_tune_job.buckets(tune)]
    if not buckets:
        return None
    return TrainingAccess(
        read_buckets=tuple(sorted({b for b, how in buckets if how == "read"})),
        write_buckets=tuple(sorted({b for b, how in buckets if how == "write"})),
    )


def uses_subnet(settings: Settings) -> bool:
    """Custom networking: the stack's own VCN or an existing subnet (not service-managed egress)."""
    return settings.network.existing_subnet_id is not None or settings.network.creates_vcn


def export_buckets(settings: Settings) -> dict[str, str]:
    """bucket -> compartment, for every bucket the catalog copies a model from."""
    found: dict[str, str] = {}
    for model in settings.models:
        source = model.source
        if source.local_path is not None:
            found[settings.artifact_bucket.name] = settings.compartment_id
        elif source.object_storage is not None:
            bucket = source.object_storage.bucket
            found[bucket] = bucket_compartment(settings, bucket)
        elif source.fine_tune is not None:
            bucket = source.fine_tune.output.removeprefix("oci://").split("@", 1)[0]
            found[bucket] = bucket_compartment(settings, bucket)
    for adapter in settings.adapters:  # the catalog copies each adapter's zip in too
        bucket = adapter.fine_tune.output.removeprefix("oci://").split("@", 1)[0]
        found[bucket] = bucket_compartment(settings, bucket)
    return found


def bucket_compartment(settings: Settings, bucket: str) -> str:
    """The compartment of a bucket the stack reads: `bucketCompartments.<bucket>`, else the stack's."""
    return settings.bucket_compartments.get(bucket, settings.compartment_id)


def subnet_compartment(settings: Settings) -> str:
    """The subnet's compartment: `network.subnetCompartmentId`, else the stack's (its own VCN is there)."""
    return settings.network.subnet_compartment_id or settings.compartment_id


def kms_key_compartment(settings: Settings) -> str:
    """The Vault key's compartment: `artifactBucket.kmsKeyCompartmentId`, else the stack's."""
    return settings.artifact_bucket.kms_key_compartment_id or settings.compartment_id


def service_needs(settings: Settings) -> ServiceNeeds:
    return ServiceNeeds(
        region=settings.region,
        compartment_id=settings.compartment_id,
        subnet_compartment_id=subnet_compartment(settings) if uses_subnet(settings) else None,
        export_buckets=export_buckets(settings),
        artifact_bucket=settings.artifact_bucket.name,
        kms_key_id=settings.artifact_bucket.kms_key_id,
        kms_key_compartment_id=kms_key_compartment(settings),
    )


def stack_statements(settings: Settings, dynamic_group: str) -> dict[str, list[str]]:
    """compartment -> every statement the stack needs, with `dynamic_group` for its workloads."""
    found = service_statements(service_needs(settings))

    def add(statements: list[str]) -> None:
        found.setdefault(settings.compartment_id, []).extend(statements)

    add(
        policy_statements(
            dynamic_group=dynamic_group,
            compartment_id=settings.compartment_id,
            bucket=settings.artifact_bucket.name,
            token_secret_id=settings.hf_token_secret_id,
        )
    )
    training = training_access(settings)
    if training is not None:
        add(
            training_policy_statements(
                dynamic_group=dynamic_group,
                compartment_id=settings.compartment_id,
                read_buckets=training.read_buckets,
                write_buckets=training.write_buckets,
                token_secret_id=settings.hf_token_secret_id,
            )
        )
    return {c: list(dict.fromkeys(s)) for c, s in found.items()}


# -- reading statements back (preflight, with an administrator's dynamic group) ----------------------------

VERBS = ("inspect", "read", "use", "manage")

# Family -> the resource types it holds (OCI policy reference, "Resource-Types"; only the ones used here).
FAMILIES: dict[str, frozenset[str]] = {
    "object-family": frozenset({"buckets", "objects", "objectstorage-namespaces"}),
    "logging-family": frozenset({"log-groups", "log-content", "unified-configuration"}),
    "virtual-network-family": frozenset({"vcns", "subnets", "vnics", "network-security-groups"}),
    "repos": frozenset({"repos"}),
    "secret-family": frozenset({"secrets", "secret-bundles"}),
    "all-resources": frozenset({"*"}),
}

_STATEMENT = re.compile(
    r"^\s*allow\s+(?P<subject>.+?)\s+to\s+(?P<verb>inspect|read|use|manage)\s+(?P<resource>[\w-]+)"
    r"\s+in\s+(?P<where>tenancy|compartment\s+id\s+\S+|compartment\s+\S+)"
    r"(?:\s+where\s+(?P<condition>.+?))?\s*$",
    re.IGNORECASE,
)
_CONDITION_VALUE = re.compile(r"([\w.]+)\s*=\s*'([^']*)'")


@dataclass(frozen=True, kw_only=True)
class Statement:
    subject: str  # lower-case, single-spaced: `service datascience`, `dynamic-group name`
    verb: str
    resource: str
    where: str  # `tenancy`, `compartment id <ocid>` or `compartment <name>`
    conditions: tuple[tuple[str, str], ...]  # (variable, value) pairs, lower-case variables
    any_condition: bool  # `where any {...}`: one of the conditions suffices

    def covers(self, need: Statement, compartment_names: Mapping[str, str] | None = None) -> bool:
        """Whether this (present) statement grants at least what `need` asks for."""
        if self.subject != need.subject or VERBS.index(self.verb) < VERBS.index(need.verb):
            return False
        family = FAMILIES.get(self.resource, frozenset())
        if self.resource not in (need.resource, "all-resources") and need.resource not in family:
            return False
        if not _location_covers(self.where, need.where, compartment_names or {}):
            return False
        if not self.conditions:
            return True
        # A narrower present statement covers the need when each needed value is among its values.
        have = {(k, v.lower()) for k, v in self.conditions}
        wanted = {(k, v.lower()) for k, v in need.conditions}
        if not wanted:
            return False
        return wanted <= have if self.any_condition else have <= wanted


def _location_covers(have: str, need: str, compartment_names: Mapping[str, str]) -> bool:
    if have == "tenancy" or have == need:
        return True
    if need.startswith("compartment id ") and have.startswith("compartment "):
        return compartment_names.get(need.removeprefix("compartment id ")) == have.removeprefix(
            "compartment "
        )
    return False


def parse_statement(text: str) -> Statement | None:
    """A policy statement as data; None for forms this check does not read (`endorse`, `define`, ...)."""
    found = _STATEMENT.match(" ".join(text.split()))
    if found is None:
        return None
    condition = found.group("condition") or ""
    any_condition = condition.lower().startswith("any")
    pairs = tuple((k.lower(), v) for k, v in _CONDITION_VALUE.findall(condition))
    where = found.group("where")
    where = (
        "tenancy" if where.lower() == "tenancy" else re.sub(r"^compartment", "compartment", where, flags=re.I)
    )
    if where.lower().startswith("compartment id "):
        where = "compartment id " + where.split()[-1]
    return Statement(
        subject=" ".join(found.group("subject").lower().split()),
        verb=found.group("verb").lower(),
        resource=found.group("resource").lower(),
        where=where,
        conditions=pairs,
        any_condition=any_condition or len(pairs) <= 1,
    )


def missing_statements(
    needed: Iterable[str], present: Iterable[str], compartment_names: Mapping[str, str] | None = None
) -> list[str]:
    """The needed statements no present statement covers (parsed, case-insensitively)."""
    have = [s for s in (parse_statement(p) for p in present) if s is not None]
    missing = []
    for text in needed:
        need = parse_statement(text)
        if need is None:
            raise ValueError(f"cannot read the needed statement {text!r}")
        # A need on several buckets (`where any {...}`) is met bucket by bucket, maybe by several statements.
        parts = (
            [
                Statement(
                    subject=need.subject,
                    verb=need.verb,
                    resource=need.resource,
                    where=need.where,
                    conditions=(c,),
                    any_condition=True,
                )
                for c in need.conditions
            ]
            if need.any_condition and len(need.conditions) > 1
            else [need]
        )
        if not all(any(h.covers(p, compartment_names) for h in have) for p in parts):
            missing.append(text)
    return missing
