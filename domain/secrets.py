"""What secret material looks like: refused in plain settings, flagged by policy, never shown in messages."""

from __future__ import annotations

import re

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


def secret_kind(text: str) -> str | None:
    """What secret `text` holds ("a Hugging Face token"), or None."""
    for kind, pattern in SECRET_PATTERNS.items():
        if re.search(pattern, text):
            return kind
    return None


def mask_secrets(text: str) -> str:
    """`text` with anything that looks like secret material replaced by [hidden]."""
    return _ANY_SECRET.sub(HIDDEN, text)
