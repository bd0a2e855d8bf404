"""The guardrails, as plain rules over resource inputs.

Each rule's `validate(resource_type, inputs, config)` (or `validate_stack(resources, config)` for a stack
rule) is an ordinary function: the CrossGuard pack in `policy/__main__.py` wraps them, `llmstack plan` calls
them on the recorded resources, and the tests call them directly. Inputs are the engine's camelCase
properties; values not known until apply are `figures.UNKNOWN` and never judged.

Per-stack configuration uses Pulumi's policy-config format (`policy/config/<stack>.json`):
`{"<rule>": "advisory"}` or `{"<rule>": {"enforcementLevel": "mandatory", "<property>": ...}}`, plus `"all"`
for every rule's level.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from domain import pricing
from domain.context import TAG_BUDGET, TAG_MODEL
from domain.secrets import SECRET_PATTERNS
from domain.service_container import InvalidServiceContainer, is_service_image, parse_service_container
from policy import figures
from policy.figures import MODEL_DEPLOYMENT, TRAINING_JOB, UNKNOWN, FactsError, get, tags_of

Enforcement = Literal["advisory", "mandatory", "disabled"]
ENFORCEMENTS: tuple[Enforcement, ...] = ("advisory", "mandatory", "disabled")

BUCKET = "oci:ObjectStorage/bucket:Bucket"
SUBNET = "oci:Core/subnet:Subnet"
LOG = "oci:Logging/log:Log"
IAM_POLICY = "oci:Identity/policy:Policy"
CATALOG_MODEL = "pulumi-python:dynamic/catalog:CatalogModel"

# The project's resources that take freeform tags (any other resource with a `freeformTags` input is
# checked as well).
TAGGABLE_TYPES: tuple[str, ...] = (
    "oci:Core/vcn:Vcn",
    SUBNET,
    "oci:Core/natGateway:NatGateway",
    "oci:Core/serviceGateway:ServiceGateway",
    "oci:Core/routeTable:RouteTable",
    "oci:Core/securityList:SecurityList",
    "oci:Core/networkSecurityGroup:NetworkSecurityGroup",
    "oci:Logging/logGroup:LogGroup",
    LOG,
    "oci:Artifacts/containerRepository:ContainerRepository",
    "oci:Identity/dynamicGroup:DynamicGroup",
    IAM_POLICY,
    "oci:DataScience/project:Project",
    MODEL_DEPLOYMENT,
    BUCKET,
    CATALOG_MODEL,
)


@dataclass(frozen=True, kw_only=True)
class StackResource:
    """One resource as a stack rule sees it."""

    type: str
    urn: str
    inputs: Mapping[str, Any]
    name: str = ""


@dataclass(frozen=True, kw_only=True)
class Finding:
    message: str
    urn: str | None = None


@dataclass(frozen=True, kw_only=True)
class Violation:
    policy: str
    enforcement: Enforcement
    urn: str | None
    message: str

    def as_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "enforcement": self.enforcement,
            "urn": self.urn,
            "message": self.message,
        }


ResourceCheck = Callable[[str, Mapping[str, Any], Mapping[str, Any]], list[str]]
StackCheck = Callable[[Sequence[StackResource], Mapping[str, Any]], list[Finding]]


@dataclass(frozen=True, kw_only=True)
class Rule:
    name: str
    description: str
    why: str
    enforcement: Enforcement
    properties: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """JSON schema of each config property, with its `default`."""
    resource_check: ResourceCheck | None = None
    stack_check: StackCheck | None = None

    @property
    def is_stack_rule(self) -> bool:
        return self.stack_check is not None

    def config(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults with `overrides` on top; ValueError naming an unknown or ill-typed property."""
        merged = {key: spec["default"] for key, spec in self.properties.items() if "default" in spec}
        for key, value in (overrides or {}).items():
            if key not in self.properties:
                known = ", ".join(sorted(self.properties)) or "none"
                raise ValueError(f"{self.name}.{key} is not a setting of this policy; settings: {known}")
            if not _matches(value, self.properties[key].get("type")):
                raise ValueError(f"{self.name}.{key}={value!r} is not of type {self.properties[key]['type']}")
            merged[key] = value
        return merged

    def validate(
        self, resource_type: str, inputs: Mapping[str, Any], config: Mapping[str, Any] | None = None
    ) -> list[str]:
        """The violation messages for one resource (a resource rule)."""
        if self.resource_check is None:
            raise TypeError(f"{self.name} is a stack rule; call validate_stack")
        return self.resource_check(resource_type, inputs, self.config(config))

    def validate_stack(
        self, resources: Sequence[StackResource], config: Mapping[str, Any] | None = None
    ) -> list[Finding]:
        """The findings over all resources (a stack rule, or a resource rule applied to each)."""
        settings = self.config(config)
        if self.stack_check is not None:
            return self.stack_check(resources, settings)
        assert self.resource_check is not None
        check = self.resource_check
        return [Finding(message=m, urn=r.urn) for r in resources for m in check(r.type, r.inputs, settings)]


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (Mapping,),
}


def _matches(value: Any, schema_type: str | None) -> bool:
    if schema_type is None:
        return True
    if isinstance(value, bool) and schema_type in ("number", "integer"):
        return False
    if schema_type == "integer" and isinstance(value, float):
        return value.is_integer()  # the engine hands numbers over as doubles
    return isinstance(value, _JSON_TYPES[schema_type])


# ---------------------------------------------------------------------------------------------------------
# The rules


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in nested inputs with its dotted path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if key != "__provider":
                yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


# Where each container-running resource keeps its image settings, and the field that says "a container".
_IMAGE_SETTINGS = {
    MODEL_DEPLOYMENT: (
        "modelDeploymentConfigurationDetails.environmentConfigurationDetails",
        "environmentConfigurationType",
        "the container deployment",
    ),
    TRAINING_JOB: ("jobEnvironmentConfigurationDetails", "jobEnvironmentType", "the training job"),
}


def check_image_pinned(resource_type: str, inputs: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    """Serving images and training images alike: a moved tag would change what runs (or what a run trains)."""
    if resource_type not in _IMAGE_SETTINGS:
        return []
    where, kind, what = _IMAGE_SETTINGS[resource_type]
    env = get(inputs, where)
    if env is None or env is UNKNOWN or get(env, kind) != "OCIR_CONTAINER":
        return []
    image = get(env, "image")
    if image is UNKNOWN:
        return []
    if not isinstance(image, str) or not image:
        return [f"{what} names no image"]
    if is_service_image(image):
        # Oracle's service-managed container: OCI takes no digest for it; an explicit version pins it.
        try:
            parse_service_container(image)
        except InvalidServiceContainer as exc:
            return [f"service container {image} is not pinned to a version; use {exc}"]
        return []
    if not _DIGEST.search(image):
        tail = image.rsplit("/", 1)[-1]
        tag = tail.split(":", 1)[1] if ":" in tail else "latest (implied)"
        return [f"image {image} is referenced by tag '{tag}'; pin it by digest (…@sha256:<64 hex>)"]
    digest = get(env, "imageDigest")
    if isinstance(digest, str) and digest and not image.endswith("@" + digest):
        return [f"imageDigest {digest} differs from the digest in image {image}"]
    return []


def check_gpu_fit(resource_type: str, inputs: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    if resource_type != MODEL_DEPLOYMENT:
        return []
    if figures.shape_of(inputs) is UNKNOWN:
        return []
    settings = figures.FitSettings(
        memory_utilisation=config.get("memoryUtilisation"),
        overhead_gb_per_gpu=float(config["overheadGbPerGpu"]),
    )
    model = tags_of(inputs).get(TAG_MODEL, "this model")
    try:
        report = figures.deployment_fit(inputs, settings)
    except (FactsError, ValueError) as exc:
        return [f"cannot size {model}: {exc}"]
    if report.fits:
        return []
    return [f"{model} {report.summary()}; choose a larger shape, more tensor parallelism or quantization"]


def check_monthly_budget(resources: Sequence[StackResource], config: Mapping[str, Any]) -> list[Finding]:
    deployments = [r for r in resources if r.type == MODEL_DEPLOYMENT]
    budget = config.get("monthlyUsd")
    if budget is None:
        for resource in deployments:
            tagged = tags_of(resource.inputs).get(TAG_BUDGET)
            if isinstance(tagged, str):
                try:
                    budget = float(tagged)
                except ValueError:
                    return [Finding(message=f"tag {TAG_BUDGET}={tagged!r} is not a number", urn=resource.urn)]
                break
    if budget is None:
        return []
    try:
        prices = pricing.with_overrides(pricing.DEFAULT_PRICES, config.get("prices"))
    except ValueError as exc:
        return [Finding(message=f"policy config: {exc}")]
    total = 0.0
    parts: list[str] = []
    for resource in deployments:
        model = tags_of(resource.inputs).get(TAG_MODEL, resource.name)
        try:
            cost = figures.deployment_cost(resource.inputs, prices)
        except (FactsError, ValueError) as exc:
            return [Finding(message=f"cannot price {model}: {exc}", urn=resource.urn)]
        total += cost.monthly_usd
        parts.append(f"{model} ${cost.monthly_usd:,.0f} ({cost.shape} x{cost.instances})")
    if total <= budget:
        return []
    overridden = figures.prices_overridden(prices, (r.inputs for r in deployments))
    basis = f"list prices of {prices.as_of}" + (" with the stack's overrides" if overridden else "")
    return [
        Finding(
            message=(
                f"estimated ${total:,.0f}/month exceeds the budget of ${budget:,.0f}: {', '.join(parts)} "
                f"({basis}, 730 h)"
            )
        )
    ]


def check_required_tags(
    resource_type: str, inputs: Mapping[str, Any], config: Mapping[str, Any]
) -> list[str]:
    if resource_type not in config["types"] and "freeformTags" not in inputs:
        return []
    tags = inputs.get("freeformTags")
    if tags is UNKNOWN:
        return []
    present = tags if isinstance(tags, Mapping) else {}
    missing = [t for t in config["tags"] if not (isinstance(present.get(t), str) and present.get(t))]
    if not missing:
        return []
    return [f"freeform tags {', '.join(missing)} missing (required: {', '.join(config['tags'])}; set `tags`)"]


def _bucket_exempt(inputs: Mapping[str, Any], config: Mapping[str, Any]) -> bool:
    return get(inputs, "name") in config["exemptBuckets"]


def check_bucket_private(
    resource_type: str, inputs: Mapping[str, Any], config: Mapping[str, Any]
) -> list[str]:
    if resource_type != BUCKET or _bucket_exempt(inputs, config):
        return []
    access = get(inputs, "accessType", "NoPublicAccess")  # the service's default
    if access is UNKNOWN or access in config["allowedAccessTypes"]:
        return []
    return [f"bucket {get(inputs, 'name', '?')} has accessType {access}; use NoPublicAccess"]


def check_bucket_versioned(
    resource_type: str, inputs: Mapping[str, Any], config: Mapping[str, Any]
) -> list[str]:
    if resource_type != BUCKET or _bucket_exempt(inputs, config):
        return []
    versioning = get(inputs, "versioning")
    if versioning is UNKNOWN or versioning == "Enabled":
        return []
    shown = versioning if versioning is not None else "not set (the service default is Disabled)"
    return [f"bucket {get(inputs, 'name', '?')} versioning is {shown}; set versioning Enabled"]


def check_no_public_ip_subnet(
    resource_type: str, inputs: Mapping[str, Any], config: Mapping[str, Any]
) -> list[str]:
    if resource_type != SUBNET or get(inputs, "displayName") in config["exemptSubnets"]:
        return []
    prohibited = get(inputs, "prohibitPublicIpOnVnic")
    if prohibited is UNKNOWN or prohibited is True:
        return []
    shown = "not set (public IPs allowed)" if prohibited is None else "false"
    return [f"subnet {get(inputs, 'displayName', '?')} prohibitPublicIpOnVnic is {shown}; set it true"]


def check_deployment_logs(
    resource_type: str, inputs: Mapping[str, Any], config: Mapping[str, Any]
) -> list[str]:
    if resource_type == LOG:
        if get(inputs, "isEnabled") is False:
            return [f"log {get(inputs, 'displayName', '?')} is disabled"]
        return []
    if resource_type != MODEL_DEPLOYMENT:
        return []
    messages = []
    for category in config["categories"]:
        details = get(inputs, f"categoryLogDetails.{category}")
        if details is UNKNOWN:
            continue
        if not isinstance(details, Mapping) or not details.get("logId") or not details.get("logGroupId"):
            messages.append(f"no {category} log: set categoryLogDetails.{category} (log group and log)")
    return messages


def check_log_retention(
    resource_type: str, inputs: Mapping[str, Any], config: Mapping[str, Any]
) -> list[str]:
    if resource_type != LOG:
        return []
    days = get(inputs, "retentionDuration", 30)  # the service's default
    if days is UNKNOWN:
        return []
    minimum = config["minimumDays"]
    if isinstance(days, int | float) and days >= minimum:
        return []
    shown = f"{days:g}" if isinstance(days, int | float) else repr(days)
    return [f"log {get(inputs, 'displayName', '?')} keeps {shown} days; at least {minimum:g} required"]


def check_no_plaintext_secrets(
    resource_type: str, inputs: Mapping[str, Any], config: Mapping[str, Any]
) -> list[str]:
    allowed = set(config["allowedPaths"])
    patterns = {**SECRET_PATTERNS, **{f"a match of {p}": p for p in config["extraPatterns"]}}
    messages = []
    for path, text in _strings(inputs):
        if f"{resource_type}:{path}" in allowed:
            continue
        for what, pattern in patterns.items():
            if re.search(pattern, text):
                # Never repeat the value: the message itself ends up in logs and PR comments.
                messages.append(
                    f"input {path} holds {what} in plain text; keep it in Vault or a Pulumi secret"
                )
    return messages


def check_no_broad_iam(resource_type: str, inputs: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    if resource_type != IAM_POLICY:
        return []
    statements = get(inputs, "statements", [])
    if statements is UNKNOWN or not isinstance(statements, list | tuple):
        return []
    messages = []
    for statement in statements:
        if not isinstance(statement, str):
            continue
        for pattern in config["forbiddenPatterns"]:
            if re.search(pattern, statement, re.IGNORECASE):
                messages.append(f"statement grants too much ({pattern}): {statement}")
    return messages


def check_prod_redundancy(
    resource_type: str, inputs: Mapping[str, Any], config: Mapping[str, Any]
) -> list[str]:
    if resource_type != MODEL_DEPLOYMENT:
        return []
    environment = tags_of(inputs).get("environment")
    if environment not in config["environments"]:
        return []
    try:
        fewest, _ = figures.instance_counts(inputs)
    except FactsError:
        return []
    minimum = config["minReplicas"]
    if fewest >= minimum:
        return []
    model = tags_of(inputs).get(TAG_MODEL, "the model")
    return [f"{model} runs {fewest} instance(s) in {environment}; at least {minimum:g} survive one failing"]


_STRINGS = {"type": "array", "items": {"type": "string"}}

RULES: tuple[Rule, ...] = (
    Rule(
        name="image-pinned-by-digest",
        description="Serving images are referenced by digest, not by a tag such as :latest; Oracle's "
        "service containers (dsmc://) by an explicit version.",
        why="A tag can be moved: prod would silently run whatever was pushed last.",
        enforcement="mandatory",
        resource_check=check_image_pinned,
    ),
    Rule(
        name="gpu-memory-fits-model",
        description="Weights, runtime overhead and the KV cache of one full-length sequence fit the GPUs.",
        why="A model that does not fit fails only after a 40-minute deployment.",
        enforcement="mandatory",
        properties={
            "memoryUtilisation": {"type": "number", "description": "share of GPU memory the engine uses"},
            "overheadGbPerGpu": {"type": "number", "default": 1.5, "description": "runtime overhead per GPU"},
        },
        resource_check=check_gpu_fit,
    ),
    Rule(
        name="monthly-budget",
        description="The stack's deployments cost no more per month than budget.monthlyUsd.",
        why="An A100 shape left at two replicas costs tens of thousands a month.",
        enforcement="mandatory",
        properties={
            "monthlyUsd": {"type": "number", "description": "budget; else the deployments' budget tag"},
            "prices": {
                "type": "object",
                "default": {},
                "description": "price overrides, as settings `pricing`",
            },
        },
        stack_check=check_monthly_budget,
    ),
    Rule(
        name="required-tags",
        description="Every taggable resource carries the required freeform tags.",
        why="Cost reports and clean-up find resources by environment and owning team.",
        enforcement="mandatory",
        properties={
            "tags": {**_STRINGS, "default": ["environment", "team"]},
            "types": {**_STRINGS, "default": list(TAGGABLE_TYPES)},
        },
        resource_check=check_required_tags,
    ),
    Rule(
        name="artifact-bucket-private",
        description="Buckets holding model artifacts allow no public access.",
        why="Model weights and token files are the tenancy's property.",
        enforcement="mandatory",
        properties={
            "allowedAccessTypes": {**_STRINGS, "default": ["NoPublicAccess"]},
            "exemptBuckets": {**_STRINGS, "default": []},
        },
        resource_check=check_bucket_private,
    ),
    Rule(
        name="artifact-bucket-versioned",
        description="Buckets holding model artifacts keep object versions.",
        why="An overwritten or deleted model zip can be restored; reference artifacts need versioning.",
        enforcement="mandatory",
        properties={"exemptBuckets": {**_STRINGS, "default": []}},
        resource_check=check_bucket_versioned,
    ),
    Rule(
        name="no-public-ip-subnet",
        description="Subnets forbid public IPs on their VNICs.",
        why="Model deployments need no inbound internet path; egress goes through NAT.",
        enforcement="mandatory",
        properties={"exemptSubnets": {**_STRINGS, "default": []}},
        resource_check=check_no_public_ip_subnet,
    ),
    Rule(
        name="deployment-logs-enabled",
        description="Model deployments write predict and access logs, and no log is disabled.",
        why="Without logs a failing deployment or a misbehaving client cannot be diagnosed.",
        enforcement="mandatory",
        properties={"categories": {**_STRINGS, "default": ["predict", "access"]}},
        resource_check=check_deployment_logs,
    ),
    Rule(
        name="log-retention-minimum",
        description="Logs are kept at least minimumDays (default 30, the service's shortest).",
        why="Incidents are noticed late; audits ask for months of access logs.",
        enforcement="mandatory",
        properties={"minimumDays": {"type": "integer", "default": 30}},
        resource_check=check_log_retention,
    ),
    Rule(
        name="no-plaintext-secrets",
        description="No input holds a Hugging Face token (hf_...) or private key material in plain text.",
        why="Inputs end up in the console, the state file and logs.",
        enforcement="mandatory",
        properties={
            "allowedPaths": {
                **_STRINGS,
                # The catalog model zips the token into its artifact; Pulumi keeps this input secret.
                "default": [f"{CATALOG_MODEL}:hfToken"],
            },
            "extraPatterns": {**_STRINGS, "default": []},
        },
        resource_check=check_no_plaintext_secrets,
    ),
    Rule(
        name="no-broad-iam",
        description="No IAM policy statement grants `manage all-resources`.",
        why="Deployments need to read images, logs and one bucket; anything broader is a breach waiting.",
        enforcement="mandatory",
        properties={"forbiddenPatterns": {**_STRINGS, "default": [r"\bmanage\s+all-resources\b"]}},
        resource_check=check_no_broad_iam,
    ),
    Rule(
        name="prod-redundancy",
        description="Production model deployments run at least minReplicas (default 2) instances.",
        why="One instance is one failure from an outage.",
        enforcement="advisory",
        properties={
            "minReplicas": {"type": "integer", "default": 2},
            "environments": {**_STRINGS, "default": ["prod", "production"]},
        },
        resource_check=check_prod_redundancy,
    ),
)

RULES_BY_NAME: dict[str, Rule] = {rule.name: rule for rule in RULES}


# ---------------------------------------------------------------------------------------------------------
# Per-stack configuration and evaluation


@dataclass(frozen=True, kw_only=True)
class PolicyConfig:
    """Enforcement levels and properties per rule, as a `--policy-pack-config` file states them."""

    levels: Mapping[str, Enforcement] = field(default_factory=dict)
    properties: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    default_level: Enforcement | None = None

    def level(self, rule: Rule) -> Enforcement:
        return self.levels.get(rule.name) or self.default_level or rule.enforcement

    def settings(self, rule: Rule) -> dict[str, Any]:
        return rule.config(self.properties.get(rule.name))

    def with_properties(self, rule_name: str, **properties: Any) -> PolicyConfig:
        merged = {**self.properties, rule_name: {**self.properties.get(rule_name, {}), **properties}}
        return PolicyConfig(levels=self.levels, properties=merged, default_level=self.default_level)


def _level(value: Any, where: str) -> Enforcement:
    for level in ENFORCEMENTS:
        if value == level:
            return level
    raise ValueError(f"{where}: enforcement level {value!r} is not one of {', '.join(ENFORCEMENTS)}")


def parse_policy_config(raw: Any, source: str = "policy config") -> PolicyConfig:
    """Read Pulumi's policy-config format; ValueError naming the rule and key for anything wrong."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"{source}: expected an object of policy names, got {type(raw).__name__}")
    levels: dict[str, Enforcement] = {}
    properties: dict[str, dict[str, Any]] = {}
    default_level: Enforcement | None = None
    for name, value in raw.items():
        if name == "all":
            default_level = _level(value, f"{source}: all")
            continue
        rule = RULES_BY_NAME.get(name)
        if rule is None:
            known = ", ".join(RULES_BY_NAME)
            raise ValueError(f"{source}: {name!r} is not a policy of this pack; policies: {known}")
        if isinstance(value, str):
            levels[name] = _level(value, f"{source}: {name}")
            continue
        if not isinstance(value, Mapping):
            raise ValueError(f"{source}: {name} must be a level or an object, got {value!r}")
        body = dict(value)
        if "enforcementLevel" in body:
            levels[name] = _level(body.pop("enforcementLevel"), f"{source}: {name}.enforcementLevel")
        try:
            rule.config(body)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None
        properties[name] = body
    return PolicyConfig(levels=levels, properties=properties, default_level=default_level)


def load_policy_config(path: Path) -> PolicyConfig:
    """A per-stack policy-config JSON file; ValueError naming the file on unreadable or invalid content."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read policy config: {exc}") from None
    return parse_policy_config(raw, str(path))


def evaluate(resources: Sequence[StackResource], config: PolicyConfig | None = None) -> list[Violation]:
    """Every rule on every resource, at the configured levels; disabled rules are skipped."""
    config = config or PolicyConfig()
    violations: list[Violation] = []
    for rule in RULES:
        level = config.level(rule)
        if level == "disabled":
            continue
        for finding in rule.validate_stack(resources, config.settings(rule)):
            violations.append(
                Violation(policy=rule.name, enforcement=level, urn=finding.urn, message=finding.message)
            )
    return violations
