"""Readiness: a deployment counts as done only when it is ACTIVE and has answered a real prompt.

It re-checks only when what it guards changes (`triggers`: model, image, environment, shape, replicas;
or the deployment itself, the URL or the smoke prompt), not on every `pulumi up`. The check itself, and
the diagnostics it raises when the deployment fails, live in `oci_runtime.readiness`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic

from components.providers.artifact import auth_inputs
from components.providers.base import DynamicResource, ProviderBase
from domain.settings import AuthSettings
from oci_runtime.auth import Auth
from oci_runtime.readiness import POLLING, ReadinessCheck, Ready, check_readiness
from oci_runtime.retry import Backoff

OUTPUT_KEYS = ("predictUrl", "streamUrl", "state", "smokeLatencyMs", "checkedAt")
# Inputs whose change calls for a new smoke test even when the triggers stay the same.
RECHECK_ON = ("deploymentUrl", "smokePrompt")


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
    endpoints: Mapping[str, str] | None = (
        None  # {"datascience" | "loggingsearch": URL}, e.g. a private endpoint
    )
    # The smoke prompt's API: `legacy` ({"inputs"} on /predict, the custom images' adapter) or `chat`
    # (OpenAI chat to `served_model`: the service container's vLLM has no legacy route).
    smoke_api: str = "legacy"
    served_model: str | None = None

    def props(self) -> dict[str, Any]:
        endpoints = {"endpoints": dict(self.endpoints)} if self.endpoints else {}
        smoke = (
            {"smokeApi": self.smoke_api, "servedModel": self.served_model}
            if self.smoke_api != "legacy"
            else {}
        )
        return {
            **endpoints,
            **smoke,
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
    outputs = OUTPUT_KEYS

    def __init__(self, polling: Backoff | None = None) -> None:
        super().__init__()
        self.polling = polling or POLLING

    def validate(self, news: Mapping[str, Any]) -> list[pulumi.dynamic.CheckFailure]:
        failures = super().validate(news)
        minutes = news.get("timeoutMinutes")
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not minutes > 0:
            failures.append(
                pulumi.dynamic.CheckFailure(
                    "timeoutMinutes", f"timeoutMinutes must be a positive number of minutes, got {minutes!r}"
                )
            )
        return failures

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        ready = check_readiness(self._check(props))
        return pulumi.dynamic.CreateResult(
            f"{props['deploymentId']}/{uuid.uuid4().hex[:12]}", {**props, **_outs(ready)}
        )

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        changed = any(olds.get(key) != news.get(key) for key in RECHECK_ON)
        if changed or any(olds.get(key) is None for key in OUTPUT_KEYS):
            return pulumi.dynamic.UpdateResult({**news, **_outs(check_readiness(self._check(news)))})
        # A new timeout, log or engine input: the last verdict still holds.
        return pulumi.dynamic.UpdateResult({**news, **{key: olds[key] for key in OUTPUT_KEYS}})

    def read(self, id_: str, props: dict[str, Any]) -> pulumi.dynamic.ReadResult:
        return pulumi.dynamic.ReadResult(id_, props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing to remove: the check leaves nothing behind in the cloud."""

    def _check(self, props: Mapping[str, Any]) -> ReadinessCheck:
        return ReadinessCheck(
            deployment_id=str(props["deploymentId"]),
            deployment_url=str(props["deploymentUrl"]),
            region=str(props["region"]),
            smoke_prompt=str(props["smokePrompt"]),
            timeout_s=float(props["timeoutMinutes"]) * 60,
            auth=Auth.from_inputs(props.get("auth")),
            log_group_id=props.get("logGroupId") or None,
            predict_log_id=props.get("predictLogId") or None,
            access_log_id=props.get("accessLogId") or None,
            endpoints=dict(props.get("endpoints") or {}),
            polling=self.polling,
            api=str(props.get("smokeApi") or "legacy"),
            model=props.get("servedModel") or None,
        )


def _outs(ready: Ready) -> dict[str, Any]:
    return {
        "predictUrl": ready.predict_url,
        "streamUrl": ready.stream_url,
        "state": ready.state,
        "smokeLatencyMs": ready.smoke_latency_ms,
        "checkedAt": ready.checked_at,
    }


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
