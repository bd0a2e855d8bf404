"""The serving Dockerfiles and the project's own rules for them (hadolint runs in `make lint-docker`)."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from serving.dockerfile_check import env_pairs, instructions, problems
from tests.serving_fakes import free_port, write_fake_program

ROOT = Path(__file__).resolve().parent.parent
GOOD = """\
# a comment
FROM vllm/vllm-openai:v0.11.0
RUN useradd --uid 1000 app \\
    && mkdir -p /home/app
ENV ENGINE=vllm PORT=8080
USER 1000
EXPOSE 8080
ENTRYPOINT ["python3", "-m", "serving.launcher"]
"""
VLLM = Path("serving/vllm/Dockerfile")


@pytest.mark.parametrize("engine", ["vllm", "tgi"])
def test_the_shipped_dockerfiles_follow_the_rules(engine: str) -> None:
    assert problems(ROOT / "serving" / engine / "Dockerfile") == []


@pytest.mark.parametrize(
    ("engine", "base"),
    [("vllm", "vllm/vllm-openai:v"), ("tgi", "ghcr.io/huggingface/text-generation-inference:")],
)
def test_the_shipped_dockerfiles_start_from_the_engines_pinned_release(engine: str, base: str) -> None:
    text = (ROOT / "serving" / engine / "Dockerfile").read_text()
    *builders, line = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert re.fullmatch(rf"FROM {re.escape(base)}\d+\.\d+\.\d+", line), line
    # The one build stage makes the project's package, from a pinned Python.
    assert builders == ["FROM python:3.11.14-slim-bookworm AS package"]
    assert f"ENGINE={engine}" in text


def test_a_good_file_passes() -> None:
    assert problems(VLLM, GOOD) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("vllm/vllm-openai:v0.11.0", "vllm/vllm-openai:latest"), "is not pinned"),
        (("vllm/vllm-openai:v0.11.0", "vllm/vllm-openai"), "is not pinned"),
        (("vllm/vllm-openai:v0.11.0", "vllm/vllm-openai:nightly"), "is not pinned"),
        (("vllm/vllm-openai:v0.11.0", "vllm/vllm-openai@sha256:abc"), "malformed digest"),
        (("vllm/vllm-openai:v0.11.0", "nvidia/cuda:12.4.0-base-ubuntu22.04"), "accepted: vllm/vllm-openai"),
        (("ENGINE=vllm", "ENGINE=tgi"), "ENV ENGINE is 'tgi'"),
        (("EXPOSE 8080", "EXPOSE 5001"), "EXPOSE 8080 is missing"),
        (("USER 1000", "USER root"), "USER root is root"),
        (("USER 1000\n", ""), "no USER"),
        (
            ('ENTRYPOINT ["python3", "-m", "serving.launcher"]', "ENTRYPOINT python3 -m serving.launcher"),
            "shell form",
        ),
        (
            ('["python3", "-m", "serving.launcher"]', '["/bin/bash", "-c", "start.sh"]'),
            'accepted: ["python3"',
        ),
        (
            ("ENV ENGINE=vllm PORT=8080", "ENV ENGINE=vllm PORT=8080 HF_TOKEN=hf_abc"),
            "ENV HF_TOKEN bakes a secret",
        ),
        (("USER 1000", "ARG API_KEY=xyz\nUSER 1000"), "ARG API_KEY"),
    ],
)
def test_each_rule_names_the_line_and_what_is_accepted(change: tuple[str, str], message: str) -> None:
    found = problems(VLLM, GOOD.replace(*change))
    assert len(found) == 1, found
    assert found[0].startswith(f"{VLLM}:") and message in found[0]


def test_a_cmd_is_refused_because_the_launcher_takes_no_arguments() -> None:
    [found] = problems(VLLM, GOOD + 'CMD ["--dry-run"]\n')
    assert "CMD is set" in found and ":9:" in found


def test_a_digest_pin_and_earlier_stages_are_accepted() -> None:
    digest = "sha256:" + "0" * 64
    stages = [
        "FROM --platform=linux/amd64 python:3.11.9-slim AS tools",
        "FROM tools AS more",
        f"FROM vllm/vllm-openai@{digest}",
    ]
    text = GOOD.replace("FROM vllm/vllm-openai:v0.11.0", "\n".join(stages))
    assert problems(VLLM, text) == []


def test_a_registry_port_is_not_mistaken_for_a_tag() -> None:
    text = GOOD.replace("vllm/vllm-openai:v0.11.0", "localhost:5000/vllm/vllm-openai")
    assert any("is not pinned" in found for found in problems(VLLM, text))


def test_a_folder_that_is_not_an_engine_is_named() -> None:
    [found] = problems(Path("serving/triton/Dockerfile"), GOOD)
    assert "'triton' is not an engine" in found


def test_instructions_join_continuations_and_skip_comments() -> None:
    parsed = instructions(GOOD)
    assert [item.keyword for item in parsed] == ["FROM", "RUN", "ENV", "USER", "EXPOSE", "ENTRYPOINT"]
    assert parsed[1].arguments == "useradd --uid 1000 app && mkdir -p /home/app"
    assert parsed[1].line == 3
    assert env_pairs('A=1 B="two words"') == [("A", "1"), ("B", "two words")]
    assert env_pairs("PORT 8080") == [("PORT", "8080")]


def test_the_checker_exits_non_zero_with_one_line_per_problem(tmp_path: Path) -> None:
    bad = tmp_path / "vllm" / "Dockerfile"
    bad.parent.mkdir()
    bad.write_text(GOOD.replace("v0.11.0", "latest").replace("EXPOSE 8080", "EXPOSE 5001"))
    result = subprocess.run(
        [sys.executable, "-m", "serving.dockerfile_check", str(bad), str(ROOT / VLLM)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 2 and all(
        str(bad) in line for line in result.stderr.splitlines()
    )


SERVER_PACKAGES = (
    "uvicorn",
    "starlette",
    "httpx",
    "httpcore",
    "h11",
    "anyio",
    "idna",
    "certifi",
    "sniffio",
    "click",
    "typing_extensions",
)


@pytest.mark.parametrize("engine", ["vllm", "tgi"])
def test_the_files_the_image_copies_are_enough_to_run_the_launcher(engine: str, tmp_path: Path) -> None:
    """Build the package as the Dockerfile's `package` stage does (its COPY lines, `pip wheel`), install the
    wheel as the final stage does (`--no-deps --target`), then run the launcher from there alone
    (`python -S`: no site-packages, so nothing from this checkout's install can stand in)."""
    dockerfile = ROOT / "serving" / engine / "Dockerfile"
    stage: list[str] = []
    in_package = False
    for item in instructions(dockerfile.read_text()):
        if item.keyword == "FROM":
            in_package = item.arguments.lower().endswith(" as package")
        elif in_package and item.keyword == "COPY":
            stage += item.arguments.split()[:-1]
    assert {"pyproject.toml", "domain/", "oci_runtime/", "serving/"} <= set(stage)
    src = tmp_path / "src"
    for source in stage:
        origin = ROOT / source
        if origin.is_dir():
            shutil.copytree(origin, src / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy(origin, src / source)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = [
        *pip,
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--wheel-dir",
        str(tmp_path / "wheels"),
        str(src),
    ]
    subprocess.run(build, check=True, capture_output=True, timeout=120)
    code_root = tmp_path / "image" / "opt" / "oci-llm-stack"
    (wheel,) = (tmp_path / "wheels").glob("oci_llm_stack-*.whl")
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(code_root), str(wheel)], check=True, timeout=120
    )
    packages = {p.name for p in code_root.iterdir() if (p / "__init__.py").is_file()}
    assert packages == {"domain", "oci_runtime", "serving"}, packages  # only the layers the image runs
    program = {"vllm": "vllm", "tgi": "text-generation-launcher"}[engine]
    write_fake_program(tmp_path / "bin", program, engine)
    # The adapter's server comes from the image (vLLM ships uvicorn, starlette and httpx; the TGI image
    # vendors them): only those packages are laid out next to the copied code.
    image_packages = tmp_path / "image-packages"
    image_packages.mkdir()
    for name in SERVER_PACKAGES:
        module = importlib.import_module(name)
        origin = Path(module.__file__ or "")
        source = origin.parent if origin.name == "__init__.py" else origin
        (image_packages / source.name).symlink_to(source)
    env = {
        "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin",
        "PYTHONPATH": f"{code_root}:{image_packages}",
        "ENGINE": engine,
        "PORT": str(free_port()),
        "FAKE_ENGINE_RECORD": str(tmp_path / "record.json"),
        "HOME": str(tmp_path),  # the engine's cache folders go here, not in the real home
        "FAKE_ENGINE_MODE": "exit:0",
    }
    for args in (["--dry-run"], ["--engine-port", str(free_port())]):
        result = subprocess.run(
            [sys.executable, "-S", "-m", "serving.launcher", *args],
            env=env,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "record.json").exists()  # the real run started the engine


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's reading of .dockerignore for the patterns used here: the last matching line wins, and a
    line that matches a folder matches everything in it."""
    from fnmatch import fnmatchcase

    parts = path.split("/")
    prefixes = ["/".join(parts[:end]) for end in range(1, len(parts) + 1)]
    ignored = False
    for line in patterns:
        keep = line.startswith("!")
        pattern = line.removeprefix("!").rstrip("/")
        if pattern.startswith("**/"):
            matched = any(fnmatchcase(prefix.rsplit("/", 1)[-1], pattern[3:]) for prefix in prefixes)
        else:
            matched = any(fnmatchcase(prefix, pattern) for prefix in prefixes)
        if matched:
            ignored = not keep
    return ignored


def test_the_build_context_holds_what_the_images_copy_and_not_the_work_tree() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied: list[str] = []
    for folder in (ROOT / "serving" / "vllm", ROOT / "serving" / "tgi", ROOT / "training"):
        for item in instructions((folder / "Dockerfile").read_text()):
            if item.keyword == "COPY" and "--from" not in item.arguments:
                *sources, _ = item.arguments.split()
                for source in sources:
                    found = ROOT / source
                    files = [p for p in found.rglob("*") if p.is_file()] if found.is_dir() else [found]
                    copied += [p.relative_to(ROOT).as_posix() for p in files if "__pycache__" not in p.parts]
    assert "training/finetune.py" in copied and "serving/launcher.py" in copied
    assert [path for path in copied if dockerignored(path, patterns)] == []
    for local in (".venv/bin/python", "node_modules/x/y.js", "tests/test_launcher.py", "outputs.json"):
        assert dockerignored(local, patterns), local
    assert dockerignored("oci_runtime/__pycache__/retry.cpython-311.pyc", patterns)


@pytest.mark.parametrize(
    ("engine", "switches"),
    [
        ("vllm", ("VLLM_NO_USAGE_STATS=1", "DO_NOT_TRACK=1", "HF_HUB_DISABLE_TELEMETRY=1")),
        (
            "tgi",
            ("USAGE_STATS=off", "HF_HUB_DISABLE_TELEMETRY=1"),
        ),  # TGI reads --usage-stats from USAGE_STATS
    ],
)
def test_the_images_send_no_usage_statistics(engine: str, switches: tuple[str, ...]) -> None:
    text = (ROOT / "serving" / engine / "Dockerfile").read_text(encoding="utf-8")
    assert all(switch in text for switch in switches)


TGI = Path("serving/tgi/Dockerfile")
GOOD_TGI = GOOD.replace(
    "vllm/vllm-openai:v0.11.0", "ghcr.io/huggingface/text-generation-inference:3.3.7"
).replace("ENGINE=vllm", "ENGINE=tgi")


@pytest.mark.parametrize(
    "install",
    [
        "python3 -m pip install --no-cache-dir --target /opt/v oci==2.189.0",
        "pip install oci==2.189.0",
        "chmod 0755 /root && /usr/src/.venv/bin/python3.11 -m pip install oci==2.189.0",
    ],
)
def test_pip_is_refused_in_the_tgi_image_whose_venv_has_none(install: str) -> None:
    [found] = problems(TGI, GOOD_TGI.replace("USER 1000", f"RUN {install}\nUSER 1000"))
    assert "no pip (uv sync removes it)" in found and "/bin/uv pip install --python" in found


def test_uv_pip_is_accepted_in_the_tgi_image_and_pip_in_the_vllm_image() -> None:
    uv = "RUN /bin/uv pip install --no-cache --python /usr/src/.venv/bin/python --target /v oci==2.189.0\n"
    assert problems(TGI, GOOD_TGI.replace("USER 1000", uv + "USER 1000")) == []
    pip = "RUN python3 -m pip install --no-cache-dir --target /v oci==2.189.0\n"
    assert problems(VLLM, GOOD.replace("USER 1000", pip + "USER 1000")) == []


def test_the_tgi_image_installs_with_the_uv_binary_into_its_venvs_python() -> None:
    *_, run = [item for item in instructions((ROOT / TGI).read_text()) if item.keyword == "RUN"]
    assert "/bin/uv pip install --no-cache --python /usr/src/.venv/bin/python --target" in run.arguments


def test_the_training_image_pins_torchs_cuda_build_and_the_docs_name_its_driver() -> None:
    """PyPI's torch 2.13.0 is the CUDA 13.0 build (driver >= 580); the image pins the cu126 build from
    PyTorch's index (driver >= 525), at the version the train extra pins."""
    import tomllib

    train = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["train"]
    [torch_pin] = [dep for dep in train if dep.startswith("torch==")]
    version = torch_pin.removeprefix("torch==")
    [run] = [
        item for item in instructions((ROOT / "training/Dockerfile").read_text()) if item.keyword == "RUN"
    ]
    torch_install = run.arguments.split("&&")[0]
    assert "--index-url https://download.pytorch.org/whl/cu126" in torch_install
    assert f"torch=={version}+cu126" in torch_install.split()
    assert run.arguments.index("torch==") < run.arguments.index("'.[train]'")  # before the extra
    assert "torch.version.cuda == '12.6'" in run.arguments  # the build checks what it installed
    assert "driver >= 525" in (ROOT / "training/Dockerfile").read_text()
    finetune = (ROOT / "docs/finetune.md").read_text()
    assert f"torch=={version}+cu126" in finetune and "NVIDIA driver >= 525" in finetune


@pytest.mark.parametrize("engine", ["vllm", "tgi"])
def test_the_images_install_the_project_as_a_package_with_the_runtime_extras_pins(engine: str) -> None:
    """The launcher's code comes from the project's wheel, its OCI dependencies at the `runtime` extra's pins."""
    import tomllib

    text = (ROOT / "serving" / engine / "Dockerfile").read_text()
    runtime = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "runtime"
    ]
    *_, final_run = [item for item in instructions(text) if item.keyword == "RUN"]
    assert "--no-deps --target /opt/oci-llm-stack /tmp/wheels/oci_llm_stack-*.whl" in final_run.arguments
    vendored = final_run.arguments.split("--target /opt/oci-llm-stack/vendor", 1)[1]
    assert all(pin in vendored.split() for pin in runtime), (runtime, vendored)
    assert "COPY --from=package /wheels /tmp/wheels" in text


def test_a_serving_image_that_copies_the_projects_files_by_hand_is_refused(tmp_path: Path) -> None:
    old = (
        (ROOT / "serving" / "vllm" / "Dockerfile")
        .read_text()
        .replace("USER 1000", "COPY serving/launcher.py /opt/oci-llm-stack/serving/\nUSER 1000")
    )
    found = problems(ROOT / "serving" / "vllm" / "Dockerfile", old)
    assert len(found) == 1 and "the project's code copied by hand" in found[0]
