"""Adapter: a LoRA fine-tune kept as an adapter, registered as a catalog model of its own.

FineTune (`--save adapter`: the job writes the adapter, not merged weights) -> CatalogModel (the adapter's
zip). No deployment: the adapter is a member of its base model's model group and is served on the base's
deployment (components/model_group.py, components/model_serving.py), picked by its name.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.fine_tune import FineTune, FineTuneArgs
from components.placement import Placement
from components.providers.catalog import CatalogModel, CatalogModelArgs
from domain.adapters import AdapterSettings
from domain.context import TAG_FINETUNE_METHOD, TAG_MODEL, TAG_PARAMETERS, Context


@dataclass(frozen=True, kw_only=True)
class AdapterArgs:
    context: Context
    adapter: AdapterSettings
    placement: Placement
    train_log_id: pulumi.Input[str]
    training_shape_hourly_usd: float | None = None


class Adapter(pulumi.ComponentResource):
    catalog_model_id: pulumi.Output[str]
    fine_tune: FineTune

    def __init__(self, name: str, args: AdapterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("oci-llm-stack:training:Adapter", name, None, opts)
        ctx, adapter, place = args.context, args.adapter, args.placement
        child = pulumi.ResourceOptions(parent=self)
        self.fine_tune = FineTune(
            f"{name}-finetune",
            FineTuneArgs(
                context=ctx,
                model_name=adapter.name,
                fine_tune=adapter.fine_tune,
                parameters_b=adapter.parameters_b,
                placement=place,
                log_id=args.train_log_id,
                shape_hourly_usd=args.training_shape_hourly_usd,
            ),
            opts=child,
        )
        tune = self.fine_tune
        catalog = CatalogModel(
            f"{name}-model",
            CatalogModelArgs(
                compartment_id=place.compartment_id,
                project_id=place.project_id,
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
                region=place.region,
                auth=place.auth,
                artifact=tune.artifact,
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
