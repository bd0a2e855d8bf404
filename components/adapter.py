"""Adapter: a LoRA fine-tune kept as an adapter, registered as a catalog model of its own.

FineTune (`--save adapter`: the job writes the adapter, not merged weights) -> CatalogModel (the adapter's
zip). No deployment: the adapter is a member of its base model's model group and is served on the base's
deployment (components/model_group.py, components/model_serving.py), picked by its name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.fine_tune import FineTune, FineTuneArgs
from components.providers.catalog import CatalogModel, CatalogModelArgs, ObjectStorageArtifact
from components.training_artifact import JobArtifact
from domain.adapters import AdapterSettings
from domain.context import TAG_FINETUNE_METHOD, TAG_MODEL, TAG_PARAMETERS, Context
from domain.settings import AuthSettings


@dataclass(frozen=True, kw_only=True)
class AdapterArgs:
    context: Context
    adapter: AdapterSettings
    region: str
    compartment_id: str
    project_id: pulumi.Input[str]
    network_access_type: str
    subnet_id: pulumi.Input[str | None]
    log_group_id: pulumi.Input[str]
    train_log_id: pulumi.Input[str]
    auth: AuthSettings
    token_secret_id: str | None = None
    training_shape_hourly_usd: float | None = None
    artifact: JobArtifact | None = None
    depends_on: Sequence[pulumi.Resource] = ()


class Adapter(pulumi.ComponentResource):
    catalog_model_id: pulumi.Output[str]
    fine_tune: FineTune

    def __init__(self, name: str, args: AdapterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("oci-llm-stack:training:Adapter", name, None, opts)
        ctx, adapter = args.context, args.adapter
        child = pulumi.ResourceOptions(parent=self)
        self.fine_tune = FineTune(
            f"{name}-finetune",
            FineTuneArgs(
                context=ctx,
                model_name=adapter.name,
                fine_tune=adapter.fine_tune,
                parameters_b=adapter.parameters_b,
                region=args.region,
                compartment_id=args.compartment_id,
                project_id=args.project_id,
                network_access_type=args.network_access_type,
                subnet_id=args.subnet_id,
                log_group_id=args.log_group_id,
                log_id=args.train_log_id,
                auth=args.auth,
                token_secret_id=args.token_secret_id,
                shape_hourly_usd=args.training_shape_hourly_usd,
                artifact=args.artifact,
                depends_on=args.depends_on,
            ),
            opts=child,
        )
        tune = self.fine_tune
        catalog = CatalogModel(
            f"{name}-model",
            CatalogModelArgs(
                compartment_id=args.compartment_id,
                project_id=args.project_id,
                display_name=ctx.display_name(adapter.name),
                description=(
                    f"{adapter.name}: LoRA adapter of {adapter.base} ({adapter.fine_tune.base_model}), "
                    f"served on {adapter.base}'s deployment"
                ),
                freeform_tags=ctx.freeform_tags(
                    **{
                        TAG_MODEL: adapter.name,
                        TAG_FINETUNE_METHOD: adapter.fine_tune.method,
                        TAG_PARAMETERS: f"{adapter.parameters_b:g}",
                    }
                ),
                region=args.region,
                auth=args.auth,
                artifact=ObjectStorageArtifact(
                    namespace=tune.namespace,
                    bucket=tune.bucket,
                    object_name=tune.object_name,
                    region=args.region,
                ),
                custom_metadata={
                    "source": f"fineTune:adapter of {adapter.base}",
                    "baseModel": adapter.base,
                    "loraRank": str(adapter.fine_tune.lora_r),
                    "fingerprint": tune.fingerprint,
                },
            ),
            opts=child,
        )
        self.catalog_model_id = catalog.id
        self.register_outputs({"catalog_model_id": self.catalog_model_id})
