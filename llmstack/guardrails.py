"""The plan's guardrails: the policy pack's rules on the recorded resources, plus GPU fit and cost per model.

The same rules and the same figures as `pulumi preview --policy-pack policy`, with the stack's policy
config from `policy/config/<stack>.json` when there is one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domain import pricing, sizing
from domain.context import TAG_ARTIFACT, TAG_CONTAINER, TAG_FINETUNE_METHOD, TAG_MODEL
from domain.errors import UserError
from domain.fine_tune_job import training_fit
from domain.settings import Settings
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
    adapters: tuple[str, ...] = ()  # served on this deployment, by name (its model group's members)
    lora_gpu_memory_gb: float | None = None  # vLLM's LoRA slots for them, in the required memory
    container: str | None = None  # service | custom
    artifact: str | None = None  # reference | copy | none

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "container": self.container,
            "artifact": self.artifact,
            "shape": self.shape,
            "gpuMemoryGb": self.gpu_memory_gb,
            "requiredGpuMemoryGb": self.required_gpu_memory_gb,
            "fits": self.fits,
            "fullLengthSequences": self.full_length_sequences,
            "instances": self.instances,
            "monthlyUsd": self.monthly_usd,
            **(
                {"adapters": list(self.adapters), "loraGpuMemoryGb": self.lora_gpu_memory_gb}
                if self.adapters
                else {}
            ),
        }


@dataclass(frozen=True, kw_only=True)
class TrainingFigures:
    """One fine-tuning run: does it fit a GPU of its shape, and at most what does it cost."""

    name: str
    shape: str
    method: str | None
    nodes: int | None
    gpu_memory_gb: float | None
    required_gpu_memory_gb: float | None
    fits: bool | None
    hourly_usd: float | None
    max_hours: float | None
    max_usd: float | None
    problem: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": self.shape,
            "method": self.method,
            "nodes": self.nodes,
            "gpuMemoryGb": self.gpu_memory_gb,
            "requiredGpuMemoryGb": self.required_gpu_memory_gb,
            "fits": self.fits,
            "hourlyUsd": self.hourly_usd,
            "maxHours": self.max_hours,
            "maxUsd": self.max_usd,
        }


@dataclass(frozen=True, kw_only=True)
class Review:
    violations: list[Violation]
    models: list[ModelFigures]
    monthly_usd: float | None
    policy_config: str | None
    training: list[TrainingFigures] = field(default_factory=list)
    prices_overridden: bool = False

    @property
    def training_max_usd(self) -> float | None:
        costs = [t.max_usd for t in self.training]
        return round(sum(c for c in costs if c is not None), 2) if all(c is not None for c in costs) else None

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v in self.violations if v.enforcement == "mandatory"]

    def as_json(self) -> dict[str, Any]:
        return {
            "violations": [v.as_json() for v in self.violations],
            "models": [m.as_json() for m in self.models],
            "monthlyUsd": self.monthly_usd,
            # One-off: what the plan's fine-tuning runs cost at most (not part of monthlyUsd).
            "training": [t.as_json() for t in self.training],
            "trainingMaxUsd": self.training_max_usd,
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


def _prices(config: PolicyConfig) -> pricing.PriceTable:
    """The prices the monthly-budget rule uses: the list, with the policy config's overrides."""
    return pricing.with_overrides(
        pricing.DEFAULT_PRICES, config.settings(RULES_BY_NAME["monthly-budget"]).get("prices")
    )


def _group_members(resources: list[StackResource], plan: Plan) -> dict[str, tuple[str, ...]]:
    """Model group id -> the adapters it serves (every member but the base)."""
    ids = {r.urn: r.id for r in plan.resources}
    members: dict[str, tuple[str, ...]] = {}
    for resource in resources:
        if resource.type != figures.MODEL_GROUP:
            continue
        base = figures.get(resource.inputs, "modelGroupDetails.baseModelId")
        entries = figures.get(resource.inputs, "memberModelEntries.memberModelDetails", [])
        keys = tuple(str(e.get("inferenceKey")) for e in entries if e.get("modelId") != base)
        members[str(ids.get(resource.urn))] = keys
    return members


def _model_figures(
    resource: StackResource, config: PolicyConfig, groups: dict[str, tuple[str, ...]] | None = None
) -> ModelFigures:
    inputs = resource.inputs
    name = str(figures.tags_of(inputs).get(TAG_MODEL, resource.name))
    shape = figures.shape_of(inputs)
    fit_config = config.settings(RULES_BY_NAME["gpu-memory-fits-model"])
    fit_settings = figures.FitSettings(
        memory_utilisation=fit_config.get("memoryUtilisation"),
        overhead_gb_per_gpu=float(fit_config["overheadGbPerGpu"]),
    )
    problem = None
    gpu = required = lora = None
    fits = None
    sequences = None
    group_id = figures.get(
        inputs, "modelDeploymentConfigurationDetails.modelGroupConfigurationDetails.modelGroupId"
    )
    adapters = (groups or {}).get(str(group_id), ())
    try:
        report = figures.deployment_fit(inputs, fit_settings)
        share = report.usable_gpu_memory_gb / report.gpu_memory_gb
        gpu = round(report.gpu_memory_gb, 1)
        # Comparable with gpuMemoryGb: what the model needs, grossed up by the engine's memory share.
        required = round(report.required_gpu_memory_gb / share, 1)
        fits, sequences = report.fits, report.full_length_sequences
        lora = round(report.adapters_gb / share, 2) if report.adapters_gb else None
    except ValueError as exc:
        problem = str(exc)
    monthly = instances = None
    try:
        cost = figures.deployment_cost(inputs, _prices(config))
        monthly, instances = round(cost.monthly_usd, 2), cost.instances
    except ValueError as exc:
        problem = problem or str(exc)
    tags = figures.tags_of(inputs)
    return ModelFigures(
        name=name,
        container=tags.get(TAG_CONTAINER),
        artifact=tags.get(TAG_ARTIFACT),
        shape=str(shape),
        gpu_memory_gb=gpu,
        required_gpu_memory_gb=required,
        fits=fits,
        full_length_sequences=sequences,
        instances=instances,
        monthly_usd=monthly,
        problem=problem,
        adapters=adapters,
        lora_gpu_memory_gb=lora,
    )


def _training_figures(resource: StackResource, settings: Settings, config: PolicyConfig) -> TrainingFigures:
    """Cost from the job's inputs (as a policy would see them); GPU fit from the settings it was made from."""
    inputs = resource.inputs
    tags = figures.tags_of(inputs)
    name = str(tags.get(TAG_MODEL, resource.name))
    try:
        shape = figures.job_shape_and_nodes(inputs)[0]
    except ValueError:
        shape = "?"
    method = tags.get(TAG_FINETUNE_METHOD)
    problem = None
    gpu = required = fits = None
    nodes = None
    try:
        tune, parameters_b = settings.model(name).source.fine_tune, settings.model(name).parameters_b
        if tune is not None and parameters_b is not None:
            fit = training_fit(tune, parameters_b)
            gpu, fits, nodes = round(fit.gpu_memory_gb, 1), fit.fits, fit.nodes
            required = round(fit.required_gpu_memory_gb / sizing.TRAINING_MEMORY_UTILISATION, 1)
    except (KeyError, ValueError) as exc:
        problem = str(exc)
    hourly = max_hours = max_usd = None
    try:
        cost = figures.job_cost(inputs, _prices(config))
        hourly, max_hours, max_usd = (
            round(cost.hourly_usd, 2),
            round(cost.max_hours, 2),
            round(cost.max_usd, 2),
        )
    except ValueError as exc:
        problem = problem or str(exc)
    return TrainingFigures(
        name=name,
        shape=shape,
        method=str(method) if isinstance(method, str) else None,
        nodes=nodes,
        gpu_memory_gb=gpu,
        required_gpu_memory_gb=required,
        fits=fits,
        hourly_usd=hourly,
        max_hours=max_hours,
        max_usd=max_usd,
        problem=problem,
    )


def review(plan: Plan, config: PolicyConfig, config_source: str | None = None) -> Review:
    resources = [StackResource(type=r.type, urn=r.urn, name=r.name, inputs=r.inputs) for r in plan.resources]
    groups = _group_members(resources, plan)
    models = [_model_figures(r, config, groups) for r in resources if r.type == figures.MODEL_DEPLOYMENT]
    costs = [m.monthly_usd for m in models]
    total = round(sum(c for c in costs if c is not None), 2) if all(c is not None for c in costs) else None
    training = [
        _training_figures(r, plan.settings, config) for r in resources if r.type == figures.TRAINING_JOB
    ]
    priced = (r.inputs for r in resources if r.type in (figures.MODEL_DEPLOYMENT, figures.TRAINING_JOB))
    try:
        overridden = figures.prices_overridden(_prices(config), priced)
    except ValueError:
        overridden = True  # the policy config's prices are bad; each figure names the problem
    return Review(
        violations=evaluate(resources, config),
        models=models,
        monthly_usd=total,
        policy_config=config_source,
        training=training,
        prices_overridden=overridden,
    )


# ---------------------------------------------------------------------------------------------------------
# Human output


def _render_training(result: Review) -> list[str]:
    lines = [
        "Fine-tuning runs (once per change of what they train; NEEDED GB: one training process on one",
        "GPU; AT MOST: the shape's price for the job's maximum runtime, for every node, as a run's",
        "length varies):",
    ]
    rows = [
        [
            t.name,
            t.method or "?",
            t.shape if (t.nodes or 1) == 1 else f"{t.nodes} x {t.shape}",
            _number(t.gpu_memory_gb),
            _number(t.required_gpu_memory_gb),
            {True: "yes", False: "NO", None: "?"}[t.fits],
            _number(t.hourly_usd, ",.2f"),
            _number(t.max_hours, "g"),
            _number(t.max_usd, ",.2f"),
        ]
        for t in result.training
    ]
    lines += _table(
        ["MODEL", "METHOD", "SHAPE", "GPU GB", "NEEDED GB", "FITS", "USD/HOUR", "MAX HOURS", "AT MOST USD"],
        rows,
        {3, 4, 6, 7, 8},
    )
    lines += [f"  {t.name}: {t.problem}" for t in result.training if t.problem]
    lines += [f"  Training at most: {_number(result.training_max_usd, ',.2f')} USD, once", ""]
    return lines


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
        if m.adapters:
            lines.append(
                f"  {m.name} also serves {len(m.adapters)} adapter(s) on the same deployment, priced once: "
                f"{', '.join(m.adapters)} (LoRA slots {_number(m.lora_gpu_memory_gb, '.2f')} GB in NEEDED GB)"
            )
        if m.problem:
            lines.append(f"  {m.name}: {m.problem}")
    total = _number(result.monthly_usd, ",.2f")
    basis = f"{pricing.DEFAULT_PRICES.as_of} list prices"
    basis += " (with the stack's price overrides)" if result.prices_overridden else ""
    lines += [f"  Estimated total: {total} USD/month at {basis}", ""]
    if result.training:
        lines += _render_training(result)

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
