"""The value types of stack settings: each checks with the one definition in domain/ids.py (or the shape
table), says what it accepts, and describes itself to the JSON Schema."""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationInfo
from pydantic_core import CoreSchema, core_schema

from domain.ids import (
    HF_ID_EXAMPLE,
    InvalidId,
    ObjectUri,
    is_hf_id,
    is_object_uri,
    parse_hf_id,
    parse_image,
    parse_object_uri,
    parse_ocid,
)
from domain.settings.errors import Refused, refused
from domain.shapes import SHAPES, known_shape_names

SECRET_PLACEHOLDER = "[secret]"
HF_ID_ACCEPTED = f"a Hugging Face model id <org>/<model>, e.g. {HF_ID_EXAMPLE}"


@dataclass(frozen=True, eq=False)  # hashed by identity: typing hashes Annotated metadata
class Check:
    """`Annotated[T, Check(...)]`: T made from the raw value by `check` (which raises Refused), described to
    the JSON Schema by `schema`; `accepted` is what a message says when the value is missing."""

    check: Callable[..., Any]
    schema: Mapping[str, Any]
    accepted: str | None = None
    with_info: bool = False  # `check(value, info)`: it needs the validation context

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        if self.with_info:
            return core_schema.with_info_plain_validator_function(self.check)
        return core_schema.no_info_plain_validator_function(self.check)

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> Any:
        return dict(self.schema)


def ocid(*kinds: str) -> Check:
    example = f"ocid1.{kinds[0]}.oc1..<unique id>"

    def check(value: Any) -> str:
        try:
            found = parse_ocid(value).type
        except InvalidId:
            raise refused("malformed OCID", value, f"an OCID like {example}") from None
        if found not in kinds:
            accepted = f"an OCID of type {' or '.join(kinds)} ({example})"
            raise refused(f"an OCID of type {found!r}:", value, accepted)
        return str(value)

    pattern = rf"^ocid1\.({'|'.join(kinds)})\."
    return Check(check, {"type": "string", "format": "OCID", "pattern": pattern}, f"an OCID like {example}")


def matching(pattern: re.Pattern[str], reason: str, accepted: str, fmt: str = "") -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not pattern.match(value):
            raise refused(reason, value, accepted)
        return value

    return Check(check, {"type": "string", "pattern": pattern.pattern, **({"format": fmt} if fmt else {})})


def _cidr(value: Any) -> str:
    try:
        net = ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise refused("bad CIDR", value, f"an IPv4 CIDR block such as 10.0.0.0/16 ({exc})") from None
    if not 16 <= net.prefixlen <= 30:
        raise refused("prefix out of range:", value, "a prefix length from /16 to /30")
    return str(value)


Cidr = Annotated[str, Check(_cidr, {"type": "string", "format": "CIDR"})]


def _shape_check(value: Any, hint: bool = True) -> str:
    if value not in SHAPES:
        near = difflib.get_close_matches(str(value), known_shape_names(), n=1) if hint else []
        more = f" (did you mean {near[0]}?)" if near else ""
        raise refused("unknown shape", value, ", ".join(known_shape_names()) + more)
    return str(value)


SHAPE_SCHEMA = {"type": "string", "enum": known_shape_names(), "format": "shape name"}
Shape = Annotated[str, Check(_shape_check, SHAPE_SCHEMA)]
PricedShape = Annotated[str, Check(lambda value: _shape_check(value, hint=False), SHAPE_SCHEMA)]
_CPU_SHAPE = re.compile(r"^(VM|BM)\.(Standard|Optimized|DenseIO)", re.IGNORECASE)


def _training_shape(value: Any) -> str:
    if isinstance(value, str) and _CPU_SHAPE.match(value):
        accepted = "a GPU shape (the job trains on GPUs; qlora needs CUDA): " + ", ".join(known_shape_names())
        raise refused("not a GPU shape:", value, accepted)
    return _shape_check(value)


TrainingShape = Annotated[
    str, Check(_training_shape, SHAPE_SCHEMA, "a GPU shape for the training job, e.g. VM.GPU.A10.1")
]


def _image(value: Any) -> str:
    """An OCIR image with its tag: what OCI takes for a deployment's or a job's image."""
    for reason, ocir in (("bad image reference", False), ("not an OCIR image:", True)):
        try:
            parse_image(value, need_tag=True, need_ocir=ocir)
        except InvalidId as exc:
            raise refused(reason, value, str(exc)) from None
    return str(value)


IMAGE_SCHEMA = {"type": "string", "format": "OCIR image", "pattern": r"^[a-z0-9.-]+(:\d+)?/.+:.+"}
Image = Annotated[str, Check(_image, IMAGE_SCHEMA)]


def _hf_id(value: Any) -> str:
    try:
        return parse_hf_id(value)
    except InvalidId as exc:
        raise refused("bad id", value, str(exc)) from None


HF_SCHEMA = {"type": "string", "format": "`org/model`", "pattern": "^[^/]+/[^/]+$"}
HfId = Annotated[str, Check(_hf_id, HF_SCHEMA)]


def _zip_uri(value: Any) -> ObjectUri:
    try:
        uri = parse_object_uri(value, need_path=True)
    except InvalidId:
        uri = None
    if uri is None or uri.path.endswith("/"):
        raise refused("bad URI", value, "oci://<bucket>@<namespace>/<object>.zip (one zip object)")
    return uri


URI_SCHEMA = {"type": "string", "format": "`oci://bucket@ns/prefix`", "pattern": "^oci://[^@/]+@[^/]+/"}
ZipUri = Annotated[ObjectUri, Check(_zip_uri, {**URI_SCHEMA, "format": "`oci://bucket@ns/object.zip`"})]


def location(accepted: str, hub: bool = False) -> Check:
    """`oci://bucket@namespace/prefix` (no trailing `/`), or with `hub` also a Hugging Face id."""

    def check(value: Any) -> str:
        if hub and isinstance(value, str) and not is_object_uri(value):
            if not is_hf_id(value):
                raise refused("bad id", value, accepted)
            return value
        try:
            uri = parse_object_uri(value)
        except InvalidId:
            raise refused("bad URI", value, accepted) from None
        return f"oci://{uri.bucket}@{uri.namespace}/{uri.prefix}".rstrip("/")

    either = {"anyOf": [URI_SCHEMA, HF_SCHEMA], "format": "`org/model` | `oci://bucket@ns/prefix`"}
    return Check(check, either if hub else URI_SCHEMA, accepted)


def _local_path(value: Any, info: ValidationInfo) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise refused("not a string:", value, "a non-empty string")
    folder = Path(value).expanduser()
    folder = (folder if folder.is_absolute() else info.context["project_dir"] / folder).resolve()
    if not folder.is_dir():
        raise refused("no such folder:", value, f"an existing model folder (looked for {folder})")
    return folder


LocalPath = Annotated[Path, Check(_local_path, {"type": "string", "format": "path"}, with_info=True)]
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bBmM]?)\s*$")
SIZE_ACCEPTED = "a size such as 7B, 13B, 350M, or a number (billions below 10000, else a count)"


def _size(raw: Any) -> float:
    value: float | None = None
    if isinstance(raw, int | float) and not isinstance(raw, bool) and raw > 0:
        value = float(raw) if raw < 10_000 else (float(raw) / 1e9 if raw >= 1e6 else None)
    elif isinstance(raw, str) and (match := _SIZE.match(raw)):
        value = float(match[1]) / (1000 if match[2].lower() == "m" else 1) or None
    if value is None:
        raise refused("invalid value", raw, SIZE_ACCEPTED)
    return value


Size = Annotated[
    float,
    Check(
        _size,
        {
            "anyOf": [{"type": "string", "pattern": _SIZE.pattern}, {"type": "number"}],
            "format": "`7B` | `13B` | number",
        },
    ),
]


def _number(value: Any) -> float:
    """A number as written (`3` stays 3 in messages)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise refused("not a number:", value, "a number")
    return value


Number = Annotated[float, Check(_number, {"type": "number"})]
LOG_RETENTION_DAYS = (30, 60, 90, 120, 150, 180)


def _retention(value: Any) -> int:
    if isinstance(value, bool) or value not in LOG_RETENTION_DAYS:
        accepted = " | ".join(map(str, LOG_RETENTION_DAYS)) + " (days)"
        raise refused("not a retention OCI Logging accepts:", value, accepted)
    return int(value)


Retention = Annotated[int, Check(_retention, {"enum": list(LOG_RETENTION_DAYS)})]


def _tag_value(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float) or len(str(value)) > 256:
        raise refused("invalid value", value, "a string of at most 256 characters")
    return str(value)


TagValue = Annotated[str, Check(_tag_value, {"type": ["string", "number"], "maxLength": 256})]


class Secret:
    """A secret value from config; never shown by repr. `known` is False in the offline plan."""

    def __init__(self, value: str, known: bool = True) -> None:
        self.value, self.known = value, known

    def __repr__(self) -> str:
        return f"Secret({SECRET_PLACEHOLDER})"


def is_secure(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"secure"}


def _secret(value: Any, info: ValidationInfo) -> Secret:
    if is_secure(value):
        return Secret(SECRET_PLACEHOLDER, known=False)
    if not info.context["hf_token_is_secret"]:
        accepted = "a secret, set with `pulumi config set --secret hfToken` (the value is not shown here)"
        raise Refused(((), f"is stored in plain text; accepted: {accepted}"))
    if not isinstance(value, str) or not value.strip():
        raise Refused(((), "is empty or not a string; accepted: a Hugging Face access token"))
    return Secret(value.strip())


SECURE = {"type": "object", "properties": {"secure": {"type": "string"}}, "required": ["secure"]}
HfToken = Annotated[
    Secret, Check(_secret, {**SECURE, "additionalProperties": False, "format": "secret"}, with_info=True)
]
