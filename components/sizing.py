"""GPU-fit figures for a model on a shape (pure functions).

This first part only finds a model's parameter count; the memory arithmetic comes with the guardrails.
"""

from __future__ import annotations

import re
from pathlib import Path

_SIZE_IN_NAME = re.compile(r"(?:^|[-_/.])(\d+(?:\.\d+)?)\s*([bm])(?=$|[-_/.])", re.IGNORECASE)


def parameters_from_name(name: str) -> float | None:
    """Billions of parameters named in a model id or folder name (`Llama-2-13b-chat-hf` -> 13.0)."""
    found = _SIZE_IN_NAME.findall(name)
    if not found:
        return None
    number, unit = found[-1]
    value = float(number)
    return value / 1000 if unit.lower() == "m" else value


def infer_parameters_b(*, local_path: Path | None = None, model_id: str | None = None) -> float | None:
    """Billions of parameters from what is known of the model's source, or None when nothing tells."""
    if local_path is not None:
        from_name = parameters_from_name(local_path.name)
        if from_name is not None:
            return from_name
    if model_id is not None:
        return parameters_from_name(model_id)
    return None
