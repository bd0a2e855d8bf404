"""One definition of each identifier the stack handles: OCIDs, `oci://` URIs, Hugging Face ids, OCIR images,
engines and auth modes. Settings, providers, the CLI, the launcher and the training entrypoint all use these.

Each `parse_*` raises `InvalidId`, whose message says what is accepted; the caller names its own key or
flag in front of it. What OCI accepts, and where that is written:

- OCID: `ocid1.<resource type>.<realm>.[region][.future use].<unique id>` (OCI docs, "Resource
  Identifiers"). The region part is empty for tenancy-wide resources (tenancy, compartment, dynamic
  group); the unique part is lower-case base32 in every OCID Oracle shows.
- Object Storage: a bucket name has letters, digits, `-`, `_` and `.`, at most 256 characters; a
  namespace is the tenancy's lower-case name or generated string (OCI docs, "Object Storage
  Namespaces", "Managing Buckets").
- Hugging Face: `<org>/<name>`, letters, digits, `-`, `_`, `.` (huggingface_hub `validate_repo_id`).
- OCIR: `<region-key>.ocir.io/<namespace>/<repo>:<tag>[@sha256:<digest>]` (OCI docs, "Pushing Images
  Using the Docker CLI"); a model deployment and a job take the image with its tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

Engine = Literal["vllm", "tgi"]
ENGINES: tuple[Engine, ...] = get_args(Engine)

# The modes that sign requests: what a stack's dynamic providers and a job may use (not `none`).
SigningAuthMode = Literal["api_key", "security_token", "instance_principal", "resource_principal"]
AuthMode = Literal[SigningAuthMode, "none"]
AUTH_MODES: tuple[AuthMode, ...] = (*get_args(SigningAuthMode), "none")
SIGNING_AUTH_MODES: tuple[SigningAuthMode, ...] = get_args(SigningAuthMode)


class InvalidId(ValueError):
    """A string that is not the identifier it should be: `str()` is what is accepted, `reason` why not."""

    def __init__(self, accepted: str, reason: str = "not accepted") -> None:
        super().__init__(accepted)
        self.accepted = accepted
        self.reason = reason


# ---------------------------------------------------------------------------------------------------------
# OCIDs

OCID_FORM = "ocid1.<type>.<realm>.<region>.<unique id>"
_OCID = re.compile(
    r"^ocid1\.(?P<type>[a-z0-9]+)\.(?P<realm>oc[0-9]+)\.(?P<region>[a-z0-9-]*)(?:\.[a-z0-9-]+)?"
    r"\.(?P<unique>[a-z0-9]{20,})$"
)


@dataclass(frozen=True)
class Ocid:
    value: str
    type: str
    realm: str
    region: str  # empty for tenancy-wide resources

    def __str__(self) -> str:
        return self.value


def parse_ocid(value: object, kinds: tuple[str, ...] = ()) -> Ocid:
    """An OCID, of one of `kinds` (resource types such as `subnet`) when they are given."""
    accepted = (
        f"an OCID of a {' or '.join(kinds)} (ocid1.{kinds[0]}...)" if kinds else f"an OCID ({OCID_FORM})"
    )
    if not isinstance(value, str) or not (match := _OCID.match(value)):
        raise InvalidId(accepted, "not an OCID")
    if kinds and match["type"] not in kinds:
        raise InvalidId(accepted, f"an OCID of a {match['type']}")
    return Ocid(value=value, type=match["type"], realm=match["realm"], region=match["region"])


def is_ocid(value: object, kinds: tuple[str, ...] = ()) -> bool:
    try:
        parse_ocid(value, kinds)
    except InvalidId:
        return False
    return True


# ---------------------------------------------------------------------------------------------------------
# Object Storage addresses

OCI_SCHEME = "oci://"
OBJECT_URI_FORM = "oci://<bucket>@<namespace>/<prefix>"
_BUCKET = r"[A-Za-z0-9._-]{1,256}"
_NAMESPACE = r"[a-z0-9-]{1,64}"
_OBJECT_URI = re.compile(rf"^oci://(?P<bucket>{_BUCKET})@(?P<namespace>{_NAMESPACE})(?:/(?P<path>.*))?$")
BUCKET_NAME = re.compile(rf"^{_BUCKET}$")


@dataclass(frozen=True)
class ObjectUri:
    """`oci://bucket@namespace/path`: `path` is an object name or a prefix, without a leading `/`.

    A prefix keeps its trailing `/` when it was written with one (`models/llama/`): for an object name
    that is the difference between one object and a folder of them.
    """

    bucket: str
    namespace: str
    path: str = ""

    @property
    def prefix(self) -> str:
        """The path as a folder: no trailing `/`, empty for the whole bucket."""
        return self.path.rstrip("/")

    @property
    def is_zip(self) -> bool:
        return self.path.lower().endswith(".zip")

    def object_name(self, relative: str) -> str:
        """The full name of `relative` inside this address's folder."""
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def __str__(self) -> str:
        return f"{OCI_SCHEME}{self.bucket}@{self.namespace}/{self.path}"


def is_object_uri(value: object) -> bool:
    """True for anything written as an `oci://` address, well formed or not (parse says which)."""
    return isinstance(value, str) and value.startswith(OCI_SCHEME)


def parse_object_uri(value: object, *, need_path: bool = False) -> ObjectUri:
    """`oci://bucket@namespace[/path]`; `need_path` refuses the bare bucket."""
    if not isinstance(value, str) or not (match := _OBJECT_URI.match(value)):
        raise InvalidId(OBJECT_URI_FORM, "not an Object Storage address")
    path = match["path"] or ""
    if path and any(part in ("", ".", "..") for part in path.removesuffix("/").split("/")):
        raise InvalidId(OBJECT_URI_FORM, "the prefix has an empty, '.' or '..' part")
    if need_path and not path:
        raise InvalidId(OBJECT_URI_FORM, "no object name or prefix after the namespace")
    return ObjectUri(bucket=match["bucket"], namespace=match["namespace"], path=path)


# ---------------------------------------------------------------------------------------------------------
# Hugging Face ids

HF_ID_EXAMPLE = "meta-llama/Llama-2-7b-chat-hf"
_HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def is_hf_id(value: object) -> bool:
    """`<org>/<name>`, as the hub accepts them (no `--` or `..` inside, no trailing `.` or `-`)."""
    return (
        isinstance(value, str)
        and bool(_HF_ID.match(value))
        and "--" not in value
        and ".." not in value
        and not value.endswith((".", "-"))
    )


def parse_hf_id(value: object) -> str:
    if not is_hf_id(value):
        raise InvalidId(
            f"a Hugging Face model id <org>/<model>, e.g. {HF_ID_EXAMPLE}", "not a Hugging Face id"
        )
    return str(value)


# ---------------------------------------------------------------------------------------------------------
# Container images

IMAGE_EXAMPLE = "<region-key>.ocir.io/<namespace>/<repository>:<tag>@sha256:<digest>"
_IMAGE = re.compile(
    r"^(?P<host>[a-z0-9.-]+(?::\d+)?)/(?P<path>[a-z0-9][a-z0-9._/-]*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
_OCIR_HOST = re.compile(r"^([a-z0-9-]+\.ocir\.io|ocir\.[a-z0-9-]+\.oci\.oraclecloud\.com)$")
# A repository path: components of the OCI distribution spec's grammar, joined by '/'.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY_NAME = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class ImageRef:
    host: str  # with a port when one is given
    path: str  # namespace/repository for OCIR
    tag: str | None
    digest: str | None  # sha256:<64 hex>

    @property
    def is_ocir(self) -> bool:
        return bool(_OCIR_HOST.match(self.host.split(":")[0]))

    @property
    def repository(self) -> str:
        return f"{self.host}/{self.path}"

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.repository}{tag}{digest}"


def parse_image(value: object, *, need_tag: bool = False, need_ocir: bool = False) -> ImageRef:
    """A registry image reference; OCI takes a deployment's or a job's image with its tag (`need_tag`)."""
    if not isinstance(value, str) or not (match := _IMAGE.match(value)):
        raise InvalidId(IMAGE_EXAMPLE, "not an image reference")
    image = ImageRef(host=match["host"], path=match["path"], tag=match["tag"], digest=match["digest"])
    if need_tag and not image.tag:
        raise InvalidId(f"{IMAGE_EXAMPLE} (OCI needs the tag; the digest pins it)", "no tag")
    if need_ocir and not image.is_ocir:
        raise InvalidId(f"an image in OCI Container Registry: {IMAGE_EXAMPLE}", "not an OCIR image")
    return image


def image_digest(value: str) -> str | None:
    """The `sha256:...` digest an image reference pins, or None (a tag alone, or not an image at all)."""
    try:
        return parse_image(value).digest
    except InvalidId:
        return None
