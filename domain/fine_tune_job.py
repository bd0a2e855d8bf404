"""A fine-tune's Data Science job, built from its settings: the entrypoint's arguments, the run folder, the
command, the buckets it touches and whether the run fits its GPUs.

The run folder is named from the stack, the model and a digest of everything that shapes the weights, so a
changed setting trains into a new folder and never over the model a deployment was made from.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from domain import sizing
from domain.shapes import SHAPES
from domain.training_args import FineTuneArgs, job_command, to_argv

if TYPE_CHECKING:
    from domain.settings import FineTuneSettings

FINE_TUNE_ZIP = "model.zip"
FINE_TUNE_WORK_DIR = "/home/datascience/finetune-work"  # the job run's home, on its block volume
MAX_COMMAND_BYTES = 2048  # a job's CMD and ENTRYPOINT together
_ARG_NAMES = (
    *("base_model", "dataset", "output", "method", "save", "epochs", "learning_rate", "max_seq_len"),
    *("batch_size", "grad_accum", "lora_r", "lora_alpha", "max_steps", "gradient_checkpointing"),
)


def entrypoint_args(tune: FineTuneSettings) -> dict[str, Any]:
    """The settings the training entrypoint takes, by its own names (`auto` sharding checked as ddp)."""
    values = {name: getattr(tune, name) for name in _ARG_NAMES}
    return {**values, "sharding": "ddp" if tune.sharding == "auto" else tune.sharding}


def training_args(
    tune: FineTuneSettings, output: str, hf_token_secret_id: str | None = None, name: str | None = None
) -> FineTuneArgs:
    """The entrypoint's arguments for a run writing to `output` (merged weights, one zip); a rerun of the
    same settings (after a failed attempt) replaces what that attempt left."""
    numbers = {"epochs": float(tune.epochs), "learning_rate": float(tune.learning_rate), "output": output}
    token = hf_token_secret_id if tune.base_model_is_hub_id else None
    return FineTuneArgs(
        **{**entrypoint_args(tune), **numbers},
        work_dir=FINE_TUNE_WORK_DIR,
        overwrite=True,
        hf_token_secret_id=token,
        zip=FINE_TUNE_ZIP,
        adapter_name=name if tune.save == "adapter" else None,
    )


def gpus(tune: FineTuneSettings) -> int:
    """GPUs of one node of the job's shape."""
    return SHAPES[tune.shape].gpu_count


def run_folder(tune: FineTuneSettings, stack: str, model: str) -> str:
    """`<stack>-<model>-<digest>`: the digest covers everything that shapes the weights."""
    every_gpu = gpus(tune) * tune.nodes  # every process takes its own batch: the global batch grows
    argv = to_argv(training_args(tune, "oci://-@-/-", name=model))
    spec = {"argv": argv, "image": tune.image, "gpus": every_gpu}
    return f"{stack}-{model}-{hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]}"


def output_prefix(tune: FineTuneSettings, stack: str, model: str) -> str:
    """oci://bucket@ns/<prefix>/<run folder>: where one run writes."""
    return f"{tune.output}/{run_folder(tune, stack, model)}"


def command(
    tune: FineTuneSettings, stack: str, model: str, hf_token_secret_id: str | None = None
) -> list[str]:
    """The job's command: torchrun, one process per GPU of the shape (on each node), running
    training.finetune; several nodes start it through training.multinode."""
    return job_command(
        training_args(tune, output_prefix(tune, stack, model), hf_token_secret_id, name=model),
        gpus=gpus(tune),
        nodes=tune.nodes,
    )


def buckets(tune: FineTuneSettings) -> tuple[tuple[str, str], ...]:
    """(bucket, access) for every bucket the job touches: `read` for inputs, `write` for the output."""
    inputs = [tune.dataset] + ([] if tune.base_model_is_hub_id else [tune.base_model])
    found = [
        (uri[6:].split("@")[0], access)
        for uri, access in [*((u, "read") for u in inputs), (tune.output, "write")]
    ]
    return tuple(dict.fromkeys(found))


def training_fit(
    tune: FineTuneSettings, parameters_b: float, shape: str | None = None, sharding: str | None = None
) -> sizing.TrainingFitReport:
    """The sizing module's figures for this fine-tune (on `shape` or with `sharding` instead of its own)."""
    how = sharding or tune.sharding
    return sizing.estimate_training_fit(
        nodes=tune.nodes,
        sharding="ddp" if how == "auto" else how,
        shape=shape or tune.shape,
        method=tune.method,
        parameters_b=parameters_b,
        architecture=sizing.known_architecture(tune.base_model_name),
        max_seq_len=tune.max_seq_len,
        batch_size=tune.batch_size,
        lora_r=tune.lora_r,
        gradient_checkpointing=tune.gradient_checkpointing,
    )
