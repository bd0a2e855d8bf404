"""The oci-llm-stack program: read the stack's settings, build the platform, export what users call."""

from pathlib import Path

import pulumi

from components.config import settings_from_runtime
from components.platform import LlmPlatform, LlmPlatformArgs
from domain.errors import SettingsError, UserError

try:
    settings = settings_from_runtime(Path(__file__).resolve().parent)
except SettingsError as exc:
    # One readable message per problem, before any resource is registered; no traceback.
    raise pulumi.RunError(str(exc)) from None

hf_token = pulumi.Output.secret(settings.hf_token.value) if settings.hf_token else None
try:
    platform = LlmPlatform("llm", LlmPlatformArgs(settings=settings, hf_token=hf_token))
except UserError as exc:
    # Something the user can fix (a model folder that cannot be read): one line, no traceback.
    raise pulumi.RunError(str(exc)) from exc

pulumi.export("projectId", platform.project_id)
pulumi.export("subnetId", platform.subnet_id)
pulumi.export("callersNsgId", platform.callers_nsg_id)
pulumi.export("logGroupId", platform.log_group_id)
pulumi.export("imageRepository", platform.image_repository)
pulumi.export("artifactBucket", platform.bucket_name)
pulumi.export(
    "models",
    {
        name: {
            "predictUrl": serving.predict_url,
            "streamUrl": serving.stream_url,
            "openaiBaseUrl": serving.openai_base_url,
            "deploymentId": serving.deployment_id,
            "catalogModelId": serving.catalog_model_id,
            **(
                {
                    "fineTune": {
                        "jobId": serving.fine_tune.job_id,
                        "jobRunId": serving.fine_tune.job_run_id,
                        "output": serving.fine_tune.output_uri,
                    }
                }
                if serving.fine_tune is not None
                else {}
            ),
        }
        for name, serving in platform.models.items()
    },
)
if platform.adapters:
    pulumi.export(
        "adapters",
        {
            name: {
                "servedOn": settings.adapter(name).base,
                "catalogModelId": adapter.catalog_model_id,
                "fineTune": {
                    "jobId": adapter.fine_tune.job_id,
                    "jobRunId": adapter.fine_tune.job_run_id,
                    "output": adapter.fine_tune.output_uri,
                },
            }
            for name, adapter in platform.adapters.items()
        },
    )
