"""Rules OCI enforces that settings can check before anything is created (issue 14, points 6, 8, 11, 13).

Pure functions: the settings call them, tests pin them. The engine/shape/quantization rules live with the
shapes table (domain/shapes.py `serving_problems`), the container environment's with the environment
(domain/container_env.py).
"""

from __future__ import annotations

import configparser
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from domain.regions import REGIONS  # the OCI SDK's region table, generated (oci_runtime/regions.py)

# -- 6: a subnet for model deployments -----------------------------------------------------------------------

# "For custom egress, the subnet must have at least 127 IP addresses available" (Data Science, "Use Custom
# Networking"). OCI keeps 3 addresses of every subnet (the first two and the last), so a /25 offers 125:
# /24 (253) is the smallest subnet that can hold 127.
MIN_FREE_ADDRESSES = 127
RESERVED_PER_SUBNET = 3
MAX_SUBNET_PREFIX = 24


def subnet_problem(cidr: str) -> str | None:
    """Why a subnet of `cidr` is too small for model deployments; None when it is large enough."""
    network = ipaddress.ip_network(cidr, strict=False)
    usable = network.num_addresses - RESERVED_PER_SUBNET
    if usable >= MIN_FREE_ADDRESSES:
        return None
    return (
        f"a /{network.prefixlen} subnet has {max(usable, 0)} usable addresses; model deployments need "
        f"{MIN_FREE_ADDRESSES} free (/{MAX_SUBNET_PREFIX} or larger, e.g. 10.0.1.0/24)"
    )


# -- 11: the OCIR host of a region ---------------------------------------------------------------------------

# "Preparing for Container Registry" lists `<region-key>.ocir.io` and `<region-id>.ocir.io` as endpoints
# "(OC1 realm only)"; the short keys come from the SDK's own region table.
OCIR_REALM = "oc1"


def ocir_host(region: str) -> str:
    """`<region-key>.ocir.io` for an OC1 region the OCI SDK knows; ValueError otherwise."""
    if region not in REGIONS:
        raise ValueError(f"region {region!r} is not in the OCI SDK's region table")
    key, realm = REGIONS[region]
    if realm != OCIR_REALM or not key:
        raise ValueError(f"region {region!r} is in realm {realm}; the ocir.io endpoints serve realm oc1 only")
    return f"{key}.ocir.io"


def region_key(region: str) -> str | None:
    """The short key of a region (`iad` for us-ashburn-1), from the SDK's table."""
    key = REGIONS.get(region, ("", ""))[0]
    return key or None


def known_regions() -> list[str]:
    return sorted(REGIONS)


# -- 13: the tenancy of the user's OCI config profile --------------------------------------------------------


@dataclass(frozen=True)
class ProfileTenancy:
    tenancy_id: str
    origin: str  # `~/.oci/config [DEFAULT]`: what the plan shows


def tenancy_from_profile(config_file: str, profile: str) -> ProfileTenancy | None:
    """The `tenancy=` of `profile` in the OCI config file (what `oci.config.from_file` reads); None when the
    file, the profile or the key is missing. Reads the file only, no network."""
    path = Path(config_file).expanduser()
    parser = configparser.ConfigParser(interpolation=None)
    try:
        if not parser.read(path, encoding="utf-8"):
            return None
    except configparser.Error:
        return None
    section = parser.defaults() if profile == configparser.DEFAULTSECT else None
    if section is None:
        if not parser.has_section(profile):
            return None
        section = parser[profile]
    tenancy = section.get("tenancy")
    return ProfileTenancy(tenancy.strip(), f"{config_file} [{profile}]") if tenancy else None


# -- 8: what may change while a deployment is ACTIVE --------------------------------------------------------

# SDK `DataScienceClient.update_model_deployment` docstring: "Some of the properties of
# `modelDeploymentConfigurationDetails` or `CategoryLogDetails` can also be updated with zero down time when
# the model deployment's lifecycle state is ACTIVE or NEEDS_ATTENTION i.e `instanceShapeName`,
# `instanceCount` and `modelId`, separately `loadBalancerShape` or `CategoryLogDetails` can also be updated
# independently. All of the fields can be updated when the deployment is in the INACTIVE lifecycle state."
# pulumi-oci's update (terraform-provider-oci `DatascienceModelDeploymentResourceCrud.Update`) sends one
# UpdateModelDeployment with the new configuration and never deactivates first. So a change outside those
# groups would be refused 40 minutes into an `up`; the component replaces the deployment instead (a new
# one is created, answers, then the old one is deleted: no downtime, a new OCID and predict URL).
_CONFIG = "modelDeploymentConfigurationDetails"
_MODEL = f"{_CONFIG}.modelConfigurationDetails"
ACTIVE_IN_PLACE: tuple[tuple[str, ...], ...] = (
    (
        f"{_MODEL}.instanceConfiguration.instanceShapeName",
        f"{_MODEL}.scalingPolicy.instanceCount",
        f"{_MODEL}.modelId",
    ),
    (f"{_MODEL}.bandwidthMbps",),  # the load balancer's shape
    ("categoryLogDetails",),
)
# Fields the component sets that OCI changes only while INACTIVE: a change replaces the deployment.
# (Autoscaling policies are not named by the docstring; treated as INACTIVE-only, to be safe.)
INACTIVE_ONLY: tuple[str, ...] = (
    f"{_CONFIG}.environmentConfigurationDetails",
    f"{_MODEL}.instanceConfiguration.subnetId",
    f"{_MODEL}.instanceConfiguration.networkAccessType",
    f"{_MODEL}.scalingPolicy.policyType",
    f"{_MODEL}.scalingPolicy.autoScalingPolicies",
    f"{_MODEL}.scalingPolicy.isEnabled",
    f"{_MODEL}.scalingPolicy.coolDownInSeconds",
)


def update_verdict(changed: set[str]) -> str:
    """How OCI takes a change of these (camelCase) fields of an ACTIVE deployment: `in place`, `replace`
    (a field OCI changes only while INACTIVE), or `refused` (fields of two groups that may each change
    alone)."""

    def under(field: str, prefix: str) -> bool:
        return field == prefix or field.startswith(prefix + ".")

    if any(under(f, p) for f in changed for p in INACTIVE_ONLY):
        return "replace"
    groups = {
        i for f in changed for i, group in enumerate(ACTIVE_IN_PLACE) if any(under(f, p) for p in group)
    }
    return "refused" if len(groups) > 1 else "in place"
