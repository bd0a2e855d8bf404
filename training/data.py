"""Training data: JSONL files of `{"text": ...}` or `{"prompt": ..., "completion": ...}` records.

The same two shapes TRL's SFTTrainer reads. A `text` record is trained on all its tokens; a
prompt/completion record only on the completion (the prompt's labels are -100), which is what teaches a
model to answer rather than to repeat questions. Each record ends with the tokenizer's end-of-sequence
token, so the fine-tuned model learns to stop.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.errors import UserError

IGNORE_INDEX = -100  # the label value the loss skips
SUFFIXES = (".jsonl",)
RECORD_FORM = '{"text": "..."} or {"prompt": "...", "completion": "..."}'


@dataclass(frozen=True)
class Example:
    prompt: str  # "" for a text record
    completion: str  # the tokens the loss is computed on
    source: str  # file:line, for messages


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]


@dataclass(frozen=True)
class EncodeReport:
    examples: list[Encoded]
    truncated: int  # records cut at --max-seq-len
    dropped: int  # records with nothing left to learn after the cut


def jsonl_files(path: Path, *, arg: str = "--dataset") -> list[Path]:
    """`path` itself if it is a file, else every *.jsonl below it, sorted; none is an error."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"{arg} {str(path)!r}: no such file or folder")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
    if not files:
        raise UserError(f"{arg} {str(path)!r}: no .jsonl files in it")
    return files


def read_examples(files: Sequence[Path], *, arg: str = "--dataset") -> list[Example]:
    """Every record of every file; the first malformed line stops the run with its file and line number."""
    examples: list[Example] = []
    for file in files:
        with open(file, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                examples.append(_example(line, f"{file.name}:{number}", arg))
    if not examples:
        raise UserError(f"{arg}: the data holds no records; each line should be {RECORD_FORM}")
    return examples


def _example(line: str, where: str, arg: str) -> Example:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{arg} {where}: not valid JSON ({exc.msg}); each line should be {RECORD_FORM}"
        ) from exc
    if not isinstance(record, dict):
        raise UserError(
            f"{arg} {where}: a {type(record).__name__}, not an object; each line should be {RECORD_FORM}"
        )
    if "prompt" in record or "completion" in record:
        prompt, completion = record.get("prompt"), record.get("completion")
        if not isinstance(prompt, str) or not isinstance(completion, str) or not completion:
            raise UserError(
                f"{arg} {where}: 'prompt' and 'completion' must both be strings, completion non-empty"
            )
        return Example(prompt=prompt, completion=completion, source=where)
    text = record.get("text")
    if isinstance(text, str) and text:
        return Example(prompt="", completion=text, source=where)
    keys = ", ".join(sorted(map(str, record))) or "none"
    raise UserError(f"{arg} {where}: expected {RECORD_FORM}; found keys: {keys}")


def encode(examples: Sequence[Example], tokenizer: Any, max_seq_len: int) -> EncodeReport:
    """Token ids and labels for each example, cut to `max_seq_len` tokens."""
    eos = tokenizer.eos_token_id
    encoded: list[Encoded] = []
    truncated = dropped = 0
    for example in examples:
        if example.prompt:
            prompt_ids = list(tokenizer(example.prompt, add_special_tokens=True)["input_ids"])
            answer_ids = list(tokenizer(example.completion, add_special_tokens=False)["input_ids"])
        else:
            prompt_ids = []
            answer_ids = list(tokenizer(example.completion, add_special_tokens=True)["input_ids"])
        if eos is not None and (not answer_ids or answer_ids[-1] != eos):
            answer_ids.append(eos)
        input_ids = prompt_ids + answer_ids
        labels = [IGNORE_INDEX] * len(prompt_ids) + answer_ids
        if len(input_ids) > max_seq_len:
            truncated += 1
            input_ids, labels = input_ids[:max_seq_len], labels[:max_seq_len]
        # The model predicts token t+1 from tokens up to t: a label at position 0 teaches nothing.
        if all(label == IGNORE_INDEX for label in labels[1:]):
            dropped += 1
            continue
        encoded.append(Encoded(input_ids=input_ids, labels=labels))
    return EncodeReport(examples=encoded, truncated=truncated, dropped=dropped)


def pad_batch(batch: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors for one batch: input_ids, attention_mask and labels (padding is IGNORE_INDEX)."""
    import torch

    width = max(len(item.input_ids) for item in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, item in enumerate(batch):
        n = len(item.input_ids)
        input_ids[row, :n] = torch.tensor(item.input_ids, dtype=torch.long)
        labels[row, :n] = torch.tensor(item.labels, dtype=torch.long)
        attention[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
