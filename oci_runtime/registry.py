"""The stack's OCIR repository as the account has it: whether it exists in the stack's compartment.

A repository that a first `docker push` creates by itself lands in the tenancy's root compartment, where
the stack's dynamic group may not read it and where the stack's own `ContainerRepository` then collides on
the name (repository names are unique per tenancy and region). So `make image` pushes only into a
repository that already exists in the stack's compartment (`make bootstrap` creates it).
"""

from __future__ import annotations

from typing import Any


def repository_exists(artifacts: Any, compartment_id: str, name: str) -> bool:
    """`ArtifactsClient.list_container_repositories(compartment_id, display_name=name)` finds it."""
    found = artifacts.list_container_repositories(compartment_id, display_name=name).data.items
    return any(r.display_name == name for r in found)


def namespace_of(object_storage: Any, compartment_id: str) -> str:
    """The tenancy's Object Storage namespace, which OCIR paths start with."""
    return str(object_storage.get_namespace(compartment_id=compartment_id).data)
