"""Monthly cost estimates from the dated price table, with settings overrides."""

from __future__ import annotations

import pytest

from domain.pricing import (
    DEFAULT_PRICES,
    HOURS_PER_MONTH,
    estimate_monthly_cost,
    with_overrides,
)
from domain.shapes import SHAPES


def test_every_shape_has_a_price() -> None:
    for name in SHAPES:
        assert DEFAULT_PRICES.shape_hourly_usd(name) > 0


def test_shape_price_is_gpu_count_times_gpu_price() -> None:
    assert DEFAULT_PRICES.shape_hourly_usd("VM.GPU.A10.1") == 2.0
    assert DEFAULT_PRICES.shape_hourly_usd("VM.GPU.A10.2") == 4.0
    assert DEFAULT_PRICES.shape_hourly_usd("BM.GPU.H100.8") == 80.0


def test_one_a10_for_a_month() -> None:
    cost = estimate_monthly_cost(shape="VM.GPU.A10.1", replicas=1, bandwidth_mbps=10)
    assert cost.compute_usd == pytest.approx(2.0 * 730)
    assert cost.load_balancer_usd == pytest.approx((0.0113 + 10 * 0.0001) * 730)
    assert cost.monthly_usd == pytest.approx(1460 + 8.979)


def test_autoscaling_is_priced_at_its_maximum() -> None:
    fixed = estimate_monthly_cost(shape="VM.GPU.A10.2", replicas=2)
    scaling = estimate_monthly_cost(shape="VM.GPU.A10.2", replicas=2, max_replicas=4)
    assert scaling.instances == 4
    assert scaling.compute_usd == pytest.approx(2 * fixed.compute_usd)


def test_storage_is_priced_per_gb_month() -> None:
    cost = estimate_monthly_cost(shape="VM.GPU.A10.1", storage_gb=13.5)
    assert cost.storage_usd == pytest.approx(13.5 * 0.0255)


def test_a100_at_two_replicas_costs_thousands() -> None:
    cost = estimate_monthly_cost(shape="BM.GPU.A100-v2.8", replicas=2)
    assert cost.monthly_usd == pytest.approx(2 * 8 * 4.0 * HOURS_PER_MONTH, rel=0.01)
    assert cost.monthly_usd > 40_000


def test_settings_overrides_replace_shape_gpu_and_network_prices() -> None:
    table = with_overrides(
        DEFAULT_PRICES,
        {"shapes": {"VM.GPU.A10.1": 1.5}, "gpus": {"H100": 6.0}, "loadBalancerMbpsHour": 0},
    )
    assert table.shape_hourly_usd("VM.GPU.A10.1") == 1.5
    assert table.shape_hourly_usd("VM.GPU.A10.2") == 4.0
    assert table.shape_hourly_usd("BM.GPU.H100.8") == 48.0
    assert table.load_balancer_mbps_hour == 0
    assert DEFAULT_PRICES.shape_hourly_usd("VM.GPU.A10.1") == 2.0


def test_a_price_for_an_unlisted_shape_comes_from_overrides() -> None:
    with pytest.raises(ValueError, match=r"shape 'VM\.GPU\.X\.1' has no price"):
        DEFAULT_PRICES.shape_hourly_usd("VM.GPU.X.1")
    table = with_overrides(DEFAULT_PRICES, {"shapes": {"VM.GPU.X.1": 3.25}})
    assert estimate_monthly_cost(shape="VM.GPU.X.1", prices=table).compute_usd == pytest.approx(3.25 * 730)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"shape": {}}, "pricing.shape is not a price setting; accepted: gpus, shapes, loadBalancerHour"),
        ({"shapes": {"VM.GPU.A10.1": -1}}, "pricing.shapes.VM.GPU.A10.1 must be a non-negative number"),
        ({"shapes": {"VM.GPU.A10.1": "2"}}, "pricing.shapes.VM.GPU.A10.1 must be a non-negative number"),
        ({"gpus": [2.0]}, "pricing.gpus must be a mapping"),
        ({"objectStorageGbMonth": True}, "pricing.objectStorageGbMonth must be a non-negative number"),
        ({"gpus": {"A10": float("nan")}}, "pricing.gpus.A10 must be a non-negative number"),
        ({"loadBalancerHour": float("inf")}, "pricing.loadBalancerHour must be a non-negative number"),
    ],
)
def test_bad_overrides_name_the_key(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        with_overrides(DEFAULT_PRICES, overrides)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"replicas": 0}, "replicas 0 must be at least 1"),
        ({"replicas": 3, "max_replicas": 2}, "max replicas 2 must be at least replicas 3"),
        ({"bandwidth_mbps": -1}, "must not be negative"),
    ],
)
def test_impossible_counts_are_rejected(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        estimate_monthly_cost(shape="VM.GPU.A10.1", **kwargs)


def test_the_table_is_dated_and_sourced() -> None:
    assert DEFAULT_PRICES.as_of == "2026-06-04"
    assert "Oracle Cloud price list" in DEFAULT_PRICES.source


def test_a_training_run_costs_at_most_its_shape_for_its_maximum_runtime() -> None:
    from domain.pricing import estimate_training_cost

    cost = estimate_training_cost(shape="VM.GPU.A10.2", max_minutes=480)
    assert (cost.hourly_usd, cost.max_hours, cost.max_usd) == (4.0, 8.0, 32.0)  # 2 x A10 at $2/GPU-hour
    negotiated = with_overrides(DEFAULT_PRICES, {"shapes": {"VM.GPU.A10.2": 3.0}})
    assert estimate_training_cost(shape="VM.GPU.A10.2", max_minutes=90, prices=negotiated).max_usd == 4.5
    with pytest.raises(ValueError, match="maximum runtime 0 must be a positive number of minutes"):
        estimate_training_cost(shape="VM.GPU.A10.1", max_minutes=0)


def test_a_multi_node_job_costs_every_node() -> None:
    from policy.figures import job_cost

    group = {"replicas": 2, "jobInfrastructureConfigurationDetails": {"shapeName": "BM.GPU.A10.4"}}
    inputs = {
        "jobNodeConfigurationDetails": {
            "maximumRuntimeInMinutes": "480",
            "jobNodeGroupConfigurationDetailsLists": [group],
        }
    }
    cost = job_cost(inputs)
    assert (cost.nodes, cost.hourly_usd, cost.max_hours, cost.max_usd) == (2, 8.0, 8.0, 128.0)
    single = {
        "jobInfrastructureConfigurationDetails": {"shapeName": "BM.GPU.A10.4"},
        "jobConfigurationDetails": {"maximumRuntimeInMinutes": "480"},
    }
    assert job_cost(single).max_usd == 64.0


def test_a_stack_price_tag_prices_a_job_and_a_deployment_and_a_bad_one_is_named() -> None:
    from domain.context import TAG_SHAPE_HOURLY_USD
    from policy.figures import FactsError, deployment_cost, job_cost

    job = {
        "jobInfrastructureConfigurationDetails": {"shapeName": "VM.GPU.A10.1"},
        "jobConfigurationDetails": {"maximumRuntimeInMinutes": "120"},
        "freeformTags": {TAG_SHAPE_HOURLY_USD: "1.5"},
    }
    deployment = {
        "modelDeploymentConfigurationDetails": {
            "modelConfigurationDetails": {
                "instanceConfiguration": {"instanceShapeName": "VM.GPU.A10.1"},
                "scalingPolicy": {"policyType": "FIXED_SIZE", "instanceCount": 1},
            }
        },
        "freeformTags": {TAG_SHAPE_HOURLY_USD: "1.5"},
    }
    assert job_cost(job).max_usd == 3.0
    assert deployment_cost(deployment).compute_usd == 1.5 * HOURS_PER_MONTH
    bad_price = {"freeformTags": {TAG_SHAPE_HOURLY_USD: "cheap"}}
    message = f"freeform tag {TAG_SHAPE_HOURLY_USD}='cheap' is not a price"
    with pytest.raises(FactsError, match=message):
        job_cost({**job, **bad_price})
    with pytest.raises(FactsError, match=message):
        deployment_cost({**deployment, **bad_price})
