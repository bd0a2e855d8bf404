"""The plan's guardrails: the policy pack's rules on the recorded resources, plus GPU fit and cost per model.

The same rules and the same figures as `pulumi preview --policy-pack policy`, with the stack's policy
config from `policy/config/<stack>.json` when there is one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components import pricing
from components.context import TAG_MODEL
from llmstack.errors import UserError
from policy import figures
from policy.rules import (
    RULES,
    RULES_BY_NAME,
    PolicyConfig,
    StackResource,
    Violation,
    evaluate,
    load_policy_config,
)

if TYPE_CHECKING:
    from llmstack.plan import Plan


@dataclass(frozen=True, kw_only=True)
class ModelFigures:
    name: str
    shape: str
    gpu_memory_gb: float | None
    required_gpu_memory_gb: float | None
    fits: bool | None
    full_length_sequences: int | None
    instances: int | None
    monthly_usd: float | None
    problem: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": self.shape,
            "gpuMemoryGb": self.gpu_memory_gb,
            "requiredGpuMemoryGb": self.required_gpu_memory_gb,
            "fits": self.fits,
            "fullLengthSequences": self.full_length_sequences,
            "instances": self.instances,
            "monthlyUsd": self.monthly_usd,
        }


@dataclass(frozen=True, kw_only=True)
class Review:
    violations: list[Violation]
    models: list[ModelFigures]
    monthly_usd: float | None
    policy_config: str | None

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v in self.violations if v.enforcement == "mandatory"]

    def as_json(self) -> dict[str, Any]:
        return {
            "violations": [v.as_json() for v in self.violations],
            "models": [m.as_json() for m in self.models],
            "monthlyUsd": self.monthly_usd,
        }


def policy_config_path(project_dir: Path, stack: str) -> Path | None:
    path = project_dir / "policy" / "config" / f"{stack}.json"
    return path if path.is_file() else None


def load_config(path: Path | None) -> PolicyConfig:
    if path is None:
        return PolicyConfig()
    try:
        return load_policy_config(path)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _model_figures(resource: StackResource, config: PolicyConfig) -> ModelFigures:
    inputs = resource.inputs
    name = str(figures.tags_of(inputs).get(TAG_MODEL, resource.name))
    shape = figures.shape_of(inputs)
    fit_config = config.settings(RULES_BY_NAME["gpu-memory-fits-model"])
    fit_settings = figures.FitSettings(
        memory_utilisation=fit_config.get("memoryUtilisation"),
        overhead_gb_per_gpu=float(fit_config["overheadGbPerGpu"]),
    )
    problem = None
    gpu = required = None
    fits = None
    sequences = None
    try:
        report = figures.deployment_fit(inputs, fit_settings)
        share = report.usable_gpu_memory_gb / report.gpu_memory_gb
        gpu = round(report.gpu_memory_gb, 1)
        # Comparable with gpuMemoryGb: what the model needs, grossed up by the engine's memory share.
        required = round(report.required_gpu_memory_gb / share, 1)
        fits, sequences = report.fits, report.full_length_sequences
    except ValueError as exc:
        problem = str(exc)
    monthly = instances = None
    try:
        prices = pricing.with_overrides(
            pricing.DEFAULT_PRICES, config.settings(RULES_BY_NAME["monthly-budget"]).get("prices")
        )
        cost = figures.deployment_cost(inputs, prices)
        monthly, instances = round(cost.monthly_usd, 2), cost.instances
    except ValueError as exc:
        problem = problem or str(exc)
    return ModelFigures(
        name=name,
        shape=str(shape),
        gpu_memory_gb=gpu,
        required_gpu_memory_gb=required,
        fits=fits,
        full_length_sequences=sequences,
        instances=instances,
        monthly_usd=monthly,
        problem=problem,
    )


def review(plan: Plan, config: PolicyConfig, config_source: str | None = None) -> Review:
    resources = [StackResource(type=r.type, urn=r.urn, name=r.name, inputs=r.inputs) for r in plan.resources]
    models = [_model_figures(r, config) for r in resources if r.type == figures.MODEL_DEPLOYMENT]
    costs = [m.monthly_usd for m in models]
    total = round(sum(c for c in costs if c is not None), 2) if all(c is not None for c in costs) else None
    return Review(
        violations=evaluate(resources, config), models=models, monthly_usd=total, policy_config=config_source
    )


# ---------------------------------------------------------------------------------------------------------
# Human output


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return ["  " + line(headers).rstrip(), *("  " + line(r).rstrip() for r in rows)]


def _number(value: float | int | None, spec: str = ",.1f") -> str:
    return "?" if value is None else format(value, spec)


def render_review(result: Review) -> str:
    lines = [
        "Models (GPU GB: the GPUs of one replica; NEEDED GB: weights, overhead and the KV cache of one",
        "full-length sequence, at the engine's share of GPU memory; SEQS: full-length sequences at once):",
    ]
    rows = [
        [
            m.name,
            m.shape,
            _number(m.gpu_memory_gb),
            _number(m.required_gpu_memory_gb),
            {True: "yes", False: "NO", None: "?"}[m.fits],
            _number(m.full_length_sequences, "d"),
            _number(m.instances, "d"),
            _number(m.monthly_usd, ",.2f"),
        ]
        for m in result.models
    ]
    lines += _table(
        ["MODEL", "SHAPE", "GPU GB", "NEEDED GB", "FITS", "SEQS", "INSTANCES", "USD/MONTH"],
        rows,
        {2, 3, 5, 6, 7},
    )
    for m in result.models:
        if m.problem:
            lines.append(f"  {m.name}: {m.problem}")
    total = _number(result.monthly_usd, ",.2f")
    lines += [f"  Estimated total: {total} USD/month at {pricing.DEFAULT_PRICES.as_of} list prices", ""]

    config = f"config {result.policy_config}" if result.policy_config else "default levels"
    if not result.violations:
        lines.append(f"Policies: {len(RULES)} checked, no violations ({config}).")
        return "\n".join(lines)
    mandatory = len(result.mandatory)
    advisory = len(result.violations) - mandatory
    lines.append(f"Policy violations: {mandatory} mandatory, {advisory} advisory ({config}):")
    rows = [
        [v.policy, v.enforcement, v.urn.rsplit("::", 1)[-1] if v.urn else "(stack)", v.message]
        for v in result.violations
    ]
    lines += _table(["POLICY", "LEVEL", "RESOURCE", "MESSAGE"], rows, set())
    return "\n".join(lines)
