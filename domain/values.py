"""What settings are declared with: `key` (a default and its meaning), `rules_of` (a section's checks across
keys), the value types, and what a refusal says.

Each type checks with the one definition of its fact (domain/ids.py, the shape table, domain/oci_rules.py),
says what it accepts and describes itself to the JSON Schema. pydantic's wording never reaches a user:
`problems_of` turns each item of a ValidationError into a Problem, the key path from the aliases, the reason
from the error type, and what is accepted from the field itself (an `accepted` note in its metadata, its
bounds or its choices)."""

from __future__ import annotations

import difflib
import ipaddress
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Le
from pydantic import (
    BaseModel,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import CoreSchema, core_schema

from domain import ids
from domain.errors import Accepts, Found, Problem, Refused, refused, said
from domain.oci_rules import MAX_SUBNET_PREFIX, ocir_host, subnet_problem
from domain.secrets import SECRET_PLACEHOLDER, Secret, is_secure
from domain.service_container import InvalidServiceContainer, parse_service_container
from domain.shapes import ROCM_SHAPES, SHAPES, known_shape_names


def key(default: Any, description: str, **more: Any) -> Any:
    """A settings key: its default (`...`: required) and what it means, written once."""
    return Field(default, description=description, **more)


def refuse(found: Found) -> None:
    """Raise every problem found at once (a validator's way to refuse), or nothing."""
    if found:
        raise Refused(*found)


def rules_of(*checks: Callable[[Any], Found]) -> Any:
    """A section's after-validator: the section as parsed, or every problem `checks` find in it."""

    def validate(self: Any) -> Any:
        refuse([problem for rule in checks for problem in rule(self)])
        return self

    return model_validator(mode="after")(validate)


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


def _via(parse: Callable[[Any], Any], reason: str, value: Any, accepted: str | None = None) -> Any:
    """`parse(value)`; its InvalidId becomes a problem saying `reason` and what is accepted."""
    try:
        return parse(value)
    except ids.InvalidId as exc:
        raise refused(reason, value, accepted or str(exc)) from None


def ocid(*kinds: str) -> Check:
    example = f"ocid1.{kinds[0]}.oc1..<unique id>"

    def check(value: Any) -> str:
        found = _via(ids.parse_ocid, "malformed OCID", value, f"an OCID like {example}").type
        if found not in kinds:
            accepted = f"an OCID of type {' or '.join(kinds)} ({example})"
            raise refused(f"an OCID of type {found!r}:", value, accepted)
        return str(value)

    pattern = rf"^ocid1\.({'|'.join(kinds)})\."
    return Check(check, {"type": "string", "format": "OCID", "pattern": pattern}, f"an OCID like {example}")


def matching(pattern: re.Pattern[str], reason: str, accepted: str) -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not pattern.match(value):
            raise refused(reason, value, accepted)
        return value

    return Check(check, {"type": "string", "pattern": pattern.pattern})


def _cidr(value: Any, largest_prefix: int = 30, too_small: Callable[[str], str | None] | None = None) -> str:
    if not isinstance(value, str):
        raise refused("bad CIDR", value, "an IPv4 CIDR block such as 10.0.0.0/16")
    try:
        prefix = ipaddress.IPv4Network(value, strict=True).prefixlen
    except ValueError as exc:
        raise refused("bad CIDR", value, f"an IPv4 CIDR block such as 10.0.0.0/16 ({exc})") from None
    if not 16 <= prefix <= largest_prefix:
        why = too_small(value) if too_small is not None and prefix > largest_prefix else None
        reason = f"{why}:" if why else "prefix out of range:"
        raise refused(reason, value, f"a prefix length from /16 to /{largest_prefix}")
    return str(value)


def _region(value: Any) -> str:
    """A region identifier of realm oc1 that the OCI SDK's table knows (its OCIR host comes from there)."""
    if not isinstance(value, str) or not REGION.match(value):
        raise refused("invalid value", value, "an OCI region identifier such as us-ashburn-1")
    try:
        ocir_host(value)
    except ValueError as exc:
        raise refused(f"{exc}:", value, "a region of realm oc1 the OCI SDK knows") from None
    return value


def _shape(value: Any, hint: bool = True, gpu_only: bool = False) -> str:
    names = ", ".join(known_shape_names())
    if not isinstance(value, str):
        raise refused("not a string:", value, f"a shape name: {names}")
    if gpu_only and re.match(r"^(VM|BM)\.(Standard|Optimized|DenseIO)", str(value), re.IGNORECASE):
        raise refused(
            "not a GPU shape:", value, f"a GPU shape (the job trains on GPUs; qlora needs CUDA): {names}"
        )
    if value in ROCM_SHAPES:
        raise refused(f"{ROCM_SHAPES[value]}:", value, f"an NVIDIA GPU shape: {names}")
    if value not in SHAPES:
        near = difflib.get_close_matches(str(value), known_shape_names(), n=1) if hint else []
        raise refused("unknown shape", value, names + (f" (did you mean {near[0]}?)" if near else ""))
    return str(value)


def _image(value: Any) -> str:
    """An OCIR image with its tag: what OCI takes for a deployment's or a job's image."""
    _via(lambda v: ids.parse_image(v, need_tag=True), "bad image reference", value)
    _via(lambda v: ids.parse_image(v, need_tag=True, need_ocir=True), "not an OCIR image:", value)
    return str(value)


MODEL_URI_ACCEPTED = (
    "oci://<bucket>@<namespace>/<prefix>/ (a model folder's objects, by reference) or "
    "oci://<bucket>@<namespace>/<object>.zip (one zip, copied into the catalog)"
)


def _model_uri(value: Any) -> ids.ObjectUri:
    """A stored zip, or a prefix written with its final `/` that holds a model folder's files."""
    uri = _via(lambda v: ids.parse_object_uri(v, need_path=True), "bad URI", value, MODEL_URI_ACCEPTED)
    if not (uri.path.endswith("/") or uri.is_zip):
        raise refused("neither a prefix (ending in /) nor a .zip:", value, MODEL_URI_ACCEPTED)
    return uri  # type: ignore[no-any-return]


def _service_container(value: Any) -> str:
    try:
        return str(parse_service_container(value))
    except InvalidServiceContainer as exc:
        raise refused("not a pinned service container:", value, str(exc)) from None


MODEL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")


def location(accepted: str, hub: bool = False, stack_model: bool = False) -> Check:
    """`oci://bucket@namespace/prefix` (kept without a trailing `/`), or with `hub` also a Hugging Face id,
    or with `stack_model` also the name of a model of the stack (checked by the stack's settings)."""

    def check(value: Any) -> str:
        if stack_model and isinstance(value, str) and MODEL_NAME.match(value):
            return value
        if hub and isinstance(value, str) and not ids.is_object_uri(value):
            return _via(ids.parse_hf_id, "bad id", value, accepted)  # type: ignore[no-any-return]
        uri = _via(ids.parse_object_uri, "bad URI", value, accepted)
        return f"oci://{uri.bucket}@{uri.namespace}/{uri.prefix}".rstrip("/")

    either = {"anyOf": [URI, HF], "format": "`org/model` | `oci://bucket@ns/prefix`"}
    if stack_model:
        name = {"type": "string", "format": "model name", "pattern": MODEL_NAME.pattern}
        either = {"anyOf": [URI, HF, name], "format": "`org/model` | `oci://bucket@ns/prefix` | `<model>`"}
    return Check(check, either if hub else URI, accepted)


def _local_path(value: Any, info: ValidationInfo) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise refused("not a string:", value, "a non-empty string")
    folder = Path(value).expanduser()
    folder = (folder if folder.is_absolute() else (info.context or {})["project_dir"] / folder).resolve()
    if not folder.is_dir():
        raise refused("no such folder:", value, f"an existing model folder (looked for {folder})")
    return folder


SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bBmM]?)\s*$")
SIZE_ACCEPTED = "a size such as 7B, 13B, 350M, or a number (billions below 10000, else a count)"


def _size(raw: Any) -> float:
    value: float | None = None
    if isinstance(raw, int | float) and not isinstance(raw, bool) and raw > 0:
        value = float(raw) if raw < 10_000 else (float(raw) / 1e9 if raw >= 1e6 else None)
    elif isinstance(raw, str) and (match := SIZE.match(raw)):
        value = float(match[1]) / (1000 if match[2].lower() == "m" else 1) or None
    if value is None:
        raise refused("invalid value", raw, SIZE_ACCEPTED)
    return value


def _number(value: Any) -> float:
    """A number as written (`3` stays 3 in messages)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise refused("not a number:", value, "a number")
    return value


def _retention(value: Any) -> int:
    if isinstance(value, bool) or value not in RETENTION_DAYS:
        accepted = " | ".join(map(str, RETENTION_DAYS)) + " (days)"
        raise refused("not a retention OCI Logging accepts:", value, accepted)
    return int(value)


def _tag_value(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float) or len(str(value)) > 256:
        raise refused("invalid value", value, "a string of at most 256 characters")
    return str(value)


@dataclass(frozen=True)
class NoTenancy:
    """What stands for `tenancyId` when neither the stack nor the OCI config profile gives one: why not."""

    why: str


_TENANCY_OCID = ocid("tenancy")


def _tenancy(value: Any) -> str:
    if isinstance(value, NoTenancy):
        accepted = f"{_TENANCY_OCID.accepted}, or a `tenancy` in auth.profile of auth.configFile"
        raise Refused(((), f"missing, and {value.why}; accepted: {accepted}"))
    return _TENANCY_OCID.check(value)  # type: ignore[no-any-return]


def _secret(value: Any, info: ValidationInfo) -> Secret:
    if is_secure(value):
        return Secret(SECRET_PLACEHOLDER, known=False)
    if not (info.context or {})["hf_token_is_secret"]:
        secret = "a secret, set with `pulumi config set --secret hfToken` (the value is not shown here)"
        raise Refused(((), f"is stored in plain text; accepted: {secret}"))
    if not isinstance(value, str) or not value.strip():
        raise Refused(((), "is empty or not a string; accepted: a Hugging Face access token"))
    return Secret(value.strip())


REGION = re.compile(r"^[a-z]{2,}-[a-z]+-\d+$")
RETENTION_DAYS = (30, 60, 90, 120, 150, 180)
URI = {"type": "string", "format": "`oci://bucket@ns/prefix`", "pattern": "^oci://[^@/]+@[^/]+/"}
HF = {"type": "string", "format": "`org/model`", "pattern": "^[^/]+/[^/]+$"}
SHAPE = {"type": "string", "enum": known_shape_names(), "format": "shape name"}
SECURE = {"type": "object", "properties": {"secure": {"type": "string"}}, "required": ["secure"]}
CIDR = {"type": "string", "format": "CIDR"}
Cidr = Annotated[str, Check(_cidr, CIDR)]
SubnetCidr = Annotated[str, Check(lambda value: _cidr(value, MAX_SUBNET_PREFIX, subnet_problem), CIDR)]
Region = Annotated[str, Check(_region, {"type": "string", "pattern": REGION.pattern})]
Tenancy = Annotated[str, Check(_tenancy, _TENANCY_OCID.schema, _TENANCY_OCID.accepted)]
Shape = Annotated[str, Check(_shape, SHAPE)]
PricedShape = Annotated[str, Check(lambda value: _shape(value, hint=False), SHAPE)]
TrainingShape = Annotated[
    str,
    Check(
        lambda value: _shape(value, gpu_only=True),
        SHAPE,
        "a GPU shape for the training job, e.g. VM.GPU.A10.1",
    ),
]
Image = Annotated[
    str, Check(_image, {"type": "string", "format": "OCIR image", "pattern": r"^[a-z0-9.:-]+/.+:"})
]
HfId = Annotated[str, Check(lambda value: _via(ids.parse_hf_id, "bad id", value), HF)]
ModelUri = Annotated[
    ids.ObjectUri,
    Check(_model_uri, {**URI, "format": "`oci://bucket@ns/prefix/` | `oci://bucket@ns/object.zip`"}),
]
ServiceContainer = Annotated[
    str,
    Check(
        _service_container,
        {"type": "string", "format": "`<container name>:<tag>`", "pattern": "^[a-z0-9-]+:"},
    ),
]
LocalPath = Annotated[Path, Check(_local_path, {"type": "string", "format": "path"}, with_info=True)]
Size = Annotated[
    float, Check(_size, {"anyOf": [{"type": "string"}, {"type": "number"}], "format": "`7B` | number"})
]
Number = Annotated[float, Check(_number, {"type": "number"})]
Retention = Annotated[int, Check(_retention, {"enum": list(RETENTION_DAYS)})]
TagValue = Annotated[str, Check(_tag_value, {"type": ["string", "number"], "maxLength": 256})]
HfToken = Annotated[
    Secret, Check(_secret, {**SECURE, "additionalProperties": False, "format": "secret"}, with_info=True)
]


def stack_named(rule: Check) -> Check:
    """A name whose default carries `<stack>`: filled in with the stack being read, then checked by `rule`."""

    def check(value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            raise refused("not a string:", value, "a string")
        return rule.check(value.replace("<stack>", (info.context or {})["stack"]))

    return Check(check, {"type": "string"}, with_info=True)


CompartmentId = Annotated[str, ocid("compartment", "tenancy")]
SubnetId = Annotated[str, ocid("subnet")]
LogGroupId = Annotated[str, ocid("loggroup")]
VaultKeyId = Annotated[str, ocid("key")]
ProjectId = Annotated[str, ocid("datascienceproject")]
VaultSecretId = Annotated[str, ocid("vaultsecret")]
BUCKET = matching(ids.BUCKET_NAME, "bad bucket name", "1-256 letters, digits, '.', '_' or '-'")
BucketName = Annotated[str, BUCKET]
REPOSITORY = matching(
    ids.REPOSITORY_NAME, "bad repository name", "lowercase letters, digits, '.', '_', '-' and '/'"
)
# Written into policy statements as it is: a space or a quote would break (or bend) them.
DynamicGroup = Annotated[
    str,
    matching(
        re.compile(r"^(?:[A-Za-z0-9._+@-]{1,100}/)?[A-Za-z0-9._+@-]{1,100}$"),
        "bad dynamic group name",
        "a dynamic group name of letters, digits, '.', '_', '-', '+' and '@', or <domain>/<name>",
    ),
]
TagName = Annotated[
    str,
    matching(
        re.compile(r"^[^.\s]{1,100}$"),
        "bad tag name",
        "a tag name of 1-100 characters without spaces or periods",
    ),
]
ModelName = Annotated[
    str,
    matching(
        MODEL_NAME,
        "bad model name",
        "2-32 characters of a-z, 0-9 and '-', starting with a letter, not ending in '-' (it becomes part of "
        "resource names)",
    ),
]
GpuName = Literal[tuple(sorted({shape.gpu for shape in SHAPES.values()}))]  # type: ignore[valid-type]
Price = Annotated[float, Field(ge=0, allow_inf_nan=False)]


def _at(annotation: Any, loc: tuple[str, ...]) -> tuple[Any, list[Any]]:
    """The type and metadata at `loc` below `annotation` (by alias, through mappings); None if unknown."""
    meta: list[Any] = []
    for part in (None, *loc):
        if part is None:
            pass
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found = [f for n, f in annotation.model_fields.items() if (f.alias or n) == part]
            annotation, meta = (found[0].annotation, list(found[0].metadata)) if found else (None, [])
        else:
            annotation, meta = (get_args(annotation)[1], []) if get_origin(annotation) is dict else (None, [])
        while get_origin(annotation) in (Annotated, Union, types.UnionType):  # X | None, Annotated[X, ...]
            args = [a for a in get_args(annotation) if a is not type(None)]
            annotation, meta = args[0], meta + (args[1:] if get_origin(annotation) is Annotated else [])
    return annotation, meta


def keys_of(model: Any) -> list[str]:
    """The keys a settings section takes, in order (`oci:region` is not one of the project's keys)."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [f.alias or n for n, f in model.model_fields.items() if ":" not in (f.alias or n)]


def _accepted(annotation: Any, meta: list[Any], key: str) -> str:
    notes = [m.accepted for m in meta if getattr(m, "accepted", None)]
    low = next((m.ge for m in meta if isinstance(m, Ge)), None)
    high = next((m.le for m in meta if isinstance(m, Le)), None)
    if notes or get_origin(annotation) is Literal:
        return notes[-1] if notes else " | ".join(map(str, get_args(annotation)))
    if annotation is int:
        return f"an integer from {low}" + (f" to {high}" if high is not None else " up")
    if keys_of(annotation):
        return f"a mapping (see the README's settings table for {key})"
    return {str: "a string", float: "a number", bool: "true | false"}.get(
        annotation, "see the README's table"
    )


REASONS = {
    **dict.fromkeys(("int_type", "int_from_float"), "not an integer:"),
    **dict.fromkeys(("string_type",), "not a string:"),
    **dict.fromkeys(("float_type", "finite_number"), "not a number:"),
    **dict.fromkeys(("dict_type", "model_type"), "not a mapping:"),
    **dict.fromkeys(("greater_than_equal", "less_than_equal"), "out of range:"),
    "bool_type": "not a boolean:",
    "literal_error": "unknown value",
}


def problems_of(error: ValidationError, root: type[BaseModel]) -> list[Problem]:
    """Each of pydantic's error items as the project's Problem."""
    found: list[Problem] = []
    for item in error.errors():
        loc = tuple(str(part) for part in item["loc"] if part != "[key]")
        annotation, meta = _at(root, loc)
        cause, reason = item.get("ctx", {}).get("error"), REASONS.get(item["type"], "invalid value")
        if isinstance(cause, Refused):
            found += [Problem(".".join((*loc, *at)), message) for at, message in cause.items]
        elif item["type"] == "extra_forbidden":
            known = keys_of(_at(root, loc[:-1])[0])
            near = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
            hint = f"did you mean {near[0]!r}? " if near else ""
            found.append(Problem(".".join(loc), f"unknown key; {hint}known keys: {', '.join(known)}"))
        elif item["type"] == "missing":
            found.append(Problem(".".join(loc), f"missing; accepted: {_accepted(annotation, meta, loc[-1])}"))
        else:
            if reason == "out of range:" and annotation is not int:
                reason = "invalid value"
            if reason == "not a mapping:" and keys_of(annotation) and not meta:
                meta = [Accepts(f"a mapping with keys {', '.join(keys_of(annotation))}")]
            accepted = _accepted(annotation, meta, loc[-1])
            found.append(Problem(".".join(loc), said(reason, item["input"], accepted)))
    return found
