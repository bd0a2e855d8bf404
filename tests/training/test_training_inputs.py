"""The fine-tuning entrypoint's inputs, without the training libraries: arguments, JSONL data, Object Storage.

These run in the default `make test`; the end-to-end runs are in test_training_cpu.py.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from domain.errors import UserError
from domain.training_args import ArgsError, FineTuneArgs, job_command, parse_args, to_argv
from oci_runtime.storage import (
    OciObjectStore,
    default_auth,
    download_prefix,
    objects_at,
    parse_oci_uri,
    upload_folder,
)
from tests.training.memory_store import MemoryStore
from training import finetune
from training.data import IGNORE_INDEX, Example, encode, jsonl_files, read_examples

REQUIRED = [
    "--base-model",
    "./base",
    "--dataset",
    "oci://data@ns/sets/qa",
    "--output",
    "oci://models@ns/ft/run-1",
]


# --- arguments ---------------------------------------------------------------------------------------------


def test_minimal_command_line_takes_the_documented_defaults() -> None:
    args = parse_args(REQUIRED)
    assert (args.method, args.save, args.epochs, args.learning_rate) == ("lora", "merged", 3.0, 2e-4)
    assert (args.lora_r, args.lora_alpha, args.lora_target_modules) == (16, 32, ("all-linear",))
    assert args.max_steps is None and args.overwrite is False and args.hf_token_file is None


def test_settings_round_trip_through_the_job_command_line() -> None:
    """The stack builds a job's arguments with to_argv; the entrypoint must read back exactly the same run."""
    args = FineTuneArgs(
        base_model="meta-llama/Llama-2-7b-hf",
        dataset="oci://data@ns/sets/qa",
        output="oci://models@ns/ft/run-1",
        method="qlora",
        save="adapter",
        epochs=2.5,
        learning_rate=1.5e-4,
        max_seq_len=4096,
        batch_size=2,
        grad_accum=8,
        lora_r=64,
        lora_alpha=16,
        lora_dropout=0.1,
        lora_target_modules=("q_proj", "v_proj"),
        seed=7,
        max_steps=500,
        precision="bf16",
        gradient_checkpointing=True,
        overwrite=True,
        oci_endpoint="https://objectstorage.us-ashburn-1.oraclecloud.com",
    )
    argv = to_argv(args)
    assert parse_args(argv) == args
    assert to_argv(parse_args(REQUIRED)) == REQUIRED  # defaults are left off: the command stays short


def test_a_job_launches_one_process_per_gpu_under_torchrun() -> None:
    args = parse_args([*REQUIRED, "--epochs", "2"])
    command = job_command(args, gpus=4)
    assert command[:6] == ["torchrun", "--standalone", "--nproc-per-node", "4", "-m", "training.finetune"]
    assert parse_args(command[6:]) == args
    with pytest.raises(ArgsError, match=r"^gpus 0: "):
        job_command(args, gpus=0)


@pytest.mark.parametrize(
    ("extra", "flag", "value"),
    [
        (["--epochs", "0"], "--epochs", "0.0"),
        (["--epochs", "many"], "--epochs", "'many'"),
        (["--learning-rate", "3"], "--learning-rate", "3.0"),
        (["--method", "dpo"], "--method", "'dpo'"),
        (["--save", "both"], "--save", "'both'"),
        (["--max-seq-len", "4"], "--max-seq-len", "4"),
        (["--batch-size", "0"], "--batch-size", "0"),
        (["--lora-r", "0"], "--lora-r", "0"),
        (["--lora-dropout", "1.5"], "--lora-dropout", "1.5"),
        (["--lora-target-modules", "q_proj,all-linear"], "--lora-target-modules", "q_proj,all-linear"),
        (["--lora-target-modules", "q proj;"], "--lora-target-modules", "q proj;"),
        (["--max-steps", "0"], "--max-steps", "0"),
        (["--oci-auth", "password"], "--oci-auth", "'password'"),
        (["--method", "full", "--save", "adapter"], "--save", "adapter"),
    ],
)
def test_a_bad_value_is_refused_in_one_line_naming_the_flag(
    extra: list[str], flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert finetune.main([*REQUIRED, *extra]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"finetune: error: {flag}") and value in err, err


def test_bad_addresses_and_missing_flags_are_named() -> None:
    with pytest.raises(ArgsError, match=r"^--output 'oci://models/ft': not an Object Storage address"):
        parse_args([*REQUIRED[:4], "--output", "oci://models/ft"])
    with pytest.raises(ArgsError, match=r"required: --base-model"):
        parse_args(REQUIRED[2:])
    with pytest.raises(ArgsError) as several:
        parse_args([*REQUIRED, "--epochs", "-1", "--lora-r", "0"])
    assert str(several.value).splitlines() == [
        "--epochs -1.0: give a number above 0 and at most 1000",
        "--lora-r 0: give a whole number from 1 to 1024",
    ]


@pytest.mark.parametrize("argv", [["--hf-token", "hf_SECRETVALUE"], ["--hf-token=hf_SECRETVALUE"]])
def test_a_token_on_the_command_line_is_refused_without_echoing_it(argv: list[str]) -> None:
    with pytest.raises(ArgsError) as refused:
        parse_args([*REQUIRED, *argv])
    assert "HF_TOKEN" in str(refused.value) and "SECRETVALUE" not in str(refused.value)


def test_a_misspelt_flag_is_named_but_its_value_is_not_echoed() -> None:
    with pytest.raises(ArgsError) as refused:
        parse_args([*REQUIRED, "--hf-tokn", "hf_SECRETVALUE"])
    assert "--hf-tokn" in str(refused.value) and "SECRETVALUE" not in str(refused.value)


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is not None, reason="torch is installed: the message is moot"
)
def test_without_the_train_extra_a_valid_run_says_what_to_install(capsys: pytest.CaptureFixture[str]) -> None:
    assert finetune.main(REQUIRED) == 2
    assert "pip install 'oci-llm-stack[train]'" in capsys.readouterr().err


# --- JSONL data --------------------------------------------------------------------------------------------


def write_lines(path: Path, *lines: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_both_record_shapes_are_read_from_every_jsonl_file_of_a_folder(tmp_path: Path) -> None:
    write_lines(tmp_path / "b" / "more.jsonl", json.dumps({"text": "The sky is blue."}))
    write_lines(tmp_path / "a.jsonl", json.dumps({"prompt": "Q: 2+2?", "completion": " 4"}), "", "  ")
    write_lines(tmp_path / "notes.txt", "not data")
    files = jsonl_files(tmp_path)
    assert [f.name for f in files] == ["a.jsonl", "more.jsonl"]
    assert read_examples(files) == [
        Example(prompt="Q: 2+2?", completion=" 4", source="a.jsonl:1"),
        Example(prompt="", completion="The sky is blue.", source="more.jsonl:1"),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"--dataset d\.jsonl:2: not valid JSON"),
        ('["a list"]', r"--dataset d\.jsonl:2: a list, not an object"),
        (
            '{"question": "q", "answer": "a"}',
            r"--dataset d\.jsonl:2: expected .*found keys: answer, question",
        ),
        ('{"prompt": "q"}', r"--dataset d\.jsonl:2: 'prompt' and 'completion' must both be strings"),
        ('{"text": ""}', r"--dataset d\.jsonl:2: expected"),
    ],
)
def test_a_malformed_record_is_named_by_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = write_lines(tmp_path / "d.jsonl", json.dumps({"text": "fine"}), line)
    with pytest.raises(UserError, match=message):
        read_examples([path])


def test_a_folder_without_jsonl_files_is_refused(tmp_path: Path) -> None:
    write_lines(tmp_path / "train.json", "{}")
    with pytest.raises(UserError, match=r"--dataset .*: no \.jsonl files in it"):
        jsonl_files(tmp_path)


class CharTokenizer:
    """One id per character; 1 is the start token (added with special tokens), 2 the end token."""

    eos_token_id = 2

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": ([1] if add_special_tokens else []) + [ord(c) for c in text]}


def test_the_loss_covers_the_completion_and_its_end_token_but_never_the_prompt() -> None:
    report = encode([Example(prompt="Q?", completion="A", source="x:1")], CharTokenizer(), max_seq_len=64)
    [item] = report.examples
    assert item.input_ids == [1, ord("Q"), ord("?"), ord("A"), 2]
    assert item.labels == [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, ord("A"), 2]


def test_text_records_are_learned_whole_and_long_records_are_cut_or_dropped() -> None:
    examples = [
        Example(prompt="", completion="abc", source="x:1"),
        Example(prompt="", completion="abcdefgh", source="x:2"),
        Example(prompt="0123456789", completion="A", source="x:3"),  # its answer lies beyond the cut
    ]
    report = encode(examples, CharTokenizer(), max_seq_len=6)
    assert [e.labels for e in report.examples] == [[1, 97, 98, 99, 2], [1, 97, 98, 99, 100, 101]]
    assert (report.truncated, report.dropped) == (2, 1)


# --- Object Storage ----------------------------------------------------------------------------------------


def test_oci_addresses_parse_into_bucket_namespace_and_prefix() -> None:
    uri = parse_oci_uri("oci://models@acme/ft/run-1/", arg="--output")
    assert (uri.bucket, uri.namespace, uri.prefix) == ("models", "acme", "ft/run-1")
    assert uri.object_name("config.json") == "ft/run-1/config.json"
    assert parse_oci_uri("oci://models@acme", arg="--output").object_name("a") == "a"
    with pytest.raises(UserError, match=r"^--dataset 'oci://b@ns/a/\.\./c': the prefix has"):
        parse_oci_uri("oci://b@ns/a/../c", arg="--dataset")


def test_download_keeps_relative_paths_and_ignores_neighbouring_prefixes(
    memory_store: MemoryStore, tmp_path: Path
) -> None:
    for name in ("sets/qa/train.jsonl", "sets/qa/more/extra.jsonl", "sets/qa2/other.jsonl"):
        memory_store.put("ns", "data", name, name.encode())
    written = download_prefix(memory_store, parse_oci_uri("oci://data@ns/sets/qa", arg="--dataset"), tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == ["more/extra.jsonl", "train.jsonl"]
    assert (tmp_path / "more" / "extra.jsonl").read_bytes() == b"sets/qa/more/extra.jsonl"
    assert not list(tmp_path.rglob("*.part"))


def test_an_address_may_name_one_object(memory_store: MemoryStore) -> None:
    memory_store.put("ns", "data", "sets/qa.jsonl", b"{}")
    memory_store.put("ns", "data", "sets/qa.jsonl.bak", b"{}")
    uri = parse_oci_uri("oci://data@ns/sets/qa.jsonl", arg="--dataset")
    assert objects_at(memory_store, uri) == {"sets/qa.jsonl": "qa.jsonl"}


def test_an_object_name_that_climbs_out_of_the_folder_is_refused(
    memory_store: MemoryStore, tmp_path: Path
) -> None:
    memory_store.put("ns", "data", "sets/qa/../../../etc/evil.jsonl", b"x")
    with pytest.raises(UserError, match="would land outside"):
        download_prefix(memory_store, parse_oci_uri("oci://data@ns/sets/qa", arg="--dataset"), tmp_path / "d")
    assert not (tmp_path / "etc").exists()


def test_upload_puts_the_manifest_last(memory_store: MemoryStore, tmp_path: Path) -> None:
    for name in ("finetune.json", "config.json", "model.safetensors", "sub/tokenizer.json"):
        write_lines(tmp_path / name, name)
    uri = parse_oci_uri("oci://models@ns/ft/run-1", arg="--output")
    upload_folder(memory_store, tmp_path, uri, last=["finetune.json"])
    assert memory_store.uploads[-1] == "ft/run-1/finetune.json"
    assert memory_store.names("ns", "models") == [
        "ft/run-1/config.json",
        "ft/run-1/finetune.json",
        "ft/run-1/model.safetensors",
        "ft/run-1/sub/tokenizer.json",
    ]


def test_a_job_authenticates_with_its_resource_principal_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OCI_CLI_AUTH", raising=False)
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_VERSION", "2.2")
    assert default_auth(None).mode == "resource_principal"
    assert default_auth("api_key").mode == "api_key"
    monkeypatch.delenv("OCI_RESOURCE_PRINCIPAL_VERSION")
    assert default_auth(None).mode == "api_key"


# The real oci SDK against a loopback Object Storage: list (paged), get, put, delete.


class _ObjectStorageHandler(BaseHTTPRequestHandler):
    objects: dict[str, bytes]
    page_size = 2
    timeout = 10

    def log_message(self, *_: Any) -> None:
        pass

    def _route(self) -> tuple[str, dict[str, list[str]]]:
        parsed = urllib.parse.urlsplit(self.path)
        return urllib.parse.unquote(parsed.path), urllib.parse.parse_qs(parsed.query)

    def _reply(self, status: int, body: bytes = b"", content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("opc-request-id", "loopback")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path, query = self._route()
        if path == "/n/ns/b/bkt/o":
            prefix, start = query.get("prefix", [""])[0], query.get("start", [""])[0]
            names = sorted(n for n in self.objects if n.startswith(prefix) and n >= start)
            page = {"objects": [{"name": n} for n in names[: self.page_size]]}
            if len(names) > self.page_size:
                page["nextStartWith"] = names[self.page_size]
            self._reply(200, json.dumps(page).encode())
        elif path.startswith("/n/ns/b/bkt/o/") and path[len("/n/ns/b/bkt/o/") :] in self.objects:
            self._reply(200, self.objects[path[len("/n/ns/b/bkt/o/") :]], "application/octet-stream")
        else:
            self._reply(404, json.dumps({"code": "ObjectNotFound", "message": "not found"}).encode())

    def do_PUT(self) -> None:
        path, _ = self._route()
        length = int(self.headers.get("Content-Length", "0"))
        self.objects[path[len("/n/ns/b/bkt/o/") :]] = self.rfile.read(length)
        self._reply(200)

    def do_DELETE(self) -> None:
        path, _ = self._route()
        found = self.objects.pop(path[len("/n/ns/b/bkt/o/") :], None)
        self._reply(204 if found is not None else 404)


@pytest.fixture
def loopback_object_storage() -> Iterator[tuple[str, dict[str, bytes]]]:
    objects: dict[str, bytes] = {}
    handler = type("Handler", (_ObjectStorageHandler,), {"objects": objects})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.timeout = 10
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", objects
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_the_sdk_store_lists_pages_downloads_uploads_and_deletes(
    loopback_object_storage: tuple[str, dict[str, bytes]], tmp_path: Path
) -> None:
    import oci
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    # A session-token signer with a throwaway key: the SDK signs as it would for `oci session authenticate`.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    signer = oci.auth.signers.SecurityTokenSigner("test-token", oci.signer.load_private_key(pem, None))
    endpoint, objects = loopback_object_storage
    objects.update({f"in/part-{i}.jsonl": f"record {i}".encode() for i in range(5)})
    client = oci.object_storage.ObjectStorageClient(
        {"region": "us-ashburn-1"}, signer=signer, service_endpoint=endpoint
    )
    store = OciObjectStore(client, parallel_uploads=1)
    written = download_prefix(store, parse_oci_uri("oci://bkt@ns/in", arg="--dataset"), tmp_path / "in")
    assert len(written) == 5  # three pages of two
    assert (tmp_path / "in" / "part-3.jsonl").read_bytes() == b"record 3"

    write_lines(tmp_path / "out" / "config.json", "{}")
    upload_folder(store, tmp_path / "out", parse_oci_uri("oci://bkt@ns/out/run", arg="--output"))
    assert objects["out/run/config.json"] == b"{}\n"
    store.delete("ns", "bkt", "out/run/config.json")
    store.delete("ns", "bkt", "out/run/config.json")  # already gone: not an error
    assert "out/run/config.json" not in objects


# --- what the stack's job needs: a token from Vault, one zip for the model catalog ---------------------------


def test_findings_name_the_field_so_the_stack_can_name_its_own_keys() -> None:
    from domain.training_args import findings

    args = parse_args(REQUIRED)
    bad = dataclasses_replace(args, learning_rate=3.0, method="dpo", zip="out/model.zip")
    found = {f.field: f for f in findings(bad)}
    assert set(found) == {"learning_rate", "method", "zip"}
    assert (found["learning_rate"].value, found["learning_rate"].accepted) == (
        3.0,
        "a number above 0 and at most 1 (e.g. 2e-4)",
    )
    assert found["method"].reason == "choose one of lora, qlora, full"
    assert (
        found["zip"].line()
        == "--zip 'out/model.zip': give a file name ending in .zip, such as model.zip (no folders)"
    )


def dataclasses_replace(args: FineTuneArgs, **changes: Any) -> FineTuneArgs:
    """A copy with `changes`, skipping the checks (the way a caller holding unchecked values builds one)."""
    import dataclasses

    copy = object.__new__(FineTuneArgs)
    for field in dataclasses.fields(FineTuneArgs):
        object.__setattr__(copy, field.name, changes.get(field.name, getattr(args, field.name)))
    return copy


def test_the_zip_and_secret_flags_round_trip_and_are_checked() -> None:
    secret = "ocid1.vaultsecret.oc1.iad.amaaaaaabbbbbbbbccccccccddddddddeeee"
    args = parse_args([*REQUIRED, "--zip", "model.zip", "--hf-token-secret-id", secret])
    assert (args.zip, args.hf_token_secret_id) == ("model.zip", secret)
    assert parse_args(to_argv(args)) == args
    with pytest.raises(ArgsError) as refused:
        parse_args([*REQUIRED, "--hf-token-secret-id", "hf_abc", "--zip", "model.tar"])
    assert str(refused.value).splitlines() == [
        "--hf-token-secret-id 'hf_abc': give a Vault secret OCID (ocid1.vaultsecret...)",
        "--zip 'model.tar': give a file name ending in .zip, such as model.zip (no folders)",
    ]
    with pytest.raises(ArgsError, match="give either --hf-token-file or --hf-token-secret-id, not both"):
        parse_args([*REQUIRED, "--hf-token-secret-id", secret, "--hf-token-file", "/run/token"])


def test_the_token_comes_from_the_secret_before_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "ocid1.vaultsecret.oc1.iad.amaaaaaabbbbbbbbccccccccddddddddeeee"
    monkeypatch.setenv("HF_TOKEN", "from-the-environment")
    args = parse_args([*REQUIRED, "--hf-token-secret-id", secret])
    asked: list[str | None] = []

    def reader(a: FineTuneArgs) -> str:
        asked.append(a.hf_token_secret_id)
        return "from-vault"

    assert finetune.hf_token(args, reader) == "from-vault" and asked == [secret]
    assert finetune.hf_token(parse_args(REQUIRED), reader) == "from-the-environment"


def test_a_vault_secret_is_read_with_the_real_sdk(
    fake_oci: Any, oci_identity: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oci_runtime.vault import read_secret
    from tests.fakeoci.secrets import Secrets

    monkeypatch.setenv("OCI_CLI_CONFIG_FILE", str(oci_identity.config_file))
    secret_id = fake_oci.service(Secrets).put("hf_FromVaultNotPrinted\n")
    token = read_secret(
        secret_id, auth_mode="api_key", endpoint=fake_oci.endpoint, arg="--hf-token-secret-id"
    )
    assert token == "hf_FromVaultNotPrinted"
    missing = "ocid1.vaultsecret.oc1.iad.ffffffffffffffffffffffffffffffff"
    with pytest.raises(UserError) as refused:
        read_secret(missing, auth_mode="api_key", endpoint=fake_oci.endpoint, arg="--hf-token-secret-id")
    assert str(refused.value) == (
        f"--hf-token-secret-id {missing}: cannot read it: 404 NotAuthorizedOrNotFound "
        "(does the job's dynamic group have `read secret-bundles` on it?)"
    )


def test_the_catalog_zip_holds_the_model_files_at_its_root_uncompressed(tmp_path: Path) -> None:
    import zipfile

    model = tmp_path / "model"
    write_lines(model / "config.json", '{"model_type": "llama"}')
    (model / "model.safetensors").write_bytes(b"\x00" * 4096)
    write_lines(model / "finetune.json", "{}")
    args = parse_args([*REQUIRED, "--zip", "model.zip"])

    packed = finetune.package(model, args, tmp_path / "work")

    assert sorted(p.name for p in packed.iterdir()) == ["finetune.json", "model.zip"]
    with zipfile.ZipFile(packed / "model.zip") as archive:
        entries = archive.infolist()
        assert [e.filename for e in entries] == ["config.json", "finetune.json", "model.safetensors"]
        assert {e.compress_type for e in entries} == {zipfile.ZIP_STORED}
        assert archive.read("model.safetensors") == b"\x00" * 4096
    assert finetune.package(model, parse_args(REQUIRED), tmp_path / "work") == model  # no --zip: the folder


def test_zip_output_is_uploaded_with_the_manifest_last(memory_store: MemoryStore, tmp_path: Path) -> None:
    model = tmp_path / "model"
    write_lines(model / "config.json", "{}")
    write_lines(model / "finetune.json", "{}")
    args = parse_args([*REQUIRED, "--zip", "model.zip"])
    where = finetune.publish(finetune.package(model, args, tmp_path / "work"), args, memory_store)
    assert where == "oci://models@ns/ft/run-1"
    assert memory_store.uploads == ["ft/run-1/model.zip", "ft/run-1/finetune.json"]


# --- download before the process group ---------------------------------------------------------------------

HUB_RUN = ["--base-model", "org/model", "--dataset", "oci://data@ns/sets/qa", "--output", "out"]


class Stop(Exception):
    pass


def test_the_download_happens_before_the_process_group_exists(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """TrainingArguments builds the process group, whose barrier times out after 30 min: a 70B download
    inside main_process_first outlasts it. The inputs come first, then the TrainingArguments."""
    order: list[str] = []

    def inputs(*_: Any, **__: Any) -> Any:
        order.append("download")
        raise Stop

    monkeypatch.setattr(finetune, "require_extra", lambda: None)
    monkeypatch.setattr(finetune, "preflight", lambda *_: None)
    monkeypatch.setattr(finetune, "local_inputs", inputs)
    monkeypatch.setattr(finetune, "training_arguments", lambda *_: order.append("process group"))
    args = parse_args([*HUB_RUN, "--work-dir", str(tmp_path / "work")])
    with pytest.raises(Stop):
        finetune.run(args, store_factory=lambda _: MemoryStore())
    assert order == ["download"]


def test_other_local_ranks_wait_for_rank_0s_markers_without_downloading(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LOCAL_RANK", "1")
    work = tmp_path / "work"
    args = parse_args([*HUB_RUN, "--work-dir", str(work)])
    naps: list[float] = []

    def sleep(seconds: float) -> None:  # rank 0 finishes while this rank sleeps
        naps.append(seconds)
        for folder in ("base-model", "dataset"):
            (work / folder).mkdir(parents=True, exist_ok=True)
            (work / folder / finetune.COMPLETE_MARKER).touch()

    assert finetune.local_inputs(args, None, work, None, sleep=sleep) == (
        work / "base-model",
        work / "dataset",
    )
    assert len(naps) == 1  # the store (None here) was never used


def test_a_waiting_rank_gives_rank_0s_reason_or_its_own_bound(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LOCAL_RANK", "1")
    work = tmp_path / "work"
    work.mkdir()
    args = parse_args([*HUB_RUN, "--work-dir", str(work), "--download-timeout", "600"])
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(UserError) as late:
        finetune.local_inputs(args, None, work, None, sleep=sleep, clock=lambda: now[0])
    assert "--download-timeout 600: local rank 0 has not finished downloading" in str(late.value)
    assert now[0] >= 600
    finetune.failure_note(work).write_text("--base-model 'org/model': cannot download it: 401\n")
    with pytest.raises(UserError) as failed:
        finetune.local_inputs(args, None, work, None, sleep=sleep, clock=lambda: now[0])
    assert (
        str(failed.value)
        == "local rank 0 could not download the inputs: --base-model 'org/model': cannot download it: 401"
    )


def test_rank_0_leaves_its_reason_for_the_others_when_the_download_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LOCAL_RANK", "0")
    work = tmp_path / "work"
    work.mkdir()
    args = parse_args([*HUB_RUN, "--work-dir", str(work)])

    def refuse(*_: Any) -> Path:
        raise UserError("--base-model 'org/model': cannot download it from Hugging Face: 404")

    monkeypatch.setattr(finetune, "local_base_model", refuse)
    with pytest.raises(UserError):
        finetune.local_inputs(args, MemoryStore(), work, None)
    assert "cannot download it from Hugging Face: 404" in finetune.failure_note(work).read_text()


def test_the_download_timeout_is_a_flag_with_a_bound() -> None:
    assert parse_args(HUB_RUN).download_timeout == 6 * 3600
    assert to_argv(parse_args([*HUB_RUN, "--download-timeout", "7200"]))[-2:] == [
        "--download-timeout",
        "7200",
    ]
    with pytest.raises(ArgsError, match="--download-timeout 5: give a whole number from 60"):
        parse_args([*HUB_RUN, "--download-timeout", "5"])
