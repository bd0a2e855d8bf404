"""Fake control-plane reads `llmstack preflight` makes: Identity (compartments, policies), Limits, Artifacts
(container images and repositories), Core (subnets), Logging (log groups), Data Science (projects).

Shapes follow the SDK's models (`oci.identity.models.Compartment`, `Policy`; `oci.limits.models.
LimitDefinitionSummary`, `ResourceAvailability`; `oci.artifacts.models.ContainerImageCollection`,
`ContainerRepositoryCollection`; `oci.core.models.Subnet`; `oci.logging.models.LogGroup`;
`oci.data_science.models.Project`). A missing resource is 404 NotAuthorizedOrNotFound, as OCI answers both.
Tests fill the tenancy through the `add_*` methods.
"""

from __future__ import annotations

from typing import Any

from tests.fakeoci.core import HttpError, Request, Response, Service, json_response, now_rfc3339, route


def _missing(what: str, ocid: str) -> HttpError:
    return HttpError(404, "NotAuthorizedOrNotFound", f"{what} {ocid} not found or not authorized")


class Identity(Service):
    """Identity and, under the same base path, Artifacts (`/container/...`) and Core (`/subnets`)."""

    name = "identity"
    prefix = "/20160918"

    def __init__(self, fake: Any) -> None:
        super().__init__(fake)
        self.compartments: dict[str, dict[str, Any]] = {}
        self.policies: list[dict[str, Any]] = []
        self.images: list[dict[str, Any]] = []
        self.repositories: list[dict[str, Any]] = []
        self.subnets: dict[str, dict[str, Any]] = {}

    # -- filling the tenancy
    def add_compartment(self, ocid: str, parent: str, name: str = "llm") -> None:
        self.compartments[ocid] = {
            "id": ocid,
            "compartmentId": parent,
            "name": name,
            "description": name,
            "timeCreated": now_rfc3339(),
            "lifecycleState": "ACTIVE",
        }

    def add_policy(self, compartment: str, statements: list[str], tags: dict[str, str] | None = None) -> None:
        self.policies.append(
            {
                "id": self.fake.ocid("policy"),
                "compartmentId": compartment,
                "name": f"policy-{len(self.policies)}",
                "description": "test",
                "statements": statements,
                "timeCreated": now_rfc3339(),
                "lifecycleState": "ACTIVE",
                "freeformTags": tags or {},
            }
        )

    def add_repository(self, compartment: str, name: str) -> None:
        self.repositories.append(
            {
                "id": self.fake.ocid("containerrepo"),
                "compartmentId": compartment,
                "displayName": name,
                "namespace": self.fake.namespace,
                "imageCount": 0,
                "isPublic": False,
                "isImmutable": True,
                "layerCount": 0,
                "layersSizeInBytes": 0,
                "billableSizeInGBs": 0,
                "lifecycleState": "AVAILABLE",
                "timeCreated": now_rfc3339(),
            }
        )

    def add_image(self, compartment: str, repository: str, digest: str, version: str = "v1") -> None:
        self.images.append(
            {
                "id": self.fake.ocid("containerimage"),
                "compartmentId": compartment,
                "repositoryName": repository,
                "repositoryId": "ocid1.containerrepo.oc1.iad.x",
                "digest": digest,
                "displayName": f"{repository}:{version}",
                "version": version,
                "lifecycleState": "AVAILABLE",
                "timeCreated": now_rfc3339(),
            }
        )

    def add_subnet(self, ocid: str, compartment: str, cidr: str) -> None:
        self.subnets[ocid] = {
            "id": ocid,
            "compartmentId": compartment,
            "cidrBlock": cidr,
            "vcnId": "ocid1.vcn.oc1.iad.x",
            "routeTableId": "ocid1.routetable.oc1.iad.x",
            "securityListIds": [],
            "prohibitPublicIpOnVnic": True,
            "lifecycleState": "AVAILABLE",
            "availabilityDomain": None,
            "timeCreated": now_rfc3339(),
        }

    # -- Identity
    @route("GET", "/compartments/{compartmentId}", op="GetCompartment")
    def get_compartment(self, req: Request) -> Response:
        found = self.compartments.get(req.params["compartmentId"])
        if found is None:
            raise _missing("compartment", req.params["compartmentId"])
        return json_response(200, found)

    @route("GET", "/policies", op="ListPolicies")
    def list_policies(self, req: Request) -> Response:
        compartment = req.query.get("compartmentId", "")
        return json_response(200, [p for p in self.policies if p["compartmentId"] == compartment])

    # -- Artifacts
    @route("GET", "/container/images", op="ListContainerImages")
    def list_images(self, req: Request) -> Response:
        q = req.query
        items = [
            i
            for i in self.images
            if i["compartmentId"] == q.get("compartmentId")
            and ("repositoryName" not in q or i["repositoryName"] == q["repositoryName"])
            and ("imageDigest" not in q or i["digest"] == q["imageDigest"])
        ]
        return json_response(200, {"items": items, "imageCount": len(items), "remainingItemsCount": 0})

    @route("GET", "/container/repositories", op="ListContainerRepositories")
    def list_repositories(self, req: Request) -> Response:
        q = req.query
        items = [
            r
            for r in self.repositories
            if r["compartmentId"] == q.get("compartmentId")
            and ("displayName" not in q or r["displayName"] == q["displayName"])
        ]
        return json_response(
            200,
            {
                "items": items,
                "repositoryCount": len(items),
                "imageCount": 0,
                "layerCount": 0,
                "layersSizeInBytes": 0,
                "remainingItemsCount": 0,
            },
        )

    # -- Core
    @route("GET", "/subnets/{subnetId}", op="GetSubnet")
    def get_subnet(self, req: Request) -> Response:
        found = self.subnets.get(req.params["subnetId"])
        if found is None:
            raise _missing("subnet", req.params["subnetId"])
        return json_response(200, found)


class Limits(Service):
    """The Limits service: per-service limit definitions and the tenancy's availability for each."""

    name = "limits"
    prefix = "/20190729"

    def __init__(self, fake: Any) -> None:
        super().__init__(fake)
        self.definitions: dict[tuple[str, str], str] = {}  # (service, limit name) -> description
        self.available: dict[tuple[str, str], tuple[int, int]] = {}  # -> (used, available)

    def set_limit(self, service: str, name: str, description: str, *, used: int, available: int) -> None:
        self.definitions[(service, name)] = description
        self.available[(service, name)] = (used, available)

    @route("GET", "/limitDefinitions", op="ListLimitDefinitions")
    def list_definitions(self, req: Request) -> Response:
        service = req.query.get("serviceName")
        return json_response(
            200,
            [
                {
                    "name": name,
                    "serviceName": svc,
                    "description": description,
                    "scopeType": "REGION",
                    "areQuotasSupported": True,
                    "isResourceAvailabilitySupported": True,
                    "isDeprecated": False,
                    "isEligibleForLimitIncrease": True,
                    "isDynamic": False,
                }
                for (svc, name), description in sorted(self.definitions.items())
                if service is None or svc == service
            ],
        )

    @route(
        "GET", "/services/{serviceName}/limits/{limitName}/resourceAvailability", op="GetResourceAvailability"
    )
    def availability(self, req: Request) -> Response:
        key = (req.params["serviceName"], req.params["limitName"])
        if key not in self.available:
            raise HttpError(404, "NotFound", f"limit {key[1]} of {key[0]} not found")
        used, available = self.available[key]
        return json_response(
            200, {"used": used, "available": available, "effectiveQuotaValue": used + available}
        )


class ControlPlaneReads(Service):
    """Data Science projects and Logging log groups, as preflight reads them."""

    name = "controlplane"
    prefix = ""

    def __init__(self, fake: Any) -> None:
        super().__init__(fake)
        self.projects: set[str] = set()
        self.log_groups: set[str] = set()

    @route("GET", "/20190101/projects/{projectId}", op="GetProject")
    def get_project(self, req: Request) -> Response:
        ocid = req.params["projectId"]
        if ocid not in self.projects:
            raise _missing("project", ocid)
        return json_response(200, {"id": ocid, "compartmentId": "c", "lifecycleState": "ACTIVE"})

    @route("GET", "/20200531/logGroups/{logGroupId}", op="GetLogGroup")
    def get_log_group(self, req: Request) -> Response:
        ocid = req.params["logGroupId"]
        if ocid not in self.log_groups:
            raise _missing("log group", ocid)
        return json_response(
            200,
            {"id": ocid, "compartmentId": "c", "displayName": "logs", "lifecycleState": "ACTIVE"},
        )
