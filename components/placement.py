"""Placement: where a stack's deployments and fine-tuning jobs run, log and act from.

Made once by LlmPlatform and handed to every ModelServing, Adapter and FineTune: the same for every model
and adapter of a stack, so no component re-plumbs it field by field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.training_artifact import JobArtifact
from domain.settings import AuthSettings


@dataclass(frozen=True, kw_only=True)
class Placement:
    region: str
    compartment_id: str
    project_id: pulumi.Input[str]
    network_access_type: str  # custom (the stack's subnet) or managed egress
    subnet_id: pulumi.Input[str | None]
    log_group_id: pulumi.Input[str]
    auth: AuthSettings
    token_secret_id: str | None = None  # the Vault secret of a gated model's Hugging Face token
    job_artifact: JobArtifact | None = None  # the entrypoint's code, for a fine-tune without a training image
    depends_on: Sequence[pulumi.Resource] = ()  # the grants the resources act with
