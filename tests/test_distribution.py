"""Each deployable installs only what it needs: the extras, the policy pack's requirements, the import closures."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from llmstack import cli
from tests.conftest import PROJECT_DIR

PYPROJECT = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())
PULUMI = ("pulumi", "pulumi-oci", "pulumi-policy")


def names(requirements: list[str]) -> set[str]:
    return {r.split("==")[0].split("[")[0].strip() for r in requirements}


def extra(name: str) -> list[str]:
    extras: dict[str, list[str]] = PYPROJECT["project"]["optional-dependencies"]
    return extras[name]


def test_the_extras_keep_pulumi_where_only_the_stack_needs_it() -> None:
    base = names(PYPROJECT["project"]["dependencies"])
    assert base.isdisjoint({*PULUMI, "oci"}), base
    assert "oci" in names(extra("runtime")) and names(extra("runtime")).isdisjoint(PULUMI)
    assert set(PULUMI) <= names(extra("stack")) and "oci-llm-stack[runtime]" in extra("stack")
    # The training image: the job's libraries and the OCI runtime, no Pulumi.
    assert "oci-llm-stack[runtime]" in extra("train") and names(extra("train")).isdisjoint(PULUMI)
    assert "oci-llm-stack[stack]" not in extra("train")


def test_the_policy_pack_has_its_own_requirements_pinned_like_the_project() -> None:
    lines = [
        line.strip()
        for line in (PROJECT_DIR / "policy" / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    pinned = next(r for r in extra("stack") if r.startswith("pulumi-policy=="))
    assert lines == [pinned]
    config = (PROJECT_DIR / "policy" / "PulumiPolicy.yaml").read_text()
    assert "virtualenv: venv" in config and "../.venv" not in config


def closure(code: str, *, isolated: bool = False) -> set[str]:
    """Top-level modules imported by `code` in a fresh interpreter (`isolated`: no site-packages at all)."""
    program = f"import sys\n{code}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    flags = ["-S"] if isolated else []
    done = subprocess.run(
        [sys.executable, *flags, "-c", program],
        cwd=PROJECT_DIR,
        env={"PYTHONPATH": str(PROJECT_DIR), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_the_policy_rules_run_on_the_standard_library_and_the_domain_facts_alone() -> None:
    loaded = closure("import policy.rules, policy.figures", isolated=True)
    assert {"policy", "domain"} <= loaded
    assert loaded.isdisjoint({"components", "oci_runtime", "llmstack", "yaml", "oci", "pulumi", "pydantic"})


def test_the_vllm_middleware_runs_on_the_standard_library_alone() -> None:
    """It is imported into vLLM's own process, whose packages stay the image's: our code brings no package
    (isolated: no site-packages at all) and no module of ours but itself and the legacy translation."""
    loaded = closure("import serving.vllm_routes", isolated=True)
    ours = {"serving", "domain", "oci_runtime", "llmstack", "components", "training", "policy"}
    assert loaded & ours == {"serving"}
    assert loaded <= set(sys.stdlib_module_names) | {"serving", "__main__"}
    done = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            "import serving.vllm_routes, sys; print(sorted(m for m in sys.modules if m.startswith('serving')))",
        ],
        cwd=PROJECT_DIR,
        env={"PYTHONPATH": str(PROJECT_DIR), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.split() == ["['serving',", "'serving.legacy',", "'serving.vllm_routes']"]


@pytest.mark.parametrize(
    ("what", "code", "never"),
    [
        (
            "llmstack predict and chat",
            "from llmstack import cli; cli.build_parser(); import llmstack.commands.predict, oci_runtime.predict",
            {"pulumi", "pulumi_oci", "pulumi_policy", "components", "gradio"},
        ),
        (
            "the serving launcher",
            "import serving.launcher, serving.adapter",
            {"pulumi", "pulumi_oci", "components"},
        ),
        (
            "the training job's runtime",
            "import oci_runtime.storage, oci_runtime.vault",
            {"pulumi", "components"},
        ),
    ],
)
def test_a_deployable_does_not_load_what_it_does_not_install(what: str, code: str, never: set[str]) -> None:
    loaded = closure(code)
    assert loaded.isdisjoint(never), (what, loaded & never)


def test_a_command_whose_extra_is_missing_names_the_extra() -> None:
    # `llmstack plan` on an install without the stack extra: pulumi cannot be imported.
    code = (
        "import sys; sys.modules['pulumi'] = None\n"
        "from llmstack import cli\n"
        "sys.exit(cli.main(['plan', '--stack', 'dev']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "llmstack plan: needs the 'stack' extra (pulumi is not installed): pip install 'oci-llm-stack[stack]'"
    )
    assert cli.EXTRA_OF_MODULE["gradio"] == "chat"
