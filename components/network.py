"""Network: a VCN with one private subnet for the model deployments' VNICs.

Egress `nat` adds a NAT gateway (the online method downloads from Hugging Face); every VCN gets a service
gateway so OCI services (Object Storage, OCIR, Logging) are reached without the internet. The subnet's
security list is what applies to the deployments (the model deployment API takes no NSG); the `callers`
NSG, exported as `callersNsgId`, is for clients inside the VCN that call the deployments (notebook
sessions, functions, a Data Science private endpoint). Nothing is made when an existing subnet is given
or when the service manages the network (`egress: managed`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_oci as oci

from domain.context import Context
from domain.settings import NetworkSettings

HTTPS = 443
ALL_SERVICES = "All .* Services In Oracle Services Network"


@dataclass(frozen=True, kw_only=True)
class NetworkArgs:
    context: Context
    compartment_id: str
    settings: NetworkSettings


class Network(pulumi.ComponentResource):
    subnet_id: pulumi.Output[str | None]
    nsg_id: pulumi.Output[str | None]
    network_access_type: str

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("oci-llm-stack:network:Network", name, None, opts)
        s = args.settings
        if s.existing_subnet_id is not None:
            self.network_access_type = "CUSTOM_NETWORKING"
            self.subnet_id = pulumi.Output.from_input(s.existing_subnet_id)
            self.nsg_id = pulumi.Output.from_input(None)
        elif not s.creates_vcn:
            self.network_access_type = "MANAGED_NETWORKING_INTERNET_ACCESS"
            self.subnet_id = pulumi.Output.from_input(None)
            self.nsg_id = pulumi.Output.from_input(None)
        else:
            self.network_access_type = "CUSTOM_NETWORKING"
            self._build_vcn(name, args)
        self.register_outputs({"subnet_id": self.subnet_id, "nsg_id": self.nsg_id})

    def _build_vcn(self, name: str, args: NetworkArgs) -> None:
        ctx, s, compartment = args.context, args.settings, args.compartment_id
        child = pulumi.ResourceOptions(parent=self)
        tags = ctx.freeform_tags()

        vcn = oci.core.Vcn(
            f"{name}-vcn",
            compartment_id=compartment,
            cidr_blocks=[s.vcn_cidr],
            display_name=ctx.display_name("vcn"),
            dns_label=_dns_label(f"llm{ctx.stack}"),
            freeform_tags=tags,
            opts=child,
        )
        services = oci.core.get_services_output(
            filters=[oci.core.GetServicesFilterArgs(name="name", values=[ALL_SERVICES], regex=True)],
            opts=pulumi.InvokeOutputOptions(parent=self),
        ).services
        service = services.apply(lambda found: found[0])
        service_gateway = oci.core.ServiceGateway(
            f"{name}-sgw",
            compartment_id=compartment,
            vcn_id=vcn.id,
            services=[oci.core.ServiceGatewayServiceArgs(service_id=service.id)],
            display_name=ctx.display_name("sgw"),
            freeform_tags=tags,
            opts=child,
        )
        rules = [
            oci.core.RouteTableRouteRuleArgs(
                network_entity_id=service_gateway.id,
                destination=service.cidr_block,
                destination_type="SERVICE_CIDR_BLOCK",
                description="Oracle services (Object Storage, OCIR, Logging) without the internet",
            )
        ]
        if s.egress == "nat":
            nat = oci.core.NatGateway(
                f"{name}-nat",
                compartment_id=compartment,
                vcn_id=vcn.id,
                display_name=ctx.display_name("nat"),
                freeform_tags=tags,
                opts=child,
            )
            rules.append(
                oci.core.RouteTableRouteRuleArgs(
                    network_entity_id=nat.id,
                    destination="0.0.0.0/0",
                    destination_type="CIDR_BLOCK",
                    description="internet egress for model downloads (online method)",
                )
            )
        route_table = oci.core.RouteTable(
            f"{name}-routes",
            compartment_id=compartment,
            vcn_id=vcn.id,
            route_rules=rules,
            display_name=ctx.display_name("routes"),
            freeform_tags=tags,
            opts=child,
        )
        egress_to, egress_type = (
            ("0.0.0.0/0", "CIDR_BLOCK") if s.egress == "nat" else (service.cidr_block, "SERVICE_CIDR_BLOCK")
        )
        security_list = oci.core.SecurityList(
            f"{name}-security",
            compartment_id=compartment,
            vcn_id=vcn.id,
            display_name=ctx.display_name("security"),
            egress_security_rules=[
                oci.core.SecurityListEgressSecurityRuleArgs(
                    protocol="6",
                    destination=egress_to,
                    destination_type=egress_type,
                    tcp_options=oci.core.SecurityListEgressSecurityRuleTcpOptionsArgs(min=HTTPS, max=HTTPS),
                    description="HTTPS out only",
                )
            ],
            ingress_security_rules=[
                oci.core.SecurityListIngressSecurityRuleArgs(
                    protocol="1",
                    source=s.vcn_cidr,
                    icmp_options=oci.core.SecurityListIngressSecurityRuleIcmpOptionsArgs(type=3, code=4),
                    description="path MTU discovery inside the VCN",
                )
            ],
            freeform_tags=tags,
            opts=child,
        )
        subnet = oci.core.Subnet(
            f"{name}-subnet",
            compartment_id=compartment,
            vcn_id=vcn.id,
            cidr_block=s.subnet_cidr,
            display_name=ctx.display_name("deployments"),
            dns_label="deployments",
            prohibit_public_ip_on_vnic=True,
            prohibit_internet_ingress=True,
            route_table_id=route_table.id,
            security_list_ids=[security_list.id],
            freeform_tags=tags,
            opts=child,
        )
        nsg = oci.core.NetworkSecurityGroup(
            f"{name}-nsg",
            compartment_id=compartment,
            vcn_id=vcn.id,
            display_name=ctx.display_name("callers"),
            freeform_tags=tags,
            opts=child,
        )
        https_only = oci.core.NetworkSecurityGroupSecurityRuleTcpOptionsArgs(
            destination_port_range=oci.core.NetworkSecurityGroupSecurityRuleTcpOptionsDestinationPortRangeArgs(
                min=HTTPS, max=HTTPS
            )
        )
        oci.core.NetworkSecurityGroupSecurityRule(
            f"{name}-nsg-https-in",
            network_security_group_id=nsg.id,
            direction="INGRESS",
            protocol="6",
            source=s.vcn_cidr,
            source_type="CIDR_BLOCK",
            tcp_options=https_only,
            description="HTTPS from inside the VCN",
            opts=child,
        )
        oci.core.NetworkSecurityGroupSecurityRule(
            f"{name}-nsg-https-out",
            network_security_group_id=nsg.id,
            direction="EGRESS",
            protocol="6",
            destination=egress_to,
            destination_type=egress_type,
            tcp_options=https_only,
            description="HTTPS out (predict endpoints, Oracle services)",
            opts=child,
        )
        self.subnet_id = subnet.id
        self.nsg_id = nsg.id


def _dns_label(text: str) -> str:
    """VCN DNS labels: letters and digits, starting with a letter, at most 15 characters."""
    label = "".join(ch for ch in text.lower() if ch.isalnum())
    return label[:15] or "llm"
