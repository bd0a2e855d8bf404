"""DeploymentLogs: one log group and, per model, a predict log and an access log (CUSTOM, with retention).

A fine-tuned model also gets a training log: its job runs' stdout and stderr (progress, errors).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_oci as oci

from domain.context import TAG_MODEL, Context


@dataclass(frozen=True, kw_only=True)
class DeploymentLogsArgs:
    context: Context
    compartment_id: str
    model_names: tuple[str, ...]
    training_models: tuple[str, ...] = ()  # models fine-tuned in this stack: each gets a training log
    adapter_models: tuple[str, ...] = ()  # adapters served on their base's deployment: a training log alone
    retention_days: int = 30
    existing_log_group_id: str | None = None


@dataclass(frozen=True)
class ModelLogs:
    predict_log_id: pulumi.Output[str]
    access_log_id: pulumi.Output[str]
    train_log_id: pulumi.Output[str] | None = None


class DeploymentLogs(pulumi.ComponentResource):
    log_group_id: pulumi.Output[str]
    logs: dict[str, ModelLogs]
    adapter_logs: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: DeploymentLogsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("oci-llm-stack:logging:DeploymentLogs", name, None, opts)
        ctx = args.context
        child = pulumi.ResourceOptions(parent=self)
        if args.existing_log_group_id is not None:
            self.log_group_id = pulumi.Output.from_input(args.existing_log_group_id)
        else:
            group = oci.logging.LogGroup(
                f"{name}-group",
                compartment_id=args.compartment_id,
                display_name=ctx.display_name("model-deployments"),
                description=f"Predict and access logs of the {ctx.stack} model deployments",
                freeform_tags=ctx.freeform_tags(),
                opts=child,
            )
            self.log_group_id = group.id

        self.logs = {}
        for model in args.model_names:
            ids = {}
            kinds = ("predict", "access", "train") if model in args.training_models else ("predict", "access")
            for kind in kinds:
                log = oci.logging.Log(
                    f"{name}-{model}-{kind}",
                    log_group_id=self.log_group_id,
                    display_name=ctx.display_name(model, kind),
                    log_type="CUSTOM",
                    is_enabled=True,
                    retention_duration=args.retention_days,
                    freeform_tags=ctx.freeform_tags(**{TAG_MODEL: model}),
                    opts=child,
                )
                ids[kind] = log.id
            self.logs[model] = ModelLogs(
                predict_log_id=ids["predict"], access_log_id=ids["access"], train_log_id=ids.get("train")
            )

        self.adapter_logs = {}
        for adapter in args.adapter_models:
            self.adapter_logs[adapter] = oci.logging.Log(
                f"{name}-{adapter}-train",
                log_group_id=self.log_group_id,
                display_name=ctx.display_name(adapter, "train"),
                log_type="CUSTOM",
                is_enabled=True,
                retention_duration=args.retention_days,
                freeform_tags=ctx.freeform_tags(**{TAG_MODEL: adapter}),
                opts=child,
            ).id

        logs: dict[str, dict[str, pulumi.Output[str]]] = {
            model: {
                "predict": ids.predict_log_id,
                "access": ids.access_log_id,
                **({"train": ids.train_log_id} if ids.train_log_id is not None else {}),
            }
            for model, ids in self.logs.items()
        }
        logs.update({adapter: {"train": log_id} for adapter, log_id in self.adapter_logs.items()})
        self.register_outputs({"log_group_id": self.log_group_id, "logs": logs})
