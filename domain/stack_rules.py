"""Checks across a stack's sections, as pure functions the settings' validators call: each takes the parsed
models and returns `(key path, message)` findings worded like the settings' own problems."""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import TYPE_CHECKING

from domain import fine_tune_rules
from domain.container_env import (
    ENGINE_QUANTIZATIONS,
    RESERVED_PORTS,
    container_env,
    container_spec,
    env_problems,
)
from domain.errors import Found, said
from domain.fine_tune_job import MAX_COMMAND_BYTES, command, training_fit
from domain.ids import IMAGE_EXAMPLE, parse_image
from domain.ids import OBJECT_URI_FORM as URI_FORM
from domain.oci_rules import ocir_host
from domain.pricing import DEFAULT_PRICES
from domain.service_container import PORT as SERVICE_PORT
from domain.service_container import RESTRICTED_PARAMS, TGI_DEPRECATED, restricted_params
from domain.shapes import SHAPES, serving_problems
from domain.values import SIZE_ACCEPTED
from domain.weights import tgi_weights_problem

if TYPE_CHECKING:
    from domain.settings import (
        AutoscalingSettings,
        ComputeSettings,
        FineTuneSettings,
        ModelSettings,
        NetworkSettings,
        ServingSettings,
        Settings,
    )

GATED_HF_ORGS = ("meta-llama",)
_PLACEHOLDER_MODEL_ID = "ocid1.datasciencemodel.oc1.iad." + "a" * 60  # as long as a real model OCID


def models_fit_the_stack(settings: Settings) -> Found:
    """Each model against the rest of the stack: egress and tokens for what it pulls, its fine-tune's job, the
    container environment's size, its images' registry; then each base's adapters. `settings` has its
    fine-tunes resolved (`fine_tune_rules.resolved_fine_tunes`)."""
    found: Found = []
    for name, model in settings.models_by_name.items():
        before, hub_id = len(found), model.source.huggingface
        if hub_id is not None:
            found += egress(
                settings,
                f"model {name!r} is pulled from Hugging Face and needs internet egress",
                "online model",
            )
            if (
                hub_id.split("/")[0] in GATED_HF_ORGS
                and settings.hf_token is None
                and settings.hf_token_secret_id is None
            ):
                secret = "(`pulumi config set --secret hfToken`) or hfTokenSecretId"
                found.append(
                    (
                        ("models", name, "source", "huggingface"),
                        f"{hub_id!r} is a gated model; accepted: set hfToken {secret}",
                    )
                )
        if model.source.fine_tune is not None:
            found += fine_tune_problems(settings, name, model.source.fine_tune, model.parameters_b)
        if len(found) == before and not model.is_adapter:
            spec = container_spec(
                model, settings.hf_token_secret_id, token_in_artifact=settings.hf_token is not None
            )
            env = container_env(spec)
            if settings.adapters_of(name):
                env = fine_tune_rules.adapter_serving(settings, name).env(
                    "custom", env, _PLACEHOLDER_MODEL_ID
                )
            for message in env_problems(env):
                shorter = f"(params is {len(model.serving.params)} characters); accepted: shorter params"
                found.append((("models", name, "serving", "params"), f"{message} {shorter}"))
        found += image_hosts(settings, name, model)
    found += adapter_bases(settings)
    return found


def fine_tune_problems(
    settings: Settings, name: str, tune: FineTuneSettings, parameters_b: float | None
) -> Found:
    """What the job needs from the rest of the stack: egress, a token it can read, a shape that fits."""
    at: tuple[str, ...] = ("models", name, "source", "fineTune")
    found: Found = []
    if tune.base_model_is_hub_id:
        why = f"model {name!r} fine-tunes {tune.base_model} downloaded from Hugging Face, and the job needs"
        found += egress(settings, f"{why} internet egress for it", "fine-tuning")
        if tune.base_model.split("/")[0] in GATED_HF_ORGS and settings.hf_token_secret_id is None:
            vault = "set hfTokenSecretId (a Vault secret holding the token), or a copy of the model in Object"
            vault += f" Storage ({URI_FORM})"
            gated = f"{tune.base_model!r} is a gated model, and the training job reads the token only"
            gated += " from Vault"
            found.append(
                (
                    (*at, "baseModel"),
                    f"{gated}; accepted: {vault}",
                )
            )
    length = len(" ".join(command(tune, settings.stack, name, settings.hf_token_secret_id)).encode())
    if length >= MAX_COMMAND_BYTES:
        shorter = "accepted: shorter baseModel, dataset and output addresses"
        found.append(
            (
                at,
                f"the job's command takes {length} bytes; OCI accepts under {MAX_COMMAND_BYTES}; " + shorter,
            )
        )
    if parameters_b is None or (fit := training_fit(tune, parameters_b)).fits:
        return found
    advice = ["method qlora"] * (tune.method != "qlora") + ["gradientCheckpointing: true"] * (
        not tune.gradient_checkpointing
    )
    roomy = [
        s
        for s in sorted(SHAPES, key=lambda n: (DEFAULT_PRICES.shape_hourly_usd(n), n))
        if training_fit(tune, parameters_b, s).fits
    ]
    advice += [
        "a smaller batchSize or maxSeqLen",
        f"a shape with more memory per GPU ({', '.join(roomy[:3])})" if roomy else "a smaller model",
    ]
    torchrun = "(torchrun runs one process per GPU, each with the whole model)"
    if fit.shards > 1:
        torchrun = f"(FSDP splits it over {fit.nodes} x {fit.gpus} GPUs)"
    needs = f"{tune.shape!r} needs {fit.breakdown()} {torchrun}; accepted: {', or '.join(advice)}"
    return [
        *found,
        ((*at, "shape"), f"too small for {tune.method} of a {parameters_b:g}B model: {needs}"),
    ]


def egress(settings: Settings, why: str, what: str) -> Found:
    """Nothing, or that `egress: none` blocks `what` (an existing subnet's route table decides itself)."""
    if settings.network.egress != "none" or settings.network.existing_subnet_id is not None:
        return []
    return [(("network", "egress"), said(f"blocks {what}:", "none", f"nat or managed: {why}"))]


def image_hosts(settings: Settings, name: str, model: ModelSettings) -> Found:
    """Images live in the stack region's OCIR: `<key>.ocir.io` or `<region>.ocir.io` (the SDK's table)."""
    host = ocir_host(settings.region)
    images: list[tuple[tuple[str, ...], str]] = []
    if not model.is_adapter and model.serving.image:
        images.append((("serving", "image"), model.serving.image))
    if model.source.fine_tune is not None and model.source.fine_tune.image is not None:
        images.append((("source", "fineTune", "image"), model.source.fine_tune.image))
    accepted = f"an image in {settings.region}'s registry, {host}/<namespace>/<repository>:<tag>@sha256:"
    accepted += "<digest>"
    return [
        (("models", name, *at), said("another region's registry:", image, accepted))
        for at, image in images
        if parse_image(image).host not in (host, f"{settings.region}.ocir.io")
    ]


def adapter_bases(settings: Settings) -> Found:
    """Each base's LoRA slots (vLLM's max LoRAs and rank), and no autoscaling with adapters yet."""
    found: Found = []
    for model in settings.models:
        adapters = settings.adapters_of(model.name)
        if not adapters:
            continue
        at = ("models", model.name, "serving")
        ranks = [a.fine_tune.lora_r for a in adapters]
        _, problems = fine_tune_rules.lora_slots(
            "", ranks, model.serving.max_loras, model.serving.max_lora_rank
        )
        found += [((*at, key_.strip(".")), message) for key_, message in problems]
        if model.compute.autoscaling is not None:
            found.append(
                (
                    ("models", model.name, "compute", "autoscaling"),
                    "a model serving adapters runs a fixed number of instances here (its model group "
                    "deployment's autoscaling is not wired yet); accepted: leave autoscaling out",
                )
            )
    return found


def network_problems(network: NetworkSettings) -> Found:
    """The VCN's ranges, an existing subnet and the egress, against each other."""
    ranges = bool({"vcn_cidr", "subnet_cidr"} & network.model_fields_set)
    existing, managed = network.existing_subnet_id is not None, network.egress == "managed"
    found: Found = []
    if not IPv4Network(network.subnet_cidr).subnet_of(IPv4Network(network.vcn_cidr)):
        accepted = f"a range inside vcnCidr {network.vcn_cidr}"
        found.append((("subnetCidr",), said("outside the VCN:", network.subnet_cidr, accepted)))
    if existing and ranges:
        accepted = "either an existing subnet or the ranges of a new VCN, not both"
        found.append((("existingSubnetId",), f"given together with vcnCidr/subnetCidr; accepted: {accepted}"))
    if managed and not existing and ranges:
        accepted = "nat or none to build a VCN from vcnCidr/subnetCidr, or managed without them (the service"
        found.append(
            (("egress",), said("ignores the VCN ranges:", "managed", f"{accepted} brings its own network)"))
        )
    if existing and managed:
        accepted = "nat or none with existingSubnetId (the subnet's route table decides)"
        found.append((("egress",), said("conflicts with existingSubnetId:", "managed", accepted)))
    return found


def engine_problems(serving: ServingSettings) -> Found:
    """The engine against its weight format, port and flags; the service container against what it sets."""
    found: Found = []
    if serving.quantization not in ENGINE_QUANTIZATIONS[serving.engine]:
        accepted = f"with {serving.engine}: {' | '.join(ENGINE_QUANTIZATIONS[serving.engine])}"
        found.append((("quantization",), said("not served by this engine:", serving.quantization, accepted)))
    if serving.port in RESERVED_PORTS:
        accepted = "1024-65535 except 8446, 8447 and 24224 (used by the service)"
        found.append((("port",), said("reserved port", serving.port, accepted)))
    if serving.image is None and serving.engine == "tgi":
        found.append((("image",), f"missing for engine tgi; {TGI_DEPRECATED}; accepted: {IMAGE_EXAMPLE}"))
    if serving.image is None and (flags := restricted_params(serving.params)):
        accepted = f"engine flags but {', '.join(RESTRICTED_PARAMS)} (the service container sets them)"
        why = "sets what the service container sets itself:"
        found.append((("params",), said(why, " ".join(flags), accepted)))
    if serving.image is None and serving.port != SERVICE_PORT:
        found.append((("port",), said("not the service container's port:", serving.port, f"{SERVICE_PORT}")))
    return found


def autoscaling_problems(autoscaling: AutoscalingSettings) -> Found:
    found: Found = []
    if autoscaling.max_replicas < autoscaling.min_replicas:
        accepted = f"an integer >= minReplicas ({autoscaling.min_replicas})"
        found.append((("maxReplicas",), said("below minReplicas:", autoscaling.max_replicas, accepted)))
    if autoscaling.scale_in_threshold >= autoscaling.scale_out_threshold:
        accepted = f"a percentage below scaleOutThreshold ({autoscaling.scale_out_threshold})"
        why = "not below scale-out:"
        found.append((("scaleInThreshold",), said(why, autoscaling.scale_in_threshold, accepted)))
    return found


def replicas_problems(compute: ComputeSettings) -> Found:
    """The initial count within the autoscaling range."""
    if compute.autoscaling is None:
        return []
    low, high = compute.autoscaling.min_replicas, compute.autoscaling.max_replicas
    if low <= compute.replicas <= max(high, low):
        return []
    accepted = f"{low} to {high} (the initial count, within the autoscaling range)"
    return [(("replicas",), said("outside the autoscaling range:", compute.replicas, accepted))]


def deployment_problems(model: ModelSettings) -> Found:
    """A deployed model has `serving` and `compute`; an adapter has neither (its base model's serve it)."""
    given = {"serving": model.serving, "compute": model.compute}
    if model.is_adapter:
        why = "an adapter (save: adapter) is served on its base model's deployment and has no {} of its own"
        accepted = "leave it out (set it on the base model)"
        return [
            ((k,), f"{why.format(k)}; accepted: {accepted}")
            for k, value in given.items()
            if value is not None
        ]
    accepted = "a mapping (see the README's settings table for {})"
    return [((k,), f"missing; accepted: {accepted.format(k)}") for k, value in given.items() if value is None]


def model_problems(model: ModelSettings, size: float | None) -> Found:
    """A deployed model's serving against its compute, source and artifact; `size` in billions, if known."""
    gpus, tp = SHAPES[model.compute.shape].gpu_count, model.serving.tensor_parallelism
    found: Found = []
    if (tp or gpus) > gpus:
        accepted = f"1 to {gpus} (the shape's GPU count)"
        found.append((("serving", "tensorParallelism"), said("more GPUs than the shape has:", tp, accepted)))
    for problem in serving_problems(model.serving.engine, model.compute.shape, model.serving.quantization):
        found.append((("compute", "shape"), problem))
    local = model.source.local_path
    if model.serving.engine == "tgi" and local is not None and (why := tgi_weights_problem(local)):
        found.append((("source", "localPath"), f"{local}: {why}"))
    found += artifact_problems(model)
    if size is None:
        unknown = f"missing, and the size cannot be read from {model.source.describe()}"
        found.append((("parameters",), f"{unknown}; accepted: {SIZE_ACCEPTED}"))
    return found


def artifact_problems(model: ModelSettings) -> Found:
    """How the model's files reach the catalog, against its source and its serving container."""
    zip_source = model.source.object_storage is not None and model.source.object_storage.is_zip
    mode = model.artifact.mode
    found: Found = []
    if mode == "reference" and zip_source:
        why = "a zip is copied into the catalog (a model by reference is a folder's objects)"
        found.append((("artifact", "mode"), said(f"{why}:", mode, "copy, or a prefix ending in /")))
    elif mode == "copy" and model.source.object_storage is not None and not zip_source:
        why = "the catalog copies one zip, not a prefix"
        found.append((("artifact", "mode"), said(f"{why}:", mode, "reference, or a .zip")))
    elif mode is not None and model.source.kind in ("huggingface", "fineTune"):
        found.append((("artifact", "mode"), said(f"not for a {model.source.kind} source:", mode, "unset")))
    if model.serving.image is None and model.artifact_mode != "reference":
        accepted = "a model by reference (localPath, or objectStorage ending in /), or serving.image"
        why = (
            "missing: the service container reads its model from BASE_MODEL, an object prefix registered "
            f"by reference, and {model.source.describe()} is {model.artifact_mode_said}"
        )
        found.append((("serving", "image"), f"{why}; accepted: {accepted}"))
    return found
