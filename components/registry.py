"""ContainerRegistry: the private OCIR repository that holds the serving images."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_oci as oci

from domain.context import Context

# Region identifier -> the short key OCIR hostnames use (`<key>.ocir.io`). Source: OCI "Regions and
# Availability Domains" table. Regions not listed use the long form `ocir.<region>.oci.oraclecloud.com`.
REGION_KEYS: dict[str, str] = {
    "us-ashburn-1": "iad",
    "us-phoenix-1": "phx",
    "us-sanjose-1": "sjc",
    "us-chicago-1": "ord",
    "ca-toronto-1": "yyz",
    "ca-montreal-1": "yul",
    "eu-frankfurt-1": "fra",
    "eu-amsterdam-1": "ams",
    "eu-paris-1": "cdg",
    "eu-madrid-1": "mad",
    "eu-milan-1": "lin",
    "eu-stockholm-1": "arn",
    "eu-zurich-1": "zrh",
    "uk-london-1": "lhr",
    "uk-cardiff-1": "cwl",
    "ap-tokyo-1": "nrt",
    "ap-osaka-1": "kix",
    "ap-seoul-1": "icn",
    "ap-mumbai-1": "bom",
    "ap-hyderabad-1": "hyd",
    "ap-singapore-1": "sin",
    "ap-sydney-1": "syd",
    "ap-melbourne-1": "mel",
    "sa-saopaulo-1": "gru",
    "me-dubai-1": "dxb",
    "me-jeddah-1": "jed",
    "af-johannesburg-1": "jnb",
    "il-jerusalem-1": "mtz",
    "mx-queretaro-1": "qro",
}


def registry_host(region: str) -> str:
    key = REGION_KEYS.get(region)
    return f"{key}.ocir.io" if key else f"ocir.{region}.oci.oraclecloud.com"


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
