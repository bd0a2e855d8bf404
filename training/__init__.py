"""Fine-tuning entrypoint for OCI Data Science Jobs: JSONL data in, a model folder (merged or adapter) out.

`domain.training_args` and `oci_runtime.storage` are plain Python (the stack imports them to build a job's
command line); `training.finetune` needs the `train` extra (torch, transformers, peft, accelerate).
"""
