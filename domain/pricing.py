"""Monthly cost estimate of a stack's model deployments (pure functions).

Data Science bills a model deployment's instances at the Compute rate of their shape, plus its load
balancer; the artifacts sit in Object Storage. The estimate is

    shape hourly price x 730 h x instances (the autoscaling maximum, when autoscaling is on)
    + load balancer (base hour + bandwidth Mbps-hours) x 730 h
    + Object Storage GB-months of the artifacts,

at pay-as-you-go list prices, ignoring free tiers (they are per tenancy, not per stack) and discounts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from domain.shapes import SHAPES, GpuShape

HOURS_PER_MONTH = 730.0
"""The month OCI's cost estimator uses (8760 h / 12)."""


@dataclass(frozen=True, kw_only=True)
class PriceTable:
    """USD list prices. `gpu_hour` is per GPU and hour, by the GPU names of `domain.shapes`."""

    as_of: str
    source: str
    gpu_hour: Mapping[str, float]
    load_balancer_hour: float
    load_balancer_mbps_hour: float
    object_storage_gb_month: float
    shape_hour: Mapping[str, float] = field(default_factory=dict)
    """Whole-shape hourly prices that replace `gpu_count x gpu_hour` (overrides from settings)."""
    overridden: bool = False
    """True when settings or a policy config changed some of the list prices."""

    def shape_hourly_usd(self, shape: GpuShape | str) -> float:
        gpu_shape = SHAPES.get(shape) if isinstance(shape, str) else shape
        name = shape if isinstance(shape, str) else shape.name
        if name in self.shape_hour:
            return self.shape_hour[name]
        if gpu_shape is None:
            raise ValueError(f"shape {name!r} has no price: it is not a known GPU shape and has no override")
        if gpu_shape.gpu not in self.gpu_hour:
            raise ValueError(f"shape {name!r} has no price: no per-GPU price for {gpu_shape.gpu}")
        return gpu_shape.gpu_count * self.gpu_hour[gpu_shape.gpu]


# Oracle Cloud price list, pay-as-you-go USD, as served by Oracle's public Cost Estimator products API
# (https://apexapps.oracle.com/pls/apex/cetools/api/v1/products/, part numbers in brackets) on 2026-06-04;
# human-readable at https://www.oracle.com/cloud/price-list/ (Compute - GPU, Networking, Storage).
PRICES_2026_06 = PriceTable(
    as_of="2026-06-04",
    source="Oracle Cloud price list (Cost Estimator products API), pay-as-you-go USD",
    gpu_hour={
        "P100": 1.275,  # Compute - Virtual Machine / Bare Metal GPU Standard - X7 [B88518, B88517]
        "V100": 2.95,  # Compute - GPU Standard - V2 [B89734]
        "A10": 2.00,  # Compute - GPU - A10 [B95909]
        "A100-40GB": 3.05,  # Compute - GPU - E3 / E4 (BM.GPU4.8, BM.GPU.B4.8) [B92740, B93544]
        "A100-80GB": 4.00,  # Compute - GPU - A100 - v2 [B95907]
        "L40S": 3.50,  # Compute - GPU - L40S [B109479]
        "H100": 10.00,  # Compute - GPU - H100 [B98415]
        "H200": 10.00,  # Compute - GPU - H200 [B110519]
    },
    load_balancer_hour=0.0113,  # Load Balancer Base [B93030]
    load_balancer_mbps_hour=0.0001,  # Load Balancer Bandwidth, per Mbps and hour [B93031]
    object_storage_gb_month=0.0255,  # Object Storage - Storage [B91628]
)

DEFAULT_PRICES = PRICES_2026_06


def with_overrides(table: PriceTable, overrides: Mapping[str, object] | None) -> PriceTable:
    """The table with settings overrides applied.

    Accepted keys (all optional): `shapes` {shape name: USD per hour for the whole shape}, `gpus` {GPU name:
    USD per GPU-hour}, `loadBalancerHour`, `loadBalancerMbpsHour`, `objectStorageGbMonth`. Raises ValueError
    naming the key for anything else.
    """
    if not overrides:
        return table
    scalars = {
        "loadBalancerHour": table.load_balancer_hour,
        "loadBalancerMbpsHour": table.load_balancer_mbps_hour,
        "objectStorageGbMonth": table.object_storage_gb_month,
    }
    shape_hour, gpu_hour = dict(table.shape_hour), dict(table.gpu_hour)
    for key, value in overrides.items():
        if key == "shapes":
            shape_hour.update(_prices(key, value))
        elif key == "gpus":
            gpu_hour.update(_prices(key, value))
        elif key in scalars:
            scalars[key] = _price(f"pricing.{key}", value)
        else:
            allowed = ", ".join(["gpus", "shapes", *scalars])
            raise ValueError(f"pricing.{key} is not a price setting; accepted: {allowed}")
    return replace(
        table,
        overridden=True,
        shape_hour=shape_hour,
        gpu_hour=gpu_hour,
        load_balancer_hour=scalars["loadBalancerHour"],
        load_balancer_mbps_hour=scalars["loadBalancerMbpsHour"],
        object_storage_gb_month=scalars["objectStorageGbMonth"],
    )


def _price(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{key} must be a non-negative number of USD, got {value!r}")
    return float(value)


def _prices(key: str, value: object) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise ValueError(f"pricing.{key} must be a mapping of name to USD per hour, got {value!r}")
    return {str(name): _price(f"pricing.{key}.{name}", price) for name, price in value.items()}


@dataclass(frozen=True, kw_only=True)
class CostEstimate:
    """Monthly USD of one model deployment, by part."""

    shape: str
    instances: int
    compute_usd: float
    load_balancer_usd: float
    storage_usd: float

    @property
    def monthly_usd(self) -> float:
        return self.compute_usd + self.load_balancer_usd + self.storage_usd


def estimate_monthly_cost(
    *,
    shape: GpuShape | str,
    replicas: int = 1,
    max_replicas: int | None = None,
    bandwidth_mbps: float = 10.0,
    storage_gb: float = 0.0,
    prices: PriceTable = DEFAULT_PRICES,
) -> CostEstimate:
    """The month of one deployment at full size (`max_replicas` when autoscaling, else `replicas`)."""
    if replicas < 1:
        raise ValueError(f"replicas {replicas} must be at least 1")
    if max_replicas is not None and max_replicas < replicas:
        raise ValueError(f"max replicas {max_replicas} must be at least replicas {replicas}")
    if bandwidth_mbps < 0 or storage_gb < 0:
        raise ValueError("bandwidth and storage must not be negative")
    instances = max_replicas if max_replicas is not None else replicas
    name = shape if isinstance(shape, str) else shape.name
    hourly = prices.shape_hourly_usd(shape)
    load_balancer = (
        prices.load_balancer_hour + bandwidth_mbps * prices.load_balancer_mbps_hour
    ) * HOURS_PER_MONTH
    return CostEstimate(
        shape=name,
        instances=instances,
        compute_usd=hourly * HOURS_PER_MONTH * instances,
        load_balancer_usd=load_balancer,
        storage_usd=storage_gb * prices.object_storage_gb_month,
    )


@dataclass(frozen=True, kw_only=True)
class TrainingCost:
    """One fine-tuning run: billed per hour of its shape while it runs, stopped at its maximum runtime.

    How long a run takes depends on the data, which a plan does not read, so the figure is a ceiling: the
    hourly price times the run's maximum runtime (the service ends the run there).
    """

    shape: str
    nodes: int
    hourly_usd: float
    max_hours: float

    @property
    def max_usd(self) -> float:
        return self.hourly_usd * self.nodes * self.max_hours


def estimate_training_cost(
    *, shape: GpuShape | str, max_minutes: float, nodes: int = 1, prices: PriceTable = DEFAULT_PRICES
) -> TrainingCost:
    if nodes < 1:
        raise ValueError(f"nodes {nodes} must be at least 1")
    if not max_minutes > 0:
        raise ValueError(f"maximum runtime {max_minutes} must be a positive number of minutes")
    name = shape if isinstance(shape, str) else shape.name
    return TrainingCost(
        shape=name, nodes=nodes, hourly_usd=prices.shape_hourly_usd(shape), max_hours=max_minutes / 60
    )
