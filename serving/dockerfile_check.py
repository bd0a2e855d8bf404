"""The serving images' house rules, checked next to hadolint in `make test`.

hadolint checks Dockerfile hygiene in general; these are the rules OCI's bring-your-own-container
contract and this project add, for `serving/<engine>/Dockerfile`:
- every base image pinned to a version tag (or a digest), never `latest`, and the final one the
  engine's official image;
- `ENV ENGINE=<engine>` (the folder's name), the launcher as an exec-form ENTRYPOINT;
- `EXPOSE 8080` (OCI's default port) and a non-root `USER`;
- no secret baked in (ENV or ARG named like a token, key or password with a value);
- the project's code from its package (a wheel built in a stage), never single files copied by hand;
- in the TGI image's final stage, no pip: its venv has none (TGI's `uv sync --frozen` removes every package
  its uv.lock lacks, pip included), so packages go in with the image's own `uv pip install --python ...`.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

OFFICIAL_IMAGES = {
    "vllm": "vllm/vllm-openai",
    "tgi": "ghcr.io/huggingface/text-generation-inference",
}
LAUNCHER_ENTRYPOINT = ["python3", "-m", "serving.launcher"]
PROJECT_PACKAGES = {"domain", "oci_runtime", "serving", "components", "llmstack", "policy", "training"}
PORT = "8080"
ROOT_USERS = {"root", "0"}
_VERSION_TAG = re.compile(r"^v?\d+(\.\d+)+([.+-][A-Za-z0-9.]+)*$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_PIP_COMMAND = re.compile(r"(?<![\w/.-])(?:[\w/.-]*/)?(?:python3?(?:\.\d+)?\s+-m\s+pip|pip3?)\s+install\b")
_UV_PIP = re.compile(r"(?<![\w/.-])(?:[\w/.-]*/)?uv\s+pip\s+install\b")
_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|PRIVATE_?KEY)", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    arguments: str


def instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    found: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        joined = " ".join(part for part in pending if part)
        pending = []
        keyword, _, arguments = joined.partition(" ")
        found.append(Instruction(start, keyword.upper(), arguments.strip()))
    if pending:
        joined = " ".join(part for part in pending if part)
        keyword, _, arguments = joined.partition(" ")
        found.append(Instruction(start, keyword.upper(), arguments.strip()))
    return found


def env_pairs(arguments: str) -> list[tuple[str, str]]:
    """`ENV A=1 B="two words"` or the legacy `ENV A 1` as (name, value) pairs."""
    words = shlex.split(arguments)
    if words and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]
    return [(name, value) for name, _, value in (word.partition("=") for word in words)]


def problems(path: Path, text: str | None = None) -> list[str]:
    """What is wrong with one serving Dockerfile, one line each with its location."""
    engine = path.parent.name
    text = path.read_text(encoding="utf-8") if text is None else text
    found = instructions(text)
    issues: list[str] = []

    def say(line: int, message: str) -> None:
        issues.append(f"{path}:{line}: {message}")

    if engine not in OFFICIAL_IMAGES:
        say(1, f"the folder {engine!r} is not an engine; accepted: {', '.join(OFFICIAL_IMAGES)}")
        return issues

    stages: list[str] = []
    bases: list[tuple[Instruction, str]] = []
    for item in found:
        if item.keyword != "FROM":
            continue
        words = [word for word in item.arguments.split() if not word.startswith("--")]
        image = words[0] if words else ""
        bases.append((item, image))
        earlier_stage = image.lower() in stages
        if len(words) >= 3 and words[1].lower() == "as":
            stages.append(words[2].lower())
        if earlier_stage:
            continue
        name, tag, digest = _split_reference(image)
        if digest is not None and not _DIGEST.match(digest):
            say(item.line, f"base image {image!r} has a malformed digest; accepted: @sha256:<64 hex digits>")
        elif digest is None and (tag is None or tag == "latest" or not _VERSION_TAG.match(tag)):
            say(
                item.line,
                f"base image {image!r} is not pinned; accepted: a version tag such as :1.2.3 or a digest",
            )
    if not bases:
        say(1, "no FROM instruction")
    else:
        final, final_image = bases[-1]
        final_name = _split_reference(final_image)[0]
        if final_name != OFFICIAL_IMAGES[engine]:
            say(final.line, f"the final base image is {final_name!r}; accepted: {OFFICIAL_IMAGES[engine]}")

    env: dict[str, str] = {}
    for item in found:
        if item.keyword == "ENV":
            for name, value in env_pairs(item.arguments):
                env[name] = value
                if _SECRET_NAME.search(name) and value:
                    say(item.line, f"ENV {name} bakes a secret into the image; pass it at run time instead")
        elif item.keyword == "ARG":
            name, _, value = item.arguments.partition("=")
            if _SECRET_NAME.search(name) and value:
                say(
                    item.line,
                    f"ARG {name} has a default that looks like a secret; pass it at run time instead",
                )
    final_stage = found[max((i for i, item in enumerate(found) if item.keyword == "FROM"), default=0) :]
    for item in final_stage:
        if item.keyword in ("COPY", "ADD") and "--from" not in item.arguments:
            sources = item.arguments.split()[:-1]
            if any(src.endswith(".py") or src.rstrip("/") in PROJECT_PACKAGES for src in sources):
                say(
                    item.line,
                    "the project's code copied by hand; accepted: its package, built in a stage "
                    "(pip wheel .) and installed with COPY --from",
                )
    if engine == "tgi":
        for item in final_stage:
            if item.keyword == "RUN" and _PIP_COMMAND.search(_UV_PIP.sub("", item.arguments)):
                say(
                    item.line,
                    "pip install in the TGI image: its venv has no pip (uv sync removes it); "
                    "accepted: /bin/uv pip install --python /usr/src/.venv/bin/python ...",
                )
    if env.get("ENGINE") != engine:
        say(1, f"ENV ENGINE is {env.get('ENGINE')!r}; accepted: {engine!r} (the folder's engine)")

    exposed = [
        word.split("/")[0] for item in found if item.keyword == "EXPOSE" for word in item.arguments.split()
    ]
    if PORT not in exposed:
        say(1, f"EXPOSE {PORT} is missing (OCI's default port)")

    users = [item for item in found if item.keyword == "USER"]
    if not users:
        say(1, "no USER: the image would run as root; accepted: a non-root user")
    elif users[-1].arguments.split(":")[0] in ROOT_USERS:
        say(users[-1].line, f"USER {users[-1].arguments} is root; accepted: a non-root user")

    entrypoints = [item for item in found if item.keyword == "ENTRYPOINT"]
    if not entrypoints:
        say(1, f"no ENTRYPOINT; accepted: {json.dumps(LAUNCHER_ENTRYPOINT)}")
    else:
        last = entrypoints[-1]
        try:
            form = json.loads(last.arguments)
        except ValueError:
            form = None
        if not isinstance(form, list):
            say(
                last.line,
                "ENTRYPOINT is in shell form (signals would not reach the launcher); use the exec form",
            )
        elif form != LAUNCHER_ENTRYPOINT:
            say(last.line, f"ENTRYPOINT is {json.dumps(form)}; accepted: {json.dumps(LAUNCHER_ENTRYPOINT)}")
    if any(item.keyword == "CMD" for item in found):
        say(
            next(item.line for item in found if item.keyword == "CMD"),
            "CMD is set; the launcher needs no default arguments (its settings come from ENV)",
        )
    return issues


def _split_reference(image: str) -> tuple[str, str | None, str | None]:
    """(name, tag, digest) of an image reference; the tag's colon is told from a registry port."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    return name, tag, digest or None


def main(argv: Sequence[str] | None = None) -> int:
    paths = [Path(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        print("usage: python -m serving.dockerfile_check serving/<engine>/Dockerfile ...", file=sys.stderr)
        return 2
    issues = [issue for path in paths for issue in problems(path)]
    for issue in issues:
        print(issue, file=sys.stderr)
    if not issues:
        print(f"{len(paths)} Dockerfile(s) follow the serving image rules")
    return 1 if issues else 0


if __name__ == "__main__":
    sys.exit(main())
