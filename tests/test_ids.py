"""One definition of each identifier: the strings that the old copies treated differently, and who uses which."""

from __future__ import annotations

import pytest

from domain.ids import (
    AUTH_MODES,
    ENGINES,
    SIGNING_AUTH_MODES,
    InvalidId,
    image_digest,
    is_hf_id,
    is_ocid,
    parse_image,
    parse_object_uri,
    parse_ocid,
)
from domain.training_args import ArgsError, FineTuneArgs, findings
from serving import image as image_tool
from serving import launcher

SECRET = "ocid1.vaultsecret.oc1.iad.amaaaaaahqssvraa4ynbujkfzbzwvqasvmj4wxy7ipnhcgyfpqbl7ro2xboq"


def test_an_ocid_is_type_realm_region_optional_future_use_and_a_unique_part() -> None:
    ocid = parse_ocid(SECRET, ("vaultsecret",))
    assert (ocid.type, ocid.realm, ocid.region) == ("vaultsecret", "oc1", "iad")
    assert (
        parse_ocid("ocid1.tenancy.oc1..aaaaaaaa7mgkrn4hi7xmykn525wmqxf33yu75nhrk6n3onhhi7ezvq6mx4hq").region
        == ""
    )
    # A future-use segment (OCI docs, "Resource Identifiers"): the settings' old pattern refused it.
    assert is_ocid("ocid1.subnet.oc1.iad.future1.aaaaaaaabbbbbbbbccccccccdddddddd")
    with pytest.raises(InvalidId) as caught:
        parse_ocid(SECRET, ("subnet",))
    assert (caught.value.reason, caught.value.accepted) == (
        "an OCID of a vaultsecret",
        "an OCID of a subnet (ocid1.subnet...)",
    )


@pytest.mark.parametrize(
    "value",
    [
        # The launcher's old pattern took dots and underscores in the unique part and any realm word.
        "ocid1.vaultsecret.oc1.iad.abc_def.ghi",
        "ocid1.vaultsecret.realm.iad.amaaaaaahqssvraa4ynbujkfzbzwvqasvmj4wxy7",
        # Too short a unique part: nothing Oracle issues.
        "ocid1.vaultsecret.oc1.iad.short",
        "OCID1.vaultsecret.oc1.iad.amaaaaaahqssvraa4ynbujkfzbzwvqasvmj4wxy7",
    ],
)
def test_the_launcher_and_the_training_job_refuse_the_same_secret_ocids(value: str) -> None:
    assert not is_ocid(value, ("vaultsecret",))
    with pytest.raises(launcher.LaunchError, match="is not a Vault secret OCID"):
        launcher.read_config(
            {"ENGINE": "vllm", "MODEL": "meta-llama/Llama-2-7b-chat-hf", "TOKEN_SECRET_ID": value}
        )
    with pytest.raises(ArgsError, match=r"^--hf-token-secret-id .*: give a Vault secret OCID"):
        FineTuneArgs(base_model="org/m", dataset="d.jsonl", output="out", hf_token_secret_id=value)


def test_a_good_secret_ocid_passes_both() -> None:
    config = launcher.read_config({"ENGINE": "vllm", "MODEL": "org/m", "TOKEN_SECRET_ID": SECRET})
    assert config.token_secret_id == SECRET
    args = FineTuneArgs(base_model="org/m", dataset="d.jsonl", output="out", hf_token_secret_id=SECRET)
    assert findings(args) == []


def test_object_uris_have_one_namespace_rule() -> None:
    uri = parse_object_uri("oci://llm-models@acme/llama/7b/")
    assert (uri.bucket, uri.namespace, uri.path, uri.prefix) == (
        "llm-models",
        "acme",
        "llama/7b/",
        "llama/7b",
    )
    assert uri.object_name("config.json") == "llama/7b/config.json"
    assert parse_object_uri("oci://b@ns/m.zip").is_zip
    # Namespaces are lower case (OCI docs, "Object Storage Namespaces"); the training job's old pattern
    # took upper case and dots, the settings' and the upload's did not.
    for value in ("oci://b@Acme/x", "oci://b@ns.a/x", "s3://b/x", "oci://b@ns/a/../c", "oci://b@ns/a//c"):
        with pytest.raises(InvalidId):
            parse_object_uri(value)
    with pytest.raises(InvalidId, match="oci://<bucket>@<namespace>/<prefix>") as caught:
        parse_object_uri("oci://b@ns", need_path=True)
    assert caught.value.reason == "no object name or prefix after the namespace"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("meta-llama/Llama-2-7b-chat-hf", True),
        ("mistralai/Mistral-7B-Instruct-v0.2", True),
        ("gpt2", False),  # the launcher's old pattern took a name without its org; settings did not
        ("org/a--b", False),  # the hub refuses '--' and '..' (huggingface_hub validate_repo_id)
        ("org/a..b", False),
        ("org/name-", False),
        ("/abs/path", False),
    ],
)
def test_hugging_face_ids_one_rule_for_settings_and_launcher(value: str, ok: bool) -> None:
    assert is_hf_id(value) is ok
    if ok:
        assert launcher.read_config({"ENGINE": "vllm", "MODEL": value}).model == value
    elif not value.startswith("/"):
        with pytest.raises(
            launcher.LaunchError, match="neither a folder in the container nor a Hugging Face id"
        ):
            launcher.read_config({"ENGINE": "vllm", "MODEL": value})


def test_image_references_and_repositories() -> None:
    digest = "sha256:" + "a" * 64
    image = parse_image(f"iad.ocir.io/ns/llm/serving-dev:v1@{digest}", need_tag=True, need_ocir=True)
    assert (image.host, image.path, image.tag, image.digest, image.is_ocir) == (
        "iad.ocir.io",
        "ns/llm/serving-dev",
        "v1",
        digest,
        True,
    )
    assert str(image) == f"iad.ocir.io/ns/llm/serving-dev:v1@{digest}"
    assert image_digest("iad.ocir.io/ns/r:v1") is None and image_digest("not an image") is None
    with pytest.raises(InvalidId, match="OCI needs the tag"):
        parse_image(f"iad.ocir.io/ns/r@{digest}", need_tag=True)
    with pytest.raises(InvalidId, match="OCI Container Registry"):
        parse_image("docker.io/library/python:3.11", need_ocir=True)
    # `make image` and the settings now share one repository grammar: '..' or a trailing '-' is refused.
    assert (
        image_tool.check_repository("iad.ocir.io/ns/llm/serving-dev", "REPO")
        == "iad.ocir.io/ns/llm/serving-dev"
    )
    for bad in ("iad.ocir.io/ns/llm..x", "iad.ocir.io/ns/x-", "iad.ocir.io/NS/x", "iad.ocir.io"):
        with pytest.raises(image_tool.ImageError, match="is not an image repository"):
            image_tool.check_repository(bad, "REPO")


def test_engines_and_auth_modes_are_defined_once() -> None:
    assert ENGINES == ("vllm", "tgi")
    assert launcher.ENGINES is ENGINES and image_tool.ENGINES is ENGINES
    assert AUTH_MODES[-1] == "none" and "none" not in SIGNING_AUTH_MODES
    assert set(SIGNING_AUTH_MODES) | {"none"} == set(AUTH_MODES)
