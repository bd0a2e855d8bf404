"""`model_description.json`: the catalog artifact of a model registered by reference (no copy of the files).

The format, as ADS writes it (`ads/model/datascience_model.py` `_prepare_file_description_artifact`,
schema `ads/model/model_file_description_schema.json`):

    {"version": "1.0", "type": "modelOSSReferenceDescription",
     "models": [{"namespace": ..., "bucketName": ..., "prefix": ...,
                 "objects": [{"name": <full object name>, "version": <version id>, "sizeInBytes": <int>}]}]}

Every object is pinned by its version id, so the bucket must be versioned (ADS checks `versioning ==
"Enabled"` and refuses otherwise). The catalog model carries custom metadata `modelDescription=true` (ADS)
and `artifact_location` (AQUA); ADS uploads the JSON with `content-disposition: attachment;
filename="<model ocid>.json"`. The deployed container sees the files at
`/opt/ds/model/deployed_model/<prefix>/`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

VERSION = "1.0"
TYPE = "modelOSSReferenceDescription"
FILE_NAME = "model_description.json"
METADATA_KEY = "modelDescription"  # ADS CONST_MODEL_FILE_DESCRIPTION, value "true"
LOCATION_KEY = "artifact_location"  # AQUA MODEL_BY_REFERENCE_OSS_PATH_KEY


class InvalidDescription(ValueError):
    pass


@dataclass(frozen=True, kw_only=True)
class PinnedObject:
    name: str  # the full object name, prefix included
    version: str
    size: int

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "sizeInBytes": self.size}


def describe(namespace: str, bucket: str, prefix: str, objects: Iterable[PinnedObject]) -> dict[str, Any]:
    """The description of one model folder, objects sorted by name (the same folder, the same bytes)."""
    pinned = sorted(objects, key=lambda o: o.name)
    if not pinned:
        raise InvalidDescription(f"no objects under oci://{bucket}@{namespace}/{prefix}")
    return {
        "version": VERSION,
        "type": TYPE,
        "models": [
            {
                "namespace": namespace,
                "bucketName": bucket,
                "prefix": prefix,
                "objects": [o.as_json() for o in pinned],
            }
        ],
    }


def to_bytes(description: Mapping[str, Any]) -> bytes:
    return json.dumps(description, sort_keys=True, separators=(",", ":")).encode()


def fingerprint(description: Mapping[str, Any]) -> str:
    """sha-256 of the canonical JSON: a new version of any file gives a new fingerprint."""
    return hashlib.sha256(to_bytes(description)).hexdigest()


def problems(description: Any) -> list[str]:
    """What ADS's schema would refuse; empty when the description is good."""
    if not isinstance(description, Mapping):
        return ["not a JSON object"]
    found = []
    if description.get("version") != VERSION:
        found.append(f"version must be {VERSION!r}")
    if description.get("type") != TYPE:
        found.append(f"type must be {TYPE!r}")
    models = description.get("models")
    if not isinstance(models, list) or not models:
        return [*found, "models must be a non-empty list"]
    for i, model in enumerate(models):
        if not isinstance(model, Mapping):
            found.append(f"models[{i}] is not an object")
            continue
        for key in ("namespace", "bucketName", "prefix"):
            if not isinstance(model.get(key), str):
                found.append(f"models[{i}].{key} must be a string")
        objects = model.get("objects")
        if not isinstance(objects, list) or not objects:
            found.append(f"models[{i}].objects must be a non-empty list")
            continue
        for j, obj in enumerate(objects):
            ok = (
                isinstance(obj, Mapping)
                and isinstance(obj.get("name"), str)
                and isinstance(obj.get("version"), str)
                and isinstance(obj.get("sizeInBytes"), int)
                and obj["sizeInBytes"] >= 0
            )
            if not ok:
                found.append(f"models[{i}].objects[{j}] needs name, version and sizeInBytes >= 0")
    return found
