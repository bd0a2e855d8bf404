"""OCI request signatures (draft-cavage HTTP signatures, rsa-sha256) checked the way the service does."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

_PARAM = re.compile(r'(\w+)="([^"]*)"')
BODY_HEADERS = ("content-length", "content-type", "x-content-sha256")


@dataclass(frozen=True)
class SigningKey:
    private_pem: bytes
    public_key: Any
    fingerprint: str


def make_test_key() -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashlib.md5(der).hexdigest()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    return SigningKey(pem, key.public_key(), fingerprint)


def write_oci_config(
    folder: Path, key: SigningKey, *, profile: str = "DEFAULT", region: str = "us-ashburn-1"
) -> Path:
    """An `~/.oci/config` with one API-key profile, and its key file, under `folder`."""
    key_file = folder / "oci_api_key.pem"
    key_file.write_bytes(key.private_pem)
    config = folder / "config"
    config.write_text(
        f"[{profile}]\n"
        f"user=ocid1.user.oc1..aaaatestuser\n"
        f"fingerprint={key.fingerprint}\n"
        f"tenancy=ocid1.tenancy.oc1..aaaatesttenancy\n"
        f"region={region}\n"
        f"key_file={key_file}\n"
    )
    return config


def verify_signature(
    method: str, target: str, headers: dict[str, str], body: bytes, public_key: Any
) -> str | None:
    """The keyId when the request's signature (and body digest) is valid; None otherwise."""
    lower = {k.lower(): v for k, v in headers.items()}
    auth = lower.get("authorization", "")
    if not auth.startswith("Signature "):
        return None
    params = dict(_PARAM.findall(auth))
    signed = params.get("headers", "").split()
    if params.get("algorithm") != "rsa-sha256" or not {"date", "(request-target)", "host"} <= set(signed):
        return None
    if method.upper() in ("POST", "PUT", "PATCH"):
        if not set(BODY_HEADERS) <= set(signed):
            return None
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        if lower.get("x-content-sha256") != digest or lower.get("content-length") != str(len(body)):
            return None
    lines = []
    for name in signed:
        if name == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {target}")
        elif name in lower:
            lines.append(f"{name}: {lower[name]}")
        else:
            return None
    try:
        public_key.verify(
            base64.b64decode(params.get("signature", "")),
            "\n".join(lines).encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except (InvalidSignature, ValueError):
        return None
    return params.get("keyId")
