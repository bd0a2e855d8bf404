"""A secret from OCI Vault, read in memory with the job's identity: the Hugging Face token of a gated model.

A Data Science job gets the token this way rather than through an environment variable or its command line,
both of which the service shows to anyone who can read the job.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import oci

from domain.errors import UserError
from oci_runtime.auth import make_client
from oci_runtime.storage import default_auth


def read_secret(
    secret_id: str, *, auth_mode: str | None = None, endpoint: str | None = None, arg: str = "secret"
) -> str:
    """The current version of a Vault secret as text; a one-line UserError naming `arg` when it cannot be."""

    client = make_client(oci.secrets.SecretsClient, default_auth(auth_mode), endpoint=endpoint)
    try:
        bundle = client.get_secret_bundle(secret_id).data
    except oci.exceptions.ServiceError as exc:
        grant = " (does the job's dynamic group have `read secret-bundles` on it?)"
        hint = grant if exc.status in (401, 404) else ""
        raise UserError(f"{arg} {secret_id}: cannot read it: {exc.status} {exc.code}{hint}") from None
    except OSError as exc:
        raise UserError(f"{arg} {secret_id}: cannot reach Vault: {type(exc).__name__}") from None
    content: Any = getattr(bundle, "secret_bundle_content", None)
    encoded = getattr(content, "content", None)
    if getattr(content, "content_type", None) != "BASE64" or not encoded:
        raise UserError(f"{arg} {secret_id}: the secret has no text content")
    try:
        text = base64.b64decode(encoded, validate=True).decode("utf-8").strip()
    except (binascii.Error, UnicodeDecodeError):
        raise UserError(f"{arg} {secret_id}: the secret's content is not UTF-8 text") from None
    if not text:
        raise UserError(f"{arg} {secret_id}: the secret is empty")
    return text
