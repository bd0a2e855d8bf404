"""`make image`: the commands it runs, the repository it pushes to, the digest it prints, and its errors.

No container engine runs here: stand-ins for docker, podman and pulumi on PATH record their arguments
and answer as the real tools do, so the real code runs end to end.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REPO = "iad.ocir.io/mytenancy/llm/vllm"
DIGEST = "sha256:" + "ab12" * 16

TOOL = """#!{python}
# A stand-in for {name}: records its arguments; answers like the real tool.
import json, os, sys
with open({log!r}, "a") as out:
    out.write(json.dumps([{name!r}, *sys.argv[1:]]) + "\\n")
args = sys.argv[1:]
fail = os.environ.get("FAKE_FAIL", "")
if fail and args[:1] == [fail]:
    print("unauthorized: authentication required", file=sys.stderr)
    sys.exit(1)
if {name!r} == "pulumi":
    if os.environ.get("FAKE_PULUMI") == "missing-stack":
        print("error: no stack named 'nope' found", file=sys.stderr)
        sys.exit(255)
    print({repo!r})
elif args[:2] == ["image", "inspect"]:
    print(json.dumps(["other.ocir.io/x/y@sha256:" + "0" * 64, {repo!r} + "@" + {digest!r}]))
elif args[:1] == ["push"] and "--digestfile" in args:
    with open(args[args.index("--digestfile") + 1], "w") as out:
        out.write({digest!r})
else:
    print({name!r} + " " + " ".join(args) + ": done")
"""


def tools(tmp_path: Path, *names: str) -> tuple[Path, Path]:
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    log = tmp_path / "calls.jsonl"
    for name in names:
        path = folder / name
        path.write_text(TOOL.format(python=sys.executable, name=name, log=str(log), repo=REPO, digest=DIGEST))
        path.chmod(0o755)
    return folder, log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def run_image(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving.image", *args],
        env={"PATH": str(folder), **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_docker_builds_pushes_to_the_stacks_repository_and_prints_the_digest(tmp_path: Path) -> None:
    folder, log = tools(tmp_path, "docker", "pulumi")
    result = run_image(folder, "--engine", "tgi", "--stack", "staging", "--tag", "tgi-abc")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{REPO}:tgi-abc@{DIGEST}\n"  # OCI takes <repo>:<tag>, pinned by @digest
    reference = f"{REPO}:tgi-abc"
    assert calls(log) == [
        ["pulumi", "stack", "output", "imageRepository", "-s", "staging"],
        [
            "docker",
            "build",
            "--platform",
            "linux/amd64",
            "--provenance=false",  # one image manifest, not an index with an attestation entry
            "--sbom=false",
            "-f",
            "serving/tgi/Dockerfile",
            "-t",
            reference,
            ".",
        ],
        ["docker", "push", reference],
        ["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", reference],
    ]
    assert "docker push" in result.stderr  # the tools' own output stays off stdout


def test_podman_is_used_when_docker_is_absent_and_its_digest_file_is_read(tmp_path: Path) -> None:
    folder, log = tools(tmp_path, "podman")
    result = run_image(folder, "--engine", "vllm", "--repo", REPO, "--tag", "v1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{REPO}:v1@{DIGEST}\n"
    pushed = calls(log)[-1]
    assert pushed[:3] == ["podman", "push", "--digestfile"] and pushed[-1] == f"{REPO}:v1"
    assert not any(word.startswith(("--provenance", "--sbom")) for word in calls(log)[0])  # not podman's


def test_a_docker_build_attaches_no_attestation_so_the_pushed_digest_is_one_manifest(tmp_path: Path) -> None:
    folder, _ = tools(tmp_path)
    result = run_image(folder, "--engine", "vllm", "--repo", REPO, "--tag", "v1", "--dry-run")
    build = shlex.split(result.stdout.splitlines()[0])
    assert build[:2] == ["docker", "build"] and {"--provenance=false", "--sbom=false"} <= set(build)


def test_container_tool_picks_one_explicitly(tmp_path: Path) -> None:
    folder, log = tools(tmp_path, "docker", "podman")
    result = run_image(folder, "--engine", "vllm", "--repo", REPO, "--tag", "v1", CONTAINER_TOOL="podman")
    assert result.returncode == 0, result.stderr
    assert {call[0] for call in calls(log)} == {"podman"}


def test_the_default_tag_names_the_engine_and_the_commit(tmp_path: Path) -> None:
    folder, log = tools(tmp_path, "docker")
    git = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    env_path = f"{folder}{os.pathsep}{os.environ['PATH']}"
    result = subprocess.run(
        [sys.executable, "-m", "serving.image", "--engine", "vllm", "--repo", REPO, "--dry-run"],
        env={"PATH": env_path},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    tag = shlex.split(result.stdout.splitlines()[0])[-2].split(":")[-1]
    assert tag.startswith(f"vllm-{git.stdout.strip()}")
    assert calls(log) == []  # a dry run runs nothing


def test_a_dry_run_prints_the_commands_without_any_tool_installed(tmp_path: Path) -> None:
    folder, _ = tools(tmp_path)
    result = run_image(folder, "--engine", "vllm", "--repo", REPO, "--tag", "v1", "--dry-run")
    assert result.returncode == 0
    assert [shlex.split(line)[:2] for line in result.stdout.splitlines()] == [
        ["docker", "build"],
        ["docker", "push"],
        ["docker", "image"],
    ]
    assert "neither docker nor podman" in result.stderr and f"{REPO}:v1@sha256:<digest>" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "present", "message"),
    [
        (["--engine", "vllm", "--repo", REPO], {}, (), "neither docker nor podman is on PATH"),
        (
            ["--engine", "triton", "--repo", REPO],
            {},
            ("docker",),
            "ENGINE='triton' is not an engine; accepted: vllm, tgi",
        ),
        (["--engine", "vllm"], {}, ("docker",), "pulumi CLI is not on PATH; install it, or pass REPO="),
        (
            ["--engine", "vllm", "--stack", "nope"],
            {"FAKE_PULUMI": "missing-stack"},
            ("docker", "pulumi"),
            "no stack named 'nope' found",
        ),
        (["--engine", "vllm", "--repo", f"{REPO}:latest"], {}, ("docker",), "without a tag or digest"),
        (
            ["--engine", "vllm", "--repo", "https://iad.ocir.io/x"],
            {},
            ("docker",),
            "is not an image repository",
        ),
        (
            ["--engine", "vllm", "--repo", REPO, "--tag", "a b"],
            {},
            ("docker",),
            "TAG='a b' is not an image tag",
        ),
        (
            ["--engine", "vllm", "--repo", REPO, "--tag", "v1"],
            {"CONTAINER_TOOL": "nerdctl"},
            ("docker",),
            "nerdctl",
        ),
        (
            ["--engine", "vllm", "--repo", REPO, "--tag", "v1"],
            {"FAKE_FAIL": "push"},
            ("docker",),
            "docker login iad.ocir.io -u '<namespace>/<user name>'",
        ),
        (
            ["--engine", "vllm", "--repo", REPO, "--tag", "v1"],
            {"FAKE_FAIL": "build"},
            ("docker",),
            "see the build",
        ),
    ],
)
def test_a_problem_is_one_line_and_nothing_is_printed_as_a_digest(
    tmp_path: Path, args: list[str], env: dict[str, str], present: tuple[str, ...], message: str
) -> None:
    folder, _ = tools(tmp_path, *present)
    result = run_image(folder, *args, **env)
    assert result.returncode == 2
    assert result.stdout == ""
    last = result.stderr.splitlines()[-1]
    assert last.startswith("make image: ") and message in last
    assert "Traceback" not in result.stderr


def make(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`make` in the repository with an up-to-date install stamp, so no install runs here."""
    stamp = tmp_path / "stamp"
    stamp.touch()
    env = {key: value for key, value in os.environ.items() if key not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    return subprocess.run(
        ["make", "--no-print-directory", "-s", *args, f"STAMP={stamp}", f"BIN={Path(sys.executable).parent}"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_make_image_passes_engine_stack_repo_and_tag_through(tmp_path: Path) -> None:
    result = make("image", "ENGINE=tgi", f"REPO={REPO}", "TAG=tgi-1", "DRY_RUN=1", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert shlex.split(result.stdout.splitlines()[0])[-5:] == [
        "-f",
        "serving/tgi/Dockerfile",
        "-t",
        f"{REPO}:tgi-1",
        ".",
    ]


def test_make_image_without_engine_says_what_is_accepted(tmp_path: Path) -> None:
    result = make("image", f"REPO={REPO}", "DRY_RUN=1", tmp_path=tmp_path)
    assert result.returncode != 0
    assert "make image: ENGINE='' is not an engine; accepted: vllm, tgi" in result.stderr
