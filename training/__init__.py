"""Fine-tuning entrypoint for OCI Data Science Jobs: JSONL data in, a model folder (merged or adapter) out.

`training.args` and `training.storage` are plain Python (the stack imports them to build a job's command
line); `training.finetune` needs the `train` extra (torch, transformers, peft, accelerate).
"""
