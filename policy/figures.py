"""GPU fit and monthly cost of a model deployment, read from its resource inputs alone.

The facts settings know but the OCI resource does not (parameters, quantization, context length, engine,
tensor parallelism, KV layout, budget) travel as `llmstack-*` freeform tags on the deployment. Shared by the
`gpu-memory-fits-model` and `monthly-budget` rules and by `llmstack plan`'s model table, so all three
always show the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from domain import pricing, sizing
from domain.context import (
    TAG_ARCHITECTURE,
    TAG_ENGINE,
    TAG_LORA_SLOTS,
    TAG_MAX_MODEL_LEN,
    TAG_MODEL,
    TAG_PARAMETERS,
    TAG_QUANTIZATION,
    TAG_SHAPE_HOURLY_USD,
    TAG_SOURCE,
    TAG_TENSOR_PARALLELISM,
)

MODEL_DEPLOYMENT = "oci:DataScience/modelDeployment:ModelDeployment"
TRAINING_JOB = "oci:DataScience/job:Job"
MODEL_GROUP = "oci:DataScience/modelGroup:ModelGroup"


class Unknown:
    """A value the engine knows only after apply (an id during `pulumi preview`)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = Unknown()
_MISSING = object()


def get(inputs: Mapping[str, Any], path: str, default: Any = None) -> Any:
    """The value at a dotted path of nested inputs; `default` when absent, UNKNOWN when not known yet."""
    value: Any = inputs
    for key in path.split("."):
        if value is UNKNOWN:
            return UNKNOWN
        if not isinstance(value, Mapping):
            return default
        value = value.get(key, _MISSING)
        if value is _MISSING or value is None:
            return default
    return value


def tags_of(inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    tags = inputs.get("freeformTags")
    return tags if isinstance(tags, Mapping) else {}


class FactsError(ValueError):
    """A deployment's inputs do not say enough to judge it; the message says what is missing."""


def _tag(tags: Mapping[str, Any], key: str, hint: str) -> str:
    value = tags.get(key)
    if value is UNKNOWN:
        raise FactsError(f"tag {key} is not known before apply")
    if not isinstance(value, str) or not value or value == "unknown":
        raise FactsError(f"freeform tag {key} is missing or 'unknown' ({hint})")
    return value


def _number(tags: Mapping[str, Any], key: str, hint: str, kind: type[int] | type[float]) -> float:
    text = _tag(tags, key, hint)
    try:
        return kind(text)
    except ValueError:
        raise FactsError(f"freeform tag {key}={text!r} is not a number") from None


@dataclass(frozen=True, kw_only=True)
class FitSettings:
    """Policy-config knobs of the GPU-fit arithmetic."""

    memory_utilisation: float | None = None
    overhead_gb_per_gpu: float = sizing.RUNTIME_OVERHEAD_GB_PER_GPU


def _placement(inputs: Mapping[str, Any]) -> str:
    """Where a deployment states its shape, scaling and bandwidth: one model, or a model group's instances."""
    details = "modelDeploymentConfigurationDetails"
    if get(inputs, f"{details}.deploymentType") == "MODEL_GROUP":
        return f"{details}.infrastructureConfigurationDetails"
    return f"{details}.modelConfigurationDetails"


def shape_of(inputs: Mapping[str, Any]) -> Any:
    return get(inputs, f"{_placement(inputs)}.instanceConfiguration.instanceShapeName")


def lora_slots(inputs: Mapping[str, Any]) -> tuple[int, int]:
    """(max LoRAs, max LoRA rank) of a deployment serving adapters, from its tag; (0, 0) for none."""
    text = tags_of(inputs).get(TAG_LORA_SLOTS)
    if not isinstance(text, str):
        return 0, 0
    try:
        loras, rank = (int(part) for part in text.split("x"))
    except ValueError:
        raise FactsError(f"freeform tag {TAG_LORA_SLOTS}={text!r} is not <max LoRAs>x<max rank>") from None
    return loras, rank


def deployment_fit(inputs: Mapping[str, Any], settings: FitSettings | None = None) -> sizing.FitReport:
    """The fit report of a ModelDeployment's inputs; FactsError (or ValueError) when it cannot be made."""
    settings = settings or FitSettings()
    shape = shape_of(inputs)
    if shape is UNKNOWN:
        raise FactsError("the shape is not known before apply")
    if not isinstance(shape, str):
        raise FactsError("instanceShapeName is missing")
    tags = tags_of(inputs)
    name = tags.get(TAG_MODEL) if isinstance(tags.get(TAG_MODEL), str) else ""
    parameters = _number(tags, TAG_PARAMETERS, "set models.<name>.parameters", float)
    tagged = tags.get(TAG_ARCHITECTURE)
    architecture = sizing.architecture_from_tag(tagged) if isinstance(tagged, str) else None
    kv_source = f"tag {TAG_ARCHITECTURE}"
    if architecture is None and name:
        architecture = sizing.known_architecture(str(name))
        kv_source = f"known architecture of {name}"
    if architecture is None:
        architecture = sizing.approximate_architecture(parameters)
        kv_source = "approximation from the parameter count"
    return sizing.estimate_fit(
        shape=shape,
        engine=_tag(tags, TAG_ENGINE, "the serving engine"),
        parameters_b=parameters,
        quantization=_tag(tags, TAG_QUANTIZATION, "none, fp8, int8, awq or gptq"),
        max_model_len=int(_number(tags, TAG_MAX_MODEL_LEN, "the context length", int)),
        tensor_parallelism=int(_number(tags, TAG_TENSOR_PARALLELISM, "GPUs per replica", int)),
        architecture=architecture,
        kv_source=kv_source,
        memory_utilisation=settings.memory_utilisation,
        overhead_gb_per_gpu=settings.overhead_gb_per_gpu,
        max_loras=lora_slots(inputs)[0],
        max_lora_rank=lora_slots(inputs)[1],
    )


def instance_counts(inputs: Mapping[str, Any]) -> tuple[int, int]:
    """(fewest, most) instances the deployment runs: a fixed count, or its autoscaling range."""
    scaling = get(inputs, f"{_placement(inputs)}.scalingPolicy", {})
    if scaling is UNKNOWN or not isinstance(scaling, Mapping):
        raise FactsError("the scaling policy is not known")
    if scaling.get("policyType") == "AUTOSCALING":
        policies = scaling.get("autoScalingPolicies")
        if not isinstance(policies, list) or not policies:
            raise FactsError("autoscaling without autoScalingPolicies")
        lows, highs = [], []
        for policy in policies:
            low = policy.get("minimumInstanceCount") if isinstance(policy, Mapping) else None
            high = policy.get("maximumInstanceCount") if isinstance(policy, Mapping) else None
            if not isinstance(low, int | float) or not isinstance(high, int | float):
                raise FactsError("autoscaling policy without minimum/maximum instance counts")
            lows.append(int(low))
            highs.append(int(high))
        return min(lows), max(highs)
    count = scaling.get("instanceCount", 1)
    if not isinstance(count, int | float):
        raise FactsError("instanceCount is not known")
    return int(count), int(count)


def prices_overridden(prices: pricing.PriceTable, resources: Iterable[Mapping[str, Any]]) -> bool:
    """Whether figures use other than list prices: a policy config's, or the stack's (a resource's tag)."""
    return prices.overridden or any(TAG_SHAPE_HOURLY_USD in tags_of(inputs) for inputs in resources)


def _stack_priced(prices: pricing.PriceTable, shape: str, tags: Mapping[str, Any]) -> pricing.PriceTable:
    """`prices` with the shape's hourly price the stack set on the resource's tag, when it set one."""
    override = tags.get(TAG_SHAPE_HOURLY_USD)
    if not isinstance(override, str):
        return prices
    try:
        return pricing.with_overrides(prices, {"shapes": {shape: float(override)}})
    except ValueError:
        raise FactsError(f"freeform tag {TAG_SHAPE_HOURLY_USD}={override!r} is not a price") from None


def deployment_cost(
    inputs: Mapping[str, Any], prices: pricing.PriceTable = pricing.DEFAULT_PRICES
) -> pricing.CostEstimate:
    """The month of a ModelDeployment at its largest size; artifact storage counted for offline models."""
    shape = shape_of(inputs)
    if not isinstance(shape, str):
        raise FactsError("the shape is missing or not known before apply")
    tags = tags_of(inputs)
    prices = _stack_priced(prices, shape, tags)
    _, most = instance_counts(inputs)
    bandwidth = get(inputs, f"{_placement(inputs)}.bandwidthMbps", 10)
    storage_gb = 0.0
    if tags.get(TAG_SOURCE) == "offline":
        try:
            parameters = float(str(tags.get(TAG_PARAMETERS)))
            quantization = str(tags.get(TAG_QUANTIZATION, "none"))
            storage_gb = sizing.weights_gb(parameters, quantization)
        except ValueError:
            storage_gb = 0.0
    return pricing.estimate_monthly_cost(
        shape=shape,
        replicas=most,
        bandwidth_mbps=float(bandwidth) if isinstance(bandwidth, int | float) else 10.0,
        storage_gb=storage_gb,
        prices=prices,
    )


def job_cost(
    inputs: Mapping[str, Any], prices: pricing.PriceTable = pricing.DEFAULT_PRICES
) -> pricing.TrainingCost:
    """The most one run of a Data Science job costs: its shape's hourly price for its maximum runtime, for
    every node (a multi-node job's node groups, each with its replicas)."""
    shape, nodes, minutes = job_shape_and_nodes(inputs)
    try:
        max_minutes = float(minutes)
    except (TypeError, ValueError):
        raise FactsError("the job has no maximum runtime, so a run's cost has no bound") from None
    prices = _stack_priced(prices, shape, tags_of(inputs))
    return pricing.estimate_training_cost(shape=shape, max_minutes=max_minutes, nodes=nodes, prices=prices)


def job_shape_and_nodes(inputs: Mapping[str, Any]) -> tuple[str, int, Any]:
    """(shape, nodes, maximum runtime in minutes) of a job, single-node or multi-node."""
    groups = get(inputs, "jobNodeConfigurationDetails.jobNodeGroupConfigurationDetailsLists")
    if isinstance(groups, list) and groups:
        shapes = {get(g, "jobInfrastructureConfigurationDetails.shapeName") for g in groups}
        if len(shapes) != 1 or not isinstance(next(iter(shapes)), str):
            raise FactsError("the job's node groups have no single known shape")
        replicas = [get(g, "replicas", 1) for g in groups]
        if not all(isinstance(r, int | float) for r in replicas):
            raise FactsError("a node group's replicas are not known before apply")
        minutes = get(inputs, "jobNodeConfigurationDetails.maximumRuntimeInMinutes")
        return str(next(iter(shapes))), int(sum(replicas)), minutes
    shape = get(inputs, "jobInfrastructureConfigurationDetails.shapeName")
    if not isinstance(shape, str):
        raise FactsError("the job's shape is missing or not known before apply")
    return shape, 1, get(inputs, "jobConfigurationDetails.maximumRuntimeInMinutes")
