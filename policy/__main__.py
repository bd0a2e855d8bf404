"""Builds the CrossGuard policy pack from the plain rules in `policy.rules`; nothing else lives here.

Run by the Pulumi CLI: `pulumi preview --policy-pack policy --policy-pack-config policy/config/dev.json`.
The `PolicyPack` constructor serves the analyzer over gRPC and blocks until the engine stops it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# The pack runs in its own virtualenv (requirements.txt: pulumi-policy alone) and imports the rules and the
# project's domain facts (pure Python, standard library only) from the repository it ships in.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from policy.figures import UNKNOWN
from policy.rules import RULES, Rule, StackResource

LEVELS = {
    "advisory": EnforcementLevel.ADVISORY,
    "mandatory": EnforcementLevel.MANDATORY,
    "disabled": EnforcementLevel.DISABLED,
}


def plain(value: Any) -> Any:
    """The engine's proxied inputs as plain dicts and lists, with values unknown until apply as UNKNOWN."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key in value:
            try:
                out[str(key)] = plain(value[key])
            except UnknownValueError:
                out[str(key)] = UNKNOWN
        return out
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items: list[Any] = []
        for index in range(len(value)):
            try:
                items.append(plain(value[index]))
            except UnknownValueError:
                items.append(UNKNOWN)
        return items
    return value


def _schema(rule: Rule) -> PolicyConfigSchema | None:
    return (
        PolicyConfigSchema(properties={k: dict(v) for k, v in rule.properties.items()})
        if rule.properties
        else None
    )


def as_policy(rule: Rule) -> ResourceValidationPolicy | StackValidationPolicy:
    """The CrossGuard policy that runs `rule` with the stack's policy config."""
    if rule.is_stack_rule:

        def validate_stack(args: StackValidationArgs, report_violation: ReportViolation) -> None:
            resources = [
                StackResource(type=r.resource_type, urn=r.urn, name=r.name, inputs=plain(r.props))
                for r in args.resources
            ]
            for finding in rule.validate_stack(resources, _own(rule, args.get_config())):
                report_violation(finding.message, finding.urn)

        return StackValidationPolicy(
            name=rule.name,
            description=rule.description,
            enforcement_level=LEVELS[rule.enforcement],
            validate=validate_stack,
            config_schema=_schema(rule),
        )

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in rule.validate(args.resource_type, plain(args.props), _own(rule, args.get_config())):
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        enforcement_level=LEVELS[rule.enforcement],
        validate=validate,
        config_schema=_schema(rule),
    )


def _own(rule: Rule, config: Mapping[str, Any]) -> dict[str, Any]:
    """The rule's properties from the engine's config (which also carries enforcementLevel)."""
    return {key: value for key, value in plain(config).items() if key in rule.properties}


def build() -> PolicyPack:
    return PolicyPack(name="oci-llm-stack-guardrails", policies=[as_policy(rule) for rule in RULES])


if __name__ == "__main__":
    build()
