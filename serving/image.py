"""`make image`: build a serving image, push it to the stack's OCIR repository, print its digest.

The repository comes from `pulumi stack output imageRepository -s <stack>` (`<region-key>.ocir.io/
<namespace>/<repo>`) unless `--repo` names one. Docker is used when it is on PATH, else Podman
(`CONTAINER_TOOL` picks one). Stdout carries one line, the reference to put in `serving.image`:
`<repository>:<tag>@sha256:<digest>` (OCI wants the tag; the digest pins it); everything the tools print
goes to stderr. `--dry-run` prints the
commands instead, and needs neither tool installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from domain.ids import ENGINES, IMAGE_TAG, REPOSITORY_NAME

TOOLS = ("docker", "podman")
PLATFORM = "linux/amd64"  # OCI's GPU shapes
STACK_OUTPUT = "imageRepository"
# BuildKit (docker build since Docker 23) attaches a provenance attestation by default where the image
# store can hold one (the containerd store, a docker-container builder): the pushed tag is then an index
# with an `unknown/unknown` entry, not one image manifest. These flags keep it a single manifest; they
# need BuildKit (not DOCKER_BUILDKIT=0). Podman attaches none and has no such flags.
NO_ATTESTATIONS = {"docker": ("--provenance=false", "--sbom=false")}
ROOT = Path(__file__).resolve().parent.parent

_REGISTRY_HOST = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?$")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

Runner = Callable[[list[str]], subprocess.CompletedProcess[str]]


class ImageError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


@dataclass(frozen=True, kw_only=True)
class ImagePlan:
    tool: str
    engine: str
    repository: str
    tag: str

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"

    def build(self) -> list[str]:
        dockerfile = str(Path("serving") / self.engine / "Dockerfile")
        flags = ["--platform", PLATFORM, *NO_ATTESTATIONS.get(self.tool, ())]
        return [self.tool, "build", *flags, "-f", dockerfile, "-t", self.reference, "."]

    def push(self, digest_file: str | None = None) -> list[str]:
        if self.tool == "podman":
            return [self.tool, "push", "--digestfile", digest_file or "<digest-file>", self.reference]
        return [self.tool, "push", self.reference]

    def inspect(self) -> list[str]:
        return [self.tool, "image", "inspect", "--format", "{{json .RepoDigests}}", self.reference]


def container_tool(
    env: dict[str, str] | os._Environ[str], which: Callable[[str], str | None] = shutil.which
) -> str:
    """docker, else podman; CONTAINER_TOOL names one explicitly."""
    chosen = env.get("CONTAINER_TOOL", "").strip()
    if chosen:
        if chosen not in TOOLS:
            raise ImageError(f"CONTAINER_TOOL={chosen!r} is not supported; accepted: {', '.join(TOOLS)}")
        if which(chosen) is None:
            raise ImageError(f"CONTAINER_TOOL={chosen!r} but {chosen} is not on PATH")
        return chosen
    for tool in TOOLS:
        if which(tool) is not None:
            return tool
    raise ImageError("neither docker nor podman is on PATH; install one of them to build the serving images")


def check_repository(repository: str, source: str) -> str:
    repository = repository.strip()
    host, _, path = repository.partition("/")
    if not (_REGISTRY_HOST.match(host) and REPOSITORY_NAME.match(path)):
        raise ImageError(
            f"{source}={repository!r} is not an image repository; "
            f"accepted: <region-key>.ocir.io/<namespace>/<repo> in lower case, without a tag or digest"
        )
    return repository


def stack_repository(stack: str, run: Runner) -> str:
    """The repository the core stack exports, read with the Pulumi CLI."""
    command = ["pulumi", "stack", "output", STACK_OUTPUT, "-s", stack]
    try:
        result = run(command)
    except FileNotFoundError:
        raise ImageError(
            "the pulumi CLI is not on PATH; install it, or pass REPO=<region-key>.ocir.io/<namespace>/<repo>"
        ) from None
    if result.returncode != 0:
        said = (result.stderr or result.stdout or "").strip().splitlines()
        raise ImageError(
            f"`{shlex.join(command)}` failed ({said[-1] if said else f'exit {result.returncode}'}); "
            f"run `pulumi up -s {stack}` first, or pass REPO=<region-key>.ocir.io/<namespace>/<repo>"
        )
    repository = result.stdout.strip()
    if not repository:
        raise ImageError(f"stack {stack!r} has no {STACK_OUTPUT} output; run `pulumi up -s {stack}` first")
    return check_repository(repository, f"stack output {STACK_OUTPUT}")


def default_tag(engine: str, run: Runner) -> str:
    """`<engine>-<commit>` (`-dirty` when the work tree has changes); a UTC timestamp outside git."""
    try:
        head = run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"])
        status = run(["git", "-C", str(ROOT), "status", "--porcelain"])
    except FileNotFoundError:
        head = status = subprocess.CompletedProcess([], 1, "", "")
    if head.returncode == 0 and status.returncode == 0 and head.stdout.strip():
        return f"{engine}-{head.stdout.strip()}{'-dirty' if status.stdout.strip() else ''}"
    return f"{engine}-{datetime.now(UTC):%Y%m%d%H%M%S}"


def digest_reference(repository: str, repo_digests_json: str) -> str:
    """`<repository>@sha256:...` out of `docker image inspect`'s RepoDigests."""
    try:
        digests = json.loads(repo_digests_json or "null") or []
    except ValueError:
        digests = []
    for entry in digests:
        if (
            isinstance(entry, str)
            and entry.startswith(f"{repository}@")
            and _DIGEST.fullmatch(entry.split("@", 1)[1])
        ):
            return entry
    raise ImageError(
        f"the registry reported no digest for {repository} after the push; check `docker push` above"
    )


def pinned(plan: ImagePlan, reference: str) -> str:
    """`<repository>:<tag>@sha256:...`: the form OCI takes for a deployment's image (tag required)."""
    return f"{plan.repository}:{plan.tag}@{reference.split('@', 1)[1]}"


def _tool_env() -> dict[str, str]:
    # Also off for a buildx that takes its defaults from the environment rather than the flags.
    return {**os.environ, "BUILDX_NO_DEFAULT_ATTESTATIONS": "1"}


def _capture(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT, env=_tool_env())


def _stream(command: list[str]) -> subprocess.CompletedProcess[str]:
    # The tools' progress goes to stderr so that stdout carries only the digest reference.
    return subprocess.run(command, stdout=sys.stderr, text=True, check=False, cwd=ROOT, env=_tool_env())


def build_and_push(plan: ImagePlan, *, capture: Runner = _capture, stream: Runner = _stream) -> str:
    """Run the build and the push; the digest reference of what was pushed."""
    if stream(plan.build()).returncode != 0:
        raise ImageError(f"`{shlex.join(plan.build())}` failed; see the build output above")
    if plan.tool == "podman":
        with tempfile.TemporaryDirectory() as folder:
            digest_file = str(Path(folder) / "digest")
            if stream(plan.push(digest_file)).returncode != 0:
                raise ImageError(_push_failed(plan))
            digest = Path(digest_file).read_text(encoding="utf-8").strip()
        if not _DIGEST.fullmatch(digest):
            raise ImageError(f"podman wrote no digest for {plan.reference}")
        return f"{plan.repository}:{plan.tag}@{digest}"
    if stream(plan.push()).returncode != 0:
        raise ImageError(_push_failed(plan))
    inspected = capture(plan.inspect())
    if inspected.returncode != 0:
        raise ImageError(f"`{shlex.join(plan.inspect())}` failed: {inspected.stderr.strip()}")
    return pinned(plan, digest_reference(plan.repository, inspected.stdout))


def _push_failed(plan: ImagePlan) -> str:
    registry = plan.repository.split("/", 1)[0]
    return (
        f"pushing {plan.reference} failed; log in first: {plan.tool} login {registry} "
        f"-u '<namespace>/<user name>' with an OCI auth token as the password"
    )


def main(argv: Sequence[str] | None = None, *, capture: Runner = _capture, stream: Runner = _stream) -> int:
    parser = argparse.ArgumentParser(
        prog="make image",
        description="Build a serving image, push it to the stack's OCIR repository and print its digest.",
    )
    parser.add_argument("--engine", default="", help="vllm or tgi")
    parser.add_argument("--stack", default="dev", help="the stack whose imageRepository output is the target")
    parser.add_argument("--repo", default="", help="push here instead of the stack's repository")
    parser.add_argument("--tag", default="", help="image tag (default: <engine>-<git commit>)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    args = parser.parse_args(argv)
    try:
        engine = args.engine.strip()
        if engine not in ENGINES:
            raise ImageError(f"ENGINE={engine!r} is not an engine; accepted: {', '.join(ENGINES)}")
        try:
            tool = container_tool(os.environ)
        except ImageError as exc:
            if not args.dry_run:
                raise
            tool = os.environ.get("CONTAINER_TOOL", "").strip() or TOOLS[0]
            print(f"make image: {exc} (a real run stops here)", file=sys.stderr)
        if args.repo:
            repository = check_repository(args.repo, "REPO")
        else:
            repository = stack_repository(args.stack, capture)
        tag = args.tag.strip() or default_tag(engine, capture)
        if not IMAGE_TAG.match(tag):
            raise ImageError(
                f"TAG={tag!r} is not an image tag; accepted: letters, digits, '_', '.', '-' (max 128)"
            )
        plan = ImagePlan(tool=tool, engine=engine, repository=repository, tag=tag)
        if args.dry_run:
            print(shlex.join(plan.build()))
            print(shlex.join(plan.push()))
            if tool == "docker":
                print(shlex.join(plan.inspect()))
            print(
                f"make image: then set serving.image to {repository}:{tag}@sha256:<digest>", file=sys.stderr
            )
            return 0
        reference = build_and_push(plan, capture=capture, stream=stream)
    except ImageError as exc:
        print(f"make image: {exc}", file=sys.stderr)
        return 2
    print(f"make image: pushed {plan.reference}; set serving.image of the model to:", file=sys.stderr)
    print(reference)
    return 0


if __name__ == "__main__":
    sys.exit(main())
