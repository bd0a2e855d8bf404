"""The fine-tuning job's arguments: one frozen dataclass, parsed from a command line and turned back into one.

Plain Python on purpose: the stack builds a Data Science Job's command line with `to_argv`, and the
entrypoint parses it with `parse_args`; both sides share the same checks. Every bad value is refused with
one line that names the flag, the value and what is accepted. Secrets never travel on the command line:
the Hugging Face token comes from the environment (`HF_TOKEN`), a file (`--hf-token-file`) or a Vault
secret (`--hf-token-secret-id`, read with the job's resource principal).

`findings` gives each problem as data (the field, the value, what is accepted) so that the stack's settings
can name their own keys with the same checks; `problems` words them for the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NoReturn, cast, get_args

from domain.errors import UserError
from domain.ids import AUTH_MODES, InvalidId, is_object_uri, is_ocid, parse_object_uri

Method = Literal["lora", "qlora", "full"]
SaveAs = Literal["merged", "adapter"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Scheduler = Literal["linear", "cosine", "constant"]
Sharding = Literal["ddp", "fsdp"]

METHODS: tuple[str, ...] = get_args(Method)
SAVE_AS: tuple[str, ...] = get_args(SaveAs)
PRECISIONS: tuple[str, ...] = get_args(Precision)
SCHEDULERS: tuple[str, ...] = get_args(Scheduler)
SHARDINGS: tuple[str, ...] = get_args(Sharding)
ALL_LINEAR = "all-linear"

_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_ZIP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,250}\.zip$")


class ArgsError(UserError):
    """A refused command line; the message has one line per problem."""


@dataclass(frozen=True, kw_only=True)
class FineTuneArgs:
    """What one fine-tuning run needs; field `x_y` is the flag `--x-y`."""

    base_model: str  # local folder, oci://bucket@ns/prefix, or a Hugging Face id
    dataset: str  # local .jsonl file or folder of them, or oci://bucket@ns/prefix
    output: str  # local folder or oci://bucket@ns/prefix
    method: Method = "lora"
    save: SaveAs = "merged"  # LoRA/QLoRA: merge into the base weights, or keep the adapter alone
    epochs: float = 3.0
    learning_rate: float = 2e-4
    max_seq_len: int = 2048
    batch_size: int = 4  # per device
    grad_accum: int = 1
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = (ALL_LINEAR,)
    seed: int = 42
    max_steps: int | None = None  # stop after this many optimizer steps (overrides epochs)
    logging_steps: int = 10
    lr_scheduler: Scheduler = "cosine"
    warmup_ratio: float = 0.0
    precision: Precision = "auto"  # auto: bf16 (fp16 without bf16 support) on a GPU, fp32 on the CPU
    gradient_checkpointing: bool = False
    # ddp: every process holds the whole model; fsdp: weights, gradients and optimizer state are split over
    # every process of every node (transformers' Trainer FSDP), what full fine-tuning of 7B+ and LoRA of
    # 70B need to fit.
    sharding: Sharding = "ddp"
    work_dir: str = "finetune-work"  # downloads, checkpoints and the model folder before upload
    download_timeout: int = 6 * 3600  # seconds a node's other processes wait for its first to download
    overwrite: bool = False  # replace what is already at the output instead of refusing
    hf_token_file: str | None = None
    hf_token_secret_id: str | None = None  # a Vault secret holding the token (read in memory, never written)
    zip: str | None = None  # also pack the model folder as this one stored zip at the output (catalog layout)
    # --save adapter: the name the adapter is served under (finetune.json's adapterName), which is how the
    # serving launcher names the adapters it finds in a model group deployment.
    adapter_name: str | None = None
    oci_auth: str | None = None  # None: resource principal inside a job, else OCI_CLI_AUTH, else api_key
    oci_endpoint: str | None = None  # Object Storage endpoint (a private endpoint, or a test server)

    def __post_init__(self) -> None:
        found = problems(self)
        if found:
            raise ArgsError("\n".join(found))


def flag(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


@dataclass(frozen=True)
class Finding:
    """One reason to refuse a run: the field, its value, and what is accepted (or why it cannot be)."""

    field: str
    value: Any
    accepted: str | None = None  # "a number above 0 and at most 1"; None when `reason` says it all
    reason: str | None = None

    def line(self) -> str:
        """The command-line wording: `--flag value: give ...`."""
        shown = repr(",".join(self.value) if isinstance(self.value, tuple) else self.value)
        text = self.reason if self.reason is not None else f"give {self.accepted}"
        return f"{flag(self.field)} {shown}: {text}"


def _range(
    name: str, value: float, low: float, high: float, *, low_open: bool = False, hint: str = ""
) -> list[Finding]:
    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
        return [Finding(name, value, "a number")]
    too_low = value <= low if low_open else value < low
    if too_low or value > high:
        lower = f"above {low:g}" if low_open else f"at least {low:g}"
        return [Finding(name, value, f"a number {lower} and at most {high:g}{hint}")]
    return []


INT_RANGES: dict[str, tuple[int, int]] = {
    "max_seq_len": (8, 1 << 20),
    "batch_size": (1, 4096),
    "grad_accum": (1, 4096),
    "lora_r": (1, 1024),
    "lora_alpha": (1, 8192),
    "seed": (0, 2**32 - 1),
    "logging_steps": (1, 1 << 20),
    "download_timeout": (60, 7 * 24 * 3600),
}


def findings(args: FineTuneArgs) -> list[Finding]:
    """Every reason to refuse `args`, as data; empty when the run can start."""
    found: list[Finding] = []
    for name in ("base_model", "dataset", "output", "work_dir"):
        value = getattr(args, name)
        if not isinstance(value, str) or not value.strip():
            found.append(Finding(name, value, "a non-empty value"))
        elif is_object_uri(value) and name != "work_dir":
            try:
                parse_object_uri(value)
            except InvalidId as exc:
                found.append(Finding(name, value, reason=f"{exc.reason}; use {exc.accepted}"))
    choices = {
        "method": METHODS,
        "save": SAVE_AS,
        "precision": PRECISIONS,
        "lr_scheduler": SCHEDULERS,
        "sharding": SHARDINGS,
    }
    for name, allowed in choices.items():
        value = getattr(args, name)
        if value not in allowed:
            found.append(Finding(name, value, reason=f"choose one of {', '.join(allowed)}"))
    if args.save == "adapter" and args.method == "full":
        found.append(
            Finding(
                "save",
                args.save,
                reason="full fine-tuning has no adapter; use --save merged or --method lora",
            )
        )
    if args.sharding == "fsdp" and args.method == "qlora":
        found.append(
            Finding(
                "sharding",
                args.sharding,
                reason="4-bit QLoRA weights are not sharded here; use --sharding ddp or --method lora",
            )
        )
    found += _range("epochs", args.epochs, 0, 1000, low_open=True)
    found += _range("learning_rate", args.learning_rate, 0, 1, low_open=True, hint=" (e.g. 2e-4)")
    found += _range("lora_dropout", args.lora_dropout, 0, 0.99)
    found += _range("warmup_ratio", args.warmup_ratio, 0, 0.99)
    for name, (low, high) in INT_RANGES.items():
        value = getattr(args, name)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            found.append(Finding(name, value, f"a whole number from {low} to {high}"))
    if args.max_steps is not None and (
        not isinstance(args.max_steps, int) or isinstance(args.max_steps, bool) or args.max_steps < 1
    ):
        found.append(Finding("max_steps", args.max_steps, "a whole number of at least 1, or leave it out"))
    modules = args.lora_target_modules
    if not modules or (ALL_LINEAR in modules and len(modules) > 1):
        found.append(
            Finding("lora_target_modules", modules, f"{ALL_LINEAR} or module names such as q_proj,v_proj")
        )
    else:
        bad = tuple(m for m in modules if m != ALL_LINEAR and not _MODULE_NAME.match(m))
        if bad:
            found.append(
                Finding(
                    "lora_target_modules",
                    bad,
                    reason="a module name has letters, digits, '_' and '.'",
                )
            )
    if args.hf_token_secret_id is not None and not is_ocid(args.hf_token_secret_id, ("vaultsecret",)):
        found.append(
            Finding(
                "hf_token_secret_id", args.hf_token_secret_id, "a Vault secret OCID (ocid1.vaultsecret...)"
            )
        )
    if args.hf_token_secret_id is not None and args.hf_token_file is not None:
        found.append(
            Finding(
                "hf_token_secret_id",
                args.hf_token_secret_id,
                reason="give either --hf-token-file or --hf-token-secret-id, not both",
            )
        )
    if args.adapter_name is not None and (
        args.save != "adapter" or not re.match(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$", str(args.adapter_name))
    ):
        found.append(
            Finding(
                "adapter_name",
                args.adapter_name,
                "2-32 of a-z, 0-9 and '-', starting with a letter, with --save adapter",
            )
        )
    if args.zip is not None and not _ZIP_NAME.match(str(args.zip)):
        found.append(Finding("zip", args.zip, "a file name ending in .zip, such as model.zip (no folders)"))
    if args.oci_auth is not None and args.oci_auth not in AUTH_MODES:
        found.append(Finding("oci_auth", args.oci_auth, reason=f"choose one of {', '.join(AUTH_MODES)}"))
    if args.oci_endpoint is not None and not re.match(r"^https?://[^\s/]+", args.oci_endpoint):
        found.append(Finding("oci_endpoint", args.oci_endpoint, "an http(s) URL"))
    return found


def checked(**values: Any) -> tuple[FineTuneArgs, list[Finding]]:
    """Arguments from plain values (defaults for the rest) and what is wrong with them, without raising.

    For callers that report problems their own way, such as the stack's settings naming their keys.
    """
    args = object.__new__(FineTuneArgs)
    for field in dataclasses.fields(FineTuneArgs):
        object.__setattr__(args, field.name, values.pop(field.name, field.default))
    if values:
        raise TypeError(f"unknown fine-tuning arguments: {', '.join(sorted(values))}")
    return args, findings(args)


def problems(args: FineTuneArgs) -> list[str]:
    """Every reason to refuse `args`, one line each; empty when the run can start."""
    return [finding.line() for finding in findings(args)]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            # Name the unknown flags but not the values after them: one may be a secret under a misspelt flag.
            flags = [word for word in message.split(":", 1)[1].split() if word.startswith("-")]
            message = f"unknown option(s): {' '.join(flags) or '(a stray value)'}; see --help"
        raise ArgsError(message.replace("argument ", "", 1))


def _modules(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def build_parser() -> argparse.ArgumentParser:
    defaults = {f.name: f.default for f in dataclasses.fields(FineTuneArgs)}
    parser = _Parser(
        prog="python -m training.finetune",
        description="Fine-tune a causal language model on JSONL data (LoRA, QLoRA or full) and write the "
        "model folder to a local path or Object Storage. Runs alone or under torchrun.",
        allow_abbrev=False,  # `--hf-token X` must never be read as `--hf-token-file X`
    )
    required = parser.add_argument_group("required")
    required.add_argument(
        "--base-model", required=True, help="local folder, oci://bucket@ns/prefix or Hugging Face id"
    )
    required.add_argument(
        "--dataset", required=True, help="local .jsonl file or folder, or oci://bucket@ns/prefix"
    )
    required.add_argument("--output", required=True, help="local folder or oci://bucket@ns/prefix")
    parser.add_argument("--method", choices=METHODS, default=defaults["method"])
    parser.add_argument(
        "--save", choices=SAVE_AS, default=defaults["save"], help="LoRA/QLoRA: merged weights or adapter"
    )
    parser.add_argument("--epochs", type=float, default=defaults["epochs"])
    parser.add_argument("--learning-rate", type=float, default=defaults["learning_rate"])
    parser.add_argument("--max-seq-len", type=int, default=defaults["max_seq_len"])
    parser.add_argument("--batch-size", type=int, default=defaults["batch_size"], help="per device")
    parser.add_argument("--grad-accum", type=int, default=defaults["grad_accum"])
    parser.add_argument("--lora-r", type=int, default=defaults["lora_r"])
    parser.add_argument("--lora-alpha", type=int, default=defaults["lora_alpha"])
    parser.add_argument("--lora-dropout", type=float, default=defaults["lora_dropout"])
    parser.add_argument(
        "--lora-target-modules",
        type=_modules,
        default=defaults["lora_target_modules"],
        help=f"comma-separated module names, or {ALL_LINEAR}",
    )
    parser.add_argument("--seed", type=int, default=defaults["seed"])
    parser.add_argument(
        "--max-steps", type=int, default=None, help="stop after this many steps (overrides epochs)"
    )
    parser.add_argument("--logging-steps", type=int, default=defaults["logging_steps"])
    parser.add_argument("--lr-scheduler", choices=SCHEDULERS, default=defaults["lr_scheduler"])
    parser.add_argument("--warmup-ratio", type=float, default=defaults["warmup_ratio"])
    parser.add_argument("--precision", choices=PRECISIONS, default=defaults["precision"])
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument(
        "--sharding",
        choices=SHARDINGS,
        default=defaults["sharding"],
        help="ddp: whole model per process; fsdp: weights and optimizer state split over all processes",
    )
    parser.add_argument("--work-dir", default=defaults["work_dir"])
    parser.add_argument(
        "--download-timeout",
        type=int,
        default=defaults["download_timeout"],
        metavar="SECONDS",
        help="how long a node's other processes wait for its first to download the base model and the "
        "dataset (default 6 h; the download happens before the process group, so NCCL's timeout "
        "does not apply)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace what is already at --output")
    parser.add_argument(
        "--hf-token-file", default=None, help="file holding a Hugging Face token (or set HF_TOKEN)"
    )
    parser.add_argument(
        "--hf-token-secret-id",
        default=None,
        help="OCID of a Vault secret holding a Hugging Face token (read with the job's identity)",
    )
    parser.add_argument(
        "--zip",
        default=None,
        metavar="NAME",
        help="also pack the model folder as one stored zip NAME at the output, files at its root (the "
        "model catalog's layout), with finetune.json beside it",
    )
    parser.add_argument(
        "--adapter-name",
        default=None,
        help="with --save adapter: the name it is served under (finetune.json)",
    )
    parser.add_argument("--oci-auth", default=None, help=f"one of {', '.join(AUTH_MODES)}")
    parser.add_argument("--oci-endpoint", default=None, help="Object Storage endpoint URL")
    return parser


def parse_args(argv: Sequence[str]) -> FineTuneArgs:
    """The arguments on `argv`, checked; raises ArgsError with one line per problem."""
    argv = list(argv)
    for item in argv:
        if item.split("=", 1)[0] in ("--hf-token", "--token"):
            raise ArgsError(
                f"{item.split('=', 1)[0]} is not accepted (a command line is visible to others): "
                "set HF_TOKEN or give --hf-token-file"
            )
    namespace = build_parser().parse_args(argv)
    values: dict[str, Any] = vars(namespace)
    return FineTuneArgs(**values)


def to_argv(args: FineTuneArgs) -> list[str]:
    """The command line `parse_args` reads back as `args`: the required flags, then each non-default value."""
    argv = ["--base-model", args.base_model, "--dataset", args.dataset, "--output", args.output]
    for field in dataclasses.fields(FineTuneArgs):
        if field.name in ("base_model", "dataset", "output"):
            continue
        value = getattr(args, field.name)
        if value == field.default:
            continue
        if isinstance(value, bool):
            argv.append(flag(field.name))
        elif isinstance(value, tuple):
            argv += [flag(field.name), ",".join(cast(tuple[str, ...], value))]
        else:
            argv += [flag(field.name), repr(value) if isinstance(value, float) else str(value)]
    return argv


MULTINODE_MODULE = "training.multinode"


def job_command(args: FineTuneArgs, *, gpus: int, nodes: int = 1, python: str = "python") -> list[str]:
    """The command a Data Science Job runs: torchrun with one process per GPU of the job's shape.

    On one node, torchrun itself (`--standalone`). On several, `python -m training.multinode`, which reads
    the rendezvous OCI gives each node (its rank, the cluster's size, the nodes' addresses in a file) and
    then starts torchrun with them: the address of rank 0 is only known once the nodes exist.
    """
    for name, value in (("gpus", gpus), ("nodes", nodes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ArgsError(f"{name} {value!r}: give a whole number of at least 1")
    if nodes == 1:
        launcher = ["torchrun", "--standalone", "--nproc-per-node", str(gpus), "-m", "training.finetune"]
        return launcher + to_argv(args)
    wrapper = [python, "-m", MULTINODE_MODULE, "--nnodes", str(nodes), "--nproc-per-node", str(gpus), "--"]
    return wrapper + to_argv(args)
