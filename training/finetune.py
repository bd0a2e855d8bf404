"""Fine-tune a causal language model: `python -m training.finetune --base-model B --dataset D --output O`.

Runs as one process or under `torchrun --nproc-per-node N -m training.finetune ...` (the Trainer reads
torchrun's RANK / LOCAL_RANK / WORLD_SIZE). Steps:
1. check the arguments and the output before any download or GPU time (a non-empty output is refused
   unless --overwrite: nothing is lost);
2. bring the base model and the dataset to local disk before any process group exists (once per node:
   local rank 0 fetches, the others wait for its marker, bounded by --download-timeout, so a long download
   never meets the process group's 30-minute barrier timeout);
3. train with transformers' Trainer: LoRA and QLoRA through PEFT, or all weights;
4. on the first process only, write the model folder (merged weights, or the adapter alone), copying the
   base model's config and tokenizer files unchanged so the serving engine reads them as it read the base;
5. with --zip NAME, pack the folder as one stored zip (files at its root: the layout the model catalog takes
   and a model deployment unpacks), with `finetune.json` beside it;
6. move it to a local --output, or upload it to oci:// with `finetune.json` last, the sign that it is whole.

Progress (`step 10/300 loss 1.2345 ...`) goes to stdout. The Hugging Face token is read from HF_TOKEN,
--hf-token-file or the Vault secret --hf-token-secret-id, handed to the Hub download only, and never printed
or written.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import re
import shutil
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.errors import UserError
from domain.ids import ObjectUri, is_object_uri
from domain.training_args import ALL_LINEAR, FineTuneArgs, flag, parse_args
from oci_runtime.storage import (
    ObjectStore,
    OciObjectStore,
    download_prefix,
    files_under,
    objects_at,
    parse_oci_uri,
    upload_folder,
)
from oci_runtime.vault import read_secret
from training.data import Encoded, encode, jsonl_files, pad_batch, read_examples

MANIFEST = "finetune.json"
COMPLETE_MARKER = ".complete"
# Files that describe the model rather than hold its weights: copied from the base model unchanged, so
# the output reads exactly as the base did in whatever transformers version the serving engine ships.
MODEL_FILES = ("config.json", "generation_config.json")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
)
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]
MAX_SHARD_SIZE = "5GB"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")
EXTRA_MODULES = ("torch", "transformers", "peft", "accelerate")

StoreFactory = Callable[[FineTuneArgs], ObjectStore]
SecretReader = Callable[[FineTuneArgs], str]


@dataclass(frozen=True, kw_only=True)
class Result:
    output: str
    files: dict[str, int]  # relative path -> bytes
    steps: int
    first_loss: float | None
    final_loss: float | None


def log(message: str) -> None:
    """One progress line on stdout, from the first process only."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"finetune: {message}", flush=True)


def hf_token(args: FineTuneArgs, secret_reader: SecretReader | None = None) -> str | None:
    """The Hugging Face token from --hf-token-file, --hf-token-secret-id or HF_TOKEN, else None."""
    if args.hf_token_file:
        try:
            token = Path(args.hf_token_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UserError(
                f"--hf-token-file {args.hf_token_file!r}: cannot read it ({exc.strerror})"
            ) from exc
        if not token:
            raise UserError(f"--hf-token-file {args.hf_token_file!r}: the file is empty")
        return token
    if args.hf_token_secret_id:
        reader = secret_reader or (
            lambda a: read_secret(str(a.hf_token_secret_id), auth_mode=a.oci_auth, arg="--hf-token-secret-id")
        )
        return reader(args)
    return os.environ.get("HF_TOKEN") or None


def require_extra() -> None:
    missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(
            f"the training libraries are not installed ({', '.join(missing)} missing): "
            "pip install 'oci-llm-stack[train]'"
        )


def model_source(ref: str) -> str:
    """'oci', 'local' or 'hub' for a --base-model value; a path that does not exist is an error."""
    if is_object_uri(ref):
        return "oci"
    path = Path(ref).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"--base-model {ref!r}: no config.json in it; give a Hugging Face model folder")
        return "local"
    if ref.startswith(("/", "./", "../", "~")) or not _HUB_ID.match(ref):
        raise UserError(f"--base-model {ref!r}: no such folder, and not a Hugging Face id such as org/name")
    return "hub"


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def preflight(args: FineTuneArgs, store: ObjectStore | None) -> None:
    """Refuse what would fail later, before any download or training."""
    cuda = cuda_available()
    if args.method == "qlora" and not cuda:
        raise UserError(
            "--method 'qlora': 4-bit QLoRA needs a CUDA GPU and bitsandbytes, and this machine has no CUDA "
            "device; use --method lora here, or run on a GPU shape"
        )
    if args.method == "qlora" and importlib.util.find_spec("bitsandbytes") is None:
        raise UserError("--method 'qlora': the bitsandbytes package is not installed in this environment")
    if args.precision == "fp16" and not cuda:
        raise UserError("--precision 'fp16': fp16 mixed precision needs a CUDA GPU; use auto, fp32 or bf16")
    model_source(args.base_model)
    if not is_object_uri(args.dataset):
        jsonl_files(Path(args.dataset).expanduser())
    if is_object_uri(args.output):
        assert store is not None
        uri = parse_oci_uri(args.output, arg="--output")
        existing = _names(store, uri, "--output")
        if existing and not args.overwrite:
            raise UserError(
                f"--output {args.output!r}: already holds {len(existing)} object(s); "
                "choose an empty prefix or pass --overwrite"
            )
    else:
        out = Path(args.output).expanduser()
        if out.exists() and not out.is_dir():
            raise UserError(f"--output {args.output!r}: is a file; give a folder")
        if out.is_dir() and any(out.iterdir()) and not args.overwrite:
            raise UserError(
                f"--output {args.output!r}: the folder is not empty; choose another or pass --overwrite"
            )
    for name in ("dataset", "base_model"):
        ref = getattr(args, name)
        if is_object_uri(ref):
            assert store is not None
            if not _names(store, parse_oci_uri(ref, arg=flag(name)), flag(name)):
                raise UserError(f"{flag(name)} {ref!r}: no objects there")


def _names(store: ObjectStore, uri: ObjectUri, arg: str) -> dict[str, str]:
    try:
        return objects_at(store, uri)
    except UserError:
        raise
    except Exception as exc:
        status = getattr(exc, "status", None)
        detail = getattr(exc, "message", None) or str(exc)
        where = f" (HTTP {status})" if status else ""
        raise UserError(f"{arg} {uri}: cannot list it{where}: {detail}".splitlines()[0]) from exc


def fetch_once(dest: Path, fetch: Callable[[Path], None]) -> Path:
    """Run `fetch(dest)` unless an earlier run (or another process of this node) completed it."""
    marker = dest / COMPLETE_MARKER
    if marker.exists():
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    try:
        fetch(dest)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)  # no half-downloaded folder for the next run to trust
        raise
    marker.touch()
    return dest


def local_base_model(args: FineTuneArgs, store: ObjectStore | None, work: Path, token: str | None) -> Path:
    source = model_source(args.base_model)
    if source == "local":
        return Path(args.base_model).expanduser()
    if source == "oci":
        assert store is not None
        uri = parse_oci_uri(args.base_model, arg="--base-model")
        log(f"downloading the base model from {uri}")
        return fetch_once(work / "base-model", lambda d: _download(store, uri, d))
    log(f"downloading the base model {args.base_model} from Hugging Face")
    return fetch_once(work / "base-model", lambda d: _hub_download(args.base_model, d, token))


def _download(store: ObjectStore, uri: ObjectUri, dest: Path) -> None:
    files = download_prefix(store, uri, dest)
    log(f"downloaded {len(files)} file(s), {sum(f.stat().st_size for f in files)} bytes")


def _hub_download(repo_id: str, dest: Path, token: str | None) -> None:
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo_id, local_dir=str(dest), token=token, allow_patterns=HUB_PATTERNS)
    except Exception as exc:
        # The hub's messages name the repo and the reason, never the token.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"--base-model {repo_id!r}: cannot download it from Hugging Face: {reason}") from exc
    if not any(dest.glob("*.safetensors")):
        raise UserError(f"--base-model {repo_id!r}: the repository has no safetensors weights")


def local_dataset(args: FineTuneArgs, store: ObjectStore | None, work: Path) -> Path:
    if not is_object_uri(args.dataset):
        return Path(args.dataset).expanduser()
    assert store is not None
    uri = parse_oci_uri(args.dataset, arg="--dataset")
    log(f"downloading the dataset from {uri}")
    return fetch_once(work / "dataset", lambda d: _download(store, uri, d))


def compute_dtype(args: FineTuneArgs, cuda: bool) -> Any:
    import torch

    if args.precision == "auto":
        if not cuda:
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]


def stored_dtype(base: Path) -> Any:
    """The dtype the base model's weights are stored in (its config says), so the output keeps it."""
    import torch

    config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    name = config.get("torch_dtype") or config.get("dtype") or "float32"
    dtype = getattr(torch, str(name), None)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32


def training_arguments(args: FineTuneArgs, work: Path, cuda: bool) -> Any:
    import torch
    from transformers import TrainingArguments

    dtype = compute_dtype(args, cuda)
    sharded: dict[str, Any] = {}
    if args.sharding == "fsdp":
        # FSDP2 through accelerate: each decoder layer is its own shard unit; the full state dict is
        # gathered on the first process when the model is saved. Its own activation checkpointing, not the
        # Trainer's (which would all-gather once more in the backward pass).
        sharded = {
            "fsdp": True,
            "fsdp_config": {
                "version": 2,
                "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                "state_dict_type": "FULL_STATE_DICT",
                "activation_checkpointing": args.gradient_checkpointing,
            },
        }
    return TrainingArguments(
        output_dir=str(work / "checkpoints"),
        num_train_epochs=args.epochs,
        max_steps=args.max_steps if args.max_steps is not None else -1,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        learning_rate=args.learning_rate,
        lr_scheduler_type=args.lr_scheduler,
        warmup_steps=args.warmup_ratio,
        logging_steps=args.logging_steps,
        logging_first_step=True,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=args.seed,
        use_cpu=not cuda,
        bf16=dtype == torch.bfloat16 and cuda,
        fp16=dtype == torch.float16,
        activation_checkpointing=args.gradient_checkpointing and args.sharding != "fsdp",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        **sharded,
    )


def load_for_training(args: FineTuneArgs, base: Path, cuda: bool) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    dtype = compute_dtype(args, cuda)
    kwargs: dict[str, Any] = {}
    if args.method == "full":
        # Full fine-tuning keeps fp32 master weights; the Trainer's bf16/fp16 flag adds mixed precision.
        kwargs["dtype"] = torch.float32
    elif args.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        kwargs["dtype"] = dtype
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    else:
        kwargs["dtype"] = dtype
    model = AutoModelForCausalLM.from_pretrained(str(base), **kwargs)
    model.config.use_cache = False
    if args.method == "full":
        return model
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if args.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=args.gradient_checkpointing)
    elif args.gradient_checkpointing:
        model.enable_input_require_grads()
    targets: str | list[str] = (
        ALL_LINEAR if args.lora_target_modules == (ALL_LINEAR,) else list(args.lora_target_modules)
    )
    config = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        names = ",".join(args.lora_target_modules)
        raise UserError(f"--lora-target-modules {names!r}: {str(exc).splitlines()[0]}") from exc


class _ProgressLog:
    """A Trainer callback printing `step n/N loss x` lines; made late so this module imports without torch."""

    @staticmethod
    def make() -> Any:
        from transformers import TrainerCallback

        class ProgressLog(TrainerCallback):  # type: ignore[misc]
            def on_log(
                self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **_: Any
            ) -> None:
                if not state.is_world_process_zero or not logs or "loss" not in logs:
                    return
                print(
                    f"finetune: step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f} "
                    f"lr {logs.get('learning_rate', 0.0):.2e} epoch {logs.get('epoch', 0.0):.2f}",
                    flush=True,
                )

        return ProgressLog()


def copy_base_files(base: Path, dest: Path, names: Sequence[str]) -> None:
    for name in names:
        if (base / name).is_file():
            shutil.copyfile(base / name, dest / name)


def write_adapter(model: Any, args: FineTuneArgs, base: Path, dest: Path) -> None:
    model.save_pretrained(str(dest))
    finish_adapter(args, base, dest)


def finish_adapter(args: FineTuneArgs, base: Path, dest: Path) -> None:
    """An adapter folder as the engines read it: the base named as the user did, the tokenizer beside it."""
    config_path = dest / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    # Name the base as the user did (a Hub id or an oci:// address), not a local download folder.
    config["base_model_name_or_path"] = args.base_model
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (dest / "README.md").unlink(missing_ok=True)
    copy_base_files(base, dest, TOKENIZER_FILES)


def write_merged(adapter: Path, base: Path, dest: Path) -> None:
    """Reload the base in its stored dtype, apply the adapter and fold it into the weights.

    Reloading (rather than merging the training copy) is what QLoRA needs: its training copy is 4-bit.
    Doing the same for LoRA keeps one tested path.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=stored_dtype(base))
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload(safe_merge=True)
    merged.save_pretrained(str(dest), max_shard_size=MAX_SHARD_SIZE)
    copy_base_files(base, dest, MODEL_FILES + TOKENIZER_FILES)


def reload_gathered(folder: Path) -> Any:
    """The model the sharded run saved whole (fp32), loaded back to be written like an unsharded one."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)


def copy_adapter(gathered: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copyfile(gathered / name, dest / name)


def write_full(model: Any, base: Path, dest: Path) -> None:
    model.to(stored_dtype(base)).save_pretrained(str(dest), max_shard_size=MAX_SHARD_SIZE)
    copy_base_files(base, dest, MODEL_FILES + TOKENIZER_FILES)


def write_manifest(dest: Path, args: FineTuneArgs, result: dict[str, Any]) -> None:
    import peft
    import torch
    import transformers

    manifest = {
        "baseModel": args.base_model,
        "dataset": args.dataset,
        "method": args.method,
        "save": args.save if args.method != "full" else "merged",
        **({"adapterName": args.adapter_name} if args.adapter_name else {}),
        "epochs": args.epochs,
        "learningRate": args.learning_rate,
        "maxSeqLen": args.max_seq_len,
        "seed": args.seed,
        **result,
        "files": {name: (dest / name).stat().st_size for name in files_under(dest)},
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
        },
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def write_zip(folder: Path, dest: Path) -> None:
    """Every file under `folder` in one stored (uncompressed) zip, paths relative to it, in name order.

    The model catalog takes a zip with the files at its root; a deployment unpacks it into its model folder.
    Weights do not compress, so storing costs nothing and lets readers seek.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as packed:
        for relative in files_under(folder):
            packed.write(folder / relative, arcname=relative)


def package(staging: Path, args: FineTuneArgs, work: Path) -> Path:
    """The folder to publish: the model folder itself, or (with --zip) the zip and finetune.json beside it."""
    if not args.zip:
        return staging
    packed = work / "packed"
    if packed.exists():
        shutil.rmtree(packed)
    packed.mkdir(parents=True)
    log(f"packing the model folder as {args.zip}")
    write_zip(staging, packed / args.zip)
    shutil.copyfile(staging / MANIFEST, packed / MANIFEST)
    return packed


def publish(staging: Path, args: FineTuneArgs, store: ObjectStore | None) -> str:
    """Put the finished folder at --output; returns where it went."""
    if is_object_uri(args.output):
        assert store is not None
        uri = parse_oci_uri(args.output, arg="--output")
        before = objects_at(store, uri)
        written = upload_folder(store, staging, uri, last=[MANIFEST])
        for stale in sorted(set(before) - set(written)):  # only with --overwrite: a previous run's leftovers
            store.delete(uri.namespace, uri.bucket, stale)
        return str(uri)
    out = Path(args.output).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    incoming = out.with_name(f".{out.name}.incoming")
    old = out.with_name(f".{out.name}.old")
    for leftover in (incoming, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    shutil.copytree(staging, incoming)
    if out.exists():
        os.replace(out, old)
    os.replace(incoming, out)
    if old.exists():
        shutil.rmtree(old)
    return str(out)


def fetched_paths(args: FineTuneArgs, work: Path) -> tuple[Path, Path]:
    """Where the base model and the dataset are, or will be once local rank 0 fetched them."""
    base_local = model_source(args.base_model) == "local"
    base = Path(args.base_model).expanduser() if base_local else work / "base-model"
    data = work / "dataset" if is_object_uri(args.dataset) else Path(args.dataset).expanduser()
    return base, data


def failure_note(work: Path) -> Path:
    """Where local rank 0 says why its download failed. Named after the parent process (torchrun's
    agent, shared by the node's workers), so a note left by an earlier run is not read as this one's."""
    return work / f".download-failed.{os.getppid()}"


def local_inputs(
    args: FineTuneArgs,
    store: ObjectStore | None,
    work: Path,
    token: str | None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Path, Path]:
    """The base model and the dataset on local disk. Runs before the process group exists (so no barrier
    and no NCCL timeout is involved): local rank 0 downloads, the node's other processes wait for the
    markers it leaves, up to --download-timeout."""
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        note = failure_note(work)
        note.unlink(missing_ok=True)
        try:
            return local_base_model(args, store, work, token), local_dataset(args, store, work)
        except BaseException as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            note.write_text(reason + "\n", encoding="utf-8")
            raise
    return _wait_for_inputs(args, work, sleep=sleep, clock=clock)


def _wait_for_inputs(
    args: FineTuneArgs, work: Path, *, sleep: Callable[[float], None], clock: Callable[[], float]
) -> tuple[Path, Path]:
    base, data = fetched_paths(args, work)
    waited_for = [path for path in (base, data) if path.parent == work]
    rank = os.environ.get("LOCAL_RANK", "?")
    started = clock()
    next_word = started
    while True:
        note = failure_note(work)
        if note.exists():
            said = note.read_text(encoding="utf-8").strip()
            raise UserError(f"local rank 0 could not download the inputs: {said}")
        missing = [path for path in waited_for if not (path / COMPLETE_MARKER).exists()]
        if not missing:
            return base, data
        now = clock()
        if now - started >= args.download_timeout:
            raise UserError(
                f"{flag('download_timeout')} {args.download_timeout}: local rank 0 has not finished "
                f"downloading to {', '.join(map(str, missing))}; raise it, or see rank 0's log for why"
            )
        if now >= next_word:
            print(
                f"finetune: local rank {rank} waiting for local rank 0 to download "
                f"{', '.join(map(str, missing))} ({now - started:.0f} s of {args.download_timeout} s)",
                flush=True,
            )
            next_word = now + 300
        sleep(2.0)


def _losses(history: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    losses = [float(entry["loss"]) for entry in history if "loss" in entry]
    return (losses[0], losses[-1]) if losses else (None, None)


def run(
    args: FineTuneArgs,
    *,
    store_factory: StoreFactory | None = None,
    secret_reader: SecretReader | None = None,
) -> Result | None:
    """The whole job; returns the Result on the first process and None on the others."""
    require_extra()
    token = hf_token(args, secret_reader)
    uses_oci = any(is_object_uri(ref) for ref in (args.base_model, args.dataset, args.output))
    factory = store_factory or (
        lambda a: OciObjectStore.connect(auth_mode=a.oci_auth, endpoint=a.oci_endpoint)
    )
    store = factory(args) if uses_oci else None
    preflight(args, store)
    work = Path(args.work_dir).expanduser().resolve()
    work.mkdir(parents=True, exist_ok=True)
    base, data = local_inputs(args, store, work, token)

    import torch
    from transformers import AutoTokenizer, Trainer, set_seed
    from transformers.trainer_callback import PrinterCallback
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_warning()
    hf_logging.disable_progress_bar()
    cuda = cuda_available()
    targs = training_arguments(args, work, cuda)  # the process group starts here, after the download
    log(
        f"method {args.method}, save {args.save}, sharding {args.sharding}, "
        f"{targs.world_size} process(es) on {'cuda' if cuda else 'cpu'}, "
        f"precision {str(compute_dtype(args, cuda)).removeprefix('torch.')}"
    )

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise UserError(
            f"--base-model {args.base_model!r}: the tokenizer has neither a pad nor an end-of-text token"
        )
    examples = read_examples(jsonl_files(data))
    report = encode(examples, tokenizer, args.max_seq_len)
    log(
        f"{len(examples)} record(s): {len(report.examples)} to train on, "
        f"{report.truncated} cut at --max-seq-len "
        f"{args.max_seq_len}, {report.dropped} dropped (nothing left to learn after the cut)"
    )
    if not report.examples:
        raise UserError(
            f"--max-seq-len {args.max_seq_len}: every record's completion falls beyond it; raise it"
        )

    set_seed(args.seed)
    model = load_for_training(args, base, cuda)

    def collate(batch: list[Encoded]) -> dict[str, Any]:
        return pad_batch(batch, pad_id)

    trainer = Trainer(model=model, args=targs, train_dataset=report.examples, data_collator=collate)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(_ProgressLog.make())
    started = time.monotonic()
    trainer.train()
    steps = int(trainer.state.global_step)
    first_loss, final_loss = _losses(trainer.state.log_history)
    log(f"trained {steps} step(s) in {time.monotonic() - started:.1f} s")
    gathered = None
    if args.sharding == "fsdp":
        # Every process takes part in gathering the shards; the first writes them (fp32, or the adapter).
        gathered = work / "gathered"
        if trainer.is_world_process_zero() and gathered.exists():
            shutil.rmtree(gathered)
        trainer.save_model(str(gathered))
    if not trainer.is_world_process_zero():
        return None

    staging = work / "model"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    if args.method == "full":
        full = trainer.model if gathered is None else reload_gathered(gathered)
        write_full(full, base, staging)
    elif args.save == "adapter":
        if gathered is None:
            write_adapter(trainer.model, args, base, staging)
        else:
            copy_adapter(gathered, staging)
            finish_adapter(args, base, staging)
    else:
        adapter = work / "adapter"
        if adapter.exists():
            shutil.rmtree(adapter)
        if gathered is None:
            write_adapter(trainer.model, args, base, adapter)
        else:
            copy_adapter(gathered, adapter)
            finish_adapter(args, base, adapter)
        del trainer, model
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        log("merging the adapter into the base weights")
        write_merged(adapter, base, staging)
    trained = {
        "records": len(report.examples),
        "steps": steps,
        "firstLoss": first_loss,
        "finalLoss": final_loss,
    }
    write_manifest(staging, args, trained)
    ready = package(staging, args, work)
    files = {name: (ready / name).stat().st_size for name in files_under(ready)}
    log(f"writing {len(files)} file(s), {sum(files.values())} bytes, to {args.output}")
    where = publish(ready, args, store)
    log(f"done: {where}")
    return Result(output=where, files=files, steps=steps, first_loss=first_loss, final_loss=final_loss)


def main(
    argv: Sequence[str] | None = None,
    *,
    store_factory: StoreFactory | None = None,
    secret_reader: SecretReader | None = None,
) -> int:
    try:
        run(
            parse_args(sys.argv[1:] if argv is None else argv),
            store_factory=store_factory,
            secret_reader=secret_reader,
        )
    except UserError as exc:
        for line in str(exc).splitlines():
            print(f"finetune: error: {line}", file=sys.stderr, flush=True)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
