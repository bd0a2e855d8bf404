"""Readiness: a deployment counts as done only when it is ACTIVE and has answered a real prompt.

It re-checks only when what it guards changes (`triggers`: model, image, environment, shape, replicas),
not on every `pulumi up`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic

from components.providers.artifact import auth_inputs
from components.providers.base import DynamicResource, ProviderBase
from components.settings import AuthSettings


@dataclass(frozen=True, kw_only=True)
class ReadinessArgs:
    deployment_id: pulumi.Input[str]
    deployment_url: pulumi.Input[str]
    region: str
    auth: AuthSettings
    engine: str
    smoke_prompt: str
    timeout_minutes: int
    log_group_id: pulumi.Input[str]
    predict_log_id: pulumi.Input[str]
    access_log_id: pulumi.Input[str]
    triggers: dict[str, pulumi.Input[Any]]

    def props(self) -> dict[str, Any]:
        return {
            "deploymentId": self.deployment_id,
            "deploymentUrl": self.deployment_url,
            "region": self.region,
            "auth": auth_inputs(self.auth),
            "engine": self.engine,
            "smokePrompt": self.smoke_prompt,
            "timeoutMinutes": self.timeout_minutes,
            "logGroupId": self.log_group_id,
            "predictLogId": self.predict_log_id,
            "accessLogId": self.access_log_id,
            "triggers": self.triggers,
        }


class ReadinessProvider(ProviderBase):
    replace_on = ("deploymentId", "triggers")
    required = ("deploymentId", "deploymentUrl", "region", "smokePrompt")

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        raise NotImplementedError("the readiness check is implemented by the readiness provider")


class Readiness(DynamicResource, module="readiness", name="Readiness"):
    predictUrl: pulumi.Output[str]
    streamUrl: pulumi.Output[str]
    state: pulumi.Output[str]
    smokeLatencyMs: pulumi.Output[int]
    checkedAt: pulumi.Output[str]

    def __init__(self, name: str, args: ReadinessArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        outputs = {
            "predictUrl": None,
            "streamUrl": None,
            "state": None,
            "smokeLatencyMs": None,
            "checkedAt": None,
        }
        super().__init__(ReadinessProvider(), name, {**args.props(), **outputs}, opts)
