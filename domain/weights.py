"""What a model folder's weights allow: facts read from the file names alone (no file is opened)."""

from __future__ import annotations

from pathlib import Path

SAFETENSORS = "*.safetensors"
PICKLED = ("*.bin", "*.pt", "*.pth")


def tgi_weights_problem(folder: Path) -> str | None:
    """Why TGI cannot serve `folder` from a read-only mount, or None when it can.

    TGI loads safetensors only; given `.bin`/`.pt` weights it converts them to `.safetensors` next to the
    originals (text-generation-inference v3.3.7, server/text_generation_server/cli.py `download_weights`:
    `p.parent / f"{p.stem.lstrip('pytorch_')}.safetensors"`). OCI mounts a model artifact read-only at
    /opt/ds/model/deployed_model (OCI docs, "Bring Your Own Container": "mount the files ... in read-only
    mode"), so that conversion fails at start, after the whole deployment has been created.
    """
    if not folder.is_dir() or any(folder.glob(SAFETENSORS)):
        return None
    pickled = sorted(p.name for pattern in PICKLED for p in folder.glob(pattern))
    found = f"only {', '.join(pickled[:3])}{' ...' if len(pickled) > 3 else ''}" if pickled else "no weights"
    return (
        f"the folder has {found} and no .safetensors: TGI converts other weights next to them, but OCI "
        "mounts the model read-only; convert them to safetensors first (transformers: "
        "save_pretrained(..., safe_serialization=True)) or use engine: vllm"
    )
