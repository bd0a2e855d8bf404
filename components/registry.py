"""ContainerRegistry: the private OCIR repository that holds the serving images."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_oci as oci

from domain.context import Context
from domain.oci_rules import ocir_host


def registry_host(region: str) -> str:
    """`<region-key>.ocir.io`, from the OCI SDK's region table (domain/oci_rules.py)."""
    return ocir_host(region)


@dataclass(frozen=True, kw_only=True)
class ContainerRegistryArgs:
    context: Context
    compartment_id: str
    region: str
    namespace: pulumi.Input[str]
    repository: str


class ContainerRegistry(pulumi.ComponentResource):
    repository_id: pulumi.Output[str]
    image_repository: pulumi.Output[str]

    def __init__(
        self, name: str, args: ContainerRegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("oci-llm-stack:registry:ContainerRegistry", name, None, opts)
        repo = oci.artifacts.ContainerRepository(
            f"{name}-repository",
            compartment_id=args.compartment_id,
            display_name=args.repository,
            is_public=False,
            is_immutable=True,
            readme=oci.artifacts.ContainerRepositoryReadmeArgs(
                content="Serving images (vLLM, TGI) for the model deployments; referenced by digest.",
                format="TEXT_PLAIN",
            ),
            freeform_tags=args.context.freeform_tags(),
            opts=pulumi.ResourceOptions(parent=self),
        )
        host = registry_host(args.region)
        self.repository_id = repo.id
        self.image_repository = pulumi.Output.concat(host, "/", args.namespace, "/", args.repository)
        self.register_outputs(
            {"repository_id": self.repository_id, "image_repository": self.image_repository}
        )
