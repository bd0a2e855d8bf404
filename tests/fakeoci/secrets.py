"""Fake Vault secret retrieval: `GetSecretBundle` over secrets a test puts in.

    secret_id = fake.service(Secrets).put("hf_token_value")

Unknown ids answer 404 NotAuthorizedOrNotFound, as OCI does for a secret the caller may not read.
"""

from __future__ import annotations

import base64
from typing import Any

from tests.fakeoci.core import HttpError, Request, Response, Service, json_response, now_rfc3339, route


class Secrets(Service):
    name = "secrets"
    prefix = "/20190301"

    def __init__(self, fake: Any) -> None:
        super().__init__(fake)
        self.secrets: dict[str, bytes] = {}

    def put(self, text: str | bytes) -> str:
        secret_id = self.fake.ocid("vaultsecret")
        with self.lock:
            self.secrets[secret_id] = text.encode() if isinstance(text, str) else text
        return secret_id

    @route("GET", "/secretbundles/{secretId}", op="GetSecretBundle")
    def get_secret_bundle(self, req: Request) -> Response:
        secret_id = req.params["secretId"]
        with self.lock:
            value = self.secrets.get(secret_id)
        if value is None:
            raise HttpError(404, "NotAuthorizedOrNotFound", f"secret {secret_id} not found or not authorized")
        return json_response(
            200,
            {
                "secretId": secret_id,
                "versionNumber": 1,
                "timeCreated": now_rfc3339(),
                "stages": ["CURRENT", "LATEST"],
                "secretBundleContent": {
                    "contentType": "BASE64",
                    "content": base64.b64encode(value).decode(),
                },
            },
        )
