"""The fine-tuning entrypoint end to end on the CPU: a tiny Llama made here, data in, weights out, read back.

Needs the train extra (`make test-train` installs it); without it the module is skipped. No hub access:
the base model and its tokenizer are made in the test and HF_HUB_OFFLINE is set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REASON = "the train extra is not installed (make test-train installs it)"
torch = pytest.importorskip("torch", reason=REASON)
transformers = pytest.importorskip("transformers", reason=REASON)
peft = pytest.importorskip("peft", reason=REASON)
pytest.importorskip("accelerate", reason=REASON)
safetensors_torch = pytest.importorskip("safetensors.torch", reason=REASON)

from tests.training.memory_store import MemoryStore  # noqa: E402
from training.finetune import main  # noqa: E402

FACTS = {
    "Q: capital of France ?": "A: Paris",
    "Q: capital of Italy ?": "A: Rome",
    "Q: capital of Spain ?": "A: Madrid",
    "Q: capital of Peru ?": "A: Lima",
}
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]
WORDS = sorted({w for pair in FACTS.items() for text in pair for w in text.split()} | {"the", "is"})
SECRET = "hf_NeverPrintThisToken123"
# Settings under which the tiny model memorises FACTS in a few dozen steps (1 step per epoch).
FAST = ["--learning-rate", "2e-2", "--lr-scheduler", "constant", "--batch-size", "4", "--logging-steps", "5"]
LORA = ["--lora-r", "8", "--lora-alpha", "16", "--lora-dropout", "0", "--seed", "0"]
STEP_LINE = re.compile(r"^finetune: step (\d+)/(\d+) loss ([0-9.]+)", re.MULTILINE)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama (hidden 64) with a word-level tokenizer, saved as a Hugging Face model folder.

    Its config.json is written the way Llama checkpoints ship it (top-level rope_theta, torch_dtype), which
    is what serving engines on older transformers read; the output must keep it byte for byte.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llama")
    vocab = {word: i for i, word in enumerate(SPECIALS + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece()  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    tokenizer.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        initializer_range=0.2,  # large enough that a frozen head can express confident answers
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    written = json.loads((folder / "config.json").read_text())
    written.pop("rope_parameters", None)
    written.pop("dtype", None)
    written.update(rope_theta=10000.0, torch_dtype="float32", transformers_version="4.31.0")
    (folder / "config.json").write_text(json.dumps(written, indent=2, sort_keys=True) + "\n")
    return folder


@pytest.fixture(scope="module")
def qa_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("qa")
    lines = [json.dumps({"prompt": p, "completion": c}) for p, c in FACTS.items()]
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def answers(model: Any, tokenizer: Any) -> dict[str, str]:
    """Greedy completions of the FACTS prompts."""
    replies = {}
    for prompt in FACTS:
        ids = tokenizer(prompt, return_tensors="pt")
        out = model.generate(**ids, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        replies[prompt] = tokenizer.decode(
            out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True
        ).strip()
    return replies


def load_causal_lm(folder: Path) -> Any:
    return transformers.AutoModelForCausalLM.from_pretrained(str(folder))


def tensors(folder: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for file in sorted(folder.glob("*.safetensors")):
        merged.update(safetensors_torch.load_file(str(file)))
    return merged


def losses(stdout: str) -> list[float]:
    return [float(m.group(3)) for m in STEP_LINE.finditer(stdout)]


def test_lora_merged_into_the_base_weights_learns_the_facts_and_loads_like_the_base(
    tiny_base: Path, qa_dataset: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tiny_base))
    assert answers(load_causal_lm(tiny_base), tokenizer) != FACTS  # nothing to learn otherwise
    out = tmp_path / "out"
    argv = ["--base-model", str(tiny_base), "--dataset", str(qa_dataset), "--output", str(out)]
    argv += ["--method", "lora", "--save", "merged", "--epochs", "30", *FAST, *LORA]
    argv += ["--work-dir", str(tmp_path / "work")]

    assert main(argv) == 0
    stdout = capfd.readouterr().out
    seen = losses(stdout)
    assert len(seen) >= 5 and seen[-1] < seen[0] / 10, stdout

    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "finetune.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    for same in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (out / same).read_bytes() == (tiny_base / same).read_bytes(), same
    before, after = tensors(tiny_base), tensors(out)
    assert {k: v.shape for k, v in after.items()} == {k: v.shape for k, v in before.items()}
    assert {v.dtype for v in after.values()} == {torch.float32}
    q_proj = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(after[q_proj], before[q_proj])  # the adapter was folded in
    assert torch.equal(after["model.embed_tokens.weight"], before["model.embed_tokens.weight"])

    assert answers(load_causal_lm(out), tokenizer) == FACTS
    manifest = json.loads((out / "finetune.json").read_text())
    assert manifest["steps"] == 30 and manifest["records"] == 4 and manifest["save"] == "merged"
    assert manifest["finalLoss"] < manifest["firstLoss"]
    assert not list(tmp_path.glob(".out.*"))  # no half-moved folder left beside the output


def test_lora_adapter_from_and_to_object_storage_with_the_token_kept_secret(
    tiny_base: Path,
    qa_dataset: Path,
    tmp_path: Path,
    memory_store: MemoryStore,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The job's path: base model and data from buckets, the adapter back to a bucket, manifest last."""
    monkeypatch.setenv("HF_TOKEN", SECRET)
    for file in tiny_base.iterdir():
        memory_store.put("acme", "models", f"base/tiny/{file.name}", file.read_bytes())
    memory_store.put("acme", "data", "sets/qa/train.jsonl", (qa_dataset / "train.jsonl").read_bytes())
    argv = ["--base-model", "oci://models@acme/base/tiny", "--dataset", "oci://data@acme/sets/qa"]
    argv += ["--output", "oci://models@acme/ft/run-1", "--method", "lora", "--save", "adapter"]
    argv += ["--epochs", "30", *FAST, *LORA, "--lora-target-modules", "q_proj,v_proj,o_proj,down_proj"]
    argv += ["--work-dir", str(tmp_path / "work")]

    assert main(argv, store_factory=lambda _: memory_store) == 0
    captured = capfd.readouterr()
    assert SECRET not in captured.out + captured.err

    written = [n for n in memory_store.names("acme", "models") if n.startswith("ft/run-1/")]
    assert sorted(written) == [
        "ft/run-1/adapter_config.json",
        "ft/run-1/adapter_model.safetensors",
        "ft/run-1/finetune.json",
        "ft/run-1/tokenizer.json",
        "ft/run-1/tokenizer_config.json",
    ]
    assert memory_store.uploads[-1] == "ft/run-1/finetune.json"
    assert all(SECRET.encode() not in memory_store.objects[("acme", "models", n)] for n in written)

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    for name in written:
        (adapter / name.rsplit("/", 1)[1]).write_bytes(memory_store.objects[("acme", "models", name)])
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "oci://models@acme/base/tiny"
    assert sorted(config["target_modules"]) == ["down_proj", "o_proj", "q_proj", "v_proj"]
    model = peft.PeftModel.from_pretrained(load_causal_lm(tiny_base), str(adapter))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(adapter))
    assert answers(model, tokenizer) == FACTS


def test_full_fine_tuning_on_text_records(
    tiny_base: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "text.jsonl"
    data.write_text("\n".join(json.dumps({"text": f"{p} {c}"}) for p, c in FACTS.items()) + "\n")
    out = tmp_path / "out"
    argv = ["--base-model", str(tiny_base), "--dataset", str(data), "--output", str(out), "--method", "full"]
    argv += ["--epochs", "30", *FAST, "--learning-rate", "3e-3", "--work-dir", str(tmp_path / "work")]

    assert main(argv) == 0
    seen = losses(capfd.readouterr().out)
    assert seen[-1] < seen[0] / 10
    before, after = tensors(tiny_base), tensors(out)
    assert not torch.equal(after["model.embed_tokens.weight"], before["model.embed_tokens.weight"])
    assert (out / "config.json").read_bytes() == (tiny_base / "config.json").read_bytes()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(out))
    assert answers(load_causal_lm(out), tokenizer) == FACTS


def test_qlora_on_a_machine_without_cuda_is_refused_before_anything_is_written(
    tiny_base: Path, qa_dataset: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out, work = tmp_path / "out", tmp_path / "work"
    argv = ["--base-model", str(tiny_base), "--dataset", str(qa_dataset), "--output", str(out)]
    assert main([*argv, "--method", "qlora", "--work-dir", str(work)]) == 2
    err = capfd.readouterr().err.strip()
    assert (
        len(err.splitlines()) == 1 and err.startswith("finetune: error: --method 'qlora'") and "CUDA" in err
    )
    assert not out.exists() and not work.exists()


def test_an_existing_output_is_kept_unless_overwrite_is_given(
    tiny_base: Path,
    qa_dataset: Path,
    tmp_path: Path,
    memory_store: MemoryStore,
    capfd: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier-model.safetensors").write_bytes(b"weights of an earlier run")
    argv = ["--base-model", str(tiny_base), "--dataset", str(qa_dataset), "--max-steps", "2", *LORA]
    argv += ["--work-dir", str(tmp_path / "work")]

    assert main([*argv, "--output", str(out)]) == 2
    assert "--output" in capfd.readouterr().err
    assert (out / "earlier-model.safetensors").exists()

    memory_store.put("acme", "models", "ft/run-1/config.json", b"{}")
    assert main([*argv, "--output", "oci://models@acme/ft/run-1"], store_factory=lambda _: memory_store) == 2
    assert "already holds 1 object(s)" in capfd.readouterr().err
    assert memory_store.objects[("acme", "models", "ft/run-1/config.json")] == b"{}"

    assert main([*argv, "--output", str(out), "--overwrite"]) == 0
    assert not (out / "earlier-model.safetensors").exists() and (out / "model.safetensors").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--lora-target-modules", "attention_qkv"],
            r"^finetune: error: --lora-target-modules 'attention_qkv': ",
        ),
        (
            ["--base-model", "acme/not-downloaded"],
            r"^finetune: error: --base-model 'acme/not-downloaded': cannot ",
        ),
        (
            ["--base-model", "./no/such/folder"],
            r"^finetune: error: --base-model './no/such/folder': no such folder",
        ),
    ],
)
def test_arguments_that_fail_on_the_model_are_refused_in_one_line(
    tiny_base: Path,
    qa_dataset: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    argv = ["--base-model", str(tiny_base), "--dataset", str(qa_dataset), "--output", str(tmp_path / "out")]
    assert main([*argv, "--work-dir", str(tmp_path / "work"), *extra]) == 2
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.match(message, err), err
    assert not (tmp_path / "out").exists() and not (tmp_path / "work" / "base-model").exists()


def test_torchrun_with_two_processes_trains_once_and_writes_once(
    tiny_base: Path, qa_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += ["-m", "training.finetune", "--base-model", str(tiny_base), "--dataset", str(qa_dataset)]
    command += ["--output", str(out), "--epochs", "30", *FAST, *LORA, "--batch-size", "2"]
    command += ["--work-dir", str(tmp_path / "work")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "HF_TOKEN": SECRET}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)

    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 process(es) on cpu" in done.stdout
    steps = [int(m.group(1)) for m in STEP_LINE.finditer(done.stdout)]
    assert (
        steps == sorted(set(steps)) and steps[-1] == 30
    )  # one log line per step: only the first process logs
    assert SECRET not in done.stdout + done.stderr
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(out))
    assert answers(load_causal_lm(out), tokenizer) == FACTS


def test_the_stack_job_command_writes_one_catalog_zip_that_loads_and_answers(
    tiny_base: Path,
    qa_dataset: Path,
    tmp_path: Path,
    memory_store: MemoryStore,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """What a `fineTune` source's job runs: buckets in, `<output>/model.zip` (files at its root) out.

    The Hugging Face token comes from a Vault secret (read by the secret reader, never printed); the zip is
    what the model catalog registers and a deployment unpacks into its model folder.
    """
    import zipfile

    from domain.training_args import FineTuneArgs, job_command, parse_args

    for file in tiny_base.iterdir():
        memory_store.put("acme", "models", f"base/tiny/{file.name}", file.read_bytes())
    memory_store.put("acme", "data", "sets/qa/train.jsonl", (qa_dataset / "train.jsonl").read_bytes())
    secret_id = "ocid1.vaultsecret.oc1.iad.amaaaaaabbbbbbbbccccccccddddddddeeee"
    args = FineTuneArgs(
        base_model="oci://models@acme/base/tiny",
        dataset="oci://data@acme/sets/qa",
        output="oci://models@acme/ft/dev-qa-0123456789ab",
        method="lora",
        epochs=30,
        learning_rate=2e-2,
        lr_scheduler="constant",
        batch_size=4,
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        seed=0,
        zip="model.zip",
        overwrite=True,
        hf_token_secret_id=secret_id,
        work_dir=str(tmp_path / "work"),
    )
    command = job_command(args, gpus=1)
    read: list[str | None] = []

    def secret_reader(a: FineTuneArgs) -> str:
        read.append(a.hf_token_secret_id)
        return SECRET

    assert main(command[6:], store_factory=lambda _: memory_store, secret_reader=secret_reader) == 0
    captured = capfd.readouterr()
    assert read == [secret_id] and SECRET not in captured.out + captured.err
    assert parse_args(command[6:]) == args

    written = [n for n in memory_store.names("acme", "models") if n.startswith("ft/")]
    assert written == ["ft/dev-qa-0123456789ab/finetune.json", "ft/dev-qa-0123456789ab/model.zip"]
    assert memory_store.uploads[-1] == "ft/dev-qa-0123456789ab/finetune.json"
    archive = tmp_path / "model.zip"
    archive.write_bytes(memory_store.objects[("acme", "models", "ft/dev-qa-0123456789ab/model.zip")])
    deployed = tmp_path / "deployed_model"  # where a deployment unpacks its artifact
    with zipfile.ZipFile(archive) as packed:
        assert all("/" not in e.filename and e.compress_type == zipfile.ZIP_STORED for e in packed.infolist())
        packed.extractall(deployed)
    assert (deployed / "config.json").read_bytes() == (tiny_base / "config.json").read_bytes()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(deployed))
    assert answers(load_causal_lm(deployed), tokenizer) == FACTS


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_two_nodes_under_the_multinode_wrapper_train_sharded_and_write_once(
    tiny_base: Path, qa_dataset: Path, tmp_path: Path
) -> None:
    """What a 2-node job run does, on one machine: OCI's rendezvous file and variables, the wrapper on each
    "node", torchrun across both (gloo), FSDP full fine-tuning, one output that loads and answers."""
    from domain.training_args import FineTuneArgs, job_command

    metadata = tmp_path / "nodes.json"
    metadata.write_text(json.dumps([{"Rank": r, "IPAddress": "127.0.0.1"} for r in (0, 1)]))
    out = tmp_path / "out"
    args = FineTuneArgs(
        base_model=str(tiny_base),
        dataset=str(qa_dataset),
        output=str(out),
        method="full",
        sharding="fsdp",
        epochs=30,
        learning_rate=3e-3,
        lr_scheduler="constant",
        batch_size=2,
        logging_steps=5,
        seed=0,
        work_dir=str(tmp_path / "work"),
    )
    command = job_command(args, gpus=1, nodes=2, python=sys.executable)
    assert command[1:8] == ["-m", "training.multinode", "--nnodes", "2", "--nproc-per-node", "1", "--"]
    port = str(_free_port())
    command = [*command[: command.index("--")], "--master-port", port, *command[command.index("--") :]]
    base_env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "INITIAL_CLUSTER_SIZE": "2"}
    base_env["CLUSTER_NODES_METADATA_FILE"] = str(metadata)
    nodes = [
        subprocess.Popen(
            command,
            env={**base_env, "NODE_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    done = [node.communicate(timeout=300) for node in nodes]
    for node, (_, stderr) in zip(nodes, done, strict=True):
        assert node.returncode == 0, stderr[-3000:]
    stdout = done[0][0]
    assert "multinode: node 0 of 2, rank 0 at 127.0.0.1" in stdout
    assert "sharding fsdp, 2 process(es) on cpu" in stdout
    assert "multinode: node 1 of 2" in done[1][0] and "finetune: step" not in done[1][0]
    seen = losses(stdout)
    assert len(seen) >= 5 and seen[-1] < seen[0] / 10, stdout
    before, after = tensors(tiny_base), tensors(out)
    assert {k: v.shape for k, v in after.items()} == {k: v.shape for k, v in before.items()}
    assert not torch.equal(after["model.embed_tokens.weight"], before["model.embed_tokens.weight"])
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(out))
    assert answers(load_causal_lm(out), tokenizer) == FACTS


# -- adapters served together ---------------------------------------------------------------------------------

_ANSWERS = list(FACTS.values())
SHUFFLED = dict(zip(FACTS, [*_ANSWERS[1:], _ANSWERS[0]], strict=True))
BASE_ID = "ocid1.datasciencemodel.oc1.iad.amaaaaaabasebasebasebasebasebasebasebasebasebasebaseb"
ADAPTER_IDS = {
    "capitals": "ocid1.datasciencemodel.oc1.iad.amaaaaaacapitalscapitalscapitalscapitalscapitalsca",
    "shuffled": "ocid1.datasciencemodel.oc1.iad.amaaaaaashuffledshuffledshuffledshuffledshuffledsh",
}


def test_adapters_served_together_answer_by_name_and_the_base_by_its_own(
    tiny_base: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The adapter-serving contract end to end on the CPU: two fine-tunes keep their adapters (the zip the job
    writes), the deployment's environment names them (domain.adapters, the launcher's engine command), and
    each folder the engine is pointed at, loaded on the one base, answers what its fine-tune taught."""
    import zipfile

    from domain.adapters import AdapterServing
    from domain.container_env import DEPLOYED_MODEL_DIR, ContainerSpec, container_env
    from serving.launcher import engine_command, read_config, served_model_name

    deployed = tmp_path / "deployed_model"  # what the model group deployment unpacks, one folder per member
    shutil.copytree(tiny_base, deployed / BASE_ID)
    for name, facts in (("capitals", FACTS), ("shuffled", SHUFFLED)):
        data = tmp_path / f"{name}.jsonl"
        data.write_text(
            "\n".join(json.dumps({"prompt": p, "completion": c}) for p, c in facts.items()) + "\n"
        )
        out = tmp_path / f"out-{name}"
        argv = ["--base-model", str(tiny_base), "--dataset", str(data), "--output", str(out)]
        argv += ["--save", "adapter", "--adapter-name", name, "--zip", "model.zip", "--epochs", "30"]
        argv += [*FAST, *LORA]
        assert main([*argv, "--work-dir", str(tmp_path / f"work-{name}")]) == 0
        with zipfile.ZipFile(out / "model.zip") as packed:
            assert "adapter_config.json" in packed.namelist()
            packed.extractall(deployed / ADAPTER_IDS[name])
    capfd.readouterr()

    serving = AdapterServing(base_name="tiny-base", adapters=tuple(ADAPTER_IDS), max_loras=2, max_lora_rank=8)
    base_env = container_env(ContainerSpec(engine="vllm", method="offline", model="", params="--seed 0"))
    env = serving.env("custom", base_env, BASE_ID)
    assert env["LORA_ADAPTERS_DIR"] == DEPLOYED_MODEL_DIR and not any(
        i in str(env) for i in ADAPTER_IDS.values()
    )
    config = read_config({**env, "LORA_ADAPTERS_DIR": str(deployed)})  # the folder, here
    command = engine_command(config, 8081)
    assert served_model_name(config) == "tiny-base"
    assert command[:3] == ["vllm", "serve", f"{DEPLOYED_MODEL_DIR}/{BASE_ID}"]
    assert command[command.index("--max-loras") + 1] == "2" and "--enable-lora" in command
    assert command[command.index("--max-lora-rank") + 1] == "8" and "--seed" in command
    modules = command[command.index("--lora-modules") + 1 :]
    assert sorted(modules) == sorted(f"{n}={deployed / i}" for n, i in ADAPTER_IDS.items())

    def local(path: str) -> str:
        return str(deployed / path.removeprefix(DEPLOYED_MODEL_DIR + "/").removeprefix(f"{deployed}/"))

    base = load_causal_lm(Path(local(command[2])))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(deployed / BASE_ID))
    first, *rest = modules
    name, path = first.split("=", 1)
    model = peft.PeftModel.from_pretrained(base, local(path), adapter_name=name)
    for module in rest:
        other, where = module.split("=", 1)
        model.load_adapter(local(where), adapter_name=other)
    expected = {"capitals": FACTS, "shuffled": SHUFFLED}
    for name in ADAPTER_IDS:  # what vLLM does when a request's `model` is the adapter's name
        model.set_adapter(name)
        assert answers(model, tokenizer) == expected[name], name
    with model.disable_adapter():  # the base's own name: no adapter
        assert answers(model, tokenizer) not in expected.values()

    service = serving.env("service", base_env, BASE_ID)
    assert service["MODEL"] == f"{DEPLOYED_MODEL_DIR}/{BASE_ID}/"
    assert service["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "true"
    assert service["PARAMS"] == (
        "--seed 0 --served-model-name tiny-base --max-lora-rank 8 --max-loras 2 --enable_lora"
    )
