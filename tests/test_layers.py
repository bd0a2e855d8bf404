"""The layers point one way: every import of the project's own code, at module level or inside a function.

    llmstack (CLI) ──> components ──> oci_runtime ──> domain
         │                                ^             ^
         └──> policy ─────────────────────┼─────────────┘ (domain only)
    serving, training (images) ───────────┘

`domain` is pure facts: no Pulumi, no OCI SDK, no network. `oci_runtime` talks to OCI and knows no Pulumi.
The images and the policy pack import only what they run.
"""

from __future__ import annotations

import ast
import fnmatch
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR

PACKAGES = ("domain", "oci_runtime", "components", "llmstack", "policy", "serving", "training")
PULUMI = ("pulumi", "pulumi_oci", "pulumi_policy")
NETWORK = ("oci", "requests", "httpx", "urllib3")

# What each layer may import of the project, and which third-party packages it must not.
ALLOWED: dict[str, tuple[str, ...]] = {
    "domain": ("domain",),
    "oci_runtime": ("domain", "oci_runtime"),
    "components": ("domain", "oci_runtime", "components"),
    "policy": ("domain", "policy"),
    "serving": ("domain", "oci_runtime", "serving"),
    "training": ("domain", "oci_runtime", "training"),
    "llmstack": ("domain", "oci_runtime", "components", "policy", "llmstack"),
    "__main__": ("domain", "components"),
}
FORBIDDEN_THIRD_PARTY: dict[str, tuple[str, ...]] = {
    "domain": PULUMI + NETWORK,
    "oci_runtime": PULUMI,
    "policy": ("pulumi_oci", *NETWORK),
    "serving": PULUMI,
    "training": PULUMI,
}


@dataclass(frozen=True)
class Import:
    file: str
    line: int
    module: str
    in_function: bool


def imports_of(path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[Import] = []
    relative = path.relative_to(PROJECT_DIR).as_posix()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend(Import(relative, child.lineno, alias.name, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:  # relative: resolve against the file's package
                    base = relative.removesuffix(".py").split("/")[: -child.level]
                    module = ".".join([*base, *([child.module] if child.module else [])])
                else:
                    module = child.module or ""
                found.append(Import(relative, child.lineno, module, in_function))
            visit(child, inner)

    visit(tree, False)
    return found


def layer_of(relative: str) -> str:
    return relative.split("/")[0].removesuffix(".py")


def project_files() -> list[Path]:
    files = [PROJECT_DIR / "__main__.py"]
    for package in PACKAGES:
        files += sorted(p for p in (PROJECT_DIR / package).rglob("*.py") if "__pycache__" not in p.parts)
    return files


def violations(files: list[Path]) -> list[str]:
    found = []
    for path in files:
        for item in imports_of(path):
            layer = layer_of(item.file)
            top = item.module.split(".")[0]
            where = f"{item.file}:{item.line} imports {item.module}" + (
                " (inside a function)" * item.in_function
            )
            if top in PACKAGES and top not in ALLOWED[layer]:
                found.append(f"{where}: {layer} may import only {', '.join(ALLOWED[layer])}")
            if top in FORBIDDEN_THIRD_PARTY.get(layer, ()):
                found.append(f"{where}: {layer} must not depend on {top}")
    return found


def test_no_import_goes_against_the_layers() -> None:
    files = project_files()
    assert len(files) > 50  # the walk found the project
    assert violations(files) == []


@pytest.mark.parametrize(
    ("layer", "source", "expected"),
    [
        ("domain", "def f():\n    from oci_runtime import auth\n", "domain may import only domain"),
        ("domain", "import pulumi\n", "domain must not depend on pulumi"),
        ("oci_runtime", "from components.storage import ArtifactBucket\n", "oci_runtime may import only"),
        ("policy", "from components import iam\n", "policy may import only domain, policy"),
        ("serving", "def f():\n    import pulumi_oci\n", "serving must not depend on pulumi_oci"),
        ("training", "from ...llmstack import cli\n", "training may import only"),
    ],
)
def test_the_check_catches_an_import_against_the_direction(
    layer: str, source: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(f"{__name__}.PROJECT_DIR", tmp_path)
    path = tmp_path / layer / "sub" / "module.py"
    path.parent.mkdir(parents=True)
    path.write_text(source)
    found = violations([path])
    assert len(found) == 1 and expected in found[0], found
    assert found[0].startswith(f"{layer}/sub/module.py:")


# Imports inside functions: only what an optional extra or an image brings, each with its reason.
# (file pattern, imported module prefix) -> why it is imported late.
LATE_IMPORTS: dict[tuple[str, str], str] = {
    ("training/*", "torch"): "the train extra: installed only in the job's image",
    ("training/*", "transformers"): "the train extra",
    ("training/*", "peft"): "the train extra",
    ("training/*", "huggingface_hub"): "the train extra",
    ("llmstack/chat.py", "gradio"): "the chat extra",
    (
        "llmstack/commands/*",
        "",
    ): "a command imports what its extra (runtime, stack, chat) brings when it runs, "
    "so that any install lists every command and names the extra a command needs",
    ("llmstack/endpoints.py", "oci_runtime"): "the runtime extra, for the commands that call a deployment",
    ("serving/launcher.py", "oci"): "the image vendors the OCI SDK in a folder the launcher adds to its path "
    "only to read a Vault secret",
    ("serving/launcher.py", "oci_runtime.retry"): "the same vendored folder",
    ("serving/launcher.py", "serving.adapter"): "the adapter's server packages come from the image's vendor "
    "folder, put on the path just before",
    ("oci_runtime/upload.py", "crc32c"): "optional: parts go without a checksum header when it is missing",
}


def late_import_violations(files: list[Path]) -> list[str]:
    found = []
    for path in files:
        for item in imports_of(path):
            if not item.in_function:
                continue
            allowed = any(
                fnmatch.fnmatch(item.file, pattern)
                and (prefix == "" or item.module == prefix or item.module.startswith(prefix + "."))
                for pattern, prefix in LATE_IMPORTS
            )
            if not allowed:
                found.append(f"{item.file}:{item.line} imports {item.module} inside a function")
    return found


def test_imports_inside_functions_are_only_for_optional_extras() -> None:
    assert late_import_violations(project_files()) == []


def test_the_late_import_check_catches_a_new_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(f"{__name__}.PROJECT_DIR", tmp_path)
    path = tmp_path / "oci_runtime" / "thing.py"
    path.parent.mkdir()
    path.write_text("def f():\n    import oci\n")
    assert late_import_violations([path]) == ["oci_runtime/thing.py:2 imports oci inside a function"]
    assert all(why for why in LATE_IMPORTS.values())
