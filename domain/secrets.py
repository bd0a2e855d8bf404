"""What secret material looks like: refused in plain settings, flagged by policy, never shown in messages."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SECRET_PATTERNS: dict[str, str] = {
    "a Hugging Face token": r"\bhf_[A-Za-z0-9]{30,}\b",
    "private key material": r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----",
}
# For hiding, not judging: also a token run together with other text, and a key's whole body.
_ANY_SECRET = re.compile(
    r"hf_[A-Za-z0-9_]{30,}"
    r"|-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|$)"
)
HIDDEN = "[hidden]"
SECRET_PLACEHOLDER = "[secret]"  # a secret setting's value wherever it would show


def secret_kind(text: str) -> str | None:
    """What secret `text` holds ("a Hugging Face token"), or None."""
    for kind, pattern in SECRET_PATTERNS.items():
        if re.search(pattern, text):
            return kind
    return None


def mask_secrets(text: str) -> str:
    """`text` with anything that looks like secret material replaced by [hidden]."""
    return _ANY_SECRET.sub(HIDDEN, text)


class Secret:
    """A secret value from config; never shown by repr. `known` is False in the offline plan."""

    def __init__(self, value: str, known: bool = True) -> None:
        self.value, self.known = value, known

    def __repr__(self) -> str:
        return f"Secret({SECRET_PLACEHOLDER})"


def is_secure(value: Any) -> bool:
    """A value written `{secure: ...}` in a stack file: a Pulumi secret, its plain value unknown offline."""
    return isinstance(value, Mapping) and set(value) == {"secure"}


def plain_secrets(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Secret material pasted into any plain setting: (key path, message), the value never shown."""
    if isinstance(value, str) and (kind := secret_kind(value)):
        secret = "the Hugging Face token as a secret (`pulumi config set --secret hfToken`) or in Vault"
        secret += " (hfTokenSecretId)"
        return [(path, f"holds {kind} in plain text (not shown here); accepted: {secret}")]
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in plain_secrets(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in plain_secrets(v, f"{path}[{i}]")]
    return []
