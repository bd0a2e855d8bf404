"""Issue 14, point 5: a first deploy with a custom image in a fresh tenancy, as README "Deploying" walks it:
`make bootstrap` creates only the stack's OCIR repository (`pulumi up --target` its URN), `make image` pushes
only into a repository that exists in the stack's compartment (checked with the Artifacts API), then
`llmstack preflight` and `pulumi up`. Run here as far as it goes offline: the Pulumi CLI is a stub that
records its arguments, OCI is the loopback fake, docker a stub that reports a digest."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llmstack.cli import main
from tests.conftest import COMPARTMENT, PROJECT_DIR
from tests.fakeoci import FakeOci, TestIdentity
from tests.fakeoci.tenancy import Identity

README = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")


def make(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    stamp = tmp_path / "stamp"
    stamp.touch()
    environ = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    return subprocess.run(
        ["make", "--no-print-directory", "-s", *args, f"STAMP={stamp}", f"BIN={Path(sys.executable).parent}"],
        env={**environ, **env},
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        timeout=120,
    )


def test_bootstrap_targets_only_the_stacks_repository(tmp_path: Path) -> None:
    pulumi = tmp_path / "pulumi"
    pulumi.write_text('#!/bin/sh\necho "$@"\n')
    pulumi.chmod(0o755)
    result = make("bootstrap", "STACK=dev", f"PULUMI={pulumi}", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    args = result.stdout.split()
    assert args[:5] == ["up", "-s", "dev", "--yes", "--target"]
    urn = args[5]
    assert urn.startswith("urn:pulumi:dev::oci-llm-stack::")
    assert urn.endswith("$oci:Artifacts/containerRepository:ContainerRepository::llm-registry-repository")


def test_the_first_plan_takes_an_image_by_tag_before_its_digest_exists(tmp_path: Path) -> None:
    """Before `make image` there is no digest: the stack file names the repository and a tag (a custom
    image; the shipped dev stack runs the service container and needs none)."""
    stack = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.dev.yaml").read_text())
    model = stack["config"]["oci-llm-stack:models"]["llama2-7b-chat"]
    model["serving"]["image"] = "iad.ocir.io/idxyzabc1234/llm/serving-dev:vllm-3f9c2e1"
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(yaml.safe_dump(stack))
    assert (
        main(["image-repository", "--project-dir", str(PROJECT_DIR), "--stack-file", str(path), "--urn"]) == 0
    )


@pytest.fixture
def account(fake_oci: FakeOci, oci_identity: TestIdentity, tmp_path: Path) -> Path:
    """The dev stack pointed at the fake account."""
    stack = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.dev.yaml").read_text())
    stack["config"]["oci-llm-stack:auth"] = {"configFile": str(oci_identity.config_file)}
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(yaml.safe_dump(stack))
    return path


def image_repository(
    account: Path, fake_oci: FakeOci, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    argv = ["image-repository", "--project-dir", str(PROJECT_DIR), "--stack-file", str(account)]
    code = main([*argv, "--endpoint", fake_oci.endpoint])
    out, err = capsys.readouterr()
    return code, out, err


def test_make_image_refuses_a_repository_missing_from_the_stacks_compartment(
    account: Path, fake_oci: FakeOci, capsys: pytest.CaptureFixture[str]
) -> None:
    identity = fake_oci.service(Identity)
    identity.add_repository("ocid1.tenancy.oc1..root", "llm/serving-dev")  # what a bare `docker push` makes
    code, out, err = image_repository(account, fake_oci, capsys)
    assert (code, out) == (1, "")
    assert "OCIR repository 'llm/serving-dev' does not exist in compartment" in err
    assert "make bootstrap STACK=dev" in err

    identity.add_repository(COMPARTMENT, "llm/serving-dev")  # what `make bootstrap` creates
    code, out, err = image_repository(account, fake_oci, capsys)
    assert code == 0, err
    assert out == f"iad.ocir.io/{fake_oci.namespace}/llm/serving-dev\n"


def test_the_readme_walks_the_first_deploy_in_commands_that_exist() -> None:
    section = README[README.index("## Deploying") :]
    section = section[: section.index("\n## ", 5)]
    blocks = [
        [
            line.split("#")[0].strip()
            for line in block.splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
        for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    ]
    commands = [c for block in blocks for c in block]
    # First the default path (the service container: no Docker, no image), then the custom image's walk.
    default, custom = ([c.split()[0:2] for c in block] for block in blocks[:2])
    assert ["llmstack", "preflight"] in default and ["pulumi", "up"] in default
    assert not [c for c in default if c[0] == "docker" or c == ["make", "image"]], blocks[0]
    want = [["make", "bootstrap"], ["make", "image"], ["llmstack", "preflight"], ["pulumi", "up"]]
    positions = [custom.index(w) for w in want]
    assert positions == sorted(positions), blocks[1]
    targets = set(re.findall(r"^([a-z-]+):", (PROJECT_DIR / "Makefile").read_text(), flags=re.M))
    for command in commands:
        words = command.split()
        if words[0] == "make":
            assert words[1] in targets, command
        if words[0] == "llmstack":
            from llmstack.cli import build_parser

            assert words[1] in build_parser()._subparsers._group_actions[0].choices, command  # type: ignore[union-attr]
